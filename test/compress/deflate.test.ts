import { inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { DeflateCompressor } from '../../src/compress/deflate.js';
import { fixDeflateFirstByte } from '../../src/compress/deflate.js';
import { createCompressor, getDecompressor } from '../../src/compress/registry.js';
import {
  CAPACITIES,
  checkOne,
  checkStream,
  dataCases,
  type Decode,
  HAVE,
  jsSource,
  randomBytes,
  textBytes,
  TINY_SIZES,
} from './helpers.js';

/** zlib's raw inflater; also checks that the stream ends exactly at the last byte. */
function zlibDecode(windowBits = 15): Decode {
  return (data, outLen) => {
    const { buffer, engine } = inflateRawSync(data, { info: true, windowBits }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    expect(engine.bytesWritten, 'stream must end at the end of the data').toBe(data.length);
    expect(buffer.length).toBe(outLen);
    return new Uint8Array(buffer);
  };
}
const own: Decode = (d, n) => getDecompressor(2).decompress(d, n);
const decoders = [zlibDecode(), own];

if (!HAVE.deflate) console.warn('\n*** libdeflate.so.0 not found: native DEFLATE tests are SKIPPED ***\n');

describe.each([...(HAVE.deflate ? ['native'] : []), 'js'] as Array<'native' | 'js'>)('deflate (%s backend)', (backend) => {
  it('runs the requested backend', () => {
    expect(createCompressor('deflate', { backend }).backend).toBe(backend);
  });

  for (const cap of CAPACITIES) {
    for (const [label, data] of dataCases(cap)) {
      it(`${label}, ${cap}-byte pclusters: every pcluster decodes to exactly its input`, () => {
        const c = createCompressor('deflate', { backend });
        const sizes = checkStream(c, data, cap, decoders);
        if (label === 'random') expect(sizes[0]).toBeGreaterThan(cap * 0.97);
        if (label === 'zeros') expect(sizes.length).toBe(1);
        if (label === 'text') expect(sizes[0]).toBeGreaterThan(cap * 2.5);
      });
    }

    it(`tiny and boundary-sized inputs, ${cap}-byte capacity`, () => {
      const c = createCompressor('deflate', { backend });
      for (const n of [...TINY_SIZES, cap - 1, cap, cap + 1]) {
        for (const data of [textBytes(n), new Uint8Array(n)]) {
          expect(checkOne(c, data, cap, decoders)!.consumed).toBe(n);
        }
        checkOne(c, randomBytes(n, n), cap, decoders);
      }
    });
  }

  it('fills pclusters closely with few compression calls', () => {
    const c = createCompressor('deflate', { backend }) as DeflateCompressor;
    const data = jsSource(256 << 10);
    let pos = 0;
    let n = 0;
    let filled = 0;
    while (pos < data.length) {
      const r = checkOne(c, data.subarray(pos), 4096, decoders)!;
      pos += r.consumed;
      if (pos < data.length) {
        filled += r.data.length;
        n++;
      }
    }
    expect(filled / n).toBeGreaterThan(4096 - 40); // stops within 22 - 2*level bytes (or closer)
    expect(c.probes / (n + 1)).toBeLessThan(6);
  });

  it('level 0 (stored blocks) never starts a stream with 0x00', () => {
    const c = createCompressor('deflate', { backend, level: 0 });
    const r = checkOne(c, randomBytes(200000), 131072, decoders)!;
    // Several stored blocks: the first is not final, so its header byte would be 0x00.
    expect(r.consumed).toBeGreaterThan(65535);
    expect(r.data[0]).toBe(0x08);
  });

  it('all levels 0-9 produce valid streams', () => {
    const data = textBytes(60000);
    for (let level = 0; level <= 9; level++) {
      const c = createCompressor('deflate', { backend, level });
      expect(c.level).toBe(level);
      checkOne(c, data, 4096, decoders);
    }
  });
});

describe('deflate options', () => {
  it('a window smaller than 32 KiB uses zlib with that window and records it', () => {
    const c = createCompressor('deflate', { dictSize: 4096 });
    expect(c.backend).toBe('js');
    expect(Array.from(c.configRecord(65536))).toEqual([12, 0, 0, 0, 0, 0]);
    // An inflater limited to a 4 KiB window rejects any farther distance.
    checkStream(c, jsSource(200000), 65536, [zlibDecode(12)]);
    expect(() => createCompressor('deflate', { dictSize: 4096, backend: 'native' })).toThrow(/window/);
  });

  it('default config record: windowbits 15', () => {
    expect(Array.from(createCompressor('deflate').configRecord(4096))).toEqual([15, 0, 0, 0, 0, 0]);
  });

  it('fixDeflateFirstByte only touches a leading 0x00', () => {
    const a = new Uint8Array([0, 1, 2]);
    fixDeflateFirstByte(a);
    expect(Array.from(a)).toEqual([8, 1, 2]);
    const b = new Uint8Array([5, 0]);
    fixDeflateFirstByte(b);
    expect(Array.from(b)).toEqual([5, 0]);
  });

  it('the decompressor rejects wrong sizes and truncated streams', () => {
    const r = createCompressor('deflate').compressDestSize(textBytes(50000), 4096)!;
    const d = getDecompressor(2);
    expect(() => d.decompress(r.data, r.consumed + 1)).toThrow();
    expect(() => d.decompress(r.data, r.consumed - 1)).toThrow();
    expect(() => d.decompress(r.data.subarray(0, r.data.length - 10), r.consumed)).toThrow();
  });
});
