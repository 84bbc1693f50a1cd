// LZMA (EROFS algorithm 1): MicroLZMA through liblzma (>= 5.4). lzma_microlzma_encoder +
// lzma_code(LZMA_FINISH) encodes as much input as fits the output buffer and ends the stream there
// (no end marker); byte 0 is ~(lc/lp/pb properties) so it is never 0x00.
//
// lzma_stream (x86-64, 136 bytes, all zero = LZMA_STREAM_INIT): next_in @0, avail_in @8,
// total_in @16, next_out @24, avail_out @32, total_out @40, internal @56.
// lzma_options_lzma (112 bytes): dict_size u32 @0, lc @20, lp @24, pb @28, ...

import { Z_EROFS_COMPRESSION_LZMA } from '../format/constants.js';
import {
  type Backend,
  type Compressor,
  type Decompressor,
  type DestSizeResult,
  checkDstCapacity,
  CompressionOptionError,
  DecompressError,
} from './compressor.js';
import { type LzmaNative, getKoffi, loadLzma, NativeBuffer } from './native.js';

export const LZMA_MIN_DICT = 4096; // kernel lower bound
export const LZMA_MAX_DICT = 8 << 20; // kernel upper bound (Z_EROFS_LZMA_MAX_DICT_SIZE)
const LZMA_PRESET_EXTREME = 0x80000000;

const LZMA_OK = 0;
const LZMA_STREAM_END = 1;
const LZMA_RUN = 0;
const LZMA_FINISH = 3;

const STREAM_SIZE = 136;
const OPTIONS_SIZE = 112;
const OFF_NEXT_IN = 0;
const OFF_AVAIL_IN = 8;
const OFF_TOTAL_IN = 16;
const OFF_NEXT_OUT = 24;
const OFF_AVAIL_OUT = 32;
const OFF_TOTAL_OUT = 40;

/** mkfs default dictionary: max(32 KiB, min(8 MiB, 4 * max pcluster)). */
export function defaultLzmaDictSize(maxPclusterBytes: number): number {
  return Math.max(32 << 10, Math.min(LZMA_MAX_DICT, 4 * maxPclusterBytes));
}

/** Levels 0-9 are xz presets; 100-109 are the same with LZMA_PRESET_EXTREME. */
export function lzmaPreset(level: number): number {
  return level >= 100 ? (level - 100) | LZMA_PRESET_EXTREME : level;
}

/** One lzma_stream in native memory plus native in/out buffers (liblzma keeps pointers to them). */
class LzmaStream {
  readonly strm: NativeBuffer;
  readonly dv: DataView;
  readonly inBuf: NativeBuffer;
  readonly outBuf: NativeBuffer;
  constructor(private readonly nat: LzmaNative) {
    this.strm = new NativeBuffer(STREAM_SIZE);
    this.strm.view.fill(0);
    this.dv = new DataView(this.strm.view.buffer, this.strm.view.byteOffset, STREAM_SIZE);
    this.inBuf = new NativeBuffer(64 << 10);
    this.outBuf = new NativeBuffer(64 << 10);
  }
  /** Point the stream at inBuf[0, inLen) and outBuf[0, outLen). */
  setBuffers(inLen: number, outLen: number): void {
    const dv = this.dv;
    dv.setBigUint64(OFF_NEXT_IN, this.inBuf.address, true);
    dv.setBigUint64(OFF_AVAIL_IN, BigInt(inLen), true);
    dv.setBigUint64(OFF_NEXT_OUT, this.outBuf.address, true);
    dv.setBigUint64(OFF_AVAIL_OUT, BigInt(outLen), true);
  }
  get totalIn(): number {
    return Number(this.dv.getBigUint64(OFF_TOTAL_IN, true));
  }
  get totalOut(): number {
    return Number(this.dv.getBigUint64(OFF_TOTAL_OUT, true));
  }
  free(): void {
    this.nat.end(this.strm.ptr);
    this.strm.free();
    this.inBuf.free();
    this.outBuf.free();
  }
}

function checkLayout(): void {
  // The offsets above assume 64-bit pointers and size_t.
  if (getKoffi().sizeof('void *') !== 8 || getKoffi().sizeof('size_t') !== 8) {
    throw new Error('lzma: only 64-bit platforms are supported (lzma_stream layout)');
  }
}

export interface LzmaCompressorConfig {
  level: number;
  dictSize?: number | undefined;
  maxPclusterBytes?: number | undefined;
  backend: Backend;
}

export class LzmaCompressor implements Compressor {
  readonly name = 'lzma' as const;
  readonly algorithm = Z_EROFS_COMPRESSION_LZMA;
  readonly level: number;
  readonly backend = 'native' as const;
  readonly slowOnIncompressible = true;
  /**
   * The encoder looks ahead of what it encodes by its optimum parser's 4 KiB and a longest
   * match (273 bytes); compressDestSize offers more input only where the encoder took all.
   */
  readonly stableBeyond = 64 << 10;
  private dict: number;
  private readonly explicitDict: boolean;
  private maxDictUsed = 0;
  private readonly nat: LzmaNative;
  private stream: LzmaStream | null;
  private readonly options: NativeBuffer;
  private readonly optionsDv: DataView;

