/**
 * Tests of the integration-test harness itself (test/helpers): that makeTree builds exactly
 * what a spec says, that compareTrees finds every kind of difference (and nothing else), and
 * that withMount/compareTrees work against a real EROFS mount of an image built by the
 * system's mkfs.erofs (Debian erofs-utils 1.5).
 */
import { isRoot, skipUnless } from './helpers/require.js';
import { execFile } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import nodePath from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAcl } from './helpers/acl.js';
import { compareTrees, readXattrs } from './helpers/compare.js';
import { lgetxattr, lsetxattr, setMtimeNs, splitdev } from './helpers/libc.js';
import { canMount, describeIfMount, runFsck, withMount } from './helpers/mount.js';
import {
  blockdev,
  chardev,
  contentBuffer,
  contentChunks,
  deepDir,
  dir,
  fifo,
  file,
  fullFeatureSpec,
  hardlink,
  makeTree,
  ns,
  socket,
  symlink,
  wideDir,
  type DirSpec,
  type Tree,
} from './helpers/tree.js';

const run = promisify(execFile);

const describeAsRoot = describe.skipIf(skipUnless(isRoot, 'root (devices, chown, trusted.* xattrs)'));

const lstat = (p: string | Buffer) => fsp.lstat(p, { bigint: true });

/** Runs `fn` and then puts back the mtimes the given paths had before (it may recreate them). */
async function keepingMtimes(paths: string[], fn: () => Promise<void> | void): Promise<void> {
  const before = await Promise.all(paths.map(async (p) => (await lstat(p)).mtimeNs));
  await fn();
  paths.forEach((p, i) => setMtimeNs(p, before[i]!));
}

// ---------------------------------------------------------------------------------------------

