// ZSTD (EROFS algorithm 3): one complete zstd frame per pcluster, content size present, no
// checksum, window no larger than the superblock's record. libzstd has no "fill N bytes" mode, so
// the input length is searched (search.ts), as the reference tool does.

import { Z_EROFS_COMPRESSION_ZSTD } from '../format/constants.js';
import {
  type Backend,
  type Compressor,
  type Decompressor,
  type DestSizeResult,
  checkDstCapacity,
  CompressionOptionError,
  DecompressError,
  log2Floor,
} from './compressor.js';
import {
  type ZstdNative,
  loadZstd,
  ZSTD_c_checksumFlag,
  ZSTD_c_compressionLevel,
  ZSTD_c_contentSizeFlag,
  ZSTD_c_windowLog,
  ZSTD_error_dstSize_tooSmall,
} from './native.js';
import { searchPrefix } from './search.js';

export const ZSTD_MIN_WINDOW = 1024; // ZSTD_WINDOWLOG_MIN = 10
export const ZSTD_MAX_WINDOW = 1 << 20; // the kernel accepts windowlog <= 10 (+10)

/** mkfs default: min(1 MiB, 8 * max pcluster) rounded down to a power of two. */
export function defaultZstdWindow(maxPclusterBytes: number): number {
  const w = Math.min(ZSTD_MAX_WINDOW, 8 * maxPclusterBytes);
  return Math.max(ZSTD_MIN_WINDOW, 1 << log2Floor(w));
}

/** ZSTD_COMPRESSBOUND from zstd.h: worst-case frame size for n input bytes. */
function zstdBound(n: number): number {
  return n + (n >>> 8) + (n < 128 << 10 ? ((128 << 10) - n) >>> 11 : 0);
}

function zstdError(nat: ZstdNative, code: number | bigint): string {
  return String(nat.getErrorName(code));
}

function isZstdError(nat: ZstdNative, r: number | bigint): boolean {
  // Error codes are (size_t)-code, which koffi hands back as a BigInt.
  return typeof r === 'bigint' || nat.isError(r) !== 0;
}

export interface ZstdCompressorConfig {
  level: number;
  dictSize?: number | undefined;
  maxPclusterBytes?: number | undefined;
  backend: Backend;
}

export class ZstdCompressor implements Compressor {
  readonly name = 'zstd' as const;
  readonly algorithm = Z_EROFS_COMPRESSION_ZSTD;
  readonly level: number;
  readonly backend = 'native' as const;
  private window: number;
  private readonly explicitWindow: boolean;
  private maxWindowUsed = 0;
  private appliedWindow = 0;
  private readonly nat: ZstdNative;
  private cctx: unknown;
  private scratch = new Uint8Array(0);
  private best = new Uint8Array(0);
  // The previous pcluster's input size seeds the next search (most files compress evenly).
  private lastConsumed = 0;
  private lastCap = 0;
  /** Compression calls made so far by the length search (for tuning and tests). */
  probes = 0;

  constructor(cfg: ZstdCompressorConfig) {
    if (cfg.backend === 'js') {
      throw new CompressionOptionError('zstd has no portable implementation; it needs the system libzstd');
    }
    this.nat = loadZstd();
    this.level = cfg.level;
    this.explicitWindow = cfg.dictSize !== undefined;
    this.window = cfg.dictSize ?? defaultZstdWindow(cfg.maxPclusterBytes ?? 4096);
    this.cctx = this.nat.createCCtx();
    if (!this.cctx) throw new Error('zstd: ZSTD_createCCtx failed');
    this.setParam(ZSTD_c_compressionLevel, this.level);
    this.setParam(ZSTD_c_contentSizeFlag, 1); // the kernel needs no size, but mkfs writes it
    this.setParam(ZSTD_c_checksumFlag, 0);
  }

  get dictSize(): number {
    return this.window;
  }

  private setParam(param: number, value: number): void {
    const r = this.nat.cctxSetParameter(this.cctx, param, value);
    if (isZstdError(this.nat, r)) throw new Error(`zstd: setting parameter ${param}=${value}: ${zstdError(this.nat, r)}`);
  }

