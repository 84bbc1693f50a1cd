// Lazy bindings to the system compression libraries through koffi (FFI, prebuilt binaries shipped
// inside the npm package). Nothing here is loaded until an algorithm asks for it, so the pure
// TypeScript paths keep working where koffi or a library is missing.

import { type Koffi, loadKoffi } from '../ffi.js';
type Fn = (...args: any[]) => any; // koffi functions are untyped at the boundary

/** A system library (or koffi itself) could not be loaded. */
export class NativeLibraryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NativeLibraryError';
  }
}

interface LibInfo {
  /** File names tried in order, per platform. */
  candidates: Record<string, string[]>;
  /** What to install, shown in the error. */
  install: string;
  what: string;
}

const LIBS = {
  lz4: {
    what: 'liblz4',
    install: 'Debian/Ubuntu: apt-get install liblz4-1; macOS: brew install lz4',
    candidates: {
      linux: ['liblz4.so.1', 'liblz4.so'],
      darwin: ['liblz4.1.dylib', 'liblz4.dylib', '/opt/homebrew/lib/liblz4.dylib', '/usr/local/lib/liblz4.dylib'],
      win32: ['liblz4.dll', 'lz4.dll'],
      other: ['liblz4.so.1', 'liblz4.so'],
    },
  },
  lzma: {
    what: 'liblzma (>= 5.4 for MicroLZMA)',
    install: 'Debian/Ubuntu: apt-get install liblzma5; macOS: brew install xz',
    candidates: {
      linux: ['liblzma.so.5', 'liblzma.so'],
      darwin: ['liblzma.5.dylib', 'liblzma.dylib', '/opt/homebrew/lib/liblzma.dylib', '/usr/local/lib/liblzma.dylib'],
      win32: ['liblzma.dll', 'lzma.dll'],
      other: ['liblzma.so.5', 'liblzma.so'],
    },
  },
  zstd: {
    what: 'libzstd',
    install: 'Debian/Ubuntu: apt-get install libzstd1; macOS: brew install zstd',
    candidates: {
      linux: ['libzstd.so.1', 'libzstd.so'],
      darwin: ['libzstd.1.dylib', 'libzstd.dylib', '/opt/homebrew/lib/libzstd.dylib', '/usr/local/lib/libzstd.dylib'],
      win32: ['libzstd.dll', 'zstd.dll'],
      other: ['libzstd.so.1', 'libzstd.so'],
    },
  },
  deflate: {
    what: 'libdeflate',
    install: 'Debian/Ubuntu: apt-get install libdeflate0; macOS: brew install libdeflate',
    candidates: {
      linux: ['libdeflate.so.0', 'libdeflate.so'],
      darwin: ['libdeflate.0.dylib', 'libdeflate.dylib', '/opt/homebrew/lib/libdeflate.dylib', '/usr/local/lib/libdeflate.dylib'],
      win32: ['libdeflate.dll', 'deflate.dll'],
      other: ['libdeflate.so.0', 'libdeflate.so'],
    },
  },
} satisfies Record<string, LibInfo>;

export type NativeLibName = keyof typeof LIBS;

let koffiCache: Koffi | Error | undefined;
let nativeDisabled = process.env.EROFS_NO_NATIVE === '1';

/** Force every 'auto' backend to the portable path (tests; EROFS_NO_NATIVE=1 does the same). */
export function setNativeDisabled(disabled: boolean): void {
  nativeDisabled = disabled;
}

export function isNativeDisabled(): boolean {
  return nativeDisabled;
}

export function getKoffi(): Koffi {
  if (koffiCache === undefined) {
    try {
      // Loaded on demand: koffi's binary may be absent on an unsupported platform.
      koffiCache = loadKoffi();
    } catch (e) {
      koffiCache = new NativeLibraryError(
        `cannot load koffi (needed to call system compression libraries): ${(e as Error).message}`,
      );
    }
  }
  if (koffiCache instanceof Error) throw koffiCache;
  return koffiCache;
}

