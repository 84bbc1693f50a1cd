import { describe, expect, it } from 'vitest';
import { defaultLzmaDictSize, LzmaCompressor } from '../../src/compress/lzma.js';
import { createCompressor, getDecompressor } from '../../src/compress/registry.js';
import {
  CAPACITIES,
  checkOne,
  checkStream,
  dataCases,
  type Decode,
  HAVE,
  nativeRawLzmaDecode,
  randomBytes,
  textBytes,
  TINY_SIZES,
} from './helpers.js';

if (!HAVE.lzma) console.warn('\n*** liblzma.so.5 not found: LZMA tests are SKIPPED (apt-get install liblzma5) ***\n');

describe.skipIf(!HAVE.lzma)('lzma (MicroLZMA via liblzma)', () => {
  const own: Decode = (d, n) => getDecompressor(1).decompress(d, n);
  // Independent check: liblzma's raw LZMA1 decoder after restoring byte 0 to 0x00.
  const decoders: Decode[] = [own, nativeRawLzmaDecode];

  for (const cap of CAPACITIES) {
    for (const [label, data] of dataCases(cap)) {
      it(`${label}, ${cap}-byte pclusters: every pcluster decodes to exactly its input`, () => {
        const c = createCompressor('lzma', { maxPclusterBytes: cap });
        const sizes = checkStream(c, data, cap, decoders);
        if (label === 'random') expect(sizes[0]).toBeGreaterThan(cap * 0.97);
        if (label === 'zeros') expect(sizes.length).toBe(1);
        if (label === 'text') expect(sizes[0]).toBeGreaterThan(cap * 2.5);
      });
    }

    it(`tiny and boundary-sized inputs, ${cap}-byte capacity`, () => {
      const c = createCompressor('lzma');
      for (const n of [...TINY_SIZES, cap - 1, cap, cap + 1]) {
        for (const data of [textBytes(n), new Uint8Array(n)]) {
          const r = checkOne(c, data, cap, decoders)!;
          expect(r.consumed).toBe(n);
        }
        checkOne(c, randomBytes(n, n), cap, decoders);
      }
    });
  }

  it('starts with ~properties (0xA2 for lc3 lp0 pb2) and fills the pcluster', () => {
    const c = createCompressor('lzma');
    const r = checkOne(c, textBytes(100000), 4096, decoders)!;
    expect(r.data[0]).toBe(0xa2);
    expect(r.data.length).toBeGreaterThan(4096 - 16);
  });

  it('grows its input window for very compressible data (2 MiB of zeros in 4 KiB)', () => {
    const c = createCompressor('lzma');
    const zeros = new Uint8Array(2 << 20);
    const r = checkOne(c, zeros, 4096, decoders)!;
    expect(r.consumed).toBe(zeros.length);
  });

  it('tiny capacities: null below 6 bytes, valid streams from 6 bytes', () => {
    const c = createCompressor('lzma');
    const text = textBytes(3000);
    expect(c.compressDestSize(text, 5)).toBeNull();
    expect(c.compressDestSize(new Uint8Array(0), 4096)).toBeNull();
    for (let cap = 6; cap < 40; cap++) checkOne(c, text, cap, decoders, true);
  });

  it('levels 0-9 and 100-109 all produce valid streams', () => {
    const data = textBytes(40000);
    for (const level of [0, 1, 5, 6, 9, 100, 106, 109]) {
      const c = createCompressor('lzma', { level });
      expect(c.level).toBe(level);
      checkOne(c, data, 4096, decoders);
    }
  });

  it('dictionary size: default from the pcluster size, explicit, and in the config record', () => {
    expect(defaultLzmaDictSize(4096)).toBe(32768);
    expect(defaultLzmaDictSize(65536)).toBe(262144);
    expect(defaultLzmaDictSize(262144)).toBe(1 << 20);
    expect(defaultLzmaDictSize(4 << 20)).toBe(8 << 20);

    const c = createCompressor('lzma');
    expect(c.dictSize).toBe(32768);
    const rec = c.configRecord(65536);
    expect(rec.length).toBe(14);
    expect(new DataView(rec.buffer).getUint32(0, true)).toBe(262144);
    expect(Array.from(rec.subarray(4))).toEqual(new Array(10).fill(0));
    expect(c.dictSize).toBe(262144);
    checkOne(c, textBytes(300000), 65536, decoders);
    // The record must never claim a smaller dictionary than data was compressed with.
    expect(() => c.configRecord(4096)).toThrow(/dictionary/);

    const e = createCompressor('lzma', { dictSize: 1 << 20 });
    expect(new DataView(e.configRecord(4096).buffer).getUint32(0, true)).toBe(1 << 20);
    expect(e.dictSize).toBe(1 << 20);
    checkOne(e, textBytes(50000), 4096, decoders);
  });

  it('the MicroLZMA decoder rejects truncated or wrong-size streams', () => {
    const c = createCompressor('lzma');
    const r = c.compressDestSize(textBytes(50000), 4096)!;
    const d = getDecompressor(1);
    expect(() => d.decompress(r.data, r.consumed + 1)).toThrow();
    expect(() => d.decompress(r.data.subarray(0, r.data.length - 100), r.consumed)).toThrow();
  });

  it('dispose releases the native stream', () => {
    const c = createCompressor('lzma') as LzmaCompressor;
    checkOne(c, textBytes(10000), 4096, decoders);
    c.dispose();
    expect(() => c.compressDestSize(textBytes(100), 4096)).toThrow(/disposed/);
  });
});
