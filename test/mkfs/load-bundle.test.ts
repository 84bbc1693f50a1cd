import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
