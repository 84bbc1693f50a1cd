// Shared test data and independent reference decoders (bound directly here, not through src/).

import { skipUnless } from '../helpers/require.js';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { Compressor } from '../../src/compress/compressor.js';

type Koffi = typeof import('koffi');
const require = createRequire(import.meta.url);
const koffi: Koffi = require('koffi');

// ---- data --------------------------------------------------------------------------------

/** xorshift32: deterministic pseudo-random bytes. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function randomBytes(n: number, seed = 12345): Uint8Array {
  const r = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r() & 0xff;
  return out;
}

const WORDS = (
  'the of and to in is was that for it as with be by on not he this are or his from at which but have an ' +
  'they you were her she there one all we their can has been if more when will would who so no filesystem ' +
  'compression block inode directory cluster kernel mount image superblock extent device readonly erofs ' +
  'buffer memory page cache lookup metadata attribute symlink regular file data index offset length size'
).split(' ');

/** Deterministic English-like text (compresses roughly like prose). */
export function textBytes(n: number, seed = 7): Uint8Array {
  const r = prng(seed);
  let s = '';
  let line = 0;
  while (s.length < n) {
    const w = WORDS[r() % WORDS.length]!;
    s += w;
    line += w.length + 1;
    if (r() % 13 === 0) s += r() % 2 ? ',' : '.';
    if (line > 70) {
      s += '\n';
      line = 0;
    } else s += ' ';
  }
  return new TextEncoder().encode(s.slice(0, n));
}

/** Real source text: TypeScript's lib.es5.d.ts (a dev dependency), repeated to length n. */
export function realText(n: number): Uint8Array {
  const p = fileURLToPath(new URL('../../node_modules/typescript/lib/lib.es5.d.ts', import.meta.url));
  const src = new Uint8Array(readFileSync(p));
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += src.length) out.set(src.subarray(0, Math.min(src.length, n - o)), o);
  return out;
}

