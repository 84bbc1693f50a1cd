// Public surface of the compression layer.
export * from './compressor.js';
export {
  ALGORITHM_NAMES,
  ALGORITHM_SPECS,
  type CompressionSpec,
  createCompressor,
  getDecompressor,
  isAlgorithmName,
  parseCompressionOption,
  validateCompressorOptions,
} from './registry.js';
export { Lz4Compressor, Lz4Decompressor, Lz4JsEncoder, lz4DecompressBlock } from './lz4.js';
export { defaultLzmaDictSize, LzmaCompressor, LzmaDecompressor } from './lzma.js';
export { DeflateCompressor, DeflateDecompressor, fixDeflateFirstByte } from './deflate.js';
export { defaultZstdWindow, ZstdCompressor, ZstdDecompressor } from './zstd.js';
export { isNativeDisabled, NativeLibraryError, nativeStatus, setNativeDisabled } from './native.js';
