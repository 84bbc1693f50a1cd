import { afterAll, expect } from 'vitest';
import { build, expectImageMatches, scratchDir } from '../helpers/build.js';
import { describeIfMount, itIfMount } from '../helpers/mount.js';
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
