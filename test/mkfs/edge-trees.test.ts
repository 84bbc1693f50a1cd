import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { afterAll, expect } from 'vitest';
import { build, expectImageMatches, scratchDir } from '../helpers/build.js';
import { describeIfMount, itIfMount } from '../helpers/mount.js';
import { deepDir, dir, type EntrySpec, file, makeTree, type TreeSpec, wideDir } from '../helpers/tree.js';

describeIfMount('trees at the edges of the format', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());

  async function roundTrip(name: string, spec: TreeSpec, blockSizes = [4096], parentDir?: string): Promise<void> {
    const tree = await makeTree(spec, parentDir);
    try {
      for (const blockSize of blockSizes) {
        const image = `${out.dir}/${name}-${blockSize}.erofs`;
        await build(tree.root, image, { blockSize });
        await expectImageMatches(image, tree.root, { blockSize });
      }
    } finally {
      await tree.cleanup();
    }
  }

  itIfMount('file sizes around every block size (0, 1, bs-1, bs, bs+1, 2bs-1, ...)', async () => {
    const sizes = new Set<number>();
    for (const bs of [512, 1024, 2048, 4096]) for (const d of [-1, 0, 1]) for (const k of [1, 2, 3]) sizes.add(k * bs + d);
    sizes.add(0);
    const entries = [...sizes].map((s) => [`size-${s}`, file({ size: s, pattern: 'random', seed: s })] as const);
    await roundTrip('sizes', dir(entries), [512, 1024, 2048, 4096]);
  });

  itIfMount('a directory of 20,000 entries spanning many blocks', async () => {
    await roundTrip('wide', dir({ big: wideDir(20_000) }), [4096, 512]);
  });

  itIfMount('nesting 200 levels deep', async () => {
    await roundTrip('deep', deepDir(200, undefined, 'level'));
  });

  itIfMount('names that sort before "." and "..", and 255-byte names', async () => {
    await roundTrip(
      'names',
      dir([
        [' space', file('1')],
        ['!bang', file('2')],
        ['-dash', file('3')],
        ['.hidden', file('4')],
        ['..double', file('5')],
        ['#hash', dir({ '+plus': file('6') })],
        ['x'.repeat(255), file('7')],
        [Buffer.from([0x80, 0x81, 0xfe]), file('8')],
        [Buffer.from([0x01, 0x02]), file('9')],
      ]),
      [4096, 512],
    );
  });

  itIfMount('many and large xattrs, inline and shared, on many files', async () => {
    const common = { 'user.common': 'shared value', 'security.selinux': 'system_u:object_r:etc_t:s0\0' };
    const entries: Array<readonly [string, EntrySpec]> = Array.from({ length: 50 }, (_, i) => [
      `f${i}`,
      file(`${i}`, {
        xattrs: {
          ...common,
          [`user.unique-${i}`]: Buffer.alloc(i * 20, i),
          'trusted.big': Buffer.alloc(i === 7 ? 2000 : 10, 0x5a),
        },
      }),
    ] as const);
    // ext4 keeps all of an inode's xattrs in one 4 KiB block, which bounds what a source can hold.
    entries.push(['big-xattrs', file('h', { xattrs: { 'user.big': Buffer.alloc(2500, 0x33), 'user.big2': Buffer.alloc(1000, 1) } })]);
    await roundTrip('xattrs', dir(entries), [4096, 512]);
  });

  itIfMount('xattrs far larger than a block, whose inline area spans many blocks', async () => {
    // tmpfs, unlike ext4, holds xattr values up to 64 KiB.
    const fs = scratchDir('erofs-tmpfs-');
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', fs.dir]);
    try {
      const huge = { 'user.huge': Buffer.alloc(60_000, 0x61), 'trusted.big': Buffer.alloc(30_000, 0x62), 'user.small': 's' };
      await roundTrip('huge-xattrs', dir({ f: file('data', { xattrs: huge }), d: dir({}, { xattrs: huge }) }), [4096, 512], fs.dir);
    } finally {
      execFileSync('umount', [fs.dir]);
      fs.cleanup();
    }
  });

  itIfMount('files sharing more than 255 xattrs keep them all: 255 shared (a byte counts them), the rest inline', async () => {
    // tmpfs, unlike ext4, holds 300 xattrs on one inode.
    const fs = scratchDir('erofs-tmpfs-');
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', fs.dir]);
    try {
      const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`user.k${i}`, `value ${i}`]));
      await roundTrip('many-shared-xattrs', dir({ a: file('a', { xattrs: many }), b: file('b', { xattrs: many }), c: file('c', { xattrs: many }) }), [4096], fs.dir);
    } finally {
      execFileSync('umount', [fs.dir]);
      fs.cleanup();
    }
  });

  itIfMount('a root whose xattrs do not fit the superblock\'s block, past 2 MiB of data: the metadata starts after the data (meta_blkaddr) and the root keeps a 16-bit nid', async () => {
    for (const [blockSize, xattrBytes] of [
      [4096, 2900],
      [512, 400],
    ] as const) {
      const tree = await makeTree(dir({ data: file({ size: 3 << 20, pattern: 'random', seed: 'ahead' }), small: file('s') }, { xattrs: { 'user.big': Buffer.alloc(xattrBytes, 0x78) } }));
      try {
        const image = `${out.dir}/meta-after-data-${blockSize}.erofs`;
        await build(tree.root, image, { blockSize });
        const sb = readFileSync(image).subarray(1024, 1024 + 128);
        expect(sb.readUInt32LE(40), 'meta_blkaddr').toBeGreaterThan(0);
        expect(sb.readUInt16LE(14), 'root nid').toBe(0);
        await expectImageMatches(image, tree.root, { blockSize });
      } finally {
        await tree.cleanup();
      }
    }
  });

  itIfMount("an image that ends with its metadata block ends with an inode something follows: Debian 12's fsck.erofs reads an xattr header past a bare one", async () => {
    // All in the superblock's block, full, with empty files' bare compact inodes last but
    // for the reordering (three small files have inline data).
    const emptyFiles = () => dir(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`e${i + 1}`, file('')])));
    const tree = await makeTree(dir({ d1: emptyFiles(), d2: emptyFiles(), d3: emptyFiles(), t1: file('hi1\n'), t2: file('hi2\n'), t3: file('hi3\n') }));
    try {
      const image = `${out.dir}/ends-with-body.erofs`;
      await build(tree.root, image, { timestamp: 0 });
      expect(statSync(image).size).toBe(4096);
      await expectImageMatches(image, tree.root, { expectMtime: () => 0n });
    } finally {
      await tree.cleanup();
    }
  });

  itIfMount('a file of 64 MiB of mixed data is streamed and read back exactly', async () => {
    await roundTrip('large', dir({ big: file({ size: 64 << 20, pattern: 'random', seed: 'big' }), zero: file({ size: 16 << 20, pattern: 'zero' }) }));
  });

  itIfMount('an empty source directory', async () => {
    await roundTrip('empty', dir({}), [4096, 512]);
  });

  itIfMount('a directory with many subdirectories counts 2 + subdirs links', async () => {
    await roundTrip('nlink', dir({ parent: wideDir(100, (i) => [`d${i}`, dir({})]) }));
  });
});
