import { describe, expect, it } from 'vitest';
import { createCompressor, getDecompressor } from '../../src/compress/registry.js';
import { defaultZstdWindow, type ZstdCompressor } from '../../src/compress/zstd.js';
import {
  CAPACITIES,
  checkOne,
  checkStream,
  dataCases,
  type Decode,
  HAVE,
  jsSource,
  nativeZstdDecode,
  randomBytes,
  textBytes,
  TINY_SIZES,
  zstdFrameHeader,
} from './helpers.js';

if (!HAVE.zstd) console.warn('\n*** libzstd.so.1 not found: ZSTD tests are SKIPPED (apt-get install libzstd1) ***\n');

/** One frame, content size present, no checksum or dictionary id, window within the limit. */
function checkFrame(data: Uint8Array, consumed: number, window: number): void {
  const h = zstdFrameHeader(data);
  expect(h.magicOk).toBe(true);
  expect(h.checksum).toBe(false);
  expect(h.dictId).toBe(false);
  expect(h.contentSizePresent).toBe(true);
  if (h.singleSegment) expect(consumed).toBeLessThanOrEqual(window);
  else expect(h.windowSize!).toBeLessThanOrEqual(window);
}

describe.skipIf(!HAVE.zstd)('zstd (libzstd)', () => {
  const own: Decode = (d, n) => getDecompressor(3).decompress(d, n);
  const decoders: Decode[] = [own, nativeZstdDecode];

  for (const cap of CAPACITIES) {
    for (const [label, data] of dataCases(cap)) {
      it(`${label}, ${cap}-byte pclusters: every pcluster is one valid frame of exactly its input`, () => {
        const c = createCompressor('zstd', { maxPclusterBytes: cap });
        let pos = 0;
        const sizes: number[] = [];
        while (pos < data.length) {
          const r = checkOne(c, data.subarray(pos), cap, decoders)!;
          checkFrame(r.data, r.consumed, c.dictSize);
          sizes.push(r.consumed);
          pos += r.consumed;
        }
        if (label === 'random') expect(sizes[0]).toBeGreaterThan(cap * 0.97);
        if (label === 'zeros') expect(sizes.length).toBe(1);
        if (label === 'text') expect(sizes[0]).toBeGreaterThan(cap * 2.5);
      });
    }

    it(`tiny and boundary-sized inputs, ${cap}-byte capacity`, () => {
      const c = createCompressor('zstd');
      for (const n of [...TINY_SIZES, cap - 1, cap, cap + 1]) {
        for (const data of [textBytes(n), new Uint8Array(n)]) {
          expect(checkOne(c, data, cap, decoders)!.consumed).toBe(n);
        }
        checkOne(c, randomBytes(n, n), cap, decoders);
      }
    });
  }

  it('window: mkfs defaults per pcluster size, and the config record', () => {
    expect(defaultZstdWindow(4096)).toBe(32768);
    expect(defaultZstdWindow(65536)).toBe(524288);
    expect(defaultZstdWindow(131072)).toBe(1 << 20);
    expect(defaultZstdWindow(1 << 20)).toBe(1 << 20);
    expect(defaultZstdWindow(12288)).toBe(65536); // 96 KiB rounded down to a power of two

    const c = createCompressor('zstd');
    expect(Array.from(c.configRecord(4096))).toEqual([0, 5, 0, 0, 0, 0]);
    expect(Array.from(c.configRecord(65536))).toEqual([0, 9, 0, 0, 0, 0]);
    expect(c.dictSize).toBe(524288);
    // Frames compressed now may use a 512 KiB window; the record cannot shrink below that.
    const r = checkOne(c, new Uint8Array(4 << 20), 65536, decoders)!;
    checkFrame(r.data, r.consumed, 524288);
    expect(() => c.configRecord(4096)).toThrow(/window/);

    const e = createCompressor('zstd', { dictSize: 4096 });
    expect(Array.from(e.configRecord(65536))).toEqual([0, 2, 0, 0, 0, 0]);
    const r2 = checkOne(e, jsSource(300000), 65536, decoders)!;
    checkFrame(r2.data, r2.consumed, 4096);
  });

  it('large zero runs use a bounded window (not single-segment beyond the window)', () => {
    const c = createCompressor('zstd'); // 32 KiB window for 4 KiB pclusters
    const r = checkOne(c, new Uint8Array(1 << 20), 4096, decoders)!;
    expect(r.consumed).toBe(1 << 20);
    const h = zstdFrameHeader(r.data);
    expect(h.singleSegment).toBe(false);
    expect(h.windowSize).toBeLessThanOrEqual(32768);
  });

  it('fills pclusters closely with few compression calls', () => {
    const c = createCompressor('zstd') as ZstdCompressor;
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
    // Full pclusters end, on average, within the search's 64-byte margin of the budget.
    expect(filled / n).toBeGreaterThan(4096 - 64);
    expect(c.probes / (n + 1)).toBeLessThan(4);
  });

  it('levels 0-22 produce valid frames', () => {
    const data = textBytes(30000);
    for (const level of [0, 1, 3, 9, 15, 19, 22]) {
      const c = createCompressor('zstd', { level });
      expect(c.level).toBe(level);
      const r = checkOne(c, data, 4096, decoders)!;
      checkFrame(r.data, r.consumed, c.dictSize);
    }
  });

  it('tiny capacities return null or a valid frame', () => {
    const c = createCompressor('zstd');
    expect(c.compressDestSize(textBytes(100), 11)).toBeNull();
    for (let cap = 12; cap < 48; cap++) checkOne(c, textBytes(5000), cap, decoders, true);
  });

  it('the decompressor rejects wrong sizes and truncated frames', () => {
    const r = createCompressor('zstd').compressDestSize(textBytes(50000), 4096)!;
    const d = getDecompressor(3);
    expect(() => d.decompress(r.data, r.consumed + 1)).toThrow();
    expect(() => d.decompress(r.data, r.consumed - 1)).toThrow();
    expect(() => d.decompress(r.data.subarray(0, r.data.length - 10), r.consumed)).toThrow();
  });

  it('dispose frees the context', () => {
    const c = createCompressor('zstd');
    c.dispose();
    expect(() => c.compressDestSize(textBytes(100), 4096)).toThrow(/disposed/);
  });
});
