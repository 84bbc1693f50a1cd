/**
 * Images written by Debian's mkfs.erofs 1.5 (LZ4/LZ4HC, big pclusters, tail packing, legacy
 * full indexes, chunk-based files, xattrs) are read entry by entry identically to the source
 * tree, and `fsckImage` with extraction reproduces the source tree exactly.
 */
import { isRoot, skipUnless } from '../helpers/require.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImage } from '../../src/reader/index.js';
import { fsckImage } from '../../src/reader/fsck.js';
import { compareTrees } from '../helpers/compare.js';
import { type DirSpec, type EntrySpec, type Name, type Tree, dir, file, fullFeatureSpec, hardlink, makeTree } from '../helpers/tree.js';
import { compareImageWithSource } from './helpers/compare-image.js';
import { HAVE_DEBIAN_MKFS, debianMkfs } from './helpers/fixtures.js';


/** mkfs.erofs 1.5 option sets, each exercising a different on-disk layout. */
const VARIANTS: Record<string, string[]> = {
  uncompressed: [],
  'lz4 (compact indexes)': ['-zlz4'],
  lz4hc: ['-zlz4hc'],
  'lz4hc, 16K big pclusters': ['-zlz4hc', '-C16384'],
  'lz4hc, 256K big pclusters, tail packing': ['-zlz4hc', '-C262144', '-Eztailpacking'],
  'lz4hc, tail packing': ['-zlz4hc', '-Eztailpacking'],
  'lz4, legacy (full indexes, no zero padding)': ['-zlz4', '-Elegacy-compress'],
  'lz4hc, legacy, big pclusters': ['-zlz4hc', '-C65536', '-Elegacy-compress'],
  'lz4hc, legacy, tail packing': ['-zlz4hc', '-Elegacy-compress', '-Eztailpacking'],
  'chunk-based, 4K block map': ['--chunksize=4096'],
  'chunk-based, 64K chunk indexes': ['--chunksize=65536', '-Eforce-chunk-indexes'],
  'fixed timestamp (-T, compact inodes)': ['-T1700000000'],
};

describe.skipIf(skipUnless(HAVE_DEBIAN_MKFS && isRoot, 'root and Debian mkfs.erofs (erofs-utils)'))('images from Debian mkfs.erofs 1.5', () => {
  let tree: Tree;
  let work: string;
  const images = new Map<string, string>();

  beforeAll(async () => {
    const base = fullFeatureSpec({ maxNameLen: 254 });
    // Extra files sized around lcluster, pack and pcluster boundaries, text and noise.
    const sizes = [1, 4095, 4096, 4097, 8191, 65535, 65537, 131072 + 17, 1 << 20, (5 << 20) + 3];
    const extras: Array<readonly [Name, EntrySpec]> = [
      [
        'sizes',
        dir(
          sizes.flatMap((n): Array<readonly [Name, EntrySpec]> => [
            [`text-${n}`, file({ size: n, pattern: 'text', seed: `t${n}` })],
            [`random-${n}`, file({ size: n, pattern: 'random', seed: `r${n}` })],
          ]),
        ),
      ],
      ['big-text', file({ size: 6 << 20, pattern: 'text', seed: 'big' })],
      ['big-text-link', hardlink('big-text')],
    ];
    const spec: DirSpec = { ...base, entries: [...(base.entries as ReadonlyArray<readonly [Name, EntrySpec]>), ...extras] };
    tree = await makeTree(spec);
    work = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-interop-'));
    for (const [name, args] of Object.entries(VARIANTS)) {
      const img = nodePath.join(work, `${name.replace(/[^a-z0-9]+/gi, '_')}.erofs`);
      debianMkfs(img, tree.root, args);
      images.set(name, img);
    }
  }, 300_000);

  afterAll(async () => {
    await tree?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const expectMtime = (name: string) => (name.startsWith('fixed timestamp') ? () => 1_700_000_000_000_000_000n : undefined);

  it.each(Object.keys(VARIANTS))('%s: the library reads every entry as in the source', (name) => {
    const img = openImage(images.get(name)!);
    try {
      const m = expectMtime(name);
      expect(compareImageWithSource(img, tree.root, m ? { expectMtime: m } : {})).toEqual([]);
    } finally {
      img.close();
    }
  });

  it.each(Object.keys(VARIANTS))('%s: fsck finds no problem and extraction reproduces the tree', async (name) => {
    const out = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-extract-'));
    const img = openImage(images.get(name)!);
    try {
      const r = fsckImage(img, { extract: { dir: out } });
      expect(r.problems).toEqual([]);
      expect(r.extractErrors).toEqual([]);
      expect(r.warnings).toEqual([]);
      const m = expectMtime(name);
      expect(await compareTrees(tree.root, out, m ? { expectMtime: m } : {})).toEqual([]);
    } finally {
      img.close();
      rmSync(out, { recursive: true, force: true });
    }
  });
});
