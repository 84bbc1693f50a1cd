import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/build.js';

interface Loaded {
  exports: { answer: () => number; file: string };
  cacheUsed: boolean;
  cachedPaths: string[] | null;
  saveCache(paths?: string[]): void;
}
const { loadBundle } = createRequire(import.meta.url)('../../bin/load-bundle.js') as { loadBundle: (file: string) => Loaded };

/** A CommonJS bundle whose answer() returns `n` (one digit, so every variant has one length). */
const bundle = (n: number): string => `'use strict';\nexports.answer = () => ${n};\nexports.file = __filename;\n`;

describe('loading a CLI bundle with its code cache', () => {
  const out = scratchDir('erofs-bundle-');
  afterAll(() => out.cleanup());

  it('loads as a CommonJS module; the next start uses the cache the first one saved', () => {
    const file = `${out.dir}/one.cjs`;
    writeFileSync(file, bundle(1));
    const first = loadBundle(file);
    expect(first.exports.answer()).toBe(1);
    expect(first.exports.file).toBe(file);
    expect(first.cacheUsed).toBe(false);
    first.saveCache();
    const second = loadBundle(file);
    expect(second.cacheUsed).toBe(true);
    expect(second.exports.answer()).toBe(1);
  });

  it('a cache made for other bytes of the same length is never used', () => {
    const file = `${out.dir}/two.cjs`;
    writeFileSync(file, bundle(2));
    loadBundle(file).saveCache();
    writeFileSync(file, bundle(3));
    const changed = loadBundle(file);
    expect(changed.cacheUsed).toBe(false);
    expect(changed.exports.answer()).toBe(3);
    // It saves one for the new bytes.
    changed.saveCache();
    expect(loadBundle(file).cacheUsed).toBe(true);
  });

  it('a run down a code path the cache lacks saves it again, with every path so far', () => {
    const file = `${out.dir}/five.cjs`;
    writeFileSync(file, bundle(5));
    loadBundle(file).saveCache(['dir']);
    const tar = loadBundle(file);
    expect(tar.cachedPaths).toEqual(['dir']);
    tar.saveCache(['tar-index']);
    const next = loadBundle(file);
    expect(next.cacheUsed).toBe(true);
    expect(next.cachedPaths).toEqual(['dir', 'tar-index']);
    expect(next.exports.answer()).toBe(5);
  });

  it('a run down paths the cache has leaves it as it is', () => {
    const file = `${out.dir}/six.cjs`;
    writeFileSync(file, bundle(6));
    loadBundle(file).saveCache(['dir', 'lz4']);
    const before = statSync(`${file}.cache`, { bigint: true }).mtimeNs;
    loadBundle(file).saveCache(['lz4']);
    loadBundle(file).saveCache([]);
    expect(statSync(`${file}.cache`, { bigint: true }).mtimeNs).toBe(before);
    expect(loadBundle(file).cachedPaths).toEqual(['dir', 'lz4']);
  });

  it('where the cache cannot be written, the bundle still runs and nothing is left behind', () => {
    const dir = `${out.dir}/unwritable`;
    mkdirSync(dir);
    const file = `${dir}/four.cjs`;
    writeFileSync(file, bundle(4));
    // A directory where the cache file would go: the rename fails, as on a read-only install.
    mkdirSync(`${file}.cache`);
    const loaded = loadBundle(file);
    expect(() => loaded.saveCache()).not.toThrow();
    expect(loadBundle(file).exports.answer()).toBe(4);
    expect(readdirSync(dir).sort()).toEqual(['four.cjs', 'four.cjs.cache']);
  });
});