  constructor(cfg: LzmaCompressorConfig) {
    if (cfg.backend === 'js') {
      throw new CompressionOptionError('lzma has no portable implementation; it needs the system liblzma (>= 5.4)');
    }
    this.nat = loadLzma();
    checkLayout();
    this.level = cfg.level;
    this.explicitDict = cfg.dictSize !== undefined;
    this.dict = cfg.dictSize ?? defaultLzmaDictSize(cfg.maxPclusterBytes ?? 4096);
    this.options = new NativeBuffer(OPTIONS_SIZE);
    this.options.view.fill(0);
    this.optionsDv = new DataView(this.options.view.buffer, this.options.view.byteOffset, OPTIONS_SIZE);
    if (this.nat.lzmaPreset(this.options.ptr, lzmaPreset(this.level)) !== 0) {
      throw new CompressionOptionError(`lzma: unsupported preset level ${this.level}`);
    }
    this.stream = new LzmaStream(this.nat);
  }

  get dictSize(): number {
    return this.dict;
  }

  compressDestSize(src: Uint8Array, dstCapacity: number): DestSizeResult | null {
    checkDstCapacity(dstCapacity);
    const s = this.stream;
    if (!s) throw new Error('lzma: compressor was disposed');
    const n = src.length;
    if (n === 0 || dstCapacity < 6) return null; // MicroLZMA needs at least 6 output bytes
    this.optionsDv.setUint32(0, this.dict, true);
    if (this.dict > this.maxDictUsed) this.maxDictUsed = this.dict;
    s.outBuf.ensure(dstCapacity);
    // Hand the encoder a bounded chunk (the input is copied to native memory): plenty for typical
    // data; when it swallows the whole chunk, retry with a bigger one.
    let chunk = Math.min(n, Math.max(64 << 10, 16 * dstCapacity));
    for (;;) {
      s.inBuf.ensure(chunk);
      s.inBuf.view.set(chunk === n ? src : src.subarray(0, chunk));
      let r = this.nat.microlzmaEncoder(s.strm.ptr, this.options.ptr) as number;
      if (r !== LZMA_OK) throw new Error(`lzma: lzma_microlzma_encoder failed (lzma_ret ${r})`);
      s.setBuffers(chunk, dstCapacity);
      r = this.nat.code(s.strm.ptr, LZMA_FINISH) as number;
      if (r !== LZMA_STREAM_END) throw new Error(`lzma: lzma_code failed (lzma_ret ${r})`);
      const consumed = s.totalIn;
      const size = s.totalOut;
      if (consumed === chunk && chunk < n) {
        chunk = Math.min(n, chunk * 8);
        continue;
      }
      if (consumed === 0 || size === 0) return null;
      // Copied out: the native buffer is freed by dispose().
      return { consumed, data: s.outBuf.view.slice(0, size) };
    }
  }

  configRecord(maxPclusterBytes: number): Uint8Array {
    this.setMaxPclusterSize(maxPclusterBytes);
    // le32 dict_size, le16 format (0), 8 reserved.
    const rec = new Uint8Array(14);
    new DataView(rec.buffer).setUint32(0, this.dict, true);
    return rec;
  }

  setMaxPclusterSize(maxPclusterBytes: number): void {
    if (this.explicitDict) return;
    const d = defaultLzmaDictSize(maxPclusterBytes);
    if (d < this.maxDictUsed) {
      throw new Error(`lzma: dictionary ${d} would be smaller than the ${this.maxDictUsed} already used for compression`);
    }
    this.dict = d;
  }

  dispose(): void {
    if (this.stream) {
      this.stream.free();
      this.stream = null;
      this.options.free();
    }
  }
}

export class LzmaDecompressor implements Decompressor {
  private readonly nat: LzmaNative;
  private readonly stream: LzmaStream;
  constructor() {
    this.nat = loadLzma();
    checkLayout();
    this.stream = new LzmaStream(this.nat);
  }
  /**
   * The dictionary size is not stored in the stream; any value >= the uncompressed size works,
   * so outLen (at least the kernel's 4096 minimum) is used.
   */
  decompress(src: Uint8Array, outLen: number): Uint8Array {
    return this.decode(src, outLen, true);
  }

  /**
   * The first outLen bytes of a pcluster that decodes to more (a partial reference):
   * outLen is then only an upper bound for the decoder, and input may be left over.
   */
  decompressPartial(src: Uint8Array, outLen: number): Uint8Array {
    return this.decode(src, outLen, false);
  }

  private decode(src: Uint8Array, outLen: number, exact: boolean): Uint8Array {
    const s = this.stream;
    if (src.length === 0) throw new DecompressError('lzma: empty stream');
    s.inBuf.ensure(src.length);
    s.inBuf.view.set(src);
    s.outBuf.ensure(outLen);
    const dict = Math.max(LZMA_MIN_DICT, outLen);
    let r = this.nat.microlzmaDecoder(s.strm.ptr, src.length, outLen, exact ? 1 : 0, dict) as number;
    if (r !== LZMA_OK) throw new DecompressError(`lzma: lzma_microlzma_decoder failed (lzma_ret ${r})`);
    s.setBuffers(src.length, outLen);
    r = this.nat.code(s.strm.ptr, LZMA_RUN) as number;
    if (r !== LZMA_STREAM_END && r !== LZMA_OK) throw new DecompressError(`lzma: corrupt stream (lzma_ret ${r})`);
    if (s.totalOut !== outLen) throw new DecompressError(`lzma: stream decodes to ${s.totalOut} bytes, expected ${outLen}`);
    if (exact && s.totalIn !== src.length) {
      throw new DecompressError(`lzma: stream uses ${s.totalIn} of ${src.length} compressed bytes`);
    }
    return s.outBuf.view.slice(0, outLen);
  }
}
