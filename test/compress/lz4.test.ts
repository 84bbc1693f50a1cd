import { afterEach, describe, expect, it } from 'vitest';
import { DecompressError } from '../../src/compress/compressor.js';
import { Lz4JsEncoder, lz4DecompressBlock, lz4InputBefore } from '../../src/compress/lz4.js';
import { loadLz4, setNativeDisabled } from '../../src/compress/native.js';
import { createCompressor, getDecompressor } from '../../src/compress/registry.js';
import {
  CAPACITIES,
  checkOne,
  checkStream,
  dataCases,
  type Decode,
  HAVE,
  jsSource,
  nativeLz4Decode,
  randomBytes,
  realText,
  textBytes,
  TINY_SIZES,
} from './helpers.js';

const tsDecode: Decode = (d, n) => lz4DecompressBlock(d, n, true);
const decoders: Decode[] = HAVE.lz4 ? [tsDecode, nativeLz4Decode] : [tsDecode];

function avgFull(sizes: number[]): number {
  const full = sizes.slice(0, -1);
  return full.reduce((a, b) => a + b, 0) / Math.max(1, full.length);
}

describe.each([
  ['lz4', 'js'],
  ['lz4hc', 'js'],
  ...(HAVE.lz4 ? [['lz4', 'native'], ['lz4hc', 'native']] : []),
] as Array<['lz4' | 'lz4hc', 'js' | 'native']>)('%s (%s backend)', (alg, backend) => {
  it('runs the requested backend', () => {
    expect(createCompressor(alg, { backend }).backend).toBe(backend);
  });

  for (const cap of CAPACITIES) {
    for (const [label, data] of dataCases(cap)) {
      it(`${label}, ${cap}-byte pclusters: every pcluster decodes to exactly its input`, () => {
        const c = createCompressor(alg, { backend });
        const sizes = checkStream(c, data, cap, decoders);
        if (label === 'random') {
          // Incompressible: about one pcluster of input per pcluster (minus the length bytes).
          expect(sizes[0]).toBeGreaterThan(cap - cap / 128 - 16);
          expect(sizes[0]).toBeLessThan(cap);
        }
        if (label === 'zeros') expect(sizes.length).toBe(1); // 40 pclusters of zeros fit in one
      });
    }

    it(`tiny inputs, ${cap}-byte capacity`, () => {
      const c = createCompressor(alg, { backend });
      for (const n of TINY_SIZES) {
        for (const data of [textBytes(n), randomBytes(n), new Uint8Array(n)]) {
          const r = checkOne(c, data, cap, decoders);
          expect(r!.consumed).toBe(n); // small inputs always fit whole
        }
      }
    });

    it(`inputs just around the capacity (${cap})`, () => {
      const c = createCompressor(alg, { backend });
      for (const n of [cap - 17, cap - 16, cap - 1, cap, cap + 1, cap + 16, cap + 300]) {
        checkOne(c, randomBytes(n, n), cap, decoders);
        const t = checkOne(c, textBytes(n, n), cap, decoders);
        expect(t!.consumed).toBe(n); // text of this size compresses below cap
      }
    });
  }

  it('small capacities: uses the budget and obeys it', () => {
    const c = createCompressor(alg, { backend });
    const text = textBytes(5000);
    const zeros = new Uint8Array(5000);
    expect(c.compressDestSize(text, 1)).toBeNull();
    expect(c.compressDestSize(new Uint8Array(0), 4096)).toBeNull();
    for (let cap = 2; cap <= 64; cap++) {
      const r = checkOne(c, text, cap, decoders);
      expect(r!.consumed).toBeGreaterThanOrEqual(cap - 2); // at least the literals that fit
      checkOne(c, zeros, cap, decoders);
    }
  });

  it('highly compressible input: a 4 KiB pcluster holds ~1 MB of zeros', () => {
    const c = createCompressor(alg, { backend });
    const r = checkOne(c, new Uint8Array(2 << 20), 4096, decoders)!;
    // Each 255 match-length byte covers 255 bytes of output.
    expect(r.consumed).toBeGreaterThan(4000 * 250);
    expect(r.data.length).toBeGreaterThan(4096 - 8);
  });

  it('fills pclusters of compressible text well', () => {
    const c = createCompressor(alg, { backend });
    const sizes = checkStream(c, realText(256 << 10), 4096, decoders);
    // lz4hc packs > 8 KiB of this text per 4 KiB pcluster; plain lz4 a little less.
    expect(avgFull(sizes)).toBeGreaterThan(alg === 'lz4hc' ? 8192 : 7000);
  });

  it('reuses its tables across calls without leaking state between inputs', () => {
    const c = createCompressor(alg, { backend });
    const a = textBytes(50000, 1);
    const b = textBytes(50000, 2);
    const first = c.compressDestSize(a, 4096)!;
    const r1 = { consumed: first.consumed, data: first.data.slice() }; // data is valid until the next call
    c.compressDestSize(b, 4096);
    c.compressDestSize(randomBytes(70000), 4096);
    const r2 = c.compressDestSize(a, 4096)!;
    expect(r2.consumed).toBe(r1.consumed);
    expect(Buffer.from(r2.data).equals(Buffer.from(r1.data))).toBe(true);
  });
});

