import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, expect } from 'vitest';
import { build, CLI, cli, expectImageMatches, scratchDir } from '../helpers/build.js';
import { compareTrees } from '../helpers/compare.js';
import { describeIfMount, itIfMount, withMount } from '../helpers/mount.js';
import { fullFeatureSpec, makeTree } from '../helpers/tree.js';

/** GNU tar of a directory's contents ("./" first), as `tar -C DIR -cf OUT .` writes it. */
function gnuTar(dir: string, out: string, format: 'gnu' | 'posix'): void {
  const extra = format === 'posix' ? ['--xattrs', '--xattrs-include=*', '--acls'] : [];
  execFileSync('tar', [`--format=${format}`, ...extra, '--numeric-owner', '-C', dir, '-cf', out, '.'], { stdio: 'pipe' });
}

/** What GNU tar writes back from an archive, as root: the oracle for tars not made here. */
function gnuExtract(tar: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--acls', '--numeric-owner', '-xpf', tar, '-C', dir], { stdio: 'pipe' });
}

const isSocket = (rel: string) => rel === 'socket';

describeIfMount('images from tar streams (--tar)', () => {
  const out = scratchDir('erofs-tar-');
  afterAll(() => out.cleanup());
  let n = 0;
  const img = () => `${out.dir}/img-${n++}.erofs`;

  itIfMount('a PAX tar with xattrs and ACLs (GNU tar --format=posix) mounts as its source tree', async () => {
    const tree = await makeTree(fullFeatureSpec());
    try {
      const tar = `${out.dir}/posix.tar`;
      gnuTar(tree.root, tar, 'posix');
      const image = img();
      await build(tar, image, { tar: { mode: 'full' } });
      // GNU tar does not archive sockets.
      await expectImageMatches(image, tree.root, { exclude: isSocket });
    } finally {
      await tree.cleanup();
    }
  }, 120_000);

  itIfMount('a GNU-format tar (long names, base-256 ids) mounts with its second-resolution times', async () => {
    const tree = await makeTree(fullFeatureSpec());
    try {
      const tar = `${out.dir}/gnu.tar`;
      gnuTar(tree.root, tar, 'gnu');
      const image = img();
      await build(tar, image, { tar: { mode: 'full' } });
      await expectImageMatches(image, tree.root, {
        exclude: isSocket,
        // The GNU format has neither xattrs nor sub-second times.
        ignoreXattrs: true,
        expectMtime: (t) => (t >= 0n ? t - (t % 1_000_000_000n) : t - (((t % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n)),
      });
    } finally {
      await tree.cleanup();
    }
  }, 120_000);

  for (const [name, tool, flag] of [
    ['gzip', 'gzip', '--ungzip'],
    ['xz', 'xz', '--unxz'],
    ['zstd', 'zstd', null],
  ] as const) {
    itIfMount(`a ${name}-compressed tar from stdin, detected by its magic${flag ? ` and with ${flag}` : ''}`, async () => {
      const tree = await makeTree(fullFeatureSpec());
      try {
        const tar = `${out.dir}/c.tar`;
        gnuTar(tree.root, tar, 'posix');
        const packed = execFileSync(tool, ['-c', tar], { maxBuffer: 64 << 20 });
        for (const args of flag ? [[], [flag]] : [[]]) {
          const image = img();
          const r = spawnSync(process.execPath, [CLI, '--quiet', '--tar=f', ...args, image], { input: packed });
          expect(r.stderr.toString()).toBe('');
          expect(r.status).toBe(0);
          await expectImageMatches(image, tree.root, { exclude: isSocket });
        }
      } finally {
        await tree.cleanup();
      }
    }, 120_000);
  }

  itIfMount('file data compressed with -z (lz4hc, lzma) from a tar reads back byte for byte', async () => {
    const tree = await makeTree(fullFeatureSpec());
    try {
      const tar = `${out.dir}/z.tar`;
      gnuTar(tree.root, tar, 'posix');
      for (const z of ['lz4hc', 'lzma']) {
        const image = img();
        const r = await cli(['--quiet', '--tar=f', `-z${z}`, '-Eztailpacking', image, tar]);
        expect(r.stderr).toBe('');
        // Debian's fsck.erofs 1.5 knows LZ4 only.
        await expectImageMatches(image, tree.root, { exclude: isSocket, fsck: z === 'lz4hc' });
      }
    } finally {
      await tree.cleanup();
    }
  }, 120_000);

  itIfMount('--tar=i: metadata only; mounts with the tar as its device, or appended to the image', async () => {
    const tree = await makeTree(fullFeatureSpec());
    const loops: string[] = [];
    try {
      const tar = `${out.dir}/index.tar`;
      gnuTar(tree.root, tar, 'posix');
      const image = img();
      const r = await cli(['--quiet', '--tar=i', '--aufs', '-Enoinline_data', image, tar]);
      expect(r.stderr).toBe('');
      // Metadata only: far smaller than the tar.
      expect(statSync(image).size).toBeLessThan(statSync(tar).size / 4);
      // mount puts the image on a loop device, so the extra device must be one too.
      const loop = execFileSync('losetup', ['-f', '--show', '-r', tar]).toString().trim();
      loops.push(loop);
      const diffs = await withMount(image, (mnt) => compareTrees(tree.root, mnt, { exclude: isSocket }), { options: [`device=${loop}`] });
      expect(diffs).toEqual([]);
      // containerd's layout: the tar right after the image, found through the device table.
      const joined = `${out.dir}/joined.erofs`;
      writeFileSync(joined, Buffer.concat([readFileSync(image), readFileSync(tar)]));
      expect(await withMount(joined, (mnt) => compareTrees(tree.root, mnt, { exclude: isSocket }))).toEqual([]);
    } finally {
      for (const l of loops) spawnSync('losetup', ['-d', l]);
      await tree.cleanup();
    }
  }, 120_000);

  itIfMount('--tar=headerball: a stream of headers without data gives files of the right size that read as zeros', async () => {
    const { makeTar } = await import('../helpers/tar.js');
    const tar = `${out.dir}/headerball.tar`;
    // A headerball has no data blocks after the file headers.
    writeFileSync(tar, makeTar([
      { name: 'dir/', type: '5', mode: 0o755 },
      { name: 'dir/big', size: 1_000_000, mode: 0o644 },
      { name: 'dir/small', size: 3, mode: 0o600 },
      { name: 'dir/empty', size: 0 },
      { name: 'link', type: '2', linkname: 'dir/big' },
    ]));
    const image = img();
    const r = await cli(['--quiet', '--tar=headerball', image, tar]);
    expect(r.stderr).toBe('');
    await withMount(image, (mnt) => {
      expect(statSync(`${mnt}/dir/big`).size).toBe(1_000_000);
      expect(readFileSync(`${mnt}/dir/big`).equals(Buffer.alloc(1_000_000))).toBe(true);
      expect(readFileSync(`${mnt}/dir/small`).equals(Buffer.alloc(3))).toBe(true);
      expect(statSync(`${mnt}/dir/small`).mode & 0o7777).toBe(0o600);
      expect(statSync(`${mnt}/dir/empty`).size).toBe(0);
      expect(readFileSync(`${mnt}/link`).length).toBe(1_000_000);
    });
  });

  itIfMount('a real root file system as a tar mounts exactly as GNU tar extracts it, in full and index mode', async () => {
    const given = process.env.EROFS_REAL_TREE;
    const root = given && existsSync(given) ? given : '/etc';
    if (root === '/etc') console.warn('*** EROFS_REAL_TREE not set: using /etc as the real tree ***');
    const tar = `${out.dir}/root.tar`;
    gnuTar(root, tar, 'posix');
    const extracted = `${out.dir}/extracted`;
    gnuExtract(tar, extracted);
    const full = img();
    await build(tar, full, { tar: { mode: 'full' } });
    await expectImageMatches(full, extracted);
    const index = img();
    await build(tar, index, { tar: { mode: 'index' } });
    const joined = `${out.dir}/root-joined.erofs`;
    execFileSync('sh', ['-c', 'cat "$1" "$2" > "$3"', 'sh', index, tar, joined]);
    expect(await withMount(joined, (mnt) => compareTrees(extracted, mnt))).toEqual([]);
    expect(readdirSync(out.dir).filter((f) => f.endsWith('.spool'))).toEqual([]);
  }, 600_000);
});
