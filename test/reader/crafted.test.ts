/**
 * Every layout and algorithm the reader supports, on a crafted image whose validity is
 * established by the kernel (the mount test) before the reader is judged against it.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ErofsImage, openImage } from '../../src/reader/index.js';
import { fsckImage } from '../../src/reader/fsck.js';
import { lgetxattr, llistxattr } from '../helpers/libc.js';
import { itIfMount, withMount } from '../helpers/mount.js';
import { type CraftedImage, craftAllFeatures, tempImage } from './helpers/fixtures.js';

let crafted: CraftedImage;
let file: string;
let cleanup: () => void;
let img: ErofsImage;

beforeAll(() => {
  crafted = craftAllFeatures();
  ({ file, cleanup } = tempImage(crafted.image));
  img = openImage(file);
});

afterAll(() => {
  img?.close();
  cleanup?.();
});

const byName = (name: string) => crafted.files.find((f) => f.name === name)!;

describe('crafted image with every feature', () => {
  itIfMount('is read by the kernel as intended (validates the fixture itself)', async () => {
    await withMount(file, (mnt) => {
      for (const f of crafted.files) {
        const p = path.join(mnt, f.name);
        if (f.symlink) {
          expect(readlinkSync(p), f.name).toBe(f.data.toString());
          continue;
        }
        expect(Buffer.compare(readFileSync(p), f.data), f.name).toBe(0);
        if (f.xattrs) {
          const names = llistxattr(p).map((n) => n.toString()).sort();
          expect(names).toEqual(Object.keys(f.xattrs).sort());
          for (const [k, v] of Object.entries(f.xattrs)) expect(lgetxattr(p, k).toString()).toBe(v);
        }
      }
    });
  });

  const dataFiles = [
    'lz4.bin',
    'lzma.bin',
    'deflate.bin',
    'zstd.bin',
    'head2.bin',
    'big-pcluster.bin',
    'ztail-deflate.bin',
    'ztail-raw.bin',
    'interlaced.bin',
    'fragment-tail.bin',
    'fragment-whole.txt',
    'partial-ref.bin',
    'chunk-map.bin',
    'chunk-index.bin',
  ];

  it.each(dataFiles)('reads %s exactly', (name) => {
    const f = byName(name);
    const nid = img.lookup(`/${name}`);
    expect(img.stat(nid).size).toBe(f.data.length);
    expect(Buffer.compare(Buffer.from(img.read(nid, 0, f.data.length)), f.data)).toBe(0);
  });

  it.each(dataFiles)('maps %s to the expected kinds of extents', (name) => {
    const f = byName(name);
    const kinds = new Set([...img.extents(img.lookup(`/${name}`))].map((e) => e.kind));
    for (const k of f.expectKinds ?? []) expect(kinds, `${name} has ${k} extents`).toContain(k);
  });

  it('reads arbitrary byte ranges of a compressed file, across extent boundaries', () => {
    const f = byName('zstd.bin');
    const nid = img.lookup('/zstd.bin');
    for (const [off, len] of [[0, 1], [4095, 2], [5000, 20_000], [f.data.length - 10, 100], [123, f.data.length]] as const) {
      const want = f.data.subarray(off, Math.min(off + len, f.data.length));
      expect(Buffer.compare(Buffer.from(img.read(nid, off, len)), want)).toBe(0);
    }
  });

  it('marks the partial-reference extent as partial', () => {
    const [e] = [...img.extents(img.lookup('/partial-ref.bin'))];
    expect(e!.partial).toBe(true);
  });

  it('marks HEAD2 extents with the second algorithm', () => {
    const algs = new Set([...img.extents(img.lookup('/head2.bin'))].filter((e) => e.kind === 'compressed').map((e) => e.algorithm));
    expect(algs).toEqual(new Set([0, 2]));
  });

  it('resolves long xattr prefixes from the packed inode and shared xattrs', () => {
    const got = Object.fromEntries(img.listXattrs(img.lookup('/xattrs.txt')).map((x) => [x.name.toString(), x.value.toString()]));
    expect(got).toEqual(byName('xattrs.txt').xattrs);
  });

  it('finds single xattrs by name, including through the bloom filter', () => {
    const nid = img.lookup('/xattrs.txt');
    expect(img.getXattr(nid, 'user.org.example.color')?.toString()).toBe('blue');
    expect(img.getXattr(nid, 'user.shared')?.toString()).toBe('same everywhere');
    expect(img.getXattr(nid, 'user.absent')).toBeNull();
  });

  it('filters xattrs by name prefix', () => {
    const names = img.listXattrs(img.lookup('/xattrs.txt'), 'user.').map((x) => x.name.toString()).sort();
    expect(names).toEqual(['user.org.example.color', 'user.plain', 'user.shared']);
  });

  it('passes fsck with every file decoded', () => {
    const r = fsckImage(img);
    expect(r.problems).toEqual([]);
    expect(r.counts.file).toBe(crafted.files.filter((f) => !f.symlink).length);
  });
});
