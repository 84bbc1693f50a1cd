/**
 * fsck.erofs and dump.erofs as users run them: the CLI modules are compiled with tsc (only
 * the reader, format and compress sources, into a temp dir) and run with node, as bin/ runs them.
 */
import { isRoot, skipUnless } from '../helpers/require.js';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EROFS_SUPER_OFFSET } from '../../src/format/constants.js';
import { openImage } from '../../src/reader/index.js';
import { compareTrees } from '../helpers/compare.js';
import { type Tree, dir, fifo, file, makeTree, symlink } from '../helpers/tree.js';
import { HAVE_DEBIAN_MKFS, debianMkfs } from './helpers/fixtures.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Compiles src/{format,reader,compress} and the two CLIs into `dir`/dist. */
function compileCli(dir: string): void {
  const pkg = JSON.parse(readFileSync(nodePath.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  writeFileSync(nodePath.join(dir, 'package.json'), JSON.stringify({ type: 'module', version: pkg.version }));
  symlinkSync(nodePath.join(ROOT, 'node_modules'), nodePath.join(dir, 'node_modules'));
  const src = (p: string) => nodePath.join(ROOT, 'src', p);
  writeFileSync(
    nodePath.join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: nodePath.join(ROOT, 'tsconfig.json'),
      compilerOptions: {
        outDir: nodePath.join(dir, 'dist'),
        rootDir: nodePath.join(ROOT, 'src'),
        typeRoots: [nodePath.join(ROOT, 'node_modules/@types')],
        declaration: false,
        sourceMap: false,
      },
      include: [src('format'), src('reader'), src('compress'), src('cli/fsck.ts'), src('cli/dump.ts')],
    }),
  );
  execFileSync(process.execPath, [nodePath.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', nodePath.join(dir, 'tsconfig.json')], { stdio: 'pipe' });
  // The same entry points as bin/: each CLI module exports main().
  for (const name of ['fsck', 'dump']) {
    writeFileSync(
      nodePath.join(dir, `${name}.mjs`),
      `import { main } from './dist/cli/${name}.js';\nprocess.exitCode = await main(process.argv.slice(2));\n`,
    );
  }
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe.skipIf(skipUnless(HAVE_DEBIAN_MKFS && isRoot, 'root and Debian mkfs.erofs (erofs-utils)'))('fsck.erofs and dump.erofs commands', () => {
  let work: string;
  let tree: Tree;
  let image: string;
  let corrupt: string;
  let unsupported: string;

  const cmd = async (name: 'fsck' | 'dump', args: string[]): Promise<Result> => {
    try {
      const { stdout, stderr } = await run(process.execPath, [nodePath.join(work, `${name}.mjs`), ...args]);
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };

  beforeAll(async () => {
    work = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-cli-'));
    compileCli(work);
    tree = await makeTree(
      dir({
        'big.txt': file({ size: 100_000, pattern: 'text', seed: 'cli' }, { xattrs: { 'user.k': 'v' } }),
        'small.txt': file('small\n', { mode: 0o600 }),
        link: symlink('big.txt'),
        pipe: fifo(),
        sub: dir({ inner: file('inner\n') }),
      }),
    );
    image = nodePath.join(work, 'good.erofs');
    debianMkfs(image, tree.root, ['-zlz4hc']);
    // Corrupt: overwrite most of big.txt's first pcluster.
    const bytes = readFileSync(image);
    const img = openImage(image);
    const n = img.lookup('/big.txt');
    const first = [...img.extents(n)][0]!;
    img.close();
    bytes.fill(0x55, first.physical + 100, first.physical + 4096);
    corrupt = nodePath.join(work, 'corrupt.erofs');
    writeFileSync(corrupt, bytes);
    const unsup = readFileSync(image);
    unsup.writeUInt32LE(unsup.readUInt32LE(EROFS_SUPER_OFFSET + 80) | 0x100, EROFS_SUPER_OFFSET + 80);
    unsup.writeUInt32LE(unsup.readUInt32LE(EROFS_SUPER_OFFSET + 8) & ~1, EROFS_SUPER_OFFSET + 8);
    unsupported = nodePath.join(work, 'unsupported.erofs');
    writeFileSync(unsupported, unsup);
  }, 120_000);

  afterAll(async () => {
    await tree?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('fsck.erofs exits 0 on a good image', async () => {
    const r = await cmd('fsck', [image]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/no problems found/);
  });

  it('fsck.erofs -p prints the compression ratio', async () => {
    expect((await cmd('fsck', ['-p', image])).stdout).toMatch(/Compression ratio: \d+\.\d\d%/);
  });

  it('fsck.erofs exits 1 on corruption and names the file and the problem', async () => {
    const r = await cmd('fsck', [corrupt]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^fsck\.erofs: \/big\.txt \(nid \d+\): lz4 extent at offset 0 .* does not decode/m);
  });

  it('fsck.erofs exits 1 on an image with unsupported features', async () => {
    const r = await cmd('fsck', [unsupported]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unsupported incompatible features: metabox/);
  });

  it('fsck.erofs exits 1 when the image cannot be opened', async () => {
    const r = await cmd('fsck', [nodePath.join(work, 'missing.erofs')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot open/);
  });

  it('fsck.erofs --extract=DIR reproduces the source tree', async () => {
    const out = nodePath.join(work, 'extracted');
    const r = await cmd('fsck', [`--extract=${out}`, image]);
    expect(r.code).toBe(0);
    expect(await compareTrees(tree.root, out)).toEqual([]);
  });

  it('fsck.erofs --extract without =DIR only checks (the next word is still the image)', async () => {
    const r = await cmd('fsck', ['--extract', image]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no problems found/);
  });

  it('fsck.erofs --extract refuses to overwrite existing files unless --overwrite is given', async () => {
    const out = nodePath.join(work, 'twice');
    mkdirSync(out);
    writeFileSync(nodePath.join(out, 'small.txt'), 'mine');
    const first = await cmd('fsck', [`--extract=${out}`, image]);
    expect(first.code).toBe(3);
    expect(first.stderr).toMatch(/small\.txt already exists/);
    const second = await cmd('fsck', [`--extract=${out}`, '--overwrite', image]);
    expect(second.code).toBe(0);
    expect(readFileSync(nodePath.join(out, 'small.txt'), 'utf8')).toBe('small\n');
  });

  it('fsck.erofs rejects extraction options without --extract=DIR', async () => {
    const r = await cmd('fsck', ['--overwrite', image]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/need --extract=DIR/);
  });

  it('dump.erofs -s shows the superblock and features', async () => {
    const r = await cmd('dump', ['-s', image]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Filesystem blocksize:\s+4096$/m);
    expect(r.stdout).toMatch(/^Filesystem features:\s+sb_csum mtime.* 0padding/m);
    expect(r.stdout).toMatch(/^Filesystem compression algorithms:\s+lz4$/m);
  });

  it('dump.erofs -S shows counts by type, the compression ratio and a size histogram', async () => {
    const r = await cmd('dump', ['-S', image]);
    expect(r.stdout).toMatch(/^Filesystem regular file count:\s+3$/m);
    expect(r.stdout).toMatch(/^Filesystem directory count:\s+2$/m);
    expect(r.stdout).toMatch(/^Filesystem FIFO file count:\s+1$/m);
    expect(r.stdout).toMatch(/^Filesystem compress rate:\s+\d+\.\d\d%$/m);
    expect(r.stdout).toMatch(/Original file size distribution:\n {2}range +count\n {2}0\.\.1K +2\n/);
  });

  it('dump.erofs --path shows an inode', async () => {
    const r = await cmd('dump', ['--path=/small.txt', image]);
    expect(r.stdout).toMatch(/^File : \/small\.txt$/m);
    expect(r.stdout).toMatch(/^Size: 6 /m);
    expect(r.stdout).toMatch(/Access: 0600\/-rw-------/);
  });

  it('dump.erofs -e lists the extents of a file', async () => {
    const r = await cmd('dump', ['--path=/big.txt', '-e', image]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ +0: +0\.\. +\d+ \| +\d+ : +\d+\.\. +\d+ \| +4096 \| lz4$/m);
    expect(r.stdout).toMatch(/^\/big\.txt: \d+ extents found$/m);
  });

  it('dump.erofs --nid --ls lists a directory', async () => {
    const root = openImage(image);
    const nid = root.rootNid;
    root.close();
    const r = await cmd('dump', [`--nid=${nid}`, '--ls', image]);
    expect(r.stdout.split('\n').slice(1, -1).map((l) => l.trim().split(/\s+/).slice(1))).toEqual([
      ['dir', '.'],
      ['dir', '..'],
      ['file', 'big.txt'],
      ['symlink', 'link'],
      ['fifo', 'pipe'],
      ['file', 'small.txt'],
      ['dir', 'sub'],
    ]);
  });

  it('dump.erofs exits 1 for a path that does not exist', async () => {
    const r = await cmd('dump', ['--path=/nope', image]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\/nope: no such file or directory/);
  });

  it('dump.erofs exits 2 on -e without an inode', async () => {
    expect((await cmd('dump', ['-e', image])).code).toBe(2);
  });
});
