/**
 * Specific hostile or broken images: each must give a clear error naming what is wrong
 * (and where), never a crash, a hang, a huge allocation or a write outside the target.
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EROFS_SUPER_OFFSET, S_IFDIR, S_IFLNK, S_IFREG } from '../../src/format/constants.js';
import { computeSuperblockChecksum, superblockChecksumLength } from '../../src/format/superblock.js';
import type { Nid } from '../../src/format/types.js';
import { CorruptImageError, ErofsError, UnsupportedFeatureError, openImageBuffer } from '../../src/reader/index.js';
import { fsckImage } from '../../src/reader/fsck.js';
import { ExtractError } from '../../src/reader/extract.js';
import { MAX_EXTENT_BYTES } from '../../src/reader/zmap.js';
import { Crafter, sampleData } from './helpers/craft.js';

const temps: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-hostile-'));
  temps.push(d);
  return d;
}
afterEach(() => {
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Recomputes the superblock checksum after a patch. */
function reseal(img: Buffer): Buffer {
  const len = superblockChecksumLength(1 << img[EROFS_SUPER_OFFSET + 12]!);
  img.writeUInt32LE(computeSuperblockChecksum(img.subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + len)), EROFS_SUPER_OFFSET + 4);
  return img;
}

type Entry = { name: string | Buffer; nid: Nid; mode: number };

/** Root holding `entries` (built by `make`, which gets the root nid). */
function imageWith(make: (c: Crafter, root: Nid) => Entry[], c = new Crafter()): Buffer {
  const root = c.reserveDir();
  const entries = make(c, root);
  c.writeDir(root, root, entries);
  return c.build(root);
}

const problemsOf = (img: Buffer) => fsckImage(openImageBuffer(img)).problems;

describe('superblock', () => {
  const valid = () => imageWith((c) => [{ name: 'f', nid: c.addFlatFile(Buffer.from('x')), mode: S_IFREG | 0o644 }]);

  it('rejects a wrong magic number', () => {
    const img = valid();
    img.writeUInt32LE(0x12345678, EROFS_SUPER_OFFSET);
    expect(() => openImageBuffer(img)).toThrow(/bad magic/);
  });

  it('rejects a checksum mismatch', () => {
    const img = valid();
    img[EROFS_SUPER_OFFSET + 100] ^= 1;
    expect(() => openImageBuffer(img)).toThrow(CorruptImageError);
    expect(() => openImageBuffer(img)).toThrow(/checksum mismatch/);
  });

  it('refuses incompatible features it does not implement, naming them', () => {
    const img = valid();
    img.writeUInt32LE(img.readUInt32LE(EROFS_SUPER_OFFSET + 80) | 0x80 | 0x400, EROFS_SUPER_OFFSET + 80);
    reseal(img);
    expect(() => openImageBuffer(img)).toThrow(UnsupportedFeatureError);
    expect(() => openImageBuffer(img)).toThrow(/48bit, 0x400/);
  });

  it('rejects a block size outside 512..4096', () => {
    const img = valid();
    img[EROFS_SUPER_OFFSET + 12] = 13;
    expect(() => openImageBuffer(img)).toThrow(/block size/);
  });

  it('rejects an image too small to hold a superblock', () => {
    expect(() => openImageBuffer(Buffer.alloc(1100))).toThrow(/too small/);
  });

  it('reports a truncated image, and the data that went missing', () => {
    const data = sampleData(20_000, 5);
    const img = imageWith((c) => [{ name: 'big', nid: c.addFlatFile(data), mode: S_IFREG | 0o644 }]);
    const cut = img.subarray(0, img.length - 8192);
    const problems = problemsOf(Buffer.from(cut));
    expect(problems.map((p) => p.message)).toEqual(expect.arrayContaining([expect.stringMatching(/image is truncated/)]));
    expect(problems.some((p) => /outside the image/.test(p.message))).toBe(true);
  });
});

