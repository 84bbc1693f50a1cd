// The contract between mkfs and the per-algorithm fixed-output ("destSize") encoders.

export type AlgorithmName = 'lz4' | 'lz4hc' | 'lzma' | 'deflate' | 'zstd';

/**
 * Which implementation to use.
 * - 'auto': the system C library through koffi when it loads, else the portable path (if any).
 * - 'native': the system C library; throws NativeLibraryError if it cannot be loaded.
 * - 'js': the portable path (pure TypeScript LZ4, Node's zlib for DEFLATE); LZMA and ZSTD have none.
 */
export type Backend = 'auto' | 'native' | 'js';

export interface CompressorOptions {
  /** Compression level; range and default depend on the algorithm (see registry.ts). */
  level?: number;
  /**
   * Dictionary / window size in bytes (lzma: dictionary, deflate/zstd: window). When absent the
   * reference tool's default is used, which for lzma and zstd depends on the max pcluster size.
   */
  dictSize?: number;
  /**
   * Largest pcluster the caller will ask for (the `-C` value, or the block size). Only used to derive
   * the default dictionary/window; `configRecord()` also sets it. Default: 4096.
   */
  maxPclusterBytes?: number;
  backend?: Backend;
}

/** data.length <= dstCapacity and data[0] !== 0 (leading zero bytes of a pcluster are padding). */
export interface DestSizeResult {
  consumed: number;
  data: Uint8Array;
}

export interface Compressor {
  readonly name: AlgorithmName;
  /** Z_EROFS_COMPRESSION_* id stored on disk. */
  readonly algorithm: number;
  /** The level as selected (after applying the default). */
  readonly level: number;
  /** 'native' or 'js': which implementation this instance actually runs. */
  readonly backend: 'native' | 'js';
  /** Effective dictionary/window size in bytes (0 for LZ4, whose window is fixed at 64 KiB - 1). */
  readonly dictSize: number;
  /**
   * Failing on incompressible input costs as much as compressing: the caller screens such
   * input out first (screen.ts) and stores it raw.
   */
  readonly slowOnIncompressible?: boolean;
  /**
   * Set where a result does not depend on input more than this many bytes past what it
   * consumed, for any src of 256 KiB or more: a caller may offer a prefix of its input and
   * offer the rest only when the compressor came that close to the prefix's end. Absent: a
   * result may depend on all of src (zstd and DEFLATE search over its length).
   */
  readonly stableBeyond?: number;
  /**
   * Compress the longest prefix of src whose compressed form fits in dstCapacity bytes.
   * Returns null if not even a useful prefix fits (or src is empty).
   * `data` may be a view of the compressor's own buffer, valid until its next call: copy it
   * to keep it.
   */
  compressDestSize(src: Uint8Array, dstCapacity: number): DestSizeResult | null;
  /**
   * The superblock compression-config record payload (without the le16 length in front):
   * LZ4 14 bytes, LZMA 14, DEFLATE 6, ZSTD 6. Also pins the default dictionary/window to this
   * max pcluster size (as setMaxPclusterSize), so the record always matches what is compressed.
   * blockSize is needed by LZ4 only (max_pclusterblks); default 4096.
   */
  configRecord(maxPclusterBytes: number, blockSize?: number): Uint8Array;
  /**
   * Set the max pcluster size used to derive the default dictionary/window (no effect when the
   * dictionary size was given explicitly). Throws if it would shrink the window below one already
   * used for compressed data.
   */
  setMaxPclusterSize(maxPclusterBytes: number): void;
  /** Release native resources early (optional; they are also reclaimed at process exit). */
  dispose(): void;
  /**
   * How much input the first outBytes bytes of a stream from compressDestSize stand for, where
   * the format tells (LZ4's byte-aligned sequences): lets the caller skip a retry that cannot win.
   */
  inputBefore?(data: Uint8Array, outBytes: number): number;
  /**
   * Forget what earlier calls learned (the search start of zstd/deflate), so that a file's
   * pclusters do not depend on the files compressed before it.
   */
  resetSearchHint?(): void;
}

export interface Decompressor {
  /** src: the exact compressed stream (zero padding stripped); returns exactly outLen bytes or throws. */
  decompress(src: Uint8Array, outLen: number): Uint8Array;
}

/** Thrown for corrupt or mismatching compressed data. */
export class DecompressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecompressError';
  }
}

/** Thrown for a bad -z argument, unknown algorithm, or out-of-range level/dictsize. */
export class CompressionOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CompressionOptionError';
  }
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 0x40000000;
}

export function log2Floor(n: number): number {
  return 31 - Math.clz32(n);
}

export function checkDstCapacity(dstCapacity: number): void {
  if (!Number.isInteger(dstCapacity) || dstCapacity < 0 || dstCapacity > 0x7fffffff) {
    throw new RangeError(`invalid dstCapacity ${dstCapacity}`);
  }
}