/** Real JavaScript source: the first n bytes of TypeScript's compiler bundle (~9 MB). */
export function jsSource(n: number): Uint8Array {
  const p = fileURLToPath(new URL('../../node_modules/typescript/lib/typescript.js', import.meta.url));
  const out = new Uint8Array(n);
  const fd = openSync(p, 'r');
  try {
    const got = readSync(fd, out, 0, n, 0);
    return out.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** Text followed by random bytes followed by zeros: exercises switching between regimes. */
export function mixedBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const third = Math.floor(n / 3);
  out.set(textBytes(third, 3), 0);
  out.set(randomBytes(third, 99), third);
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- native reference decoders -------------------------------------------------------------

function tryLoad(names: string[]): ReturnType<Koffi['load']> | null {
  for (const n of names) {
    try {
      return koffi.load(n);
    } catch {
      /* try the next name */
    }
  }
  return null;
}

const libs = {
  lz4: tryLoad(['liblz4.so.1', 'liblz4.dylib', 'liblz4.dll']),
  lzma: tryLoad(['liblzma.so.5', 'liblzma.dylib', 'liblzma.dll']),
  zstd: tryLoad(['libzstd.so.1', 'libzstd.dylib', 'libzstd.dll']),
  deflate: tryLoad(['libdeflate.so.0', 'libdeflate.dylib', 'libdeflate.dll']),
};
export const HAVE = {
  lz4: libs.lz4 !== null,
  lzma: libs.lzma !== null,
  zstd: libs.zstd !== null,
  deflate: libs.deflate !== null,
};
for (const [k, v] of Object.entries(HAVE)) skipUnless(v, `the system library for ${k}`);

const lz4Decompress = libs.lz4?.func('int LZ4_decompress_safe(const void *src, void *dst, int csize, int cap)');

/** liblz4's LZ4_decompress_safe with the exact output size. */
export function nativeLz4Decode(data: Uint8Array, outLen: number): Uint8Array {
  const out = new Uint8Array(outLen);
  const r = lz4Decompress!(data, out, data.length, outLen) as number;
  if (r !== outLen) throw new Error(`LZ4_decompress_safe returned ${r}, expected ${outLen}`);
  return out;
}

const zstdDecompress = libs.zstd?.func('size_t ZSTD_decompress(void *dst, size_t cap, const void *src, size_t n)');
const zstdIsError = libs.zstd?.func('unsigned int ZSTD_isError(size_t code)');

/** libzstd's one-shot ZSTD_decompress. */
export function nativeZstdDecode(data: Uint8Array, outLen: number): Uint8Array {
  const out = new Uint8Array(outLen);
  const r = zstdDecompress!(out, outLen, data, data.length) as number | bigint;
  if (typeof r === 'bigint' || zstdIsError!(r)) throw new Error('ZSTD_decompress failed');
  if (r !== outLen) throw new Error(`ZSTD_decompress returned ${r}, expected ${outLen}`);
  return out;
}

/** Parsed zstd frame header fields (RFC 8878 3.1.1.1). */
export function zstdFrameHeader(data: Uint8Array): {
  magicOk: boolean;
  singleSegment: boolean;
  checksum: boolean;
  dictId: boolean;
  contentSizePresent: boolean;
  windowSize: number | null;
} {
  const magicOk = data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd;
  const fhd = data[4]!;
  const singleSegment = (fhd & 0x20) !== 0;
  const fcsFlag = fhd >> 6;
  let windowSize: number | null = null;
  if (!singleSegment) {
    const wd = data[5]!;
    const exp = wd >> 3;
    const base = 2 ** (10 + exp);
    windowSize = base + (base / 8) * (wd & 7);
  }
  return {
    magicOk,
    singleSegment,
    checksum: (fhd & 0x04) !== 0,
    dictId: (fhd & 0x03) !== 0,
    contentSizePresent: fcsFlag !== 0 || singleSegment,
    windowSize,
  };
}

/**
 * Raw LZMA1 decoding with liblzma (lzma_raw_decoder, LZMA_FILTER_LZMA1EXT with the exact
 * uncompressed size), after turning the MicroLZMA stream back into a raw one: byte 0 holds
 * ~properties and must become the 0x00 that raw LZMA streams start with.
 */
const lzmaRawDecoder = libs.lzma?.func('int lzma_raw_decoder(void *strm, const void *filters)');
const lzmaCode = libs.lzma?.func('int lzma_code(void *strm, int action)');
const lzmaEnd = libs.lzma?.func('void lzma_end(void *strm)');

export function nativeRawLzmaDecode(data: Uint8Array, outLen: number): Uint8Array {
  const rawDecoder = lzmaRawDecoder!;
  const code = lzmaCode!;
  const end = lzmaEnd!;
  const props = ~data[0]! & 0xff;
  const lc = props % 9;
  const lp = Math.floor(props / 9) % 5;
  const pb = Math.floor(props / 45);
  const alloc = (n: number) => {
    const p = koffi.alloc('uint8_t', n);
    const v = new Uint8Array(koffi.view(p, n));
    v.fill(0);
    return { p, v, dv: new DataView(v.buffer, v.byteOffset, n), addr: koffi.address(p) };
  };
  const opts = alloc(112);
  opts.dv.setUint32(0, Math.max(4096, outLen), true); // dict_size
  opts.dv.setUint32(20, lc, true);
  opts.dv.setUint32(24, lp, true);
  opts.dv.setUint32(28, pb, true);
  opts.dv.setUint32(48, 0, true); // ext_flags: no end-of-payload marker allowed
  opts.dv.setUint32(52, outLen >>> 0, true); // ext_size_low
  opts.dv.setUint32(56, Math.floor(outLen / 2 ** 32), true); // ext_size_high
  const filters = alloc(32);
  filters.dv.setBigUint64(0, 0x4000000000000002n, true); // LZMA_FILTER_LZMA1EXT
  filters.dv.setBigUint64(8, opts.addr, true);
  filters.dv.setBigUint64(16, 0xffffffffffffffffn, true); // LZMA_VLI_UNKNOWN terminator
  const input = alloc(data.length);
  input.v.set(data);
  input.v[0] = 0;
  const output = alloc(Math.max(1, outLen));
  const strm = alloc(136);
  try {
    const r0 = rawDecoder(strm.p, filters.p) as number;
    if (r0 !== 0) throw new Error(`lzma_raw_decoder: ${r0}`);
    strm.dv.setBigUint64(0, input.addr, true);
    strm.dv.setBigUint64(8, BigInt(data.length), true);
    strm.dv.setBigUint64(24, output.addr, true);
    strm.dv.setBigUint64(32, BigInt(outLen), true);
    const r = code(strm.p, 0) as number; // LZMA_RUN
    const totalIn = Number(strm.dv.getBigUint64(16, true));
    const totalOut = Number(strm.dv.getBigUint64(40, true));
    if (r !== 1) throw new Error(`raw LZMA1 decode did not reach the end (lzma_ret ${r})`);
    if (totalOut !== outLen) throw new Error(`raw LZMA1 decoded ${totalOut} bytes, expected ${outLen}`);
    if (totalIn !== data.length) throw new Error(`raw LZMA1 used ${totalIn} of ${data.length} input bytes`);
    return output.v.slice(0, outLen);
  } finally {
    end(strm.p);
    for (const b of [opts, filters, input, output, strm]) koffi.free(b.p);
  }
}

// ---- conformance checks ------------------------------------------------------------------

export type Decode = (data: Uint8Array, outLen: number) => Uint8Array;

/**
 * Compress src once into dstCapacity and check the destSize contract with every given decoder.
 * Returns the result (or null, which is only allowed when allowNull).
 */
export function checkOne(
  c: Compressor,
  src: Uint8Array,
  dstCapacity: number,
  decoders: Decode[],
  allowNull = false,
): { consumed: number; data: Uint8Array } | null {
  const r = c.compressDestSize(src, dstCapacity);
  if (r === null) {
    expect(allowNull, `${c.name}: null result for ${src.length} bytes into ${dstCapacity}`).toBe(true);
    return null;
  }
  expect(r.consumed).toBeGreaterThan(0);
  expect(r.consumed).toBeLessThanOrEqual(src.length);
  expect(r.data.length).toBeGreaterThan(0);
  expect(r.data.length).toBeLessThanOrEqual(dstCapacity);
  expect(r.data[0], 'a stream must not start with 0x00 (leading zeros are padding)').not.toBe(0);
  const want = src.subarray(0, r.consumed);
  for (const d of decoders) {
    const got = d(r.data, r.consumed);
    expect(got.length).toBe(r.consumed);
    expect(equalBytes(got, want), `${c.name}: decoded bytes differ`).toBe(true);
  }
  return r;
}

/** Compress a whole buffer pcluster by pcluster; checks every pcluster; returns the consumed sizes. */
export function checkStream(c: Compressor, src: Uint8Array, dstCapacity: number, decoders: Decode[]): number[] {
  const sizes: number[] = [];
  let pos = 0;
  while (pos < src.length) {
    const r = checkOne(c, src.subarray(pos), dstCapacity, decoders);
    sizes.push(r!.consumed);
    pos += r!.consumed;
  }
  return sizes;
}

export const CAPACITIES = [4096, 65536] as const;

/** The data shapes every algorithm is tested with, sized for a given pcluster capacity. */
export function dataCases(cap: number): Array<[string, Uint8Array]> {
  return [
    ['text', textBytes(cap * 8)],
    ['real text', realText(cap * 6)],
    ['random', randomBytes(cap * 3)],
    ['zeros', new Uint8Array(cap * 40)],
    ['mixed', mixedBytes(cap * 6)],
  ];
}

/** Sizes around small-input and boundary thresholds. */
export const TINY_SIZES = [1, 2, 3, 4, 5, 11, 12, 13, 14, 17, 31, 64, 100, 255, 256, 1000];
