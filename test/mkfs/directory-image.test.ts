import { readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, vi } from 'vitest';
import { build, expectImageMatches, scratchDir } from '../helpers/build.js';
import { describeIfMount, itIfMount } from '../helpers/mount.js';
import { openImage } from '../../src/reader/index.js';
import { RangeCopier } from '../../src/mkfs/range-copier.js';
import { dir, file, fullFeatureSpec, hardlink, makeTree, type Tree } from '../helpers/tree.js';

describeIfMount('an image of a directory tree', () => {
  let tree: Tree;
  const out = scratchDir();
  beforeAll(async () => {
    tree = await makeTree(fullFeatureSpec());
  });
  afterAll(async () => {
    await tree.cleanup();
    out.cleanup();
  });

  for (const blockSize of [4096, 2048, 1024, 512]) {
    itIfMount(`mounts and matches its source in every attribute with ${blockSize}-byte blocks`, async () => {
      const image = `${out.dir}/b${blockSize}.erofs`;
      const r = await build(tree.root, image, { blockSize });
      expect(r.blockSize).toBe(blockSize);
      await expectImageMatches(image, tree.root, { blockSize });
    });
  }

  itIfMount('walks the directory a symlinked SOURCE points to, as the reference does', async () => {
    const link = `${out.dir}/tree-link`;
    symlinkSync(tree.root, link);
    const image = `${out.dir}/via-link.erofs`;
    await build(link, image);
    await expectImageMatches(image, tree.root);
  });

  itIfMount('matches its source with compact inodes when -T fixes every time', async () => {
    const image = `${out.dir}/t.erofs`;
    await build(tree.root, image, { timestamp: 1_000_000 });
    await expectImageMatches(image, tree.root, { expectMtime: () => 1_000_000n * 1_000_000_000n });
  });

  itIfMount('matches its source with every inode extended (-Eforce-inode-extended)', async () => {
    const image = `${out.dir}/ext.erofs`;
    await build(tree.root, image, { inodeVersion: 'extended' });
    await expectImageMatches(image, tree.root);
  });

  itIfMount('matches its source with no inline data for regular files (-Enoinline_data)', async () => {
    const image = `${out.dir}/noinline.erofs`;
    await build(tree.root, image, { inlineData: false });
    await expectImageMatches(image, tree.root);
  });

  itIfMount('matches its source with every xattr shared (-x0) and with none shared (-x100000)', async () => {
    for (const xattrTolerance of [0, 100_000]) {
      const image = `${out.dir}/x${xattrTolerance}.erofs`;
      await build(tree.root, image, { xattrTolerance });
      await expectImageMatches(image, tree.root);
    }
  });

  itIfMount('writes plain files ahead of the metadata, in walk order, and the rest after it', async () => {
    // Plain files are copied on a thread of their own during the walk; hard-linked files and
    // files with xattrs wait for the layout and are written by the main thread.
    const t = await makeTree(
      dir({
        a: file({ size: 10_000, pattern: 'random', seed: 1 }),
        b: file({ size: 70_000, pattern: 'random', seed: 2 }),
        c: file('c'.repeat(5000), { xattrs: { 'user.k': 'v' } }),
        d: file({ size: 3 * 4096, pattern: 'hole' }),
        e: hardlink('a'),
        f: file('tail only'),
        g: file({ size: 200_000, pattern: 'random', seed: 3 }),
      }),
    );
    try {
      const image = `${out.dir}/order.erofs`;
      await build(t.root, image);
      const img = openImage(image);
      try {
        const first = (name: string): number => img.mapExtent(img.lookup(name), 0).physical / 4096;
        // Block 0 holds the superblock; a (hard-linked) and c (xattrs) come after the metadata.
        expect([first('b'), first('d'), first('g')]).toEqual([1, 1 + 17, 1 + 17 + 3]);
        expect(first('a')).toBeGreaterThan(first('g'));
        expect(first('c')).toBeGreaterThan(first('g'));
      } finally {
        img.close();
      }
      await expectImageMatches(image, t.root);
      expect(readdirSync(out.dir).filter((n) => n.includes('.tmp'))).toEqual([]);
    } finally {
      await t.cleanup();
    }
  });

  itIfMount('matches its source and gives the same bytes twice when big files are copied on the thread pool alongside the walk', async () => {
    // Big files among many small ones, in two directories: copies on the pool and the walk's own interleave.
    const files = Object.fromEntries(
      Array.from({ length: 3000 }, (_, i) => [`f${i}`, i % 500 === 0 ? file({ size: 300_000 + i, pattern: 'random', seed: i }) : file(`${i}\n`.repeat(i % 700))]),
    );
    const t = await makeTree(dir({ a: dir(files), b: dir(files) }));
    try {
      await build(t.root, `${out.dir}/many1.erofs`, { timestamp: 0 });
      await build(t.root, `${out.dir}/many2.erofs`, { timestamp: 0 });
      expect(readFileSync(`${out.dir}/many1.erofs`).equals(readFileSync(`${out.dir}/many2.erofs`))).toBe(true);
      await expectImageMatches(`${out.dir}/many1.erofs`, t.root, { expectMtime: () => 0n });
    } finally {
      await t.cleanup();
    }
  });

  itIfMount('big hard-linked files and big files with xattrs, placed after the metadata, are copied on the thread pool too', async () => {
    const copy = vi.spyOn(RangeCopier.prototype, 'copy');
    const t = await makeTree(
      dir({
        linked: file({ size: (1 << 20) + 77, pattern: 'random', seed: 'l' }),
        twin: hardlink('linked'),
        tagged: file({ size: 300_000, pattern: 'text', seed: 't' }, { xattrs: { 'user.k': 'v' } }),
        plain: file({ size: 200_000, pattern: 'random', seed: 'p' }),
      }),
    );
    try {
      await build(t.root, `${out.dir}/after-meta.erofs`, { timestamp: 0 });
      // plain during the walk; linked and tagged while the metadata is written.
      expect(copy).toHaveBeenCalledTimes(3);
      await expectImageMatches(`${out.dir}/after-meta.erofs`, t.root, { expectMtime: () => 0n });
    } finally {
      copy.mockRestore();
      await t.cleanup();
    }
  });

  itIfMount('big files still being copied when the metadata is written have their tails in place', async () => {
    // 60 MB of big files walked first keep the thread pool busy past the walk.
    const big = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`big${i}`, file({ size: (2 << 20) + i, pattern: 'random', seed: i })]));
    const small = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`s${i}`, file(`${i}:`.repeat(1 + (i % 900)))]));
    const t = await makeTree(dir({ a: dir(big), b: dir(small) }));
    try {
      await build(t.root, `${out.dir}/behind1.erofs`, { timestamp: 0 });
      await build(t.root, `${out.dir}/behind2.erofs`, { timestamp: 0, workers: 1 });
      expect(readFileSync(`${out.dir}/behind1.erofs`).equals(readFileSync(`${out.dir}/behind2.erofs`))).toBe(true);
      await expectImageMatches(`${out.dir}/behind1.erofs`, t.root, { expectMtime: () => 0n });
    } finally {
      await t.cleanup();
    }
  });

  itIfMount('matches its source without the superblock checksum or the xattr name filter', async () => {
    const image = `${out.dir}/plain.erofs`;
    await build(tree.root, image, { sbChecksum: false, xattrNameFilter: false });
    await expectImageMatches(image, tree.root);
  });
});