describe('a worker thread of the CLI starting through bin/worker.js', () => {
  const out = scratchDir('erofs-worker-boot-');
  afterAll(() => out.cleanup());
  const boot = new URL('../../bin/worker.js', import.meta.url);

  /** A worker bundle that posts back workerData.value and ends with `exitCode` (on the main thread, as the tests load it to read its cache, it does nothing). */
  const workerBundle = (exitCode: number): string =>
    `'use strict';\nconst { parentPort, workerData } = require('node:worker_threads');\n` +
    `if (parentPort) {\n  parentPort.postMessage(workerData.value);\n  process.exitCode = ${exitCode};\n}\n`;

  /** Runs the bundle in FILE as the CLI starts a worker; its message and exit code. */
  const run = (file: string, codePaths: string[] | null): Promise<{ message: unknown; code: number }> =>
    new Promise((resolve, reject) => {
      let message: unknown;
      const worker = new Worker(boot, { workerData: { value: 42, boot: { bundle: file, codePaths } } });
      worker.on('message', (m) => (message = m));
      worker.on('error', reject);
      worker.on('exit', (code) => resolve({ message, code }));
    });

  it('runs the bundle with the workerData it was given, and at a clean end saves its cache with the code paths named', async () => {
    const file = `${out.dir}/clean.cjs`;
    writeFileSync(file, workerBundle(0));
    expect(await run(file, ['lz4', 'lzma'])).toEqual({ message: 42, code: 0 });
    const next = loadBundle(file);
    expect(next.cacheUsed).toBe(true);
    expect(next.cachedPaths).toEqual(['lz4', 'lzma']);
  });

  it('a thread given no code paths saves no cache', async () => {
    const file = `${out.dir}/quiet.cjs`;
    writeFileSync(file, workerBundle(0));
    expect(await run(file, null)).toEqual({ message: 42, code: 0 });
    expect(existsSync(`${file}.cache`)).toBe(false);
  });

  it('a thread that ends with a failure saves no cache', async () => {
    const file = `${out.dir}/failed.cjs`;
    writeFileSync(file, workerBundle(1));
    expect(await run(file, ['lz4'])).toEqual({ message: 42, code: 1 });
    expect(existsSync(`${file}.cache`)).toBe(false);
  });
});

describe('the CLI\'s compression threads keep a code cache', () => {
  const out = scratchDir('erofs-worker-cache-');
  afterAll(() => out.cleanup());

  it('a compressed build leaves the compression bundle\'s cache beside it, naming the algorithm, which the next build uses', () => {
    // A copy of the CLI as installed, so that no other test's build writes the same cache.
    const repo = new URL('../../', import.meta.url);
    const install = `${out.dir}/install`;
    cpSync(new URL('bin', repo), `${install}/bin`, { recursive: true });
    cpSync(new URL('package.json', repo), `${install}/package.json`);
    mkdirSync(`${install}/dist/cjs`, { recursive: true });
    for (const name of ['mkfs.cjs', 'zworker.cjs']) cpSync(new URL(`dist/cjs/${name}`, repo), `${install}/dist/cjs/${name}`);
    symlinkSync(new URL('node_modules', repo), `${install}/node_modules`);
    mkdirSync(`${out.dir}/tree`);
    // Past the 1 MiB from which the build starts its compression threads.
    writeFileSync(`${out.dir}/tree/text`, 'compressible text '.repeat(200_000));

    execFileSync(process.execPath, [`${install}/bin/mkfs.erofs.js`, '--quiet', '-zlz4hc', `${out.dir}/z.erofs`, `${out.dir}/tree`]);
    const cache = readFileSync(`${install}/dist/cjs/zworker.cjs.cache`);
    // Layout (load-bundle.js): magic, u32 source length, source, u32 paths length, paths.
    const magic = 'erofs-ts code cache 2\n'.length;
    const sourceLength = cache.readUInt32LE(magic);
    const pathsAt = magic + 4 + sourceLength;
    expect(cache.toString('utf8', pathsAt + 4, pathsAt + 4 + cache.readUInt32LE(pathsAt))).toBe('lz4hc');

    // The next build of the same kind loads both caches (each under the V8 flags it was
    // saved under, bin/v8-flags.js) and so writes neither again.
    const caches = ['mkfs.cjs.cache', 'zworker.cjs.cache'].map((name) => `${install}/dist/cjs/${name}`);
    const before = caches.map((file) => ({ bytes: readFileSync(file), mtime: statSync(file).mtimeMs }));
    execFileSync(process.execPath, [`${install}/bin/mkfs.erofs.js`, '--quiet', '-zlz4hc', `${out.dir}/z2.erofs`, `${out.dir}/tree`]);
    expect(caches.map((file) => ({ bytes: readFileSync(file), mtime: statSync(file).mtimeMs }))).toEqual(before);
  });
});