describe('directories', () => {
  it('detect a directory loop and terminate', () => {
    const img = imageWith((c, root) => {
      const a = c.reserveDir();
      c.writeDir(a, root, [{ name: 'back-to-root', nid: root, mode: S_IFDIR | 0o755 }]);
      return [{ name: 'a', nid: a, mode: S_IFDIR | 0o755 }];
    });
    const problems = problemsOf(img);
    expect(problems).toContainEqual(expect.objectContaining({ path: '/a/back-to-root', message: expect.stringMatching(/directory reached twice/) }));
  });

  it('report "." and ".." that point to the wrong directory', () => {
    const img = imageWith((c, root) => {
      const a = c.reserveDir();
      const b = c.reserveDir();
      c.writeDir(b, root, []);
      c.writeDir(a, b, []);
      return [
        { name: 'a', nid: a, mode: S_IFDIR | 0o755 },
        { name: 'b', nid: b, mode: S_IFDIR | 0o755 },
      ];
    });
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/a', message: expect.stringMatching(/"\.\." points to nid/) }));
  });

  it('report an entry whose nid lies outside the image, with its path', () => {
    const img = imageWith(() => [{ name: 'ghost', nid: 1e9 as Nid, mode: S_IFREG | 0o644 }]);
    expect(problemsOf(img)).toContainEqual({ path: '/ghost', nid: 1e9, message: 'nid 1000000000 points outside the image' });
  });

  it('report a dirent type that disagrees with the inode', () => {
    const img = imageWith((c) => [{ name: 'f', nid: c.addFlatFile(Buffer.from('x')), mode: S_IFDIR | 0o755 }]);
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/f', message: 'directory entry says dir, inode is a file' }));
  });

  it("reject names containing '/' and never write outside the extraction target", () => {
    const img = imageWith((c) => [{ name: '../../escape', nid: c.addFlatFile(Buffer.from('evil')), mode: S_IFREG | 0o644 }]);
    const base = tempDir();
    const out = nodePath.join(base, 'a', 'b');
    const r = fsckImage(openImageBuffer(img), { extract: { dir: out } });
    expect(r.problems.map((p) => p.message)).toEqual([expect.stringMatching(/contains '\/'/)]);
    expect(existsSync(nodePath.join(base, 'escape'))).toBe(false);
    expect(readdirSync(out)).toEqual([]);
  });

  it('report unsorted entries (lookups would miss them)', () => {
    const c = new Crafter();
    const root = c.reserveDir();
    const f = c.addFlatFile(Buffer.from('x'));
    c.writeDir(root, root, [
      { name: 'aaa', nid: f, mode: S_IFREG | 0o644 },
      { name: 'bbb', nid: f, mode: S_IFREG | 0o644 },
    ]);
    const img = c.build(root);
    // Swap the two names in place: same lengths, so the dirents stay valid.
    const at = img.indexOf('aaabbb');
    img.write('bbbaaa', at, 'latin1');
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/', message: 'entries out of order at "aaa"' }));
  });
});

describe('file data', () => {
  it('rejects a block address outside the image, naming the file', () => {
    const data = sampleData(9000, 1);
    const c = new Crafter();
    const img = imageWith((cc) => [{ name: 'f', nid: cc.addFlatFile(data), mode: S_IFREG | 0o644 }], c);
    const i = openImageBuffer(img);
    const n = i.lookup('/f');
    img.writeUInt32LE(0x00ffffff, i.inode(n).pos + 16);
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/f', message: expect.stringMatching(/data blocks .* lie outside the image/) }));
  });

  it('rejects inline data that would cross a block boundary', () => {
    const c = new Crafter();
    const img = imageWith((cc) => [{ name: 'f', nid: cc.addFlatFile(Buffer.from('tail')), mode: S_IFREG | 0o644 }], c);
    const i = openImageBuffer(img);
    const n = i.lookup('/f');
    img.writeBigUInt64LE(4095n, i.inode(n).pos + 8);
    expect(() => openImageBuffer(img).read(n, 0, 10)).toThrow(/inline data crosses a block boundary/);
  });

  it('rejects a symlink target longer than PATH_MAX', () => {
    const target = Buffer.alloc(5000, 0x61);
    const img = imageWith((c) => [{ name: 'l', nid: c.addFlatFile(target, {}, S_IFLNK | 0o777), mode: S_IFLNK | 0o777 }]);
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/l', message: 'symlink target of 5000 bytes' }));
  });

  it('bounds decompression by the extent length the index declares', () => {
    // A pcluster that decodes to more than the 1000 bytes the (non-partial) index claims.
    const data = sampleData(30_000, 2, 0);
    const img = imageWith((c) => {
      const plan = c.planExtents(data, { alg: 'lz4' });
      return [{ name: 'short', nid: c.addCompressedFile(1000, [{ ...plan[0]!, length: 1000 }], { alg: 'lz4' }), mode: S_IFREG | 0o644 }];
    });
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/short', message: expect.stringMatching(/lz4 extent at offset 0 \(1000 bytes\) does not decode/) }));
  });

  it('refuses an extent larger than the reader allows without allocating it', () => {
    // One head followed by NONHEAD lclusters covering MAX_EXTENT_BYTES + 1 bytes.
    const c = new Crafter(12, 80);
    const data = sampleData(8192, 3, 0);
    const size = MAX_EXTENT_BYTES + 4096;
    const img = imageWith((cc) => {
      const [first] = cc.planExtents(data, { alg: 'lz4' });
      return [{ name: 'huge', nid: cc.addCompressedFile(size, [{ ...first!, length: size }], { alg: 'lz4' }), mode: S_IFREG | 0o644 }];
    }, c);
    const before = process.memoryUsage().arrayBuffers;
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/huge', message: expect.stringMatching(/extent at offset 0 is \d+ bytes long/) }));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
  });

  it('rejects lcluster deltas that point before the start of the file', () => {
    const data = sampleData(40_000, 4, 0);
    const c = new Crafter();
    const img = imageWith((cc) => [{ name: 'z', nid: cc.addCompressed(data, { alg: 'lz4' }).nid, mode: S_IFREG | 0o644 }], c);
    const i = openImageBuffer(img);
    const n = i.lookup('/z');
    const records = Math.ceil(i.inode(n).tailPos / 8) * 8 + 16;
    // Make lcluster 1 a NONHEAD claiming its head is 5 lclusters back.
    img.writeUInt16LE(2, records + 8);
    img.writeUInt16LE(5, records + 8 + 4);
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/z', message: 'lcluster 1 points back before the start of the file' }));
  });

  it('rejects a zero lookback distance instead of looping', () => {
    const data = sampleData(40_000, 4, 0);
    const img = imageWith((cc) => [{ name: 'z', nid: cc.addCompressed(data, { alg: 'lz4' }).nid, mode: S_IFREG | 0o644 }]);
    const i = openImageBuffer(img);
    const n = i.lookup('/z');
    const records = Math.ceil(i.inode(n).tailPos / 8) * 8 + 16;
    img.writeUInt16LE(2, records + 8);
    img.writeUInt16LE(0, records + 8 + 4);
    expect(problemsOf(img)).toContainEqual(expect.objectContaining({ path: '/z', message: 'lcluster 1 has a zero back-distance' }));
  });

  it('rejects a fragment outside the packed inode', () => {
    const c = new Crafter();
    const root = c.reserveDir();
    const frag = c.addWholeFragmentFile(Buffer.from('fragment data'));
    c.finishPacked();
    c.writeDir(root, root, [{ name: 'frag', nid: frag, mode: S_IFREG | 0o644 }]);
    const img = c.build(root);
    img.writeBigUInt64LE(1n << 20n, openImageBuffer(img).inode(frag).pos + 8);
    expect(problemsOf(img)).toContainEqual(
      expect.objectContaining({ path: '/frag', message: expect.stringMatching(/fragment 0\+\d+ lies outside the packed inode \(13 bytes\)/) }),
    );
  });
});

