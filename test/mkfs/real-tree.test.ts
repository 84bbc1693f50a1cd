import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { afterAll, expect } from 'vitest';
import { build, expectImageMatches, scratchDir } from '../helpers/build.js';
import { describeIfMount, itIfMount } from '../helpers/mount.js';

/**
 * A real root file system: the Debian minbase tree .ci/run makes with debootstrap
 * (EROFS_REAL_TREE), or else this machine's /etc and /usr/share/doc copied together.
 */
function realTree(): { root: string; cleanup: () => void } {
  const given = process.env.EROFS_REAL_TREE;
  // The tree itself, where EROFS_REAL_TREE is a symlink to it: the comparison looks at the root.
  if (given && existsSync(given)) return { root: realpathSync(given), cleanup: () => {} };
  console.warn('*** EROFS_REAL_TREE not set: using a copy of /etc and /usr/share/doc as the real tree ***');
  const s = scratchDir('erofs-real-');
  execFileSync('cp', ['-a', '/etc', `${s.dir}/etc`]);
  execFileSync('cp', ['-a', '/usr/share/doc', `${s.dir}/doc`]);
  return { root: s.dir, cleanup: s.cleanup };
}

describeIfMount('a real root file system', () => {
  const tree = realTree();
  const out = scratchDir();
  afterAll(() => {
    tree.cleanup();
    out.cleanup();
  });

  itIfMount('mounts with every file, link, device, owner, mode, time and xattr as in the source', async () => {
    const image = `${out.dir}/root.erofs`;
    await build(tree.root, image);
    await expectImageMatches(image, tree.root);
  }, 600_000);

  // Compressed, through the worker threads, 16 MiB segments of big files and output spilled
  // to scratch files, as users build container layers and OS images.
  for (const args of [['-zlz4', '--workers=2'], ['-zlz4hc,12', '-C65536', '-Eztailpacking']]) {
    itIfMount(`${args.join(' ')} mounts with every file's bytes and every entry as in the source`, async () => {
      const image = `${out.dir}/compressed.erofs`;
      execFileSync(process.execPath, ['bin/mkfs.erofs.js', '--quiet', ...args, image, tree.root]);
      await expectImageMatches(image, tree.root);
    }, 600_000);
  }

  itIfMount('is no larger than the reference mkfs.erofs image with the same options', async () => {
    // Debian's mkfs.erofs 1.5 only writes 4096-byte blocks.
    for (const args of [['-T0'], [], ['-x-1'], ['-T0', '-Enoinline_data'], ['-T0', '-Eforce-inode-extended']]) {
      const ours = `${out.dir}/ours.erofs`;
      const ref = `${out.dir}/ref.erofs`;
      execFileSync(process.execPath, ['bin/mkfs.erofs.js', '--quiet', ...args, ours, tree.root]);
      execFileSync('mkfs.erofs', [...args, ref, tree.root], { stdio: 'ignore' });
      expect(statSync(ours).size).toBeLessThanOrEqual(statSync(ref).size);
    }
  }, 600_000);
});
