import { describe, expect, it } from 'vitest';
import { CompressionOptionError } from '../../src/compress/compressor.js';
import {
  ALGORITHM_NAMES,
  createCompressor,
  getDecompressor,
  parseCompressionOption,
  validateCompressorOptions,
} from '../../src/compress/registry.js';
import { NativeLibraryError, nativeStatus, openLibrary } from '../../src/compress/native.js';
import { HAVE } from './helpers.js';

describe('parseCompressionOption (-z)', () => {
  it('parses single algorithms, levels, dictionary sizes and lists', () => {
    expect(parseCompressionOption('lz4')).toEqual([{ name: 'lz4' }]);
    expect(parseCompressionOption('lz4hc')).toEqual([{ name: 'lz4hc' }]);
    expect(parseCompressionOption('lz4hc,12')).toEqual([{ name: 'lz4hc', level: 12 }]);
    expect(parseCompressionOption('lz4hc,level=0')).toEqual([{ name: 'lz4hc', level: 0 }]);
    expect(parseCompressionOption('lzma,109')).toEqual([{ name: 'lzma', level: 109 }]);
    expect(parseCompressionOption('lzma,level=9,dictsize=8m')).toEqual([
      { name: 'lzma', level: 9, dictSize: 8 << 20 },
    ]);
    expect(parseCompressionOption('lzma,dictsize=65536')).toEqual([{ name: 'lzma', dictSize: 65536 }]);
    expect(parseCompressionOption('deflate,dictsize=32k')).toEqual([{ name: 'deflate', dictSize: 32768 }]);
    expect(parseCompressionOption('zstd,level=19,dictsize=0x100000')).toEqual([
      { name: 'zstd', level: 19, dictSize: 1 << 20 },
    ]);
    expect(parseCompressionOption('lz4hc,9:lzma,level=6:zstd')).toEqual([
      { name: 'lz4hc', level: 9 },
      { name: 'lzma', level: 6 },
      { name: 'zstd' },
    ]);
    expect(parseCompressionOption('LZ4HC,Level=3')).toEqual([{ name: 'lz4hc', level: 3 }]);
  });

  it.each([
    ['', /empty/],
    ['foo', /unknown compression algorithm "foo"/],
    ['lz4hc:', /missing algorithm/],
    [':lz4', /missing algorithm/],
    ['lz4,1', /lz4 does not take a compression level/],
    ['lz4,dictsize=4096', /lz4 does not take a dictionary size/],
    ['lz4hc,13', /invalid compression level 13 for lz4hc \(valid: 0-12\)/],
    ['lz4hc,-1', /invalid compression level -1/],
    ['lz4hc,level=', /invalid compression level ""/],
    ['lz4hc,abc', /invalid compression level "abc"/],
    ['lz4hc,9,10', /level given twice/],
    ['lz4hc,fast=1', /unknown compression option "fast=1"/],
    ['lzma,10', /invalid compression level 10 for lzma \(valid: 0-9 or 100-109\)/],
    ['lzma,99', /invalid compression level 99/],
    ['lzma,110', /invalid compression level 110/],
    ['lzma,dictsize=9m', /invalid dictionary size 9437184 for lzma/],
    ['lzma,dictsize=2048', /invalid dictionary size 2048 for lzma/],
    ['lzma,dictsize=lots', /invalid dictsize "lots"/],
    ['deflate,10', /invalid compression level 10 for deflate \(valid: 0-9\)/],
    ['deflate,dictsize=65536', /invalid dictionary size 65536 for deflate/],
    ['deflate,dictsize=3000', /power of two/],
    ['zstd,23', /invalid compression level 23 for zstd \(valid: 0-22\)/],
    ['zstd,dictsize=2m', /invalid dictionary size 2097152 for zstd/],
    ['zstd,dictsize=3000', /invalid dictionary size 3000/],
    ['lz4hc,9:bogus', /unknown compression algorithm "bogus"/],
  ])('rejects %j', (arg, msg) => {
    expect(() => parseCompressionOption(arg)).toThrow(CompressionOptionError);
    expect(() => parseCompressionOption(arg)).toThrow(msg);
  });
});

