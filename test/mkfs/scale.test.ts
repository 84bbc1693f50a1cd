import { spawnSync } from 'node:child_process';
import { afterAll, expect } from 'vitest';
import { build, CLI, expectImageMatches, scratchDir } from '../helpers/build.js';
import { compareTrees } from '../helpers/compare.js';
import { describeIfMount, itIfMount, withMount } from '../helpers/mount.js';
import { deepDir, dir, file, makeTree, wideDir } from '../helpers/tree.js';

describeIfMount('trees at scale', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());

  itIfMount('a directory of 100,000 entries', async () => {
    const tree = await makeTree(dir({ big: wideDir(100_000, (i) => [`entry-${i}`, file(i % 7 === 0 ? `${i}\n` : '')]) }));
    try {
      const r = await build(tree.root, `${out.dir}/wide.erofs`, { compression: [{ name: 'lz4' }] });
      expect(r.inodes).toBe(100_002);
      await expectImageMatches(`${out.dir}/wide.erofs`, tree.root);
    } finally {
      await tree.cleanup();
    }
  }, 600_000);

  itIfMount('1,000,000 small files build, mount and compare, with memory per inode bounded', async () => {
    // 1,000 directories of 1,000 files, every tenth with a few bytes of content.
    const tree = await makeTree(
      wideDir(1000, (d) => [`d${d}`, wideDir(1000, (f) => [`file-${f}`, file(f % 10 === 0 ? `${d}/${f}\n` : '')])]),
    );
    try {
      const image = `${out.dir}/million.erofs`;
      const r = spawnSync('/usr/bin/time', ['-f', 'RSS %M', process.execPath, CLI, '--quiet', '-T0', image, tree.root]);
      const err = r.stderr.toString();
      expect(err).toMatch(/^RSS \d+\n$/);
      expect(r.status).toBe(0);
      const rssBytes = Number(/RSS (\d+)/.exec(err)![1]) * 1024;
      // Node's own baseline, then a few hundred bytes per inode (about 570 measured).
      expect(rssBytes).toBeLessThan(80 * 2 ** 20 + 1_001_001 * 650);
      const diffs = await withMount(image, (mnt) => compareTrees(tree.root, mnt, { ignoreRootAttrs: true, expectMtime: () => 0n }));
      expect(diffs).toEqual([]);
    } finally {
      await tree.cleanup();
    }
  }, 1_800_000);

  itIfMount('a tree 1,000 levels deep', async () => {
    const tree = await makeTree(deepDir(1000, { leaf: file('at the bottom\n') }));
    try {
      const r = await build(tree.root, `${out.dir}/deep.erofs`);
      expect(r.inodesByType.directory).toBe(1001);
      // Debian's fsck.erofs 1.5 overflows its stack on a tree this deep, even on images
      // its own mkfs.erofs makes; this project's fsck still checks the image.
      await expectImageMatches(`${out.dir}/deep.erofs`, tree.root, { fsck: false });
    } finally {
      await tree.cleanup();
    }
  }, 600_000);
});
