import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, expect } from 'vitest';
import { cli, scratchDir } from '../helpers/build.js';
import { readXattrs } from '../helpers/compare.js';
import { splitdev } from '../helpers/libc.js';
import { describeIfMount, itIfMount, withMount } from '../helpers/mount.js';
import { gnuLong, makeTar, type TarMember, tarHeader } from '../helpers/tar.js';

describeIfMount('tar members as the kernel sees them after --tar=f', () => {
  const out = scratchDir('erofs-tarc-');
  afterAll(() => out.cleanup());
  let n = 0;

  /** Builds an image from `tar` bytes with -T1000 (plus args) and mounts it for `check`; returns the image's path. */
  async function mounted(tar: Buffer, check: (mnt: string) => void, args: string[] = []): Promise<string> {
    const src = `${out.dir}/t${n}.tar`;
    const image = `${out.dir}/t${n++}.erofs`;
    writeFileSync(src, tar);
    const r = await cli(['--quiet', '--tar=f', '-T1000', '--mkfs-time', ...args, image, src]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await withMount(image, check);
    return image;
  }

  const mode = (p: string) => lstatSync(p).mode & 0o7777;

  itIfMount('parents never listed are made like their parent; a directory listed after its contents keeps them', async () => {
    await mounted(
      makeTar([
        { name: './', type: '5', mode: 0o750, uid: 7, gid: 8, mtime: 111 },
        { name: 'a/b/c/file', data: 'deep', mtime: 5 },
        { name: 'd/f', data: 'x' },
        { name: 'd/', type: '5', mode: 0o700, mtime: 222, uid: 3 },
      ]),
      (mnt) => {
        expect(mode(mnt)).toBe(0o750);
        expect(statSync(mnt).uid).toBe(7);
        expect(statSync(mnt).mtimeMs).toBe(111_000);
        for (const d of ['a', 'a/b', 'a/b/c']) {
          expect(mode(`${mnt}/${d}`)).toBe(0o755);
          expect(statSync(`${mnt}/${d}`).uid).toBe(7);
          expect(statSync(`${mnt}/${d}`).mtimeMs).toBe(111_000);
        }
        expect(readFileSync(`${mnt}/a/b/c/file`, 'utf8')).toBe('deep');
        expect(mode(`${mnt}/d`)).toBe(0o700);
        expect(statSync(`${mnt}/d`).uid).toBe(3);
        expect(statSync(`${mnt}/d`).mtimeMs).toBe(222_000);
        expect(readFileSync(`${mnt}/d/f`, 'utf8')).toBe('x');
      },
    );
  });

  itIfMount('without a "./" member the root is 0777, owned by the caller, dated at the build time', async () => {
    await mounted(makeTar([{ name: 'f', data: '1' }]), (mnt) => {
      expect(mode(mnt)).toBe(0o777);
      expect(statSync(mnt).uid).toBe(process.getuid!());
      expect(statSync(mnt).mtimeMs).toBe(1_000_000);
    });
  });

  itIfMount('a repeated member replaces the earlier one, whatever the types', async () => {
    await mounted(
      makeTar([
        { name: 'f', data: 'old', mode: 0o600 },
        { name: 'f', data: 'new!', mode: 0o644 },
        { name: 'was-file', data: 'gone' },
        { name: 'was-file/', type: '5', mode: 0o711 },
        { name: 'was-dir/inner', data: 'gone too' },
        { name: 'was-dir', type: '2', linkname: 'f' },
      ]),
      (mnt) => {
        expect(readFileSync(`${mnt}/f`, 'utf8')).toBe('new!');
        expect(mode(`${mnt}/f`)).toBe(0o644);
        expect(lstatSync(`${mnt}/was-file`).isDirectory()).toBe(true);
        expect(readdirSync(`${mnt}/was-file`)).toEqual([]);
        expect(readlinkSync(`${mnt}/was-dir`)).toBe('f');
        expect(readdirSync(mnt).sort()).toEqual(['f', 'was-dir', 'was-file']);
      },
    );
  });

  itIfMount('absolute names and ".." stay inside the image root', async () => {
    await mounted(
      makeTar([
        { name: '/abs/file', data: 'a' },
        { name: '../../../escape', data: 'b' },
        { name: 'x/../../y', data: 'c' },
        { name: './/./z//', type: '5' },
      ]),
      (mnt) => {
        expect(readdirSync(mnt).sort()).toEqual(['abs', 'escape', 'y', 'z']);
        expect(readFileSync(`${mnt}/abs/file`, 'utf8')).toBe('a');
        expect(readFileSync(`${mnt}/escape`, 'utf8')).toBe('b');
        expect(readFileSync(`${mnt}/y`, 'utf8')).toBe('c');
      },
    );
    expect(existsSync(`${out.dir}/../escape`)).toBe(false);
  });

  itIfMount('hard links share one inode; a link to itself is harmless', async () => {
    await mounted(
      makeTar([
        { name: 'a', data: 'shared', mode: 0o640 },
        { name: 'sub/b', type: '1', linkname: 'a' },
        { name: 'c', type: '1', linkname: './sub/b' },
        { name: 'a', type: '1', linkname: 'a' },
      ]),
      (mnt) => {
        const a = statSync(`${mnt}/a`);
        expect(statSync(`${mnt}/sub/b`).ino).toBe(a.ino);
        expect(statSync(`${mnt}/c`).ino).toBe(a.ino);
        expect(a.nlink).toBe(3);
        expect(readFileSync(`${mnt}/c`, 'utf8')).toBe('shared');
      },
    );
  });

  itIfMount('GNU long names and link names, base-256 numbers, devices and FIFOs', async () => {
    const long = `${'dir-'.repeat(40)}/${'f'.repeat(200)}`;
    const target = `${'t'.repeat(150)}/target`;
    await mounted(
      makeTar([
        ...gnuLong({ name: 'x', data: 'long name' }, long),
        ...gnuLong({ name: 'sym', type: '2', linkname: 'x' }, undefined, target),
        { name: 'big-ids', data: 'ids', uid: 3_000_000_000, gid: 2_500_000, mtime: 10_000_000_000, base256: true, magic: 'gnu' },
        { name: 'old', data: 'v7', mtime: 1, magic: 'v7', type: '\0' },
        { name: 'null', type: '3', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'disk', type: '4', devmajor: 259, devminor: 70_000, mode: 0o660 },
        { name: 'pipe', type: '6', mode: 0o600 },
      ]),
      (mnt) => {
        expect(readFileSync(`${mnt}/${long}`, 'utf8')).toBe('long name');
        expect(readlinkSync(`${mnt}/sym`)).toBe(target);
        const ids = statSync(`${mnt}/big-ids`);
        expect([ids.uid, ids.gid, ids.mtimeMs]).toEqual([3_000_000_000, 2_500_000, 10_000_000_000_000]);
        expect(readFileSync(`${mnt}/old`, 'utf8')).toBe('v7');
        expect(splitdev(BigInt(lstatSync(`${mnt}/null`).rdev))).toEqual({ major: 1, minor: 3 });
        expect(lstatSync(`${mnt}/null`).isCharacterDevice()).toBe(true);
        expect(splitdev(BigInt(lstatSync(`${mnt}/disk`).rdev))).toEqual({ major: 259, minor: 70_000 });
        expect(lstatSync(`${mnt}/pipe`).isFIFO()).toBe(true);
      },
    );
  });

  itIfMount('PAX records: long path, size, ids, fractional and negative times, xattrs, global headers', async () => {
    const path = `${'p'.repeat(200)}/${'q'.repeat(200)}`;
    await mounted(
      makeTar([
        { name: 'PaxHeaders/g', type: 'g', data: paxGlobal({ uid: '4242' }) },
        { name: 'short', data: 'pax path', pax: { path, mtime: '1700000000.123456789' } },
        { name: 'neg', data: 'old', pax: { mtime: '-1.25', gid: '77' } },
        {
          name: 'x',
          data: 'xattrs',
          pax: {
            'SCHILY.xattr.user.plain': 'v1',
            'SCHILY.xattr.user.empty': '',
            'SCHILY.xattr.trusted.bin': Buffer.from([0, 1, 2, 0xff]),
            'LIBARCHIVE.xattr.user.sp%20ace': Buffer.from('hello').toString('base64'),
            'SCHILY.xattr.unknown.ns': 'dropped',
          },
        },
        { name: 'own-uid', data: 'u', pax: { uid: '' }, uid: 5 },
      ]),
      (mnt) => {
        const s = statSync(`${mnt}/${path}`, { bigint: true });
        expect(s.mtimeNs).toBe(1_700_000_000_123_456_789n);
        expect(s.uid).toBe(4242n);
        const neg = statSync(`${mnt}/neg`, { bigint: true });
        expect(neg.mtimeNs).toBe(-1_250_000_000n);
        expect(neg.gid).toBe(77n);
        const x = readXattrs(`${mnt}/x`);
        expect([...x.keys()].sort()).toEqual(['trusted.bin', 'user.empty', 'user.plain', 'user.sp ace']);
        expect(x.get('user.plain')!.toString()).toBe('v1');
        expect(x.get('user.empty')!.length).toBe(0);
        expect(x.get('trusted.bin')!.equals(Buffer.from([0, 1, 2, 0xff]))).toBe(true);
        expect(x.get('user.sp ace')!.toString()).toBe('hello');
        // An empty record cancels the global one: the header's own uid counts again.
        expect(statSync(`${mnt}/own-uid`).uid).toBe(5);
      },
    );
  });

  itIfMount('a root entry with xattrs the superblock\'s block cannot hold, after 3 MiB of data: the metadata starts after the data', async () => {
    const big = Buffer.alloc(3 << 20, 0x61);
    const image = await mounted(makeTar([{ name: 'data', data: big }, { name: './', type: '5', mode: 0o755, pax: { 'SCHILY.xattr.user.big': 'x'.repeat(2900) } }]), (mnt) => {
      expect(readXattrs(mnt).get('user.big')?.toString()).toBe('x'.repeat(2900));
      expect(readFileSync(`${mnt}/data`).equals(big)).toBe(true);
    });
    expect(readFileSync(image).readUInt32LE(1024 + 40)).toBeGreaterThan(0);
  });

  itIfMount('300 xattrs on each of three files, all inline (tar xattrs are never shared, as in the reference)', async () => {
    const pax = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`SCHILY.xattr.user.k${i}`, `value ${i}`]));
    await mounted(makeTar(['a', 'b', 'c'].map((name) => ({ name, data: name, pax }))), (mnt) => {
      for (const name of ['a', 'b', 'c']) {
        const x = readXattrs(`${mnt}/${name}`);
        expect(x.size).toBe(300);
        for (let i = 0; i < 300; i++) expect(x.get(`user.k${i}`)?.toString()).toBe(`value ${i}`);
      }
    });
  });

  itIfMount('ACLs given only as PAX text (as bsdtar writes them) become ACL xattrs', async () => {
    const { encodeAcl } = await import('../helpers/acl.js');
    await mounted(
      makeTar([
        { name: 'f', data: 'acl', mode: 0o640, pax: { 'SCHILY.acl.access': 'user::rw-,user:bob:rw-:1001,group::r--,mask::rw-,other::---' } },
        {
          name: 'd/',
          type: '5',
          mode: 0o750,
          pax: { 'SCHILY.acl.access': 'user::rwx\ngroup::r-x\nother::---', 'SCHILY.acl.default': 'user::rwx,group::r-x,group:staff:rwx:50,mask::rwx,other::---' },
        },
      ]),
      (mnt) => {
        expect(readXattrs(`${mnt}/f`).get('system.posix_acl_access')).toEqual(encodeAcl('u::rw-,u:1001:rw-,g::r--,m::rw-,o::---', 0o640));
        const d = readXattrs(`${mnt}/d`);
        expect(d.get('system.posix_acl_access')).toEqual(encodeAcl('u::rwx,g::r-x,o::---', 0o750));
        expect(d.get('system.posix_acl_default')).toEqual(encodeAcl('u::rwx,g::r-x,g:50:rwx,m::rwx,o::---', 0o750));
      },
    );
  });

  itIfMount('--aufs whiteouts and opaque directories mount as an overlayfs upper layer', async () => {
    const lower = `${out.dir}/lower.erofs`;
    const upper = `${out.dir}/upper.erofs`;
    const lowerTar = `${out.dir}/lower.tar`;
    const upperTar = `${out.dir}/upper.tar`;
    writeFileSync(lowerTar, makeTar([
      { name: 'keep', data: 'lower keep' },
      { name: 'deleted', data: 'lower deleted' },
      { name: 'dir/old', data: 'lower old' },
      { name: 'opaque/hidden', data: 'lower hidden' },
    ]));
    writeFileSync(upperTar, makeTar([
      { name: '.wh.deleted', data: '' },
      { name: 'dir/.wh.old', data: '' },
      { name: 'dir/new', data: 'upper new' },
      { name: 'opaque/', type: '5', mode: 0o755 },
      { name: 'opaque/.wh..wh..opq', data: '' },
      { name: 'opaque/visible', data: 'upper visible' },
    ]));
    expect((await cli(['--quiet', '--tar=f', lower, lowerTar])).stderr).toBe('');
    expect((await cli(['--quiet', '--tar=f', '--aufs', '-Enoinline_data', upper, upperTar])).stderr).toBe('');
    await withMount(upper, (up) => {
      expect(lstatSync(`${up}/deleted`).isCharacterDevice()).toBe(true);
      expect(lstatSync(`${up}/deleted`).rdev).toBe(0);
      expect(readXattrs(`${up}/opaque`).get('trusted.overlay.opaque')!.toString()).toBe('y');
      expect(readXattrs(`${up}/dir`).has('trusted.overlay.origin')).toBe(true);
      return withMount(lower, async (low) => {
        const merged = scratchDir('erofs-ovl-');
        const { execFileSync } = await import('node:child_process');
        execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${up}:${low}`, merged.dir]);
        try {
          expect(readdirSync(merged.dir).sort()).toEqual(['dir', 'keep', 'opaque']);
          expect(readdirSync(`${merged.dir}/dir`).sort()).toEqual(['new']);
          expect(readdirSync(`${merged.dir}/opaque`)).toEqual(['visible']);
          expect(readFileSync(`${merged.dir}/keep`, 'utf8')).toBe('lower keep');
        } finally {
          execFileSync('umount', [merged.dir]);
          merged.cleanup();
        }
      });
    });
    const stripped = `${out.dir}/stripped.erofs`;
    expect((await cli(['--quiet', '--tar=f', '--aufs', '--ovlfs-strip=1', stripped, upperTar])).stderr).toBe('');
    await withMount(stripped, (mnt) => {
      expect(readdirSync(mnt).sort()).toEqual(['dir', 'opaque']);
      expect(readdirSync(`${mnt}/dir`)).toEqual(['new']);
      expect(readXattrs(`${mnt}/opaque`).size).toBe(0);
    });
  });
});

function paxGlobal(records: Record<string, string>): Buffer {
  return Buffer.concat(
    Object.entries(records).map(([k, v]) => {
      const body = ` ${k}=${v}\n`;
      let len = body.length + 1;
      while (String(len).length + body.length > len) len++;
      return Buffer.from(`${len}${body}`);
    }),
  );
}

describeIfMount('hostile tar streams', () => {
  const out = scratchDir('erofs-tarh-');
  afterAll(() => out.cleanup());

  /** Runs the CLI on `tar`; expects one error line matching `message`, exit 1, and no files left. */
  async function rejects(tar: Buffer, message: RegExp, args: string[] = []): Promise<void> {
    const work = scratchDir('erofs-tarh-case-');
    try {
      const src = `${work.dir}/in.tar`;
      writeFileSync(src, tar);
      const image = `${work.dir}/out.erofs`;
      const r = await cli(['--quiet', '--tar=f', ...args, image, src], { TMPDIR: work.dir });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(readdirSync(work.dir)).toEqual(['in.tar']);
    } finally {
      work.cleanup();
    }
  }

  const file = (name: string, data: string): TarMember => ({ name, data });

  itIfMount('a stream cut inside file data names the member and its offset', async () => {
    const whole = makeTar([file('a', 'x'.repeat(600)), file('b', 'y'.repeat(5000))]);
    await rejects(whole.subarray(0, 1024 + 512 + 1000), /truncated inside "b" at offset 1536/);
  });

  itIfMount('a stream cut inside a header', async () => {
    await rejects(makeTar([file('a', 'x')]).subarray(0, 1024 + 100), /truncated tar header at offset 1024/);
  });

  itIfMount('a header with a wrong checksum', async () => {
    await rejects(makeTar([file('a', 'x'), { ...file('b', 'y'), badChecksum: true }]), /checksum mismatch at offset 1024/);
  });

  itIfMount('bytes that are not a tar at all', async () => {
    await rejects(Buffer.alloc(4096, 'not a tar archive '), /at offset 0/);
  });

  itIfMount('absurd sizes are refused before anything is allocated for them', async () => {
    const hugePax = tarHeader({ name: 'PaxHeaders/x', type: 'x', size: 2 ** 40, base256: true });
    await rejects(Buffer.concat([hugePax, Buffer.alloc(1024)]), /extended header of 1099511627776 bytes is too large at offset 0/);
    const hugeFile = tarHeader({ name: 'big', size: 2 ** 45, base256: true });
    await rejects(Buffer.concat([hugeFile, Buffer.alloc(4096)]), /truncated inside "big" at offset 0/);
  });

  itIfMount('a member below a symlink or a file is refused, never followed', async () => {
    await rejects(makeTar([{ name: 'l', type: '2', linkname: '/etc' }, file('l/passwd', 'pwned')]), /"l\/passwd" at offset 512: a parent is not a directory/);
    await rejects(makeTar([file('f', '1'), file('f/g', '2')]), /"f\/g" at offset 1024: a parent is not a directory/);
  });

  itIfMount('device numbers an inode cannot hold: major past 4095 or minor past 1048575 (Linux dev_t)', async () => {
    await rejects(makeTar([{ name: 'big-major', type: '3', devmajor: 5000, devminor: 3 }]), /"big-major" at offset 0: device number 5000:3 does not fit/);
    await rejects(makeTar([{ name: 'big-minor', type: '4', devmajor: 1, devminor: 1 << 20 }]), /"big-minor" at offset 0: device number 1:1048576 does not fit/);
  });

  itIfMount('hard links to nothing (yet) or to a directory', async () => {
    await rejects(makeTar([{ name: 'early', type: '1', linkname: 'later' }, file('later', 'x')]), /"early" at offset 0: hard link target "later" does not exist/);
    await rejects(makeTar([{ name: 'd/', type: '5' }, { name: 'h', type: '1', linkname: 'd' }]), /hard link to a directory/);
  });

  itIfMount('names with NUL bytes or components longer than 255 bytes', async () => {
    await rejects(makeTar([{ ...file('ok', 'x'), pax: { path: Buffer.from('a\0b') } }]), /NUL byte in name/);
    await rejects(makeTar([{ ...file('ok', 'x'), pax: { path: `d/${'n'.repeat(256)}` } }]), /longer than 255 bytes/);
  });

  itIfMount('malformed PAX records and GNU sparse members', async () => {
    await rejects(makeTar([{ name: 'PaxHeaders/x', type: 'x', data: '99 path=x\n' }, file('a', '1')]), /malformed PAX record at offset 0/);
    await rejects(makeTar([{ ...file('s', 'x'), pax: { 'GNU.sparse.major': '1' } }]), /GNU sparse files are not supported/);
  });

  itIfMount('a corrupt gzip stream', async () => {
    const { gzipSync } = await import('node:zlib');
    const gz = gzipSync(makeTar([file('a', 'x'.repeat(100_000))]));
    await rejects(gz.subarray(0, gz.length - 30), /gzip: /);
  });
});