describe('createCompressor', () => {
  it('applies the reference defaults', () => {
    const cases: Array<[string, number, number]> = [
      ['lz4', 0, 0],
      ['lz4hc', 0, 9],
      ['deflate', 2, 1],
      ...((HAVE.lzma ? [['lzma', 1, 6]] : []) as Array<[string, number, number]>),
      ...((HAVE.zstd ? [['zstd', 3, 3]] : []) as Array<[string, number, number]>),
    ];
    for (const [name, id, level] of cases) {
      const c = createCompressor(name);
      expect(c.name).toBe(name);
      expect(c.algorithm).toBe(id);
      expect(c.level).toBe(level);
      c.dispose();
    }
  });

  it('validates like the -z parser', () => {
    expect(() => createCompressor('gzip')).toThrow(/unknown compression algorithm "gzip" \(supported: lz4, lz4hc/);
    expect(() => createCompressor('lz4', { level: 1 })).toThrow(/does not take a compression level/);
    expect(() => createCompressor('lz4hc', { level: 12.5 })).toThrow(/invalid compression level 12.5/);
    expect(() => createCompressor('lzma', { level: 100, dictSize: 1 << 24 })).toThrow(/dictionary size/);
    expect(() => createCompressor('zstd', { dictSize: 512 })).toThrow(/dictionary size 512 for zstd/);
    expect(() => createCompressor('lz4', { maxPclusterBytes: 0 })).toThrow(/max pcluster/);
    expect(validateCompressorOptions('lzma', { level: 105 })).toEqual({ level: 105 });
    expect(validateCompressorOptions('zstd', {})).toEqual({ level: 3 });
  });

  it('portable backends: lzma and zstd have none', () => {
    expect(() => createCompressor('lzma', { backend: 'js' })).toThrow(/no portable implementation/);
    expect(() => createCompressor('zstd', { backend: 'js' })).toThrow(/no portable implementation/);
    expect(createCompressor('lz4hc', { backend: 'js' }).backend).toBe('js');
    expect(createCompressor('deflate', { backend: 'js' }).backend).toBe('js');
  });

  it('config records have the documented sizes and contents', () => {
    const lz4 = createCompressor('lz4hc').configRecord(65536, 4096);
    expect(Array.from(lz4)).toEqual([0xff, 0xff, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(createCompressor('lz4').configRecord(4096))).toEqual([0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(createCompressor('lz4').configRecord(8192, 512))).toEqual([
      0xff, 0xff, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expect(createCompressor('deflate').configRecord(4096).length).toBe(6);
    if (HAVE.lzma) expect(createCompressor('lzma').configRecord(4096).length).toBe(14);
    if (HAVE.zstd) expect(createCompressor('zstd').configRecord(4096).length).toBe(6);
  });

  it('lists the algorithms', () => {
    expect(ALGORITHM_NAMES).toEqual(['lz4', 'lz4hc', 'lzma', 'deflate', 'zstd']);
  });
});

describe('getDecompressor', () => {
  it('maps on-disk ids and rejects unknown ones', () => {
    expect(getDecompressor(0)).toBe(getDecompressor(0)); // cached
    expect(() => getDecompressor(4)).toThrow(/unknown compression algorithm id 4/);
    expect(() => getDecompressor(-1)).toThrow(CompressionOptionError);
  });
});

describe('nativeStatus', () => {
  it('reports each library, naming the package to install when missing', () => {
    const s = nativeStatus();
    expect(Object.keys(s).sort()).toEqual(['deflate', 'lz4', 'lzma', 'zstd']);
    for (const [name, st] of Object.entries(s)) {
      expect(st.available).toBe(HAVE[name as keyof typeof HAVE]);
      if (!st.available) expect(st.error).toMatch(/apt-get install lib/);
    }
  });

  it('a missing library error names the file tried and the Debian package', () => {
    expect(() => openLibrary('zstd', ['libzstd-not-here.so.9'])).toThrow(NativeLibraryError);
    expect(() => openLibrary('zstd', ['libzstd-not-here.so.9'])).toThrow(
      /cannot load libzstd \(tried libzstd-not-here.so.9\); install it \(Debian\/Ubuntu: apt-get install libzstd1/,
    );
    expect(() => openLibrary('lzma', ['nope.so'])).toThrow(/apt-get install liblzma5/);
    expect(() => openLibrary('lz4', ['nope.so'])).toThrow(/apt-get install liblz4-1/);
    expect(() => openLibrary('deflate', ['nope.so'])).toThrow(/apt-get install libdeflate0/);
  });
});