describeAsRoot('makeTree', () => {
  const trees: Tree[] = [];
  const make = async (spec: Parameters<typeof makeTree>[0]) => {
    const t = await makeTree(spec);
    trees.push(t);
    return t;
  };
  afterAll(async () => {
    await Promise.all(trees.map((t) => t.cleanup()));
  });

  it('creates regular files holding the given bytes', async () => {
    const t = await make({ text: file('héllo\n'), bin: file(Buffer.from([0, 255, 1])), empty: file() });
    expect(await fsp.readFile(t.path('text'), 'utf8')).toBe('héllo\n');
    expect(await fsp.readFile(t.path('bin'))).toEqual(Buffer.from([0, 255, 1]));
    expect((await lstat(t.path('empty'))).size).toBe(0n);
  });

  it('creates generated content of the exact size, identical for the same seed', async () => {
    const t = await make({
      r1: file({ size: 3_000_001, pattern: 'random', seed: 7 }),
      r2: file({ size: 3_000_001, pattern: 'random', seed: 7 }),
      r3: file({ size: 3_000_001, pattern: 'random', seed: 8 }),
      text: file({ size: 100_000, pattern: 'text', seed: 7 }),
      zero: file({ size: 5000, pattern: 'zero' }),
    });
    const [r1, r2, r3] = await Promise.all(['r1', 'r2', 'r3'].map((n) => fsp.readFile(t.path(n))));
    expect(r1!.length).toBe(3_000_001);
    expect(r1!.equals(r2!)).toBe(true);
    expect(r1!.equals(r3!)).toBe(false);
    const text = await fsp.readFile(t.path('text'), 'utf8');
    expect(text.length).toBe(100_000);
    expect(text).toMatch(/^00000000 [a-z ]+\n00000001 /);
    expect(await fsp.readFile(t.path('zero'))).toEqual(Buffer.alloc(5000));
  });

  it('generates content independent of the chunk size, and contentBuffer matches the file', async () => {
    for (const pattern of ['random', 'text'] as const) {
      const gen = { size: 50_000, pattern, seed: 'x' };
      const big = Buffer.concat([...contentChunks(gen)]);
      const small = Buffer.concat([...contentChunks(gen, 777)]);
      expect(small.equals(big)).toBe(true);
      expect([...contentChunks(gen, 777)].every((c) => c.length <= 777)).toBe(true);
      const t = await make({ f: file(gen) });
      expect((await fsp.readFile(t.path('f'))).equals(contentBuffer(gen))).toBe(true);
    }
  });

  it("makes 'hole' files sparse", async () => {
    const t = await make({ sparse: file({ size: 64 << 20, pattern: 'hole' }) });
    const st = await lstat(t.path('sparse'));
    expect(st.size).toBe(BigInt(64 << 20));
    expect(st.blocks).toBe(0n);
  });

  it('creates entries whose names are arbitrary bytes, given as Buffers', async () => {
    const name = Buffer.from([0x66, 0xff, 0x0a, 0x80, 0x20]);
    const t = await make(dir([[name, dir([[Buffer.from([0xc0]), file('x')]])]]));
    expect(await fsp.readdir(t.root, { encoding: 'buffer' })).toEqual([name]);
    expect(await fsp.readFile(t.path(Buffer.concat([name, Buffer.from('/'), Buffer.from([0xc0])])), 'utf8')).toBe('x');
  });

  it('creates symlinks with 4095-byte, dangling and non-UTF-8 targets', async () => {
    const long = 'x/'.repeat(2047) + 'y';
    const t = await make({
      long: symlink(long),
      dangling: symlink('../nowhere'),
      bytes: symlink(Buffer.from([0xff, 0x2f, 0xfe])),
    });
    expect(long.length).toBe(4095);
    expect(await fsp.readlink(t.path('long'))).toBe(long);
    expect(await fsp.readlink(t.path('dangling'))).toBe('../nowhere');
    expect(await fsp.readlink(t.path(Buffer.from('bytes')), { encoding: 'buffer' })).toEqual(Buffer.from([0xff, 0x2f, 0xfe]));
  });

  it('creates char and block devices, also with major > 255 and minor > 255', async () => {
    const t = await make({ c: chardev(1, 3), big: chardev(4095, 1048575), b: blockdev(259, 70_000) });
    const c = await lstat(t.path('c'));
    expect(c.isCharacterDevice()).toBe(true);
    expect(splitdev(c.rdev)).toEqual({ major: 1, minor: 3 });
    expect(splitdev((await lstat(t.path('big'))).rdev)).toEqual({ major: 4095, minor: 1048575 });
    const b = await lstat(t.path('b'));
    expect(b.isBlockDevice()).toBe(true);
    expect(splitdev(b.rdev)).toEqual({ major: 259, minor: 70_000 });
  });

  it('creates FIFOs and unix sockets', async () => {
    const t = await make({ p: fifo(), s: socket(), sub: dir({ [`s${'o'.repeat(200)}`]: socket() }) });
    expect((await lstat(t.path('p'))).isFIFO()).toBe(true);
    expect((await lstat(t.path('s'))).isSocket()).toBe(true);
    expect((await lstat(t.path(`sub/s${'o'.repeat(200)}`))).isSocket()).toBe(true);
    expect((await fsp.readdir(t.dir)).sort()).toEqual(['root']); // no scratch sockets left behind
  });

  it('sets modes exactly, including setuid, setgid and sticky bits, whatever the umask', async () => {
    const old = process.umask(0o077);
    try {
      const t = await make({
        plain: file('x'),
        suid: file('x', { mode: 0o4755 }),
        sgid: file('x', { mode: 0o2750 }),
        sticky: dir({}, { mode: 0o1777 }),
        d: dir(),
        none: file('x', { mode: 0 }),
      });
      const mode = async (p: string) => Number((await lstat(t.path(p))).mode & 0o7777n);
      expect(await mode('plain')).toBe(0o644);
      expect(await mode('suid')).toBe(0o4755);
      expect(await mode('sgid')).toBe(0o2750);
      expect(await mode('sticky')).toBe(0o1777);
      expect(await mode('d')).toBe(0o755);
      expect(await mode('none')).toBe(0);
    } finally {
      process.umask(old);
    }
  });

  it('sets owners, including uids and gids beyond 16 bits, also of symlinks', async () => {
    const t = await make({
      f: file('x', { uid: 100_000, gid: 4_000_000_000, mode: 0o4755 }),
      l: symlink('f', { uid: 1000, gid: 2000 }),
    });
    const f = await lstat(t.path('f'));
    expect([f.uid, f.gid]).toEqual([100_000n, 4_000_000_000n]);
    expect(Number(f.mode & 0o7777n)).toBe(0o4755); // chown did not clear setuid
    const l = await lstat(t.path('l'));
    expect([l.uid, l.gid]).toEqual([1000n, 2000n]);
  });

  it('sets mtimes to the nanosecond, directories last so creating their entries does not change them', async () => {
    const t = await make(
      dir(
        {
          f: file('x', { mtime: { sec: 1_700_000_000, nsec: 123_456_789 } }),
          l: symlink('f', { mtime: ns(1_600_000_000, 1) }),
          d: dir({ inner: file('y'), link: hardlink('f') }, { mtime: { sec: 1_500_000_000, nsec: 999_999_999 } }),
          old: fifo({ mtime: { sec: -1, nsec: 5 } }),
        },
        { mtime: ns(1_400_000_000, 42) },
      ),
    );
    expect((await lstat(t.path('f'))).mtimeNs).toBe(1_700_000_000_123_456_789n);
    expect((await lstat(t.path('l'))).mtimeNs).toBe(1_600_000_000_000_000_001n);
    expect((await lstat(t.path('d'))).mtimeNs).toBe(1_500_000_000_999_999_999n);
    expect((await lstat(t.path('old'))).mtimeNs).toBe(-999_999_995n);
    expect((await lstat(t.root)).mtimeNs).toBe(1_400_000_000_000_000_042n);
  });

  it('sets xattrs with binary values in the user, trusted and security namespaces, also on symlinks', async () => {
    const t = await make({
      f: file('x', { xattrs: { 'user.a': Buffer.from([0, 1, 0xff]), 'trusted.b': 'text', 'security.c': Buffer.alloc(0) } }),
      l: symlink('f', { xattrs: [['security.s', Buffer.from([9])], ['trusted.t', 'v']] }),
    });
    expect(readXattrs(t.path('f'))).toEqual(
      new Map([
        ['user.a', Buffer.from([0, 1, 0xff])],
        ['trusted.b', Buffer.from('text')],
        ['security.c', Buffer.alloc(0)],
      ]),
    );
    expect(readXattrs(t.path('l'))).toEqual(new Map([['security.s', Buffer.from([9])], ['trusted.t', Buffer.from('v')]]));
    // The same values as getfattr sees them.
    const { stdout } = await run('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', t.path('f')]);
    expect(stdout).toContain('user.a=0x0001ff');
  });

  it('sets access and default ACLs exactly as setfacl does', async () => {
    const access = 'u::rwx,u:1000:r-x,g::r--,g:100:rwx,o::---';
    const dflt = 'u::rwx,g::r-x,u:1001:rw-,m::r-x,o::r--';
    const t = await make({ d: dir({}, { acl: { access, default: dflt } }), byhand: dir() });
    await run('setfacl', ['-m', access, '-d', '-m', dflt, t.path('byhand')]);
    // setfacl -d -m also fills missing default entries from the access ACL; state them all.
    for (const name of ['system.posix_acl_access', 'system.posix_acl_default']) {
      expect(lgetxattr(t.path('d'), name).toString('hex'), name).toBe(lgetxattr(t.path('byhand'), name).toString('hex'));
    }
    // The access ACL's mask is the group bits of the mode, as setfacl leaves it.
    expect(Number((await lstat(t.path('d'))).mode & 0o777n)).toBe(Number((await lstat(t.path('byhand'))).mode & 0o777n));
    expect(encodeAcl('u::rw,g::r,o::r', 0).toString('hex')).toBe(
      '02000000' + '01000600ffffffff' + '04000400ffffffff' + '20000400ffffffff',
    );
  });

  it('makes hard links share the inode of an entry declared anywhere in the tree', async () => {
    const t = await make({ a: dir({ link: hardlink('z/target') }), z: dir({ target: file('t', { mode: 0o600 }) }), b: hardlink('/a/link') });
    const [x, y, z] = await Promise.all(['a/link', 'z/target', 'b'].map((p) => lstat(t.path(p))));
    expect(x!.ino).toBe(z!.ino);
    expect(y!.ino).toBe(z!.ino);
    expect(z!.nlink).toBe(3n);
  });

  it('does not let a setgid directory or a default ACL leak onto its children', async () => {
    const t = await make({
      d: dir({ f: file('x'), sub: dir() }, { mode: 0o2775, gid: 100, acl: { default: 'u::rwx,g::rwx,u:1000:rwx,o::---' } }),
    });
    const f = await lstat(t.path('d/f'));
    const sub = await lstat(t.path('d/sub'));
    expect(f.gid).toBe(0n);
    expect(Number(sub.mode & 0o7777n)).toBe(0o755);
    expect(readXattrs(t.path('d/f')).size).toBe(0);
    expect(readXattrs(t.path('d/sub')).size).toBe(0);
  });

  it('wideDir makes n entries and deepDir a chain of nested directories', async () => {
    const t = await make({ wide: wideDir(1000), deep: deepDir(50, { bottom: file('b') }) });
    const names = await fsp.readdir(t.path('wide'));
    expect(names).toHaveLength(1000);
    expect(names).toContain('f000');
    expect(names).toContain('f999');
    expect(await fsp.readFile(t.path('wide/f123'), 'utf8')).toBe('123\n');
    expect(await fsp.readFile(t.path(`deep/${'d/'.repeat(50)}bottom`), 'utf8')).toBe('b');
  });

  it('rejects invalid or duplicate names and links to nothing, leaving nothing behind', async () => {
    const before = await fsp.readdir('/tmp');
    await expect(makeTree({ 'a/b': file() })).rejects.toThrow(/invalid entry name/);
    await expect(makeTree(dir([['x', file()], ['x', fifo()]]))).rejects.toThrow(/duplicate entry name/);
    await expect(makeTree({ l: hardlink('missing') })).rejects.toThrow(/hardlink to missing/);
    const after = await fsp.readdir('/tmp');
    expect(after.filter((n) => n.startsWith('erofs-tree-') && !before.includes(n))).toEqual([]);
  });

  it('makes the tree under a given parent directory, and cleanup removes it all', async () => {
    const parent = await fsp.mkdtemp('/tmp/erofs-parent-');
    try {
      const t = await makeTree({ d: dir({ f: file('x', { mode: 0 }) }, { mode: 0o500 }) }, parent);
      expect(t.root.startsWith(`${parent}/`)).toBe(true);
      await t.cleanup();
      expect(existsSync(t.dir)).toBe(false);
    } finally {
      await fsp.rm(parent, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describeAsRoot('compareTrees against a cp -a copy of the full-feature tree', () => {
  let tree: Tree;
  let n = 0;
  /** A `cp -a` copy (keeps modes, owners, ns mtimes, xattrs, ACLs, hard links, devices). */
  const copy = async () => {
    const to = nodePath.join(tree.dir, `copy${n++}`);
    await run('cp', ['-a', tree.root, to]);
    return to;
  };

  beforeAll(async () => {
    tree = await makeTree(fullFeatureSpec());
  });
  afterAll(async () => {
    await tree?.cleanup();
  });

  it('finds no difference in an identical copy', async () => {
    expect(await compareTrees(tree.root, await copy())).toEqual([]);
  });

  it('reports a changed mode', async () => {
    const c = await copy();
    await fsp.chmod(`${c}/hello.txt`, 0o600);
    expect(await compareTrees(tree.root, c)).toEqual(['/hello.txt: mode: expected 0644, got 0600']);
  });

  it('reports a lost setuid bit', async () => {
    const c = await copy();
    await fsp.chmod(`${c}/setuid`, 0o755);
    expect(await compareTrees(tree.root, c)).toEqual(['/setuid: mode: expected 04755, got 0755']);
  });

  it('reports an mtime off by one nanosecond', async () => {
    const c = await copy();
    setMtimeNs(`${c}/hello.txt`, 1_700_000_000_123_456_790n);
    expect(await compareTrees(tree.root, c)).toEqual([
      '/hello.txt: mtime: expected 1700000000.123456789, got 1700000000.123456790',
    ]);
  });

  it('reports a changed directory mtime, the root included', async () => {
    const c = await copy();
    setMtimeNs(c, 1_700_000_009_000_000_000n);
    expect(await compareTrees(tree.root, c)).toEqual(['/: mtime: expected 1700000009.000000009, got 1700000009.000000000']);
  });

  it('reports a changed owner', async () => {
    const c = await copy();
    await fsp.lchown(`${c}/big-ids`, 100_001, 4_000_000_000);
    expect(await compareTrees(tree.root, c)).toEqual(['/big-ids: uid: expected 100000, got 100001']);
  });

  it('reports the offset of a changed content byte, also beyond the first MiB', async () => {
    const c = await copy();
    const at = (1 << 20) + 77;
    await keepingMtimes([`${c}/random.bin`], async () => {
      const fh = await fsp.open(`${c}/random.bin`, 'r+');
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, at);
      b[0] ^= 0x01;
      await fh.write(b, 0, 1, at);
      await fh.close();
    });
    expect(await compareTrees(tree.root, c)).toEqual([`/random.bin: content differs at byte ${at}`]);
  });

  it('reports a changed size instead of content', async () => {
    const c = await copy();
    await keepingMtimes([`${c}/hello.txt`], () => fsp.appendFile(`${c}/hello.txt`, '!'));
    expect(await compareTrees(tree.root, c)).toEqual(['/hello.txt: size: expected 13, got 14']);
  });

  it('reports a changed xattr value, a missing one and an extra one', async () => {
    const c = await copy();
    lsetxattr(`${c}/xattrs`, 'user.binary', Buffer.from([0, 1, 2, 0xff, 0xfe, 1]));
    await run('setfattr', ['-x', 'trusted.overlay.opaque', `${c}/xattrs`]);
    lsetxattr(`${c}/link-xattrs`, 'security.extra', Buffer.from('!'));
    expect(await compareTrees(tree.root, c)).toEqual([
      '/link-xattrs: xattr security.extra: unexpected in image (0x21)',
      '/xattrs: xattr trusted.overlay.opaque: missing in image',
      '/xattrs: xattr user.binary: expected 0x000102fffe00, got 0x000102fffe01',
    ]);
  });

  it('reports a changed ACL as a changed system.posix_acl_access xattr', async () => {
    const c = await copy();
    await run('setfacl', ['-m', 'u:1000:rw-', `${c}/acl-file`]);
    const diffs = await compareTrees(tree.root, c);
    expect(diffs).toHaveLength(1);
    expect(diffs[0]).toMatch(/^\/acl-file: xattr system\.posix_acl_access: expected 0x0200.*, got 0x0200/);
  });

  it('reports a changed symlink target', async () => {
    const c = await copy();
    await keepingMtimes([c, `${c}/link`], async () => {
      await fsp.unlink(`${c}/link`);
      await fsp.symlink('hello.TXT', `${c}/link`);
      setMtimeNs(`${c}/link`, 0n); // overwritten by keepingMtimes
    });
    expect(await compareTrees(tree.root, c)).toEqual(['/link: symlink target: expected "hello.txt", got "hello.TXT"']);
  });

  it('reports changed device numbers', async () => {
    const c = await copy();
    await keepingMtimes([c, `${c}/big-chardev`], async () => {
      await fsp.unlink(`${c}/big-chardev`);
      await run('mknod', ['-m', '0644', `${c}/big-chardev`, 'c', '300', '70001']);
    });
    expect(await compareTrees(tree.root, c)).toEqual(['/big-chardev: rdev: expected 300:70000, got 300:70001']);
  });

  it('reports a broken hard link once, with both partitions of the paths', async () => {
    const c = await copy();
    await keepingMtimes([c], async () => {
      await fsp.unlink(`${c}/hard-b`);
      await run('cp', ['-a', `${c}/hard-a`, `${c}/hard-b`]); // same attributes, own inode
    });
    expect(await compareTrees(tree.root, c)).toEqual([
      'hard links differ: source {/hard-a, /hard-b, /sub/nested/hard-c}, image {/hard-a, /sub/nested/hard-c} {/hard-b}',
    ]);
  });

  it('reports files that are hard-linked in the copy but not in the source', async () => {
    const c = await copy();
    await keepingMtimes([c], async () => {
      await fsp.unlink(`${c}/setgid`);
      await fsp.link(`${c}/setuid`, `${c}/setgid`);
    });
    const diffs = await compareTrees(tree.root, c);
    expect(diffs).toContain('hard links differ: source {/setgid} {/setuid}, image {/setgid, /setuid}');
  });

  it('reports an extra file and a missing one', async () => {
    const c = await copy();
    await keepingMtimes([c, `${c}/sub/nested`], async () => {
      await fsp.writeFile(`${c}/extra`, 'x');
      await fsp.unlink(`${c}/sub/nested/file`);
    });
    expect(await compareTrees(tree.root, c)).toEqual(['/extra: unexpected in image (file)', '/sub/nested/file: missing in image']);
  });

  it('reports a changed type without comparing further', async () => {
    const c = await copy();
    await keepingMtimes([c], async () => {
      await fsp.rm(`${c}/sticky`, { recursive: true });
      await fsp.writeFile(`${c}/sticky`, '');
    });
    expect(await compareTrees(tree.root, c)).toEqual(['/sticky: type: expected dir, got file', '/: nlink: expected 8, got 7']);
  });

  it('shows names that are not UTF-8 with \\x escapes', async () => {
    const c = await copy();
    const name = Buffer.from('latin1-\xe9\xff\x80', 'latin1');
    await fsp.chmod(Buffer.concat([Buffer.from(`${c}/`), name]), 0o600);
    expect(await compareTrees(tree.root, c)).toEqual(['/latin1-\\xe9\\xff\\x80: mode: expected 0644, got 0600']);
  });
});

// ---------------------------------------------------------------------------------------------

describeAsRoot('compareTrees options state what a build is expected to change', () => {
  const spec = (): DirSpec =>
    dir(
      {
        a: file('a', { uid: 1000, gid: 1000, mtime: ns(1_700_000_000, 5), xattrs: { 'user.x': '1' } }),
        sub: dir({ b: file('b'), c: hardlink('a') }),
        keep: dir({ d: file('d') }),
      },
      { mode: 0o750, mtime: ns(1_600_000_000, 6) },
    );
  let tree: Tree;
  let n = 0;
  const copy = async () => {
    const to = nodePath.join(tree.dir, `copy${n++}`);
    await run('cp', ['-a', tree.root, to]);
    return to;
  };
  beforeAll(async () => {
    tree = await makeTree(spec());
  });
  afterAll(async () => {
    await tree?.cleanup();
  });

  it('expectMtime: a fixed timestamp for every entry (like -T)', async () => {
    const c = await copy();
    await run('find', [c, '-exec', 'touch', '-h', '-d', '@1000.5', '{}', '+']);
    expect(await compareTrees(tree.root, c, { expectMtime: () => 1000_500_000_000n })).toEqual([]);
    expect(await compareTrees(tree.root, c, { expectMtime: () => 'any' })).toEqual([]);
    expect(await compareTrees(tree.root, c)).toContain('/a: mtime: expected 1700000000.000000005, got 1000.500000000');
  });

  it('expectUid/expectGid: a constant (like --all-root) or a function of the source id (like --uid-offset)', async () => {
    const c = await copy();
    await run('chown', ['-hR', '0:0', c]);
    expect(await compareTrees(tree.root, c, { expectUid: 0, expectGid: 0 })).toEqual([]);
    await run('chown', ['-hR', '500:500', c]);
    await run('chown', ['-h', '1500:1500', `${c}/a`]);
    const plus500 = (id: number) => id + 500;
    expect(await compareTrees(tree.root, c, { expectUid: plus500, expectGid: plus500 })).toEqual([]);
  });

  it('exclude: excluded source entries must be absent, and no longer count in link counts', async () => {
    const c = await copy();
    await keepingMtimes([c], async () => {
      await fsp.rm(`${c}/sub`, { recursive: true });
    });
    const exclude = (rel: string) => rel === 'sub' || rel.startsWith('sub/');
    expect(await compareTrees(tree.root, c, { exclude })).toEqual([]);
    // Against a copy that still holds sub: sub is unexpected, and the link counts that
    // include it (the root's subdirectories, a's link sub/c) are more than expected.
    expect(await compareTrees(tree.root, await copy(), { exclude })).toEqual([
      '/sub: unexpected in image (dir)',
      '/: nlink: expected 3, got 4',
      '/a: nlink: expected 1, got 2',
    ]);
  });

  it('ignoreRootAttrs: the root directory may differ in mode, owner, mtime and xattrs', async () => {
    const c = await copy();
    await fsp.chmod(c, 0o700);
    await fsp.chown(c, 5, 5);
    lsetxattr(c, 'user.root', Buffer.from('r'));
    setMtimeNs(c, 1n);
    expect(await compareTrees(tree.root, c, { ignoreRootAttrs: true })).toEqual([]);
    expect(await compareTrees(tree.root, c)).toHaveLength(5);
  });

  it('ignoreXattrs: all xattrs, or those a predicate picks', async () => {
    const c = await copy();
    lsetxattr(`${c}/a`, 'user.x', Buffer.from('2'));
    lsetxattr(`${c}/keep`, 'security.selinux', Buffer.from('ctx'));
    expect(await compareTrees(tree.root, c, { ignoreXattrs: true })).toEqual([]);
    expect(await compareTrees(tree.root, c, { ignoreXattrs: (name) => name === 'security.selinux' })).toEqual([
      '/a: xattr user.x: expected 0x31, got 0x32',
      '/sub/c: xattr user.x: expected 0x31, got 0x32', // the same inode as /a
    ]);
  });

  it('counts only links inside the tree for nlink', async () => {
    const t = await makeTree({ f: file('x') });
    try {
      await fsp.link(t.path('f'), `${t.dir}/outside`); // source nlink 2, one link in the tree
      const c = `${t.dir}/copy`;
      await run('cp', ['-a', t.root, c]);
      expect((await lstat(`${c}/f`)).nlink).toBe(1n);
      expect(await compareTrees(t.root, c)).toEqual([]);
    } finally {
      await t.cleanup();
    }
  });
});

// ---------------------------------------------------------------------------------------------

const MKFS_15 = '/usr/bin/mkfs.erofs';
const haveMkfs = !skipUnless(existsSync(MKFS_15), 'Debian mkfs.erofs (erofs-utils)');

describeIfMount('withMount and compareTrees on real EROFS images (Debian mkfs.erofs 1.5)', () => {
  let tree: Tree;
  let n = 0;
  const mkfs = async (...args: string[]) => {
    const img = nodePath.join(tree.dir, `img${n++}.erofs`);
    await run(MKFS_15, ['--quiet', ...args, img, tree.root]);
    return img;
  };

  beforeAll(async () => {
    // mkfs.erofs 1.5 fails ("Could not format the device: [Error 2]") on a 255-byte name;
    // 254 bytes work. Everything else in the full-feature tree survives 1.5 exactly,
    // including nanosecond mtimes (it writes extended inodes whenever the mtime differs
    // from the build time), pre-epoch and post-2038 mtimes, 32-bit ids, ACLs, xattrs on
    // symlinks and large device numbers: no compareTrees option is needed.
    const spec = fullFeatureSpec({ maxNameLen: 254 });
    tree = await makeTree(spec);
  });
  afterAll(async () => {
    await tree?.cleanup();
  });

  it.skipIf(!haveMkfs)('an image of the full-feature tree mounts and reads back identical', async () => {
    const img = await mkfs();
    const fsck = await runFsck(img);
    expect(fsck.ok, fsck.output).toBe(true);
    const diffs = await withMount(img, (mnt) => compareTrees(tree.root, mnt));
    expect(diffs).toEqual([]);
  });

  it.skipIf(!haveMkfs)('finds what the image does not hold (source changed after the build)', async () => {
    const img = await mkfs();
    const p = tree.path('one-block');
    const before = await lstat(p);
    await fsp.chmod(p, 0o640);
    try {
      expect(await withMount(img, (mnt) => compareTrees(tree.root, mnt))).toEqual(['/one-block: mode: expected 0640, got 0644']);
    } finally {
      await fsp.chmod(p, Number(before.mode & 0o7777n));
    }
  });

  it.skipIf(!haveMkfs)('-T and --all-root are stated with expectMtime, expectUid and expectGid', async () => {
    const img = await mkfs('-T', '1234567', '--all-root');
    const diffs = await withMount(img, (mnt) =>
      compareTrees(tree.root, mnt, { expectMtime: () => ns(1_234_567), expectUid: 0, expectGid: 0 }),
    );
    expect(diffs).toEqual([]);
  });

  it.skipIf(!haveMkfs)('--exclude-path is stated with exclude', async () => {
    const img = await mkfs(`--exclude-path=sub`, `--exclude-path=wide`);
    const exclude = (rel: string) => /^(sub|wide)(\/|$)/.test(rel);
    // Excluding sub removes the link sub/nested/hard-c: hard-a and hard-b have nlink 2 now.
    const diffs = await withMount(img, (mnt) => compareTrees(tree.root, mnt, { exclude }));
    expect(diffs).toEqual([]);
  });

  it.skipIf(!haveMkfs)('mounts with extra options', async () => {
    const img = await mkfs();
    const opts = await withMount(
      img,
      (mnt) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(` ${mnt} `)) ?? '',
      { options: ['noacl'] },
    );
    expect(opts).toMatch(/ ro[, ]/);
    expect(opts).toMatch(/noacl/);
  });

  it.skipIf(!haveMkfs)('unmounts and removes the mount point even when the callback throws', async () => {
    const img = await mkfs();
    let mountpoint = '';
    await expect(
      withMount(img, (mnt) => {
        mountpoint = mnt;
        expect(readFileSync('/proc/self/mounts', 'utf8')).toContain(` ${mnt} erofs `);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(mountpoint).not.toBe('');
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(` ${mountpoint} `);
    expect(existsSync(mountpoint)).toBe(false);
  });

  it.skipIf(!haveMkfs)('fails with the kernel message when an image cannot be mounted, leaving no mount point', async () => {
    const img = await mkfs();
    const bad = `${img}.bad`;
    const buf = await fsp.readFile(img);
    buf.writeUInt32LE(0xdeadbeef, 1024); // superblock magic
    await fsp.writeFile(bad, buf);
    const before = (await fsp.readdir('/tmp')).filter((d) => d.startsWith('erofs-mnt-'));
    await expect(withMount(bad, () => 'unreachable')).rejects.toThrow(/mount -t erofs .* failed/);
    const after = (await fsp.readdir('/tmp')).filter((d) => d.startsWith('erofs-mnt-'));
    expect(after.filter((d) => !before.includes(d))).toEqual([]);
  });

  it.skipIf(!haveMkfs)('runFsck accepts a good image and rejects a corrupted one', async () => {
    const img = await mkfs();
    expect((await runFsck(img)).ok).toBe(true);
    const bad = `${img}.bad`;
    const buf = await fsp.readFile(img);
    buf.writeUInt32LE(0xdeadbeef, 1024);
    await fsp.writeFile(bad, buf);
    const r = await runFsck(bad);
    expect(r.available).toBe(true);
    expect(r.ok).toBe(false);
    expect(r.output).not.toBe('');
  });
});

describe('canMount', () => {
  it('explains why EROFS cannot be mounted, or returns null', () => {
    const reason = canMount();
    if (reason !== null) expect(reason).toMatch(/\w/);
    else expect(readFileSync('/proc/filesystems', 'utf8')).toMatch(/\berofs\b/);
  });
});
