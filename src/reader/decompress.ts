// Turning one raw or compressed pcluster into the bytes of its extent: strip the
// zero padding, undo INTERLACED rotation, call the algorithm's decoder, and never
// produce more than the extent length the index declares.

import {
  EROFS_FEATURE_INCOMPAT_ZERO_PADDING,
  Z_EROFS_COMPRESSION_DEFLATE,
  Z_EROFS_COMPRESSION_LZ4,
  Z_EROFS_COMPRESSION_ZSTD,
} from '../format/constants.js';
import * as zlib from 'node:zlib';
import { CorruptImageError, ErofsError, UnsupportedFeatureError } from './errors.js';
import type { Extent } from './extent.js';
import type { ImageReader } from './image.js';
import { ALGORITHM_NAMES, type SuperInfo } from './super.js';
import { MAX_EXTENT_BYTES } from './zmap.js';
import type { Nid } from '../format/types.js';

/** What the reader needs from a codec (src/compress/registry.ts provides these). */
export interface DecompressorLike {
  /** src: the exact compressed stream; returns exactly outLen bytes or throws. */
  decompress(src: Uint8Array, outLen: number): Uint8Array;
  /** Optional: the first outLen bytes of a stream that may decode to more (partial references). */
  decompressPartial?(src: Uint8Array, outLen: number): Uint8Array;
}

export type DecompressorProvider = (algorithm: number) => DecompressorLike;

export class ExtentDecoder {
  constructor(
    private readonly img: ImageReader,
    private readonly sb: SuperInfo,
    private readonly provider: DecompressorProvider,
  ) {}

  /** Returns the `ext.length` bytes of a raw or compressed extent. */
  decode(ext: Extent, nid: Nid): Uint8Array {
    const ctx = { nid };
    if (ext.length > MAX_EXTENT_BYTES) throw new CorruptImageError(`extent of ${ext.length} bytes is too large`, ctx);
    const pc = this.img.readUncached(ext.physical, ext.physicalLength, 'pcluster');
    if (ext.kind === 'raw') return this.decodeRaw(ext, pc, ctx);
    if (ext.kind !== 'compressed' || ext.algorithm === undefined) {
      throw new CorruptImageError(`cannot decode a ${ext.kind} extent`, ctx);
    }
    const alg = ext.algorithm;
    const name = ALGORITHM_NAMES[alg] ?? `algorithm ${alg}`;
    if (!(this.sb.compression.availableAlgorithms & (1 << alg))) {
      throw new CorruptImageError(`extent at offset ${ext.logical} uses ${name}, which the superblock does not enable`, ctx);
    }
    const zeroPadding = (this.sb.featureIncompat & EROFS_FEATURE_INCOMPAT_ZERO_PADDING) !== 0;
    if (alg === Z_EROFS_COMPRESSION_LZ4 && !zeroPadding) {
      // Old layout: the stream starts at the pcluster start and is followed by junk,
      // so decode until the extent is complete and ignore the rest.
      return wrap(() => lz4DecodePrefix(pc, ext.length), name, ext, ctx);
    }
    const src = stripZeroPadding(pc, this.sb.blksz, ext, ctx);
    const codec = this.codec(alg, name, ctx);
    return wrap(
      () => (ext.partial ? this.decodePartial(codec, alg, src, ext.length) : codec.decompress(src, ext.length)),
      name,
      ext,
      ctx,
    );
  }

  private codec(alg: number, name: string, ctx: { nid: Nid }): DecompressorLike {
    try {
      return this.provider(alg);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new UnsupportedFeatureError(`no ${name} decoder available: ${why}`, ctx);
    }
  }

  private decodeRaw(ext: Extent, pc: Uint8Array, ctx: { nid: Nid }): Uint8Array {
    if (ext.length > pc.length) {
      throw new CorruptImageError(
        `uncompressed extent at offset ${ext.logical} (${ext.length} bytes) is longer than its pcluster (${pc.length})`,
        ctx,
      );
    }
    if (!ext.interlaced || ext.inline) return pc.slice(0, ext.length);
    // INTERLACED: byte i of the extent sits at (in-block offset of its start + i) mod pcluster size.
    const out = new Uint8Array(ext.length);
    const rot = ext.logical % this.sb.blksz % pc.length;
    const first = Math.min(pc.length - rot, ext.length);
    out.set(pc.subarray(rot, rot + first), 0);
    if (first < ext.length) out.set(pc.subarray(0, ext.length - first), first);
    return out;
  }