describe('lz4hc levels (TS encoder)', () => {
  it('every level 0-12 produces valid blocks; higher levels pack at least as well as level 1', () => {
    const data = realText(96 << 10);
    const per: number[] = [];
    for (let level = 0; level <= 12; level++) {
      const c = createCompressor('lz4hc', { level, backend: 'js' });
      expect(c.level).toBe(level);
      const sizes = checkStream(c, data, 4096, decoders);
      per[level] = avgFull(sizes);
    }
    expect(per[9]).toBeGreaterThanOrEqual(per[1]!);
    expect(per[12]).toBeGreaterThanOrEqual(per[4]! * 0.99);
    expect(per[0]).toBe(per[9]); // 0 means the default level, as in liblz4
  });

  it.skipIf(!HAVE.lz4)('level 9 is within 2% of liblz4 HC-9 on real source code', () => {
    const data = jsSource(512 << 10);
    const js = avgFull(checkStream(createCompressor('lz4hc', { backend: 'js' }), data, 4096, decoders));
    const nat = avgFull(checkStream(createCompressor('lz4hc', { backend: 'native' }), data, 4096, decoders));
    expect(js).toBeGreaterThan(nat * 0.98);
  });

  it.skipIf(!HAVE.lz4)('plain lz4 is within 2% of liblz4 LZ4_compress_destSize on real text and code', () => {
    for (const data of [realText(512 << 10), jsSource(512 << 10)]) {
      const js = avgFull(checkStream(createCompressor('lz4', { backend: 'js' }), data, 4096, decoders));
      const nat = avgFull(checkStream(createCompressor('lz4', { backend: 'native' }), data, 4096, decoders));
      expect(js).toBeGreaterThan(nat * 0.98);
    }
  });
});

describe.skipIf(!HAVE.lz4)('lz4 input windows (native)', () => {
  /** What liblz4 emits when given the whole input (up to 255 bytes per output byte). */
  function wholeInput(hc: boolean, level: number, src: Uint8Array, cap: number): { consumed: number; data: Uint8Array } {
    const nat = loadLz4();
    const out = new Uint8Array(cap);
    const srcSize = new Int32Array([Math.min(src.length, cap * 256 + 64)]);
    const size = hc
      ? (nat.compressHCDestSize(new Uint8Array(nat.sizeofStateHC), src, out, srcSize, cap, level) as number)
      : (nat.compressDestSize(src, out, srcSize, cap) as number);
    return { consumed: srcSize[0]!, data: out.subarray(0, size) };
  }

  /** Inputs whose character changes around where the first window ends. */
  function switchingInputs(cap: number): Uint8Array[] {
    const inputs: Uint8Array[] = [];
    for (const at of [cap - 100, 2 * cap, 2 * cap + 900, 2 * cap + 1100, 2 * cap + 9000, 70000]) {
      const n = at + 300_000;
      const randomThenZeros = new Uint8Array(n);
      randomThenZeros.set(randomBytes(at, at));
      const randomThenText = new Uint8Array(n);
      randomThenText.set(randomBytes(at, at + 1));
      randomThenText.set(textBytes(n - at, at), at);
      // Random data that repeats from `at` on: one long match reaching past the window.
      const repeat = randomBytes(n, at + 2);
      repeat.copyWithin(at, at - 40000 > 0 ? at - 40000 : 0);
      inputs.push(randomThenZeros, randomThenText, repeat);
    }
    inputs.push(randomBytes(1 << 20), textBytes(1 << 20), realText(1 << 20), new Uint8Array(2 << 20));
    return inputs;
  }

  it.each([
    ['lz4', 0],
    ['lz4hc', 1],
    ['lz4hc', 9],
    ['lz4hc', 10],
    ['lz4hc', 12],
  ] as Array<['lz4' | 'lz4hc', number]>)('%s level %i: trying a short input window first emits what the whole input gives', (alg, level) => {
    for (const cap of [4096, 65536]) {
      const c = createCompressor(alg, alg === 'lz4' ? { backend: 'native' } : { level, backend: 'native' });
      for (const src of switchingInputs(cap)) {
        const r = c.compressDestSize(src, cap)!;
        const whole = wholeInput(alg === 'lz4hc', level, src, cap);
        expect(r.consumed).toBe(whole.consumed);
        expect(Buffer.from(r.data).equals(Buffer.from(whole.data))).toBe(true);
      }
    }
  });
});

