import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { build, scratchDir } from '../helpers/build.js';
import { dir, type EntrySpec, file, hardlink, makeTree, symlink } from '../helpers/tree.js';

describe('deterministic output', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());

  const entries: Array<readonly [string, EntrySpec]> = [
    ...Array.from({ length: 300 }, (_, i) => [`file-${(i * 7919) % 1000}`, file(`content ${i}\n`.repeat(i), { xattrs: i % 3 ? { 'user.k': `${i % 5}` } : {} })] as const),
    ['sub', dir(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`n${(i * 31) % 97}`, file('x'.repeat(i * 100))])))],
    ['link', symlink('sub')],
    ['hard', hardlink('file-0')],
  ];

  it('gives the same bytes for the same tree created in a different order', async () => {
    // Creating entries in reverse order changes what readdir returns first.
    const a = await makeTree(dir(entries ));
    const b = await makeTree(dir([...entries].reverse() ));
    try {
      const opts = { timestamp: 1_700_000_000, uuid: '11111111-2222-3333-4444-555555555555' };
      await build(a.root, `${out.dir}/a.erofs`, opts);
      await build(b.root, `${out.dir}/b.erofs`, opts);
      const ia = readFileSync(`${out.dir}/a.erofs`);
      const ib = readFileSync(`${out.dir}/b.erofs`);
      expect(ia.length).toBeGreaterThan(0);
      expect(ia.equals(ib)).toBe(true);
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  });

  it('gives the same bytes when the same tree is built twice', async () => {
    const t = await makeTree(dir(entries ));
    try {
      await build(t.root, `${out.dir}/1.erofs`, { timestamp: 0 });
      await build(t.root, `${out.dir}/2.erofs`, { timestamp: 0 });
      expect(readFileSync(`${out.dir}/1.erofs`).equals(readFileSync(`${out.dir}/2.erofs`))).toBe(true);
    } finally {
      await t.cleanup();
    }
  });
});