  private decodePartial(d: DecompressorLike, alg: number, src: Uint8Array, outLen: number): Uint8Array {
    if (d.decompressPartial) return d.decompressPartial(src, outLen);
    switch (alg) {
      case Z_EROFS_COMPRESSION_LZ4:
        return lz4DecodePrefix(src, outLen);
      case Z_EROFS_COMPRESSION_DEFLATE: {
        // The whole pcluster decodes to at most MAX_EXTENT_BYTES; keep the prefix.
        const all = zlib.inflateRawSync(src, {
          finishFlush: zlib.constants.Z_SYNC_FLUSH,
          maxOutputLength: MAX_EXTENT_BYTES,
        });
        if (all.length < outLen) throw new Error(`stream decodes to ${all.length} bytes, expected at least ${outLen}`);
        return new Uint8Array(all.buffer, all.byteOffset, outLen);
      }
      case Z_EROFS_COMPRESSION_ZSTD: {
        // A zstd frame records its content size: decode all of it, keep the prefix.
        const total = zstdFrameContentSize(src);
        if (total === null || total < outLen || total > MAX_EXTENT_BYTES) {
          throw new Error('partial reference into a zstd frame without a usable content size');
        }
        return d.decompress(src, total).subarray(0, outLen);
      }
      default:
        throw new UnsupportedFeatureError(`partial-reference pclusters with ${ALGORITHM_NAMES[alg]} need a partial decoder`);
    }
  }
}

function wrap(fn: () => Uint8Array, name: string, ext: Extent, ctx: { nid: Nid }): Uint8Array {
  let out: Uint8Array;
  try {
    out = fn();
  } catch (e) {
    if (e instanceof ErofsError) {
      if (e.nid === undefined) e.nid = ctx.nid;
      throw e;
    }
    const why = e instanceof Error ? e.message : String(e);
    throw new CorruptImageError(`${name} extent at offset ${ext.logical} (${ext.length} bytes) does not decode: ${why}`, ctx);
  }
  if (out.length !== ext.length) {
    throw new CorruptImageError(
      `${name} extent at offset ${ext.logical} decodes to ${out.length} bytes, expected ${ext.length}`,
      ctx,
    );
  }
  return out;
}

/** Skips the leading zero bytes (only the first block is scanned, as the kernel does). */
function stripZeroPadding(pc: Uint8Array, blksz: number, ext: Extent, ctx: { nid: Nid }): Uint8Array {
  const limit = Math.min(pc.length, blksz);
  let k = 0;
  while (k < limit && pc[k] === 0) k++;
  if (k === limit) {
    throw new CorruptImageError(`compressed pcluster of the extent at offset ${ext.logical} starts with a block of zeros`, ctx);
  }
  return pc.subarray(k);
}

/**
 * LZ4 block decoding that stops as soon as `outLen` bytes are produced, whatever
 * input remains (old non-zero-padded pclusters, partial references).
 */
export function lz4DecodePrefix(src: Uint8Array, outLen: number): Uint8Array {
  const out = new Uint8Array(outLen);
  const n = src.length;
  let ip = 0;
  let op = 0;
  const fail = (why: string): never => {
    throw new Error(`lz4: ${why} (input ${ip}/${n}, output ${op}/${outLen})`);
  };
  while (op < outLen) {
    if (ip >= n) fail('input ends early');
    const token = src[ip++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      for (;;) {
        if (ip >= n) fail('truncated literal length');
        const b = src[ip++]!;
        lit += b;
        if (b !== 255) break;
      }
    }
    const litTake = Math.min(lit, outLen - op);
    if (ip + litTake > n) fail('literals run past the input');
    out.set(src.subarray(ip, ip + litTake), op);
    ip += lit;
    op += litTake;
    if (op >= outLen) break;
    if (ip + 2 > n) fail('truncated match offset');
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) fail(`bad match offset ${offset}`);
    let ml = token & 15;
    if (ml === 15) {
      for (;;) {
        if (ip >= n) fail('truncated match length');
        const b = src[ip++]!;
        ml += b;
        if (b !== 255) break;
      }
    }
    ml = Math.min(ml + 4, outLen - op);
    let from = op - offset;
    if (offset >= ml) {
      out.copyWithin(op, from, from + ml);
      op += ml;
    } else {
      const end = op + ml;
      while (op < end) out[op++] = out[from++]!;
    }
  }
  return out;
}

/** Frame_Content_Size of a zstd frame, or null if absent/unparseable. */
export function zstdFrameContentSize(src: Uint8Array): number | null {
  if (src.length < 6 || src[0] !== 0x28 || src[1] !== 0xb5 || src[2] !== 0x2f || src[3] !== 0xfd) return null;
  const fhd = src[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const didFlag = fhd & 3;
  let p = 5 + (single ? 0 : 1) + [0, 1, 2, 4][didFlag]!;
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (fcsBytes === 0 || p + fcsBytes > src.length) return null;
  let v = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) v = v * 256 + src[p + i]!;
  p += fcsBytes;
  return fcsBytes === 2 ? v + 256 : v;
}
