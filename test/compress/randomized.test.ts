// Seeded randomized inputs (runs of noise, zeros, short-period repeats, far repeats near the
// 64 KiB window limit, small alphabets) against random capacities, for every algorithm/backend.

import { describe, expect, it } from 'vitest';
import { lz4DecompressBlock } from '../../src/compress/lz4.js';
import { createCompressor, getDecompressor } from '../../src/compress/registry.js';
import { type Decode, equalBytes, HAVE, nativeLz4Decode, nativeRawLzmaDecode, nativeZstdDecode, prng } from './helpers.js';
import { inflateRawSync } from 'node:zlib';

function structured(rnd: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let i = 0;
  while (i < n) {
    const kind = rnd() % 5;
    const len = 1 + (rnd() % (kind === 4 ? 3000 : 300));
    for (let k = 0; k < len && i < n; k++, i++) {
      if (kind === 0) out[i] = rnd() & 255;
      else if (kind === 1) out[i] = 0;
      else if (kind === 2 && i > 0) out[i] = out[i - 1 - (rnd() % Math.min(i, 8))]!;
      else if (kind === 3 && i > 70000) out[i] = out[i - 65535 - (rnd() % 3)]!;
      else out[i] = 97 + (rnd() % 4);
    }
  }
  return out;
}

const CAPS = [2, 3, 5, 6, 7, 12, 13, 17, 18, 19, 20, 40, 100, 300, 512, 4096, 8192, 65536];

type Case = { alg: string; backend: 'js' | 'native'; level?: number; minCap: number; decoders: Decode[] };
const lz4Decoders: Decode[] = [(d, n) => lz4DecompressBlock(d, n), ...(HAVE.lz4 ? [nativeLz4Decode] : [])];
const cases: Case[] = [
  { alg: 'lz4', backend: 'js', minCap: 2, decoders: lz4Decoders },
  { alg: 'lz4hc', backend: 'js', level: 1, minCap: 2, decoders: lz4Decoders },
  { alg: 'lz4hc', backend: 'js', level: 9, minCap: 2, decoders: lz4Decoders },
  { alg: 'lz4hc', backend: 'js', level: 12, minCap: 2, decoders: lz4Decoders },
  {
    alg: 'deflate',
    backend: 'js',
    minCap: 8,
    decoders: [(d) => new Uint8Array(inflateRawSync(d)), (d, n) => getDecompressor(2).decompress(d, n)],
  },
];
if (HAVE.lz4) {
  cases.push({ alg: 'lz4', backend: 'native', minCap: 2, decoders: lz4Decoders });
  cases.push({ alg: 'lz4hc', backend: 'native', minCap: 2, decoders: lz4Decoders });
}
if (HAVE.deflate) cases.push({ ...cases[4]!, backend: 'native' });
if (HAVE.zstd) {
  cases.push({ alg: 'zstd', backend: 'native', minCap: 12, decoders: [nativeZstdDecode, (d, n) => getDecompressor(3).decompress(d, n)] });
}
if (HAVE.lzma) {
  cases.push({ alg: 'lzma', backend: 'native', minCap: 6, decoders: [nativeRawLzmaDecode, (d, n) => getDecompressor(1).decompress(d, n)] });
}

describe('randomized destSize contract', () => {
  it.each(cases.map((c) => [`${c.alg}${c.level !== undefined ? `-${c.level}` : ''} (${c.backend})`, c] as const))(
    '%s',
    (_label, c) => {
      const comp = createCompressor(c.alg, { backend: c.backend, ...(c.level !== undefined && { level: c.level }) });
      const rnd = prng(0xc0ffee);
      const iterations = c.alg === 'lzma' ? 40 : 120;
      for (let it = 0; it < iterations; it++) {
        const n = 1 + (rnd() % (rnd() % 2 ? 300 : 150000));
        const data = structured(rnd, n);
        const cap = CAPS[rnd() % CAPS.length]! + (rnd() % 3);
        const r = comp.compressDestSize(data, cap);
        if (r === null) {
          expect(cap, `null result for ${n} bytes into ${cap}`).toBeLessThan(Math.max(c.minCap, 13));
          continue;
        }
        expect(r.data.length).toBeLessThanOrEqual(cap);
        expect(r.data[0]).not.toBe(0);
        expect(r.consumed).toBeGreaterThan(0);
        expect(r.consumed).toBeLessThanOrEqual(n);
        for (const d of c.decoders) {
          expect(equalBytes(d(r.data, r.consumed), data.subarray(0, r.consumed))).toBe(true);
        }
      }
    },
  );
});
