import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, expect } from 'vitest';
import { build, CLI, cli, expectImageMatches, scratchDir } from '../helpers/build.js';
import { compareTrees } from '../helpers/compare.js';
import { fsckImage, openImage } from '../../src/reader/index.js';
import { describeIfMount, itIfMount, withMount } from '../helpers/mount.js';
import { file, fullFeatureSpec, makeTree, wideDir } from '../helpers/tree.js';

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

  itIfMount('a PAX tar through a shell pipe (read as a blocking stream) gives the image its file gives', async () => {
    const tree = await makeTree(fullFeatureSpec());
    try {
      const tar = `${out.dir}/piped.tar`;
      gnuTar(tree.root, tar, 'posix');
      const fromFile = img();
      const fromPipe = img();
      const common = ['--quiet', '--tar=f', '-T0', '--mkfs-time', '-U', '5f8b4e9a-1c2d-4e3f-8a9b-0c1d2e3f4a5b'];
      expect(spawnSync(process.execPath, [CLI, ...common, fromFile, tar]).status).toBe(0);
      // `cat` feeds a FIFO, as a shell pipeline or containerd does.
      const r = spawnSync('sh', ['-c', 'node="$1"; cli="$2"; shift 2; cat "$0" | "$node" "$cli" "$@"', tar, process.execPath, CLI, ...common, fromPipe]);
      expect(r.stderr.toString()).toBe('');
      expect(r.status).toBe(0);
      expect(readFileSync(fromPipe).equals(readFileSync(fromFile))).toBe(true);
      await expectImageMatches(fromPipe, tree.root, { exclude: isSocket });
    } finally {
      await tree.cleanup();
    }
  }, 120_000);

  itIfMount('a tar on a slow pipe: big files moved in the kernel, small ones split across reads, with and without inline tails', async () => {
    // Small files of odd sizes (their data spans the reader's reads), big ones past the
    // in-kernel threshold (with a zero run and odd tails), in a pipe fed in uneven bursts so
    // the reader often finds it empty.
    const tree = await makeTree(
      wideDir(300, (i) => {
        const name = `f${String(i).padStart(3, '0')}`;
        if (i % 50 === 7) return [name, file({ size: (64 << 10) + 1 + i * 4099, pattern: i % 100 === 7 ? 'random' : 'text', seed: i })];
        if (i === 101) return [name, file({ size: 300_000, pattern: 'zero' })];
        return [name, file({ size: 1 + ((i * 2731) % 9000), pattern: 'text', seed: i })];
      }),
    );
    try {
      const tar = `${out.dir}/slow-pipe.tar`;
      gnuTar(tree.root, tar, 'posix');
      const feeder = `
        const data = require('node:fs').readFileSync(process.argv[1]);
        let at = 0, k = 0;
        (function burst() {
          if (at >= data.length) return;
          const n = [700, 65536, 3000, 200000][k++ % 4];
          process.stdout.write(data.subarray(at, at + n), () => setTimeout(burst, k % 3));
          at += n;
        })();`;
      for (const extra of [[], ['-Enoinline_data']]) {
        const common = ['--quiet', '--tar=f', ...extra, '-T0', '--mkfs-time', '-U', '5f8b4e9a-1c2d-4e3f-8a9b-0c1d2e3f4a5b'];
        const fromFile = img();
        const fromPipe = img();
        expect(spawnSync(process.execPath, [CLI, ...common, fromFile, tar]).status).toBe(0);
        const r = spawnSync('sh', ['-c', 'node="$0"; feed="$1"; tar="$2"; shift 2; "$node" -e "$feed" "$tar" | "$node" "$@"', process.execPath, feeder, tar, CLI, ...common, fromPipe]);
        expect(r.stderr.toString()).toBe('');
        expect(r.status).toBe(0);
        expect(readFileSync(fromPipe).equals(readFileSync(fromFile))).toBe(true);
        await expectImageMatches(fromPipe, tree.root);
      }
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

  itIfMount('--tar=i refuses a compressed tar, whose offsets could not name bytes of the device', async () => {
    const tree = await makeTree({ f: file('indexed data\n') });
    try {
      const tar = `${out.dir}/i.tar`;
      gnuTar(tree.root, tar, 'posix');
      execFileSync('gzip', ['-kf', tar]);
      const image = img();
      const r = await cli(['--quiet', '--tar=i', image, `${tar}.gz`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/--tar=i needs an uncompressed tar \(this one is gzip-compressed\)/);
      expect(existsSync(image)).toBe(false);
    } finally {
      await tree.cleanup();
    }
  });

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
      // fsck.erofs without the tar says so once; with it, every file checks out.
      const fsck = (args: string[]) => spawnSync(process.execPath, [CLI.replace('mkfs.erofs.js', 'fsck.erofs.js'), ...args]);
      const missing = fsck([image]);
      expect(missing.status).toBe(1);
      expect(missing.stderr.toString()).toMatch(/^fsck\.erofs: .*: file data is on 1 extra device\(s\): give them with --device=PATH, or append them to the image\n$/);
      const given = fsck([`--device=${tar}`, image]);
      expect(given.stdout.toString()).toMatch(/no problems found/);
      expect(given.status).toBe(0);
      // This project's reader too: with the tar given as the device, or appended.
      for (const [file, devices] of [[image, [tar]], [joined, []]] as const) {
        const r = openImage(file, { devices: [...devices] });
        try {
          expect(fsckImage(r).problems).toEqual([]);
          expect(Buffer.from(r.readAll(r.lookup('/hello.txt'))).toString()).toBe('hello, erofs\n');
        } finally {
          r.close();
        }
      }
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

  itIfMount("containerd's exact command lines, layer on stdin: --tar=f and --tar=i with the tar appended", async () => {
    const tree = await makeTree(fullFeatureSpec());
    try {
      const tar = `${out.dir}/layer.tar`;
      gnuTar(tree.root, tar, 'posix');
      const layer = readFileSync(tar);
      const full = img();
      const uuid = '5f8b4e9a-1c2d-4e3f-8a9b-0c1d2e3f4a5b';
      const f = spawnSync(process.execPath, [CLI, '--tar=f', '--aufs', '--quiet', '-Enoinline_data', '-U', uuid, '-T0', '--mkfs-time', '--sort=none', full], { input: layer });
      expect(f.stderr.toString()).toBe('');
      expect(f.stdout.toString()).toBe('');
      expect(f.status).toBe(0);
      await expectImageMatches(full, tree.root, { exclude: isSocket });
      const index = img();
      const i = spawnSync(process.execPath, [CLI, '--tar=i', '--aufs', '--quiet', index], { input: layer });
      expect(i.stderr.toString() + i.stdout.toString()).toBe('');
      const joined = `${out.dir}/containerd-joined.erofs`;
      writeFileSync(joined, Buffer.concat([readFileSync(index), layer]));
      expect(await withMount(joined, (mnt) => compareTrees(tree.root, mnt, { exclude: isSocket }))).toEqual([]);
    } finally {
      await tree.cleanup();
    }
  }, 120_000);

  itIfMount('with 512-byte blocks and data written ahead, a large root directory keeps a 16-bit nid', async () => {
    // The root's entries do not fit beside the superblock: its directory data goes out of line.
    const tree = await makeTree(wideDir(100, (i) => [`root-entry-${String(i).padStart(3, '0')}`, file({ size: 3000, pattern: 'text', seed: i })]));
    try {
      const tar = `${out.dir}/wide.tar`;
      gnuTar(tree.root, tar, 'posix');
      for (const opts of [{ tar: { mode: 'full' as const } }, { tar: { mode: 'full' as const }, compression: [{ name: 'lz4hc' as const }] }, {}]) {
        const image = img();
        await build(opts.tar ? tar : tree.root, image, { ...opts, blockSize: 512 });
        await expectImageMatches(image, tree.root, { blockSize: 512 });
      }
    } finally {
      await tree.cleanup();
    }
  }, 120_000);

  itIfMount('ownership, time and exclusion options apply to tar members', async () => {
    const { makeTar } = await import('../helpers/tar.js');
    const tar = `${out.dir}/opts.tar`;
    writeFileSync(tar, makeTar([
      { name: './', type: '5', mode: 0o755, uid: 5, gid: 6, mtime: 100 },
      { name: 'keep', data: 'k', uid: 1000, gid: 1000, mtime: 200 },
      { name: 'skip/me', data: 's' },
      { name: 'drop.log', data: 'd' },
    ]));
    const image = img();
    const r = await cli(['--quiet', '--tar=f', '--all-root', '-T500', '--exclude-path=skip', '--exclude-regex=\\.log$', image, tar]);
    expect(r.stderr).toBe('');
    await withMount(image, (mnt) => {
      expect(readdirSync(mnt)).toEqual(['keep']);
      const st = statSync(`${mnt}/keep`);
      expect([st.uid, st.gid, st.mtimeMs]).toEqual([0, 0, 500_000]);
      expect([statSync(mnt).uid, statSync(mnt).mtimeMs]).toEqual([0, 500_000]);
    });
  });

  itIfMount('a layer bigger than memory streams from stdin with bounded RSS', async () => {
    const { tarHeader } = await import('../helpers/tar.js');
    const big = 6 * 2 ** 30;
    // A 6 GiB member of zeros between two small ones, generated on the fly into the pipe.
    const script = `
      const h = Buffer.from(process.argv[1], 'base64');
      const tail = Buffer.from(process.argv[2], 'base64');
      const zero = Buffer.alloc(1 << 20);
      let left = ${big};
      process.stdout.write(h);
      (function pump() {
        while (left > 0) {
          left -= zero.length;
          if (!process.stdout.write(zero)) return process.stdout.once('drain', pump);
        }
        process.stdout.write(tail);
      })();`;
    const head = tarHeader({ name: 'big', size: big, base256: true });
    const small = Buffer.concat([tarHeader({ name: 'after', data: 'after\n' }), Buffer.from('after\n'), Buffer.alloc(506), Buffer.alloc(1024)]);
    const image = img();
    const r = spawnSync('sh', ['-c', `"$0" -e "$1" "$2" "$3" | /usr/bin/time -f 'RSS %M' "$0" "$4" --quiet --tar=f "$5"`,
      process.execPath, script, head.toString('base64'), small.toString('base64'), CLI, image], { maxBuffer: 1 << 20 });
    const err = r.stderr.toString();
    expect(err).toMatch(/^RSS \d+\n$/);
    expect(r.status).toBe(0);
    const rssKb = Number(/RSS (\d+)/.exec(err)![1]);
    expect(rssKb).toBeLessThan(300 * 1024);
    await withMount(image, (mnt) => {
      expect(statSync(`${mnt}/big`).size).toBe(big);
      expect(readFileSync(`${mnt}/after`, 'utf8')).toBe('after\n');
    });
  }, 600_000);

  itIfMount("a real root file system as a tar mounts exactly as GNU tar extracts it, in full mode (also compressed through a pipe with containerd's options) and index mode", async () => {
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
    // containerd's command line, compressed, the layer through a pipe on stdin.
    const piped = img();
    execFileSync('sh', ['-c', 'cat "$4" | exec "$1" "$2" --tar=f --aufs --quiet -Enoinline_data -zlz4 "$3"', 'sh', process.execPath, CLI, piped, tar]);
    await expectImageMatches(piped, extracted);
    const index = img();
    await build(tar, index, { tar: { mode: 'index' } });
    const joined = `${out.dir}/root-joined.erofs`;
    execFileSync('sh', ['-c', 'cat "$1" "$2" > "$3"', 'sh', index, tar, joined]);
    expect(await withMount(joined, (mnt) => compareTrees(extracted, mnt))).toEqual([]);
    expect(readdirSync(out.dir).filter((f) => f.endsWith('.spool'))).toEqual([]);
  }, 600_000);
});