describe('extraction target safety', () => {
  const tree = () =>
    imageWith((c, root) => {
      const sub = c.reserveDir();
      c.writeDir(sub, root, [{ name: 'inner', nid: c.addFlatFile(Buffer.from('inner\n')), mode: S_IFREG | 0o644 }]);
      return [{ name: 'sub', nid: sub, mode: S_IFDIR | 0o755 }];
    });

  it('never writes through a symlink already present in the target', () => {
    const base = tempDir();
    const out = nodePath.join(base, 'out');
    const elsewhere = nodePath.join(base, 'elsewhere');
    mkdirSync(out);
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, nodePath.join(out, 'sub'));
    const r = fsckImage(openImageBuffer(tree()), { extract: { dir: out } });
    expect(r.extractErrors).toEqual([expect.stringMatching(/exists and is not a directory/)]);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it('with --overwrite, replaces such a symlink by a real directory', () => {
    const base = tempDir();
    const out = nodePath.join(base, 'out');
    const elsewhere = nodePath.join(base, 'elsewhere');
    mkdirSync(out);
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, nodePath.join(out, 'sub'));
    fsckImage(openImageBuffer(tree()), { extract: { dir: out, overwrite: true } });
    expect(lstatSync(nodePath.join(out, 'sub')).isDirectory()).toBe(true);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it('refuses to replace an existing file unless asked to', () => {
    const base = tempDir();
    writeFileSync(nodePath.join(base, 'f'), 'mine');
    const img = imageWith((c) => [{ name: 'f', nid: c.addFlatFile(Buffer.from('theirs')), mode: S_IFREG | 0o644 }]);
    const r = fsckImage(openImageBuffer(img), { extract: { dir: base } });
    expect(r.extractErrors).toEqual([expect.stringMatching(/already exists/)]);
    fsckImage(openImageBuffer(img), { extract: { dir: base, overwrite: true } });
    expect(readdirSync(base)).toEqual(['f']);
  });

  it('refuses to extract onto / without force', () => {
    const img = imageWith(() => []);
    expect(() => fsckImage(openImageBuffer(img), { extract: { dir: '/' } })).toThrow(ExtractError);
  });
});

describe('errors', () => {
  it('are ErofsErrors carrying the nid and the bare reason', () => {
    const img = imageWith(() => [{ name: 'ghost', nid: 123456789 as Nid, mode: S_IFREG | 0o644 }]);
    const i = openImageBuffer(img);
    const n = i.lookupIn(i.rootNid, 'ghost')!.nid;
    let err: unknown;
    try {
      i.stat(n);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ErofsError);
    expect((err as ErofsError).nid).toBe(123456789);
    expect((err as ErofsError).reason).toBe('nid 123456789 points outside the image');
    expect((err as ErofsError).withPath('/ghost').message).toBe('/ghost, nid 123456789: nid 123456789 points outside the image');
  });
});
