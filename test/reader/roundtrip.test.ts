/**
 * Round trips through this project's own mkfs: a source tree is built into an image by
 * buildImage(), then read back with the reader library entry by entry and extracted with
 * fsckImage(); both must match the source exactly. Block sizes below 4096 are covered here
 * (Debian's mkfs.erofs 1.5 cannot write them).
 */
import { isRoot, skipUnless } from '../helpers/require.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuildOptions, buildImage } from '../../src/index.js';
import { fsckImage } from '../../src/reader/fsck.js';
import { openImage } from '../../src/reader/index.js';
import { collectStats } from '../../src/reader/stats.js';
import { compareTrees } from '../helpers/compare.js';
import { type Tree, fullFeatureSpec, makeTree } from '../helpers/tree.js';
import { compareImageWithSource } from './helpers/compare-image.js';


const VARIANTS: Record<string, Partial<BuildOptions>> = {
  'default options': {},
  '2048-byte blocks': { blockSize: 2048 },
  '1024-byte blocks': { blockSize: 1024 },
  '512-byte blocks': { blockSize: 512 },
  'fixed timestamp (compact inodes where possible), no inline data': { inlineData: false, timestamp: 1_700_000_000 },
  'lz4hc': { compression: [{ name: 'lz4hc' }] },
  'lzma, 64K pclusters, tail packing': { compression: [{ name: 'lzma' }], pclusterSize: 65536, ztailpacking: true },
  'deflate, tail packing': { compression: [{ name: 'deflate' }], ztailpacking: true },
  'zstd, 16K pclusters': { compression: [{ name: 'zstd' }], pclusterSize: 16384 },
  'lz4, legacy full indexes, 1024-byte blocks': { compression: [{ name: 'lz4' }], legacyCompress: true, blockSize: 1024 },
};

describe.skipIf(skipUnless(isRoot, 'root (trees with devices and owners)'))('round trips through buildImage()', () => {
  let tree: Tree;
  let work: string;

  beforeAll(async () => {
    tree = await makeTree(fullFeatureSpec());
    work = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-roundtrip-'));
  }, 120_000);

  afterAll(async () => {
    await tree?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.each(Object.keys(VARIANTS))('%s: read back and extracted identical to the source', async (name) => {
    const opts = VARIANTS[name]!;
    const image = nodePath.join(work, `${name.replace(/[^a-z0-9]+/gi, '_')}.erofs`);
    await buildImage({ uuid: 'clear', log: () => {}, ...opts, image, source: tree.root });
    const expectMtime = opts.timestamp !== undefined ? () => BigInt(opts.timestamp!) * 1_000_000_000n : undefined;
    const img = openImage(image);
    const out = nodePath.join(work, `${name.replace(/[^a-z0-9]+/gi, '_')}.out`);
    try {
      expect(compareImageWithSource(img, tree.root, expectMtime ? { expectMtime } : {})).toEqual([]);
      if (opts.compression) expect(collectStats(img).compressedFiles).toBeGreaterThan(0);
      const r = fsckImage(img, { extract: { dir: out } });
      expect(r.problems).toEqual([]);
      expect(r.extractErrors).toEqual([]);
      expect(await compareTrees(tree.root, out, expectMtime ? { expectMtime } : {})).toEqual([]);
    } finally {
      img.close();
      rmSync(out, { recursive: true, force: true });
    }
  });
});
