// Algorithm registry: option validation (levels/dictionary sizes as mkfs.erofs 1.9.3 accepts them),
// compressor construction, decompressor lookup by on-disk id, and the `-z` option parser.

import {
  Z_EROFS_COMPRESSION_DEFLATE,
  Z_EROFS_COMPRESSION_LZ4,
  Z_EROFS_COMPRESSION_LZMA,
  Z_EROFS_COMPRESSION_ZSTD,
} from '../format/constants.js';
import {
  type AlgorithmName,
  type Backend,
  type Compressor,
  type CompressorOptions,
  type Decompressor,
  CompressionOptionError,
  isPowerOfTwo,
} from './compressor.js';
import { DEFLATE_MAX_WINDOW, DEFLATE_MIN_WINDOW, DeflateCompressor, DeflateDecompressor } from './deflate.js';
import { Lz4Compressor, Lz4Decompressor } from './lz4.js';
import { LZMA_MAX_DICT, LZMA_MIN_DICT, LzmaCompressor, LzmaDecompressor } from './lzma.js';
import { ZSTD_MAX_WINDOW, ZSTD_MIN_WINDOW, ZstdCompressor, ZstdDecompressor } from './zstd.js';

interface AlgorithmSpec {
  id: number;
  /** Accepted level ranges (inclusive); empty = the algorithm takes no level. */
  levels: Array<[number, number]>;
  defaultLevel: number;
  /** Accepted dictionary/window sizes; absent = no dictsize option. */
  dict?: { min: number; max: number; powerOfTwo: boolean };
}

export const ALGORITHM_SPECS: Readonly<Record<AlgorithmName, AlgorithmSpec>> = {
  lz4: { id: Z_EROFS_COMPRESSION_LZ4, levels: [], defaultLevel: 0 },
  lz4hc: { id: Z_EROFS_COMPRESSION_LZ4, levels: [[0, 12]], defaultLevel: 9 },
  lzma: {
    id: Z_EROFS_COMPRESSION_LZMA,
    levels: [
      [0, 9],
      [100, 109], // "extreme" presets
    ],
    defaultLevel: 6,
    dict: { min: LZMA_MIN_DICT, max: LZMA_MAX_DICT, powerOfTwo: false },
  },
  deflate: {
    id: Z_EROFS_COMPRESSION_DEFLATE,
    levels: [[0, 9]],
    defaultLevel: 1,
    dict: { min: DEFLATE_MIN_WINDOW, max: DEFLATE_MAX_WINDOW, powerOfTwo: true },
  },
  zstd: {
    id: Z_EROFS_COMPRESSION_ZSTD,
    levels: [[0, 22]],
    defaultLevel: 3,
    dict: { min: ZSTD_MIN_WINDOW, max: ZSTD_MAX_WINDOW, powerOfTwo: true },
  },
};

export const ALGORITHM_NAMES = Object.keys(ALGORITHM_SPECS) as AlgorithmName[];

export function isAlgorithmName(name: string): name is AlgorithmName {
  return Object.prototype.hasOwnProperty.call(ALGORITHM_SPECS, name);
}

function specFor(name: string): AlgorithmSpec {
  if (!isAlgorithmName(name)) {
    throw new CompressionOptionError(
      `unknown compression algorithm "${name}" (supported: ${ALGORITHM_NAMES.join(', ')})`,
    );
  }
  return ALGORITHM_SPECS[name];
}

function rangeText(ranges: Array<[number, number]>): string {
  return ranges.map(([a, b]) => `${a}-${b}`).join(' or ');
}

/** Check level and dictSize for an algorithm; returns the effective level (default applied). */
export function validateCompressorOptions(
  name: string,
  opts: Pick<CompressorOptions, 'level' | 'dictSize'> = {},
): { level: number; dictSize?: number } {
  const spec = specFor(name);
  let level = spec.defaultLevel;
  if (opts.level !== undefined) {
    if (spec.levels.length === 0) {
      throw new CompressionOptionError(`compression algorithm ${name} does not take a compression level`);
    }
    const ok = Number.isInteger(opts.level) && spec.levels.some(([a, b]) => opts.level! >= a && opts.level! <= b);
    if (!ok) {
      throw new CompressionOptionError(
        `invalid compression level ${opts.level} for ${name} (valid: ${rangeText(spec.levels)})`,
      );
    }
    level = opts.level;
  }
  if (opts.dictSize !== undefined) {
    const d = spec.dict;
    if (!d) throw new CompressionOptionError(`compression algorithm ${name} does not take a dictionary size`);
    const v = opts.dictSize;
    if (!Number.isInteger(v) || v < d.min || v > d.max || (d.powerOfTwo && !isPowerOfTwo(v))) {
      throw new CompressionOptionError(
        `invalid dictionary size ${v} for ${name} (valid: ${d.powerOfTwo ? 'a power of two ' : ''}${d.min}-${d.max} bytes)`,
      );
    }
  }
  return opts.dictSize === undefined ? { level } : { level, dictSize: opts.dictSize };
}