  compressDestSize(src: Uint8Array, dstCapacity: number): DestSizeResult | null {
    checkDstCapacity(dstCapacity);
    if (this.cctx === null) throw new Error('zstd: compressor was disposed');
    const n = src.length;
    if (n === 0 || dstCapacity < 12) return null; // frame header + one block header + a byte
    if (this.appliedWindow !== this.window) {
      this.setParam(ZSTD_c_windowLog, log2Floor(this.window));
      this.appliedWindow = this.window;
    }
    if (this.window > this.maxWindowUsed) this.maxWindowUsed = this.window;
    if (this.best.length < dstCapacity) this.best = new Uint8Array(dstCapacity);
    // Past this, a probe's exact size is not needed: "too big" is enough to move the search.
    const scratchLimit = 2 * dstCapacity + 256;
    const nat = this.nat;
    const trial = (len: number): number => {
      const cap = Math.min(zstdBound(len), scratchLimit);
      if (this.scratch.length < cap) this.scratch = new Uint8Array(Math.max(cap, scratchLimit));
      const r = nat.compress2(this.cctx, this.scratch, cap, src, len) as number | bigint;
      if (isZstdError(nat, r)) {
        if (nat.getErrorCode(r) === ZSTD_error_dstSize_tooSmall) return cap + 1;
        throw new Error(`zstd: ZSTD_compress2 failed: ${zstdError(nat, r)}`);
      }
      return Number(r);
    };
    const keep = (size: number): void => {
      this.best.set(this.scratch.subarray(0, size));
    };
    const first =
      this.lastConsumed > 0 ? (((this.lastConsumed * 15) / 16) * dstCapacity) / this.lastCap : 4 * dstCapacity;
    // Stop once within 64 bytes (~0.4% of big pclusters) of the budget: each probe compresses
    // the whole prefix again, and on the Debian root going from 64 to 16 bytes costs 13% more
    // time for 0.3% less image (already 13% smaller than the reference's).
    const margin = Math.max(64, dstCapacity >>> 8);
    const res = searchPrefix(n, dstCapacity, margin, first, (len) => (this.probes++, trial(len)), keep);
    if (!res) return null;
    this.lastConsumed = res.consumed;
    this.lastCap = dstCapacity;
    return { consumed: res.consumed, data: this.best.subarray(0, res.size) };
  }

  configRecord(maxPclusterBytes: number): Uint8Array {
    this.setMaxPclusterSize(maxPclusterBytes);
    // u8 format (0), u8 windowlog = log2(window) - 10, 4 reserved.
    const rec = new Uint8Array(6);
    rec[1] = log2Floor(this.window) - 10;
    return rec;
  }

  setMaxPclusterSize(maxPclusterBytes: number): void {
    if (this.explicitWindow) return;
    const w = defaultZstdWindow(maxPclusterBytes);
    if (w < this.maxWindowUsed) {
      throw new Error(`zstd: window ${w} would be smaller than the ${this.maxWindowUsed} already used for compression`);
    }
    this.window = w;
  }

  /** Forget the previous pcluster's size (makes the next search start from 4 * dstCapacity). */
  resetSearchHint(): void {
    this.lastConsumed = 0;
  }

  dispose(): void {
    if (this.cctx !== null) {
      this.nat.freeCCtx(this.cctx);
      this.cctx = null;
    }
  }
}

export class ZstdDecompressor implements Decompressor {
  private readonly nat: ZstdNative;
  private readonly dctx: unknown;
  constructor() {
    this.nat = loadZstd();
    this.dctx = this.nat.createDCtx();
    if (!this.dctx) throw new Error('zstd: ZSTD_createDCtx failed');
  }
  decompress(src: Uint8Array, outLen: number): Uint8Array {
    const out = new Uint8Array(outLen);
    const r = this.nat.decompressDCtx(this.dctx, out, outLen, src, src.length) as number | bigint;
    if (isZstdError(this.nat, r)) throw new DecompressError(`zstd: ${zstdError(this.nat, r)}`);
    if (r !== outLen) throw new DecompressError(`zstd: frame decodes to ${r} bytes, expected ${outLen}`);
    return out;
  }
}
