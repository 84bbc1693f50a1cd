import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, scratchDir } from '../helpers/build.js';
import { isRoot, skipUnless } from '../helpers/require.js';
import { dir, file, makeTree, type Tree } from '../helpers/tree.js';


/** One line on stderr that names `path`, exit code 1, no image and no temporary file left. */
function expectCleanFailure(r: { code: number; stderr: string }, path: string, problem: RegExp, outDir: string, image: string): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('Try '));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(path);
  expect(lines[0]).toMatch(problem);
  expect(readdirSync(outDir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  if (!existsSync(image)) return;
  expect(readFileSync(image, 'utf8')).toBe('previous image');
}

describe('bad input is reported in one line and leaves no image behind', () => {
  let tree: Tree;
  const out = scratchDir();
  beforeAll(async () => {
    tree = await makeTree(dir({ a: file('a'), sub: dir({ b: file('b') }) }));
  });
  afterAll(async () => {
    await tree.cleanup();
    out.cleanup();
  });
  const image = () => `${out.dir}/out.erofs`;

  it('a missing source', async () => {
    const r = await cli([image(), `${out.dir}/nope`]);
    expectCleanFailure(r, `${out.dir}/nope`, /No such file or directory/, out.dir, image());
  });

  it('a source that is not a directory', async () => {
    const r = await cli([image(), tree.path('a')]);
    expectCleanFailure(r, tree.path('a'), /not a directory/, out.dir, image());
  });

  it('an image inside its source', async () => {
    const r = await cli([tree.path('sub/img.erofs'), tree.root]);
    expectCleanFailure(r, tree.path('sub/img.erofs'), /inside the source/, out.dir, image());
    expect(existsSync(tree.path('sub/img.erofs'))).toBe(false);
  });

  it('an image path that is a FIFO is refused and stays a FIFO', async () => {
    const fifo = `${out.dir}/pipe`;
    execFileSync('mkfifo', [fifo]);
    const r = await cli([fifo, tree.root]);
    expectCleanFailure(r, fifo, /is a FIFO; images are written to regular files only/, out.dir, image());
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('an image path that is a symlink replaces the file it points to and keeps the link', async () => {
    writeFileSync(`${out.dir}/target.erofs`, 'previous image');
    symlinkSync('target.erofs', `${out.dir}/link.erofs`);
    const r = await cli([`${out.dir}/link.erofs`, tree.root]);
    expect(r.code).toBe(0);
    expect(lstatSync(`${out.dir}/link.erofs`).isSymbolicLink()).toBe(true);
    expect(readFileSync(`${out.dir}/target.erofs`).readUInt32LE(1024)).toBe(0xe0f5e1e2);
  });

  it("an image whose folder does not exist", async () => {
    const r = await cli([`${out.dir}/missing/img.erofs`, tree.root]);
    expectCleanFailure(r, `${out.dir}/missing`, /No such file or directory/, out.dir, image());
  });

  for (const [args, problem] of [
    [['--no-such-option'], /unknown option '--no-such-option'/],
    [['-b', '3000'], /invalid block size 3000/],
    [['-b8192'], /invalid block size 8192/],
    [['-U', 'not-a-uuid'], /invalid UUID not-a-uuid/],
    [['-L', 'a-label-longer-than-15'], /longer than 15 bytes/],
    [['-T', 'yesterday'], /invalid timestamp: yesterday/],
    [['-d', '12'], /invalid verbosity level 12/],
    [['--force-uid', '-5'], /invalid --force-uid/],
    [['-Eunknown-thing'], /unknown extended option -Eunknown-thing/],
    [['-zlz5'], /unknown compression algorithm "lz5"/],
    [['-zlz4hc,13'], /level/],
    [['-zlz4', '-C', '5000'], /invalid physical cluster size 5000/],
    [['-b', '2048', '-zlz4hc', '-C', '1048576'], /physical cluster size 1048576 is 512 blocks: Linux mounts LZ4 images with at most 256/],
    [['--chunksize=4096'], /option --chunksize is not supported yet/],
    [['--tar=x'], /invalid --tar mode x/],
    [['--aufs'], /--aufs needs --tar/],
    [['--tar=i,blocks.map'], /MAPFILE \(block list file\) is not supported yet/],
    [['-Efragments'], /-Efragments is not supported yet/],
    [['--exclude-regex', '(['], /invalid --exclude-regex/],
  ] as const) {
    it(`a bad option: ${args.join(' ')}`, async () => {
      writeFileSync(image(), 'previous image');
      const r = await cli([...args, image(), tree.root]);
      expect(r.code).toBe(1);
      expect(r.stderr.split('\n')[0]).toMatch(problem);
      expect(readFileSync(image(), 'utf8')).toBe('previous image');
    });
  }

  it('options that shape compressed data are ignored with a warning in an uncompressed build, as the reference does', async () => {
    const r = await cli(['-Eztailpacking', '-C', '65536', '--max-extent-bytes', '8192', image(), tree.root]);
    expect(r.code).toBe(0);
    for (const what of ['-Eztailpacking', '-C', '--max-extent-bytes']) expect(r.stderr).toContain(`${what} has no effect without compression (-z): ignored`);
    expect(readFileSync(image()).readUInt32LE(1024)).toBe(0xe0f5e1e2);
  });

  it('SOURCE_DATE_EPOCH that is not a number', async () => {
    const r = await cli([image(), tree.root], { SOURCE_DATE_EPOCH: 'soon' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SOURCE_DATE_EPOCH soon is invalid/);
  });
});

describe.skipIf(skipUnless(isRoot, 'root (bind mounts, tmpfs, other users)'))('failures while building (need root: bind mounts, tmpfs, other users)', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());
  const image = () => `${out.dir}/out.erofs`;

  async function asNobody(args: string[]): Promise<{ code: number; stderr: string }> {
    return new Promise((resolve) => {
      const p = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, ...args]);
      let stderr = '';
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    });
  }

  it('an image path that is a block device node is refused and the node is kept', async () => {
    const node = `${out.dir}/blockdev`;
    execFileSync('mknod', [node, 'b', '7', '250']);
    const src = await makeTree(dir({ a: file('a') }));
    const r = await cli([node, src.root]);
    await src.cleanup();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/blockdev: is a block device; images are written to regular files only/);
    expect(lstatSync(node).isBlockDevice()).toBe(true);
    expect(readdirSync(out.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('an unreadable file names the file, and an existing image is left untouched', async () => {
    const t = await makeTree(dir({ ok: file('fine'), secret: file('no', { mode: 0o000 }) }), out.dir);
    chmodSync(out.dir, 0o777);
    chmodSync(t.dir, 0o755);
    try {
      writeFileSync(image(), 'previous image');
      chmodSync(image(), 0o666);
      const r = await asNobody([image(), t.root]);
      expectCleanFailure(r, t.path('secret'), /Permission denied/, out.dir, image());
    } finally {
      await t.cleanup();
    }
  });

  it('an unreadable directory names the directory', async () => {
    const t = await makeTree(dir({ closed: dir({ x: file('x') }, { mode: 0o000 }) }), out.dir);
    chmodSync(out.dir, 0o777);
    chmodSync(t.dir, 0o755);
    try {
      const r = await asNobody([image(), t.root]);
      expectCleanFailure(r, t.path('closed'), /Permission denied/, out.dir, image());
    } finally {
      await t.cleanup();
    }
  });

  it('a file that changes size while it is read', async () => {
    const t = await makeTree(dir({ shrinking: file('') }));
    // A sysfs file bind-mounted over it: stat says 4096 bytes, reading yields a few.
    execFileSync('mount', ['--bind', '/sys/kernel/uevent_seqnum', t.path('shrinking')]);
    try {
      const r = await cli([image(), t.root]);
      expectCleanFailure(r, t.path('shrinking'), /shrank while being read/, out.dir, image());
    } finally {
      execFileSync('umount', [t.path('shrinking')]);
      await t.cleanup();
    }
  });

  it('a full disk', async () => {
    const small = `${out.dir}/small`;
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    const t = await makeTree(dir({ big: file({ size: 4 << 20, pattern: 'random', seed: 1 }) }));
    try {
      const r = await cli([`${small}/img.erofs`, t.root]);
      expectCleanFailure(r, `${small}/img.erofs`, /No space left on device/, small, `${small}/img.erofs`);
      expect(readdirSync(small)).toEqual([]);
    } finally {
      execFileSync('umount', [small]);
      await t.cleanup();
    }
  });

  const STATUS = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${signal} stops the build, removes the temporary file and keeps the old image`, async () => {
      const t = await makeTree(dir({ huge: file({ size: 64 * 2 ** 30, pattern: 'hole' }) }));
      try {
        writeFileSync(image(), 'previous image');
        // Compression reads every byte of the hole (an uncompressed build skips holes at once).
        const p = spawn(process.execPath, [CLI, '-zlz4', image(), t.root], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        p.stderr.on('data', (d) => (stderr += d));
        // Wait until the temporary image exists, so the signal lands mid-build.
        for (let i = 0; i < 200 && !readdirSync(out.dir).some((n) => n.endsWith('.tmp')); i++) {
          await new Promise((r) => setTimeout(r, 25));
        }
        expect(readdirSync(out.dir).some((n) => n.endsWith('.tmp'))).toBe(true);
        p.kill(signal);
        const code = await new Promise<number | null>((r) => p.on('close', r));
        expect(code).toBe(STATUS[signal]);
        expect(stderr).toContain(`interrupted by ${signal}`);
        expect(readdirSync(out.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
        expect(readFileSync(image(), 'utf8')).toBe('previous image');
      } finally {
        await t.cleanup();
      }
    });
  }

  it('SIGINT stops a build at once while the main thread is compressing a segment that takes it seconds', async () => {
    // Three 16 MiB segments of text: lzma takes seconds over each, the main thread one of them.
    const t = await makeTree(dir({ big: file({ size: 48 << 20, pattern: 'text', seed: 7 }) }));
    try {
      const p = spawn(process.execPath, [CLI, '-zlzma', '--workers=2', image(), t.root], { stdio: ['ignore', 'pipe', 'pipe'] });
      for (let i = 0; i < 200 && !readdirSync(out.dir).some((n) => n.endsWith('.tmp')); i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      await new Promise((r) => setTimeout(r, 1500));
      const sent = performance.now();
      p.kill('SIGINT');
      const code = await new Promise<number | null>((r) => p.on('close', r));
      expect(code).toBe(130);
      expect(performance.now() - sent).toBeLessThan(1000);
      expect(readdirSync(out.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    } finally {
      await t.cleanup();
    }
  });
});
