/**
 * The public reader API on a small image built by Debian's mkfs.erofs 1.5 (LZ4HC, compact
 * indexes): path lookup, directory listing, stat, readlink, xattrs, byte-range reads that
 * decompress only what they need, and the errors for misuse.
 */
import { isRoot, skipUnless } from '../helpers/require.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ByteSource,
  type DecompressorProvider,
  ErofsImage,
  FileSource,
  InvalidArgumentError,
  NotFoundError,
  openImage,
} from '../../src/reader/index.js';
import { getDecompressor } from '../../src/compress/registry.js';
import { type Tree, chardev, contentBuffer, dir, file, hardlink, makeTree, symlink } from '../helpers/tree.js';
import { HAVE_DEBIAN_MKFS, debianMkfs } from './helpers/fixtures.js';

const BIG = { size: 300_000, pattern: 'text', seed: 'api-big' } as const;

describe.skipIf(skipUnless(HAVE_DEBIAN_MKFS && isRoot, 'root and Debian mkfs.erofs (erofs-utils)'))('reader API', () => {
  let tree: Tree;
  let work: string;
  let image: string;
  let img: ErofsImage;

  beforeAll(async () => {
    tree = await makeTree(
      dir(
        {
          'big.txt': file(BIG, { mode: 0o640, uid: 1234, gid: 5678, mtime: { sec: 1_650_000_000, nsec: 987_654_321 }, xattrs: { 'user.colour': 'green', 'trusted.t': 'x' } }),
          'small.txt': file('hello\n'),
          again: hardlink('big.txt'),
          link: symlink('sub/deeper/leaf'),
          null: chardev(1, 3, { mode: 0o666 }),
          sub: dir({ deeper: dir({ leaf: file('leaf\n') }) }),
        },
        { mode: 0o755 },
      ),
    );
    work = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-api-'));
    image = nodePath.join(work, 'api.erofs');
    debianMkfs(image, tree.root, ['-zlz4hc']);
    img = openImage(image);
  }, 60_000);

  afterAll(async () => {
    img?.close();
    await tree?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('describes the superblock', () => {
    expect(img.superblock.blksz).toBe(4096);
    expect(img.superblock.checksumVerified).toBe(true);
    expect(img.stat(img.rootNid).kind).toBe('dir');
  });

  it('looks up paths, with or without a leading slash, "." and repeated slashes', () => {
    const leaf = img.lookup('/sub/deeper/leaf');
    expect(img.lookup('sub//deeper/./leaf')).toBe(leaf);
    expect(img.lookup('/sub/deeper/..')).toBe(img.lookup('/sub'));
    expect(img.lookup('/')).toBe(img.rootNid);
  });

  it('throws NotFoundError for missing names and for paths through files', () => {
    expect(() => img.lookup('/nope')).toThrow(NotFoundError);
    expect(() => img.lookup('/small.txt/x')).toThrow(NotFoundError);
  });

  it('lists a directory in on-disk order with "." and ".."', () => {
    const names = img.readdir(img.rootNid).map((e) => e.name.toString());
    expect(names).toEqual(['.', '..', 'again', 'big.txt', 'link', 'null', 'small.txt', 'sub']);
  });

  it('stats an inode: mode, owner, nanosecond mtime, size, nlink', () => {
    const s = img.stat(img.lookup('/big.txt'));
    expect(s).toMatchObject({ kind: 'file', mode: 0o100640, uid: 1234, gid: 5678, mtime: 1_650_000_000n, mtimeNsec: 987_654_321, size: 300_000, nlink: 2, compressed: true });
  });

  it('gives hard links the same nid', () => {
    expect(img.lookup('/again')).toBe(img.lookup('/big.txt'));
  });

  it('reports device numbers', () => {
    expect(img.stat(img.lookup('/null')).rdev).toEqual({ major: 1, minor: 3 });
  });

  it('reads symlink targets, and refuses readlink on other inodes', () => {
    expect(img.readlink(img.lookup('/link')).toString()).toBe('sub/deeper/leaf');
    expect(() => img.readlink(img.lookup('/small.txt'))).toThrow(InvalidArgumentError);
  });

  it('refuses readdir on a file', () => {
    expect(() => img.readdir(img.lookup('/small.txt'))).toThrow(InvalidArgumentError);
  });

  it('lists and gets xattrs', () => {
    const n = img.lookup('/big.txt');
    expect(img.listXattrs(n).map((x) => x.name.toString()).sort()).toEqual(['trusted.t', 'user.colour']);
    expect(img.listXattrs(n, 'user.').map((x) => x.name.toString())).toEqual(['user.colour']);
    expect(img.getXattr(n, 'user.colour')?.toString()).toBe('green');
    expect(img.getXattr(n, 'user.missing')).toBeNull();
  });

  it('reads byte ranges, short at end of file', () => {
    const want = contentBuffer(BIG);
    const n = img.lookup('/big.txt');
    expect(Buffer.from(img.read(n, 123_456, 1000)).equals(want.subarray(123_456, 124_456))).toBe(true);
    expect(img.read(n, 299_990, 100).length).toBe(10);
    expect(img.read(n, 400_000, 10).length).toBe(0);
    expect(() => img.read(n, -1, 10)).toThrow(InvalidArgumentError);
  });

  it('decompresses only the pclusters a read needs', () => {
    const calls: number[] = [];
    const counting: DecompressorProvider = (alg) => {
      const d = getDecompressor(alg);
      return { decompress: (src, outLen) => (calls.push(outLen), d.decompress(src, outLen)) };
    };
    const fresh = openImage(image, { decompressors: counting });
    try {
      const n = fresh.lookup('/big.txt');
      const extents = [...fresh.extents(n)];
      expect(extents.length).toBeGreaterThan(10);
      const e = extents[5]!;
      fresh.read(n, e.logical + 10, 20);
      expect(calls).toEqual([e.length]);
      // A second read inside the same extent is served from the extent cache.
      fresh.read(n, e.logical + 100, 20);
      expect(calls).toHaveLength(1);
    } finally {
      fresh.close();
    }
  });

  it('does not load the image into memory', () => {
    let bytesRead = 0;
    const file = new FileSource(image);
    const counting: ByteSource = {
      size: file.size,
      pread: (pos, len) => ((bytesRead += len), file.pread(pos, len)),
      close: () => file.close(),
    };
    const lazy = new ErofsImage(counting);
    try {
      expect(Buffer.from(lazy.read(lazy.lookup('/sub/deeper/leaf'), 0, 100)).toString()).toBe('leaf\n');
      expect(bytesRead).toBeLessThan(file.size / 4);
    } finally {
      lazy.close();
    }
  });
});
