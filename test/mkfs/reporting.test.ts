import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProgress } from '../../src/cli/progress-bar.js';
import type { BuildProgress } from '../../src/mkfs/progress.js';
import { build, CLI, cli, expectImageMatches, scratchDir } from '../helpers/build.js';
import { dir, file, makeTree, type Tree } from '../helpers/tree.js';

describe('progress and reports', () => {
  let tree: Tree;
  const out = scratchDir();
  beforeAll(async () => {
    // lzma over 24 MB takes well over a second: long enough for the progress bar.
    tree = await makeTree(dir({ a: file({ size: 12 << 20, pattern: 'text', seed: 1 }), b: file({ size: 12 << 20, pattern: 'text', seed: 2 }) }));
  });
  afterAll(async () => {
    await tree.cleanup();
    out.cleanup();
  });

  it('formats a progress line with entries, bytes, throughput and ETA', () => {
    const line = formatProgress({ phase: 'writing', inodesDone: 5, inodesTotal: 10, bytesDone: 50e6, bytesTotal: 100e6, elapsedMs: 2000 });
    expect(line).toBe('writing [############............] 50% 5/10 inodes 50.0/100.0 MB 25.0 MB/s ETA 2s');
  });

  it('formats the scanning phase as a count of the entries found so far', () => {
    const line = formatProgress({ phase: 'scanning', inodesDone: 1536, inodesTotal: 0, bytesDone: 0, bytesTotal: 0, elapsedMs: 2000 });
    expect(line).toBe('scanning 1536 entries');
  });

  it('reports the members read from a tar while it is scanned', async () => {
    const { makeTar } = await import('../helpers/tar.js');
    const tar = `${out.dir}/few.tar`;
    writeFileSync(tar, makeTar([{ name: 'a', data: 'a' }, { name: 'b', data: 'b' }]));
    const reports: BuildProgress[] = [];
    await build(tar, `${out.dir}/tar.erofs`, { tar: { mode: 'full' }, onProgress: (p) => reports.push(p) });
    expect(reports[0]).toMatchObject({ phase: 'scanning', inodesDone: 1, inodesTotal: 0 });
    expect(reports.at(-1)).toMatchObject({ phase: 'writing', inodesDone: 3, inodesTotal: 3 });
  });

  it('gives the event loop a turn while a tar file is read, so an abort from outside stops the walk part way', async () => {
    const { makeTar } = await import('../helpers/tar.js');
    const tar = `${out.dir}/many.tar`;
    writeFileSync(tar, makeTar(Array.from({ length: 1500 }, (_, i) => ({ name: `f${i}`, data: `${i}` }))));
    const controller = new AbortController();
    // Runs at the walk's first turn of the event loop: a tar file itself never waits.
    setImmediate(() => controller.abort());
    // Every member excluded, each logged as it is read: the log tells how far the walk got.
    let read = 0;
    const image = `${out.dir}/tar-aborted.erofs`;
    const options = {
      tar: { mode: 'full' as const },
      excludeRegexes: ['^f'],
      log: (_level: string, message: string) => {
        if (message.startsWith('excluding')) read++;
      },
      signal: controller.signal,
    };
    await expect(build(tar, image, options)).rejects.toMatchObject({ name: 'AbortError' });
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(1500);
    expect(readdirSync(out.dir).filter((n) => n.startsWith('tar-aborted'))).toEqual([]);
  });

  describe('while the source directory is walked', () => {
    let many: Tree;
    beforeAll(async () => {
      // 1,500 entries: the walk pauses (and reports) every 512.
      const files = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, file(`${i}`)]));
      many = await makeTree(dir(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`d${i}`, dir(files)]))));
    });
    afterAll(async () => {
      await many.cleanup();
    });

    it('reports the entries it has found before any other phase', async () => {
      const reports: BuildProgress[] = [];
      await build(many.root, `${out.dir}/walk.erofs`, { onProgress: (p) => reports.push(p) });
      expect(reports[0]).toMatchObject({ phase: 'scanning', inodesTotal: 0 });
      expect(reports[0]!.inodesDone).toBeGreaterThan(0);
      expect(reports[0]!.inodesDone).toBeLessThan(1551);
      expect(reports.at(-1)).toMatchObject({ phase: 'writing', inodesDone: 1551, inodesTotal: 1551 });
    });

    it('stops at its next pause when the build is aborted, before anything is planned or written', async () => {
      const controller = new AbortController();
      const phases: string[] = [];
      const image = `${out.dir}/aborted.erofs`;
      const onProgress = (p: BuildProgress): void => {
        phases.push(p.phase);
        controller.abort();
      };
      await expect(build(many.root, image, { onProgress, signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
      expect(phases).toEqual(['scanning']);
      expect(existsSync(image)).toBe(false);
      expect(readdirSync(out.dir).filter((n) => n.startsWith('aborted'))).toEqual([]);
    });
  });

  it('draws a progress bar on a terminal during a long build', () => {
    // script(1) gives the command a pseudo-terminal and records what it wrote.
    const log = `${out.dir}/tty.log`;
    const cmd = `${process.execPath} ${CLI} -zlzma -Uclear ${out.dir}/tty.erofs ${tree.root}`;
    execFileSync('script', ['-qec', cmd, log], { stdio: 'ignore' });
    const text = execFileSync('cat', [log], { encoding: 'latin1' });
    expect(text).toMatch(/compressing \[#*\.*\] \d+% \d+\/3 inodes [\d.]+\/25\.2 MB/);
    expect(text).toContain('Build completed.');
  });

  it('draws no progress bar when stderr is not a terminal', async () => {
    const r = await cli(['-zlzma', '-Uclear', `${out.dir}/pipe.erofs`, tree.root]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('--json prints a machine-readable report instead of the summary', async () => {
    const r = await cli(['--json', '-zlz4hc', '-Uclear', `${out.dir}/json.erofs`, tree.root]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      blockSize: 4096,
      inodes: 3,
      inodesByType: { file: 2, directory: 1, symlink: 0 },
      sourceBytes: 24 << 20,
      // Workers by default: one per CPU, the main thread among them.
      compression: { algorithms: ['lz4hc'], threads: availableParallelism(), compressedFiles: 2, inputBytes: 24 << 20 },
    });
    expect(report.imageBytes).toBe(report.blocks * 4096);
    expect(report.compression.ratio).toBeGreaterThan(1.5);
    expect(report.peakRssBytes).toBeGreaterThan(0);
    expect(Object.keys(report.timingsMs)).toEqual(['walk', 'plan', 'data', 'metadata']);
  });

  it('a build whose stdout and stderr nobody reads (`| head`) still completes, exits 0 and leaves no temporary file', async () => {
    const dir = `${out.dir}/unread`;
    mkdirSync(dir);
    const image = `${dir}/unread.erofs`;
    // -d9: a line on stderr for every entry, so writes go on after the reader is gone.
    const child = spawn(process.execPath, [CLI, '-d9', image, tree.root], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    child.stderr.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    expect(readdirSync(dir)).toEqual(['unread.erofs']);
    await expectImageMatches(image, tree.root);
  });
});