/**
 * Create a fixed-output compressor. Throws CompressionOptionError for an unknown algorithm or an
 * invalid level/dictsize, and NativeLibraryError when the algorithm needs a system library that
 * cannot be loaded (lzma, zstd always; lz4/deflate only with backend 'native').
 */
export function createCompressor(name: string, opts: CompressorOptions = {}): Compressor {
  const { level, dictSize } = validateCompressorOptions(name, opts);
  const backend: Backend = opts.backend ?? 'auto';
  const maxPcluster = opts.maxPclusterBytes;
  if (maxPcluster !== undefined && (!Number.isInteger(maxPcluster) || maxPcluster <= 0)) {
    throw new CompressionOptionError(`invalid max pcluster size ${maxPcluster}`);
  }
  switch (name as AlgorithmName) {
    case 'lz4':
      return new Lz4Compressor({ hc: false, level, backend });
    case 'lz4hc':
      return new Lz4Compressor({ hc: true, level, backend });
    case 'lzma':
      return new LzmaCompressor({ level, backend, dictSize, maxPclusterBytes: maxPcluster });
    case 'deflate':
      return new DeflateCompressor({ level, backend, dictSize });
    case 'zstd':
      return new ZstdCompressor({ level, backend, dictSize, maxPclusterBytes: maxPcluster });
  }
}

const decompressors = new Map<string, Decompressor>();

/**
 * Decompressor for an on-disk algorithm id (Z_EROFS_COMPRESSION_*). Instances are cached and
 * reused (they are not safe to share between worker threads; each thread gets its own module).
 */
export function getDecompressor(algorithmId: number, backend: Backend = 'auto'): Decompressor {
  const key = `${algorithmId}:${backend}`;
  let d = decompressors.get(key);
  if (d) return d;
  switch (algorithmId) {
    case Z_EROFS_COMPRESSION_LZ4:
      d = new Lz4Decompressor(backend);
      break;
    case Z_EROFS_COMPRESSION_LZMA:
      d = new LzmaDecompressor();
      break;
    case Z_EROFS_COMPRESSION_DEFLATE:
      d = new DeflateDecompressor();
      break;
    case Z_EROFS_COMPRESSION_ZSTD:
      d = new ZstdDecompressor();
      break;
    default:
      throw new CompressionOptionError(`unknown compression algorithm id ${algorithmId}`);
  }
  decompressors.set(key, d);
  return d;
}

export interface CompressionSpec {
  name: AlgorithmName;
  level?: number;
  dictSize?: number;
}

/** A size with an optional binary suffix: 4096, 0x1000, 32k, 8m. */
function parseSize(text: string, what: string): number {
  const m = /^(0x[0-9a-f]+|\d+)([kmg]?)$/i.exec(text.trim());
  if (!m) throw new CompressionOptionError(`invalid ${what} "${text}"`);
  const base = Number(m[1]);
  const shift = { '': 0, k: 10, m: 20, g: 30 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return base * 2 ** shift;
}

function parseLevel(text: string): number {
  if (!/^-?\d+$/.test(text.trim())) throw new CompressionOptionError(`invalid compression level "${text}"`);
  return Number(text);
}

/**
 * Parse a `-z` argument: `ALG[,level=N][,dictsize=N][:ALG2...]`, also the old `ALG,N` (N = level).
 * Levels and dictionary sizes are validated per algorithm. Returns one entry per algorithm, in order.
 */
export function parseCompressionOption(arg: string): CompressionSpec[] {
  if (arg.trim() === '') throw new CompressionOptionError('empty compression option');
  const out: CompressionSpec[] = [];
  for (const part of arg.split(':')) {
    const fields = part.split(',');
    const name = fields[0]!.trim().toLowerCase();
    if (name === '') throw new CompressionOptionError(`missing algorithm name in "${arg}"`);
    specFor(name);
    const spec: CompressionSpec = { name: name as AlgorithmName };
    for (const raw of fields.slice(1)) {
      const f = raw.trim();
      const eq = f.indexOf('=');
      const key = eq < 0 ? '' : f.slice(0, eq).trim().toLowerCase();
      const value = eq < 0 ? f : f.slice(eq + 1);
      if (eq < 0 || key === 'level') {
        // `ALG,N` is the old spelling of `ALG,level=N`.
        if (spec.level !== undefined) throw new CompressionOptionError(`compression level given twice for ${name}`);
        spec.level = parseLevel(value);
      } else if (key === 'dictsize') {
        if (spec.dictSize !== undefined) throw new CompressionOptionError(`dictsize given twice for ${name}`);
        spec.dictSize = parseSize(value, 'dictsize');
      } else {
        throw new CompressionOptionError(`unknown compression option "${f}" for ${name}`);
      }
    }
    validateCompressorOptions(name, spec);
    out.push(spec);
  }
  return out;
}
