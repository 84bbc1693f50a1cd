import { afterAll, beforeAll, expect } from 'vitest';
import { build, cli, expectImageMatches, scratchDir } from '../helpers/build.js';
import { describeIfMount, itIfMount, withMount } from '../helpers/mount.js';
import { dir, file, hardlink, makeTree, symlink, type Tree } from '../helpers/tree.js';
import { lstatSync, readFileSync } from 'node:fs';
import { llistxattr } from '../helpers/libc.js';

const NS = 1_000_000_000n;
const OLD = { sec: 1_000_000_000, nsec: 5 };
const NEW = { sec: 2_000_000_000, nsec: 7 };

describeIfMount('metadata options', () => {
  let tree: Tree;
  const out = scratchDir();
  beforeAll(async () => {
    tree = await makeTree(
      dir(
        {
          old: file('old\n', { mtime: OLD, uid: 1000, gid: 2000, xattrs: { 'user.a': '1' } }),
          new: file('new\n', { mtime: NEW, uid: 3, gid: 4 }),
          skip: dir({ inner: file('x') }),
          'skip-me.log': file('log'),
          keep: dir({ 'a.log': file('log'), b: file('b') }),
          link: symlink('old'),
          h1: file('h', { mtime: OLD }),
          h2: hardlink('h1'),
        },
        { mtime: OLD },
      ),
    );
  });
  afterAll(async () => {
    await tree.cleanup();
    out.cleanup();
  });
  const image = (name: string) => `${out.dir}/${name}.erofs`;

  itIfMount('-T sets every file time to the timestamp (--all-time)', async () => {
    await build(tree.root, image('T'), { timestamp: 1_500_000_000 });
    await expectImageMatches(image('T'), tree.root, { expectMtime: () => 1_500_000_000n * NS });
  });

  itIfMount('-T with --mkfs-time keeps file times', async () => {
    await build(tree.root, image('mkfs-time'), { timestamp: 1_500_000_000, timestampScope: 'mkfs' });
    await expectImageMatches(image('mkfs-time'), tree.root);
  });

  itIfMount('SOURCE_DATE_EPOCH clamps newer times, keeps older ones, and overrides -T', async () => {
    const r = await cli(['-T', '100', '-Uclear', '--quiet', image('sde'), tree.root], { SOURCE_DATE_EPOCH: '1500000000' });
    expect(r).toMatchObject({ code: 0, stdout: '' });
    await expectImageMatches(image('sde'), tree.root, {
      expectMtime: (src) => (src > 1_500_000_000n * NS ? 1_500_000_000n * NS : src),
    });
  });

  itIfMount('--ignore-mtime gives files whose time differs the build time', async () => {
    await build(tree.root, image('ignore'), { timestamp: 1_500_000_000, timestampScope: 'mkfs', ignoreMtime: true });
    await expectImageMatches(image('ignore'), tree.root, { expectMtime: () => 1_500_000_000n * NS });
  });

  itIfMount('--all-root makes every file owned by root', async () => {
    await build(tree.root, image('root'), { allRoot: true });
    await expectImageMatches(image('root'), tree.root, { expectUid: 0, expectGid: 0 });
  });

  itIfMount('--force-uid/--force-gid set every owner, offsets are added after', async () => {
    await build(tree.root, image('force'), { forceUid: 7, forceGid: 8, uidOffset: 100_000, gidOffset: 5 });
    await expectImageMatches(image('force'), tree.root, { expectUid: 100_007, expectGid: 13 });
  });

  itIfMount('--uid-offset/--gid-offset shift the source ids', async () => {
    await build(tree.root, image('offset'), { uidOffset: 70_000, gidOffset: 1 });
    await expectImageMatches(image('offset'), tree.root, { expectUid: (u) => u + 70_000, expectGid: (g) => g + 1 });
  });

  itIfMount('--exclude-path and --exclude-regex leave entries (and what is below them) out', async () => {
    const r = await cli(['-Uclear', '--quiet', '--exclude-path=skip', '--exclude-path', '/keep/b', '--exclude-regex=\\.log$', image('excl'), tree.root]);
    expect(r.code).toBe(0);
    const excluded = (rel: string) => rel === 'skip' || rel === 'keep/b' || rel.endsWith('.log');
    await expectImageMatches(image('excl'), tree.root, { exclude: excluded });
  });

  itIfMount('-x-1 drops every xattr', async () => {
    const r = await cli(['-x-1', '-Uclear', '--quiet', image('noxattr'), tree.root]);
    expect(r.code).toBe(0);
    await expectImageMatches(image('noxattr'), tree.root, { ignoreXattrs: true });
    await withMount(image('noxattr'), async (mnt) => {
      expect(llistxattr(`${mnt}/old`)).toEqual([]);
    });
  });

  itIfMount('--hard-dereference stores each link as its own inode', async () => {
    await build(tree.root, image('deref'), { hardDereference: true });
    await withMount(image('deref'), (mnt) => {
      const a = lstatSync(`${mnt}/h1`);
      const b = lstatSync(`${mnt}/h2`);
      expect(a.ino).not.toBe(b.ino);
      expect([a.nlink, b.nlink]).toEqual([1, 1]);
    });
  });

  itIfMount('-L and -U are recorded in the superblock', async () => {
    const r = await cli(['-L', 'my-label', '-U', '0123abcd-4567-89ab-cdef-0123456789ab', '--quiet', image('label'), tree.root]);
    expect(r.code).toBe(0);
    const sb = readFileSync(image('label')).subarray(1024, 1152);
    expect(sb.subarray(48, 64).toString('hex')).toBe('0123abcd456789abcdef0123456789ab');
    expect(sb.subarray(64, 80).toString('latin1').replace(/\0+$/, '')).toBe('my-label');
  });

  itIfMount('--root-xattr-isize reserves inline xattr room in the root inode', async () => {
    await build(tree.root, image('rootx'), { rootXattrIsize: 256 });
    await expectImageMatches(image('rootx'), tree.root);
    const img = readFileSync(image('rootx'));
    const rootNid = img.readUInt16LE(1024 + 14);
    const icount = img.readUInt16LE(rootNid * 32 + 2);
    expect(12 + (icount - 1) * 4).toBeGreaterThanOrEqual(256);
  });

  itIfMount('--root-xattr-isize of 12 bytes or less gives the root its header and one slot: Linux refuses an xattr area of the header alone', async () => {
    for (const bytes of [1, 4, 12]) {
      await build(tree.root, image(`rootx-${bytes}`), { rootXattrIsize: bytes });
      const img = readFileSync(image(`rootx-${bytes}`));
      const rootNid = img.readUInt16LE(1024 + 14);
      expect(img.readUInt16LE(rootNid * 32 + 2), `${bytes} bytes`).toBe(2);
      // The kernel reads the root's xattrs (it answered EOPNOTSUPP to a header alone).
      await withMount(image(`rootx-${bytes}`), (mnt) => expect(llistxattr(mnt)).toEqual([]));
      await expectImageMatches(image(`rootx-${bytes}`), tree.root);
    }
  });
});