/** Open a library by its candidate file names (override the list to test the failure message). */
export function openLibrary(name: NativeLibName, candidates?: string[]): ReturnType<Koffi['load']> {
  const koffi = getKoffi();
  const info: LibInfo = LIBS[name];
  const list = candidates ?? info.candidates[process.platform] ?? info.candidates.other!;
  const errors: string[] = [];
  for (const file of list) {
    try {
      return koffi.load(file);
    } catch (e) {
      errors.push(`${file}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new NativeLibraryError(
    `cannot load ${info.what} (tried ${list.join(', ')}); install it (${info.install}). Details: ${errors.join('; ')}`,
  );
}

function bind<T>(name: NativeLibName, build: (lib: ReturnType<Koffi['load']>, koffi: Koffi) => T): () => T {
  let cached: T | NativeLibraryError | undefined;
  return () => {
    if (cached === undefined) {
      try {
        const lib = openLibrary(name);
        cached = build(lib, getKoffi());
      } catch (e) {
        const info: LibInfo = LIBS[name];
        cached =
          e instanceof NativeLibraryError
            ? e
            : new NativeLibraryError(
                `${info.what} loaded but lacks a needed function (${(e as Error).message.split('\n')[0]}); install a newer one (${info.install})`,
              );
      }
    }
    if (cached instanceof Error) throw cached;
    return cached;
  };
}

// ---- liblz4 ----------------------------------------------------------------------------------

export interface Lz4Native {
  /** int LZ4_compress_destSize(src, dst, int *srcSizePtr, int targetDstSize) */
  compressDestSize: Fn;
  /** int LZ4_compress_HC_destSize(state, src, dst, int *srcSizePtr, int targetDstSize, int level) */
  compressHCDestSize: Fn;
  /** LZ4_streamHC_t *LZ4_initStreamHC(void *buffer, size_t size) */
  initStreamHC: Fn;
  /** void LZ4_resetStreamHC_fast(LZ4_streamHC_t *, int level) */
  resetStreamHCFast: Fn;
  /** int LZ4_compress_HC_continue_destSize(LZ4_streamHC_t *, src, dst, int *srcSizePtr, int targetDstSize) */
  compressHCContinueDestSize: Fn;
  sizeofStateHC: number;
  /** int LZ4_decompress_safe(src, dst, int compressedSize, int dstCapacity) */
  decompressSafe: Fn;
  version: number;
}

export const loadLz4 = bind('lz4', (lib): Lz4Native => ({
  compressDestSize: lib.func('int LZ4_compress_destSize(const void *src, void *dst, void *srcSizePtr, int targetDstSize)'),
  compressHCDestSize: lib.func(
    'int LZ4_compress_HC_destSize(void *state, const void *src, void *dst, void *srcSizePtr, int targetDstSize, int level)',
  ),
  initStreamHC: lib.func('void *LZ4_initStreamHC(void *buffer, size_t size)'),
  resetStreamHCFast: lib.func('void LZ4_resetStreamHC_fast(void *stream, int level)'),
  compressHCContinueDestSize: lib.func(
    'int LZ4_compress_HC_continue_destSize(void *stream, const void *src, void *dst, void *srcSizePtr, int targetDstSize)',
  ),
  sizeofStateHC: lib.func('int LZ4_sizeofStateHC(void)')() as number,
  decompressSafe: lib.func('int LZ4_decompress_safe(const void *src, void *dst, int compressedSize, int dstCapacity)'),
  version: lib.func('int LZ4_versionNumber(void)')() as number,
}));

// ---- liblzma ---------------------------------------------------------------------------------

export interface LzmaNative {
  /** lzma_ret lzma_microlzma_encoder(lzma_stream *, const lzma_options_lzma *) */
  microlzmaEncoder: Fn;
  /** lzma_ret lzma_microlzma_decoder(lzma_stream *, u64 comp_size, u64 uncomp_size, lzma_bool exact, u32 dict) */
  microlzmaDecoder: Fn;
  /** lzma_ret lzma_raw_decoder(lzma_stream *, const lzma_filter *) */
  rawDecoder: Fn;
  /** lzma_ret lzma_auto_decoder(lzma_stream *, uint64_t memlimit, uint32_t flags): .xz, .lzma (and .lz) */
  autoDecoder: Fn;
  /** lzma_ret lzma_code(lzma_stream *, lzma_action) */
  code: Fn;
  end: Fn;
  /** lzma_bool lzma_lzma_preset(lzma_options_lzma *, uint32_t preset): true on error */
  lzmaPreset: Fn;
  version: string;
}

export const loadLzma = bind('lzma', (lib): LzmaNative => ({
  microlzmaEncoder: lib.func('int lzma_microlzma_encoder(void *strm, const void *options)'),
  microlzmaDecoder: lib.func(
    'int lzma_microlzma_decoder(void *strm, uint64_t comp_size, uint64_t uncomp_size, uint8_t uncomp_size_is_exact, uint32_t dict_size)',
  ),
  rawDecoder: lib.func('int lzma_raw_decoder(void *strm, const void *filters)'),
  autoDecoder: lib.func('int lzma_auto_decoder(void *strm, uint64_t memlimit, uint32_t flags)'),
  code: lib.func('int lzma_code(void *strm, int action)'),
  end: lib.func('void lzma_end(void *strm)'),
  lzmaPreset: lib.func('uint8_t lzma_lzma_preset(void *options, uint32_t preset)'),
  version: lib.func('const char *lzma_version_string(void)')() as string,
}));

// ---- libzstd ---------------------------------------------------------------------------------

export interface ZstdNative {
  createCCtx: Fn;
  freeCCtx: Fn;
  /** size_t ZSTD_CCtx_setParameter(ZSTD_CCtx *, ZSTD_cParameter, int) */
  cctxSetParameter: Fn;
  /** size_t ZSTD_compress2(ZSTD_CCtx *, void *dst, size_t cap, const void *src, size_t n) */
  compress2: Fn;
  compressBound: Fn;
  createDCtx: Fn;
  freeDCtx: Fn;
  /** size_t ZSTD_decompressDCtx(ZSTD_DCtx *, void *dst, size_t cap, const void *src, size_t n) */
  decompressDCtx: Fn;
  /** size_t ZSTD_DCtx_setParameter(ZSTD_DCtx *, ZSTD_dParameter, int) */
  dctxSetParameter: Fn;
  /** Streaming decompression (a ZSTD_DStream is a ZSTD_DCtx since zstd 1.3). */
  createDStream: Fn;
  freeDStream: Fn;
  /** size_t ZSTD_DStreamInSize(void): recommended input buffer size */
  dStreamInSize: Fn;
  /** size_t ZSTD_DStreamOutSize(void): recommended output buffer size */
  dStreamOutSize: Fn;
  /** size_t ZSTD_decompressStream(ZSTD_DStream *, ZSTD_outBuffer *, ZSTD_inBuffer *): 0 = frame done */
  decompressStream: Fn;
  isError: Fn;
  getErrorName: Fn;
  /** ZSTD_ErrorCode ZSTD_getErrorCode(size_t) */
  getErrorCode: Fn;
  version: number;
}

export const loadZstd = bind('zstd', (lib): ZstdNative => ({
  createCCtx: lib.func('void *ZSTD_createCCtx(void)'),
  freeCCtx: lib.func('size_t ZSTD_freeCCtx(void *cctx)'),
  cctxSetParameter: lib.func('size_t ZSTD_CCtx_setParameter(void *cctx, int param, int value)'),
  compress2: lib.func('size_t ZSTD_compress2(void *cctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize)'),
  compressBound: lib.func('size_t ZSTD_compressBound(size_t srcSize)'),
  createDCtx: lib.func('void *ZSTD_createDCtx(void)'),
  freeDCtx: lib.func('size_t ZSTD_freeDCtx(void *dctx)'),
  decompressDCtx: lib.func(
    'size_t ZSTD_decompressDCtx(void *dctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize)',
  ),
  dctxSetParameter: lib.func('size_t ZSTD_DCtx_setParameter(void *dctx, int param, int value)'),
  createDStream: lib.func('void *ZSTD_createDStream(void)'),
  freeDStream: lib.func('size_t ZSTD_freeDStream(void *zds)'),
  dStreamInSize: lib.func('size_t ZSTD_DStreamInSize(void)'),
  dStreamOutSize: lib.func('size_t ZSTD_DStreamOutSize(void)'),
  decompressStream: lib.func('size_t ZSTD_decompressStream(void *zds, void *output, void *input)'),
  isError: lib.func('unsigned int ZSTD_isError(size_t code)'),
  getErrorName: lib.func('const char *ZSTD_getErrorName(size_t code)'),
  getErrorCode: lib.func('int ZSTD_getErrorCode(size_t code)'),
  version: lib.func('unsigned int ZSTD_versionNumber(void)')() as number,
}));

/** zstd.h enum values (stable API). */
export const ZSTD_c_compressionLevel = 100;
export const ZSTD_c_windowLog = 101;
export const ZSTD_c_contentSizeFlag = 200;
export const ZSTD_c_checksumFlag = 201;
export const ZSTD_c_dictIDFlag = 202;
export const ZSTD_d_windowLogMax = 100;
/** ZSTD_ErrorCode for "destination buffer is too small". */
export const ZSTD_error_dstSize_tooSmall = 70;

// ---- libdeflate ------------------------------------------------------------------------------

export interface DeflateNative {
  allocCompressor: Fn;
  freeCompressor: Fn;
  /** size_t libdeflate_deflate_compress(c, in, in_nbytes, out, out_nbytes_avail): 0 = did not fit */
  deflateCompress: Fn;
  deflateCompressBound: Fn;
  allocDecompressor: Fn;
  freeDecompressor: Fn;
  /** enum libdeflate_result libdeflate_deflate_decompress_ex(d, in, in_n, out, out_n, size_t *in_ret, size_t *out_ret) */
  deflateDecompressEx: Fn;
}

export const loadDeflate = bind('deflate', (lib): DeflateNative => ({
  allocCompressor: lib.func('void *libdeflate_alloc_compressor(int compression_level)'),
  freeCompressor: lib.func('void libdeflate_free_compressor(void *compressor)'),
  deflateCompress: lib.func(
    'size_t libdeflate_deflate_compress(void *compressor, const void *in, size_t in_nbytes, void *out, size_t out_nbytes_avail)',
  ),
  deflateCompressBound: lib.func('size_t libdeflate_deflate_compress_bound(void *compressor, size_t in_nbytes)'),
  allocDecompressor: lib.func('void *libdeflate_alloc_decompressor(void)'),
  freeDecompressor: lib.func('void libdeflate_free_decompressor(void *decompressor)'),
  deflateDecompressEx: lib.func(
    'int libdeflate_deflate_decompress_ex(void *decompressor, const void *in, size_t in_nbytes, void *out, size_t out_nbytes_avail, _Out_ size_t *actual_in_nbytes_ret, _Out_ size_t *actual_out_nbytes_ret)',
  ),
}));

const LOADERS: Record<NativeLibName, () => unknown> = {
  lz4: loadLz4,
  lzma: loadLzma,
  zstd: loadZstd,
  deflate: loadDeflate,
};

/** Load a library if allowed and possible; null otherwise (never throws). */
export function tryLoad<T>(loader: () => T): T | null {
  if (nativeDisabled) return null;
  try {
    return loader();
  } catch {
    return null;
  }
}

/** Availability of each system library, with the reason when unavailable (for diagnostics). */
export function nativeStatus(): Record<NativeLibName, { available: boolean; error?: string }> {
  const out = {} as Record<NativeLibName, { available: boolean; error?: string }>;
  for (const name of Object.keys(LOADERS) as NativeLibName[]) {
    try {
      LOADERS[name]();
      out[name] = { available: true };
    } catch (e) {
      out[name] = { available: false, error: (e as Error).message };
    }
  }
  return out;
}

/**
 * Native scratch memory that does not move (liblzma keeps pointers into it inside lzma_stream
 * between calls, which JS-owned buffers cannot guarantee), with a Uint8Array view onto it.
 */
export class NativeBuffer {
  ptr: unknown;
  view: Uint8Array;
  address: bigint;
  constructor(public size: number) {
    const koffi = getKoffi();
    this.ptr = koffi.alloc('uint8_t', Math.max(1, size));
    this.view = new Uint8Array(koffi.view(this.ptr, Math.max(1, size)));
    this.address = koffi.address(this.ptr);
  }
  /** Grow (contents are not preserved). */
  ensure(size: number): void {
    if (size <= this.size) return;
    this.free();
    const koffi = getKoffi();
    const n = Math.max(size, this.size * 2);
    this.ptr = koffi.alloc('uint8_t', n);
    this.view = new Uint8Array(koffi.view(this.ptr, n));
    this.address = koffi.address(this.ptr);
    this.size = n;
  }
  free(): void {
    if (this.ptr !== null) {
      getKoffi().free(this.ptr);
      this.ptr = null;
      this.view = new Uint8Array(0);
      this.size = 0;
    }
  }
}