describe('backend selection', () => {
  afterEach(() => setNativeDisabled(false));

  it('auto uses liblz4 when present and the TS encoder when native is disabled', () => {
    expect(createCompressor('lz4').backend).toBe(HAVE.lz4 ? 'native' : 'js');
    setNativeDisabled(true);
    const c = createCompressor('lz4hc');
    expect(c.backend).toBe('js');
    checkOne(c, textBytes(20000), 4096, decoders);
  });
});

describe('Lz4JsEncoder', () => {
  it('survives the position-base wraparound (tables are reset, output stays valid)', () => {
    const enc = new Lz4JsEncoder();
    const data = textBytes(30000);
    const first = enc.compress(data, 4096, 0)!.slice();
    (enc as unknown as { base: number }).base = 0x7fff0000 - 10; // force the reset path
    const again = enc.compress(data, 4096, 0)!.slice();
    expect(Buffer.from(again).equals(Buffer.from(first))).toBe(true);
    expect(lz4DecompressBlock(again, enc.consumed).length).toBe(enc.consumed);
  });
});

describe('lz4InputBefore', () => {
  it('the whole block stands for all the input it encodes, nothing for none of it', () => {
    for (const alg of ['lz4', 'lz4hc'] as const) {
      for (const src of [textBytes(50000), realText(50000), randomBytes(9000), new Uint8Array(300000)]) {
        const r = createCompressor(alg, { backend: 'js' }).compressDestSize(src, 4096)!;
        expect(lz4InputBefore(r.data, r.data.length)).toBe(r.consumed);
        expect(lz4InputBefore(r.data, 0)).toBe(0);
      }
    }
  });

  it('grows with the cut, counting a literal run in part and a match only whole', () => {
    const r = createCompressor('lz4hc', { backend: 'js' }).compressDestSize(realText(60000), 4096)!;
    const data = r.data.slice();
    let last = 0;
    for (let cut = 1; cut <= data.length; cut++) {
      const n = lz4InputBefore(data, cut);
      expect(n).toBeGreaterThanOrEqual(last);
      last = n;
    }
    // A hand-made block: 4 literals "abcd", a match (offset 4, length 4), 1 final literal.
    const block = new Uint8Array([0x40, 0x61, 0x62, 0x63, 0x64, 0x04, 0x00, 0x10, 0x78]);
    expect(lz4InputBefore(block, 3)).toBe(2); // token, then two of the four literals
    expect(lz4InputBefore(block, 6)).toBe(4); // the match's offset is cut: not counted
    expect(lz4InputBefore(block, 7)).toBe(8);
    expect(lz4InputBefore(block, 9)).toBe(9);
  });
});

describe('lz4DecompressBlock', () => {
  // "abcd" as literals, then a match (offset 4, length 4), then 1 final literal "x".
  const block = new Uint8Array([0x40, 0x61, 0x62, 0x63, 0x64, 0x04, 0x00, 0x10, 0x78]);

  it('decodes a hand-made block when not strict', () => {
    expect(new TextDecoder().decode(lz4DecompressBlock(block, 9, false))).toBe('abcdabcdx');
  });

  it('strict mode rejects a match within the last 12 bytes (as liblz4 does)', () => {
    expect(() => lz4DecompressBlock(block, 9)).toThrow(DecompressError);
    if (HAVE.lz4) expect(() => nativeLz4Decode(block, 9)).toThrow();
  });

  it('rejects wrong sizes, truncation and bad offsets', () => {
    const c = createCompressor('lz4hc', { backend: 'js' });
    const src = textBytes(20000);
    const r = c.compressDestSize(src, 4096)!;
    expect(lz4DecompressBlock(r.data, r.consumed).length).toBe(r.consumed);
    expect(() => lz4DecompressBlock(r.data, r.consumed - 1)).toThrow(DecompressError);
    expect(() => lz4DecompressBlock(r.data, r.consumed + 1)).toThrow(DecompressError);
    expect(() => lz4DecompressBlock(r.data.subarray(0, r.data.length - 1), r.consumed)).toThrow(DecompressError);
    expect(() => lz4DecompressBlock(new Uint8Array([0x10, 0x61, 0x05, 0x00, 0x10, 0x61]), 20, false)).toThrow(
      /offset/,
    );
    expect(() => lz4DecompressBlock(new Uint8Array(0), 0)).toThrow(DecompressError);
  });

  it('getDecompressor(LZ4) decodes both backends and rejects corrupt data', () => {
    const d = getDecompressor(0);
    const src = textBytes(30000);
    for (const backend of ['js', ...(HAVE.lz4 ? ['native'] : [])] as Array<'js' | 'native'>) {
      const r = createCompressor('lz4hc', { backend }).compressDestSize(src, 4096)!;
      expect(Buffer.from(d.decompress(r.data, r.consumed)).equals(Buffer.from(src.subarray(0, r.consumed)))).toBe(true);
      expect(() => d.decompress(r.data, r.consumed + 5)).toThrow();
    }
    expect(() => getDecompressor(0, 'js').decompress(new Uint8Array([0xf0]), 10)).toThrow(DecompressError);
  });
});
