// DEFLATE (EROFS algorithm 2): a raw RFC 1951 stream (final block set, no zlib/gzip wrapper).
// Fixed output is reached by searching the input length (search.ts) with libdeflate through koffi,
// or with Node's zlib.deflateRawSync when libdeflate is missing or a window < 32 KiB is asked for
// (libdeflate always uses the full 32 KiB window).

import { zlib } from '../builtins.js';
import { Z_EROFS_COMPRESSION_DEFLATE } from '../format/constants.js';
import {
  type Backend,
  type Compressor,
  type Decompressor,
  type DestSizeResult,
  checkDstCapacity,
  DecompressError,
  log2Floor,
} from './compressor.js';
import { type DeflateNative, loadDeflate, tryLoad } from './native.js';
import { searchPrefix } from './search.js';

export const DEFLATE_MIN_WINDOW = 512; // zlib raw deflate needs windowBits >= 9
export const DEFLATE_MAX_WINDOW = 32768;

/** Keep the stream from starting with 0x00, which readers would take for padding. */
export function fixDeflateFirstByte(data: Uint8Array): void {
  // Only a non-final stored block header padded with zero bits gives a 0x00 first byte; bit 3 is
  // one of those padding bits, which inflaters ignore.
  if (data.length > 0 && data[0] === 0) data[0] = 0x08;
}

export interface DeflateCompressorConfig {
  level: number;
  dictSize?: number | undefined;
  backend: Backend;
}

export class DeflateCompressor implements Compressor {
  readonly name = 'deflate' as const;
  readonly algorithm = Z_EROFS_COMPRESSION_DEFLATE;
  readonly level: number;
  readonly backend: 'native' | 'js';
  readonly dictSize: number;
  /** Each length search runs several trial compressions, failing ones included. */
  readonly slowOnIncompressible = true;
  private readonly nat: DeflateNative | null;
  private comp: unknown = null;
  private scratch = new Uint8Array(0);
  private best = new Uint8Array(0);
  private lastConsumed = 0;
  private lastCap = 0;
  /** Compression calls made so far by the length search (for tuning and tests). */
  probes = 0;

  constructor(cfg: DeflateCompressorConfig) {
    this.level = cfg.level;
    this.dictSize = cfg.dictSize ?? DEFLATE_MAX_WINDOW;
    const smallWindow = this.dictSize < DEFLATE_MAX_WINDOW;
    if (cfg.backend === 'native') {
      if (smallWindow) throw new Error('deflate: libdeflate cannot limit the window below 32 KiB; use backend "js"');
      this.nat = loadDeflate();
    } else if (cfg.backend === 'js' || smallWindow) {
      this.nat = null;
    } else {
      this.nat = tryLoad(loadDeflate);
    }
    this.backend = this.nat ? 'native' : 'js';
    if (this.nat) {
      this.comp = this.nat.allocCompressor(this.level);
      if (!this.comp) throw new Error(`deflate: libdeflate_alloc_compressor(${this.level}) failed`);
    }
  }

  compressDestSize(src: Uint8Array, dstCapacity: number): DestSizeResult | null {
    checkDstCapacity(dstCapacity);
    const n = src.length;
    if (n === 0 || dstCapacity < 8) return null;
    if (this.best.length < dstCapacity) this.best = new Uint8Array(dstCapacity);
    let trial: (len: number) => number;
    let keep: (size: number) => void;
    if (this.nat) {
      if (this.comp === null) throw new Error('deflate: compressor was disposed');
      const nat = this.nat;
      const comp = this.comp;
      // Past this, a probe's exact size is not needed: "too big" is enough to move the search.
      const scratchLimit = 2 * dstCapacity + 256;
      if (this.scratch.length < scratchLimit) this.scratch = new Uint8Array(scratchLimit);
      trial = (len) => {
        const bound = Number(nat.deflateCompressBound(comp, len));
        const cap = Math.min(bound, scratchLimit);
        const r = Number(nat.deflateCompress(comp, src, len, this.scratch, cap));
        if (r !== 0) return r;
        if (cap < bound) return cap + 1; // did not fit the scratch
        throw new Error('deflate: libdeflate output exceeded its own bound');
      };
      keep = (size) => this.best.set(this.scratch.subarray(0, size));
    } else {
      const opts = { level: this.level, windowBits: log2Floor(this.dictSize) };
      let last: Uint8Array = new Uint8Array(0);
      trial = (len) => {
        last = zlib().deflateRawSync(src.subarray(0, len), opts);
        return last.length;
      };
      keep = (size) => this.best.set(last.subarray(0, size));
    }
    const first =
      this.lastConsumed > 0 ? (((this.lastConsumed * 15) / 16) * dstCapacity) / this.lastCap : 4 * dstCapacity;
    // Like the reference's libdeflate path: close enough once within 22 - 2 * level bytes.
    const margin = Math.max(4, 22 - 2 * this.level);
    const res = searchPrefix(n, dstCapacity, margin, first, (len) => (this.probes++, trial(len)), keep);
    if (!res) return null;
    this.lastConsumed = res.consumed;
    this.lastCap = dstCapacity;
    const data = this.best.subarray(0, res.size);
    fixDeflateFirstByte(data);
    return { consumed: res.consumed, data };
  }

  configRecord(): Uint8Array {
    // u8 windowbits, 5 reserved.
    const rec = new Uint8Array(6);
    rec[0] = log2Floor(this.dictSize);
    return rec;
  }

  setMaxPclusterSize(): void {
    // The DEFLATE window does not depend on the pcluster size.
  }

  /** Forget the previous pcluster's size (makes the next search start from 4 * dstCapacity). */
  resetSearchHint(): void {
    this.lastConsumed = 0;
  }

  dispose(): void {
    if (this.nat && this.comp !== null) {
      this.nat.freeCompressor(this.comp);
      this.comp = null;
    }
  }
}

export class DeflateDecompressor implements Decompressor {
  decompress(src: Uint8Array, outLen: number): Uint8Array {
    let out: Uint8Array;
    try {
      // Node's inflate fails on a truncated stream ("unexpected end of file").
      out = zlib().inflateRawSync(src, { maxOutputLength: Math.max(1, outLen) });
    } catch (e) {
      throw new DecompressError(`deflate: ${(e as Error).message}`);
    }
    if (out.length !== outLen) throw new DecompressError(`deflate: stream decodes to ${out.length} bytes, expected ${outLen}`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
}
