import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ImageWriter } from '../../src/mkfs/writer.js';
import { scratchDir } from '../helpers/build.js';

// How the thread-pool calls behave is set per test: refused (as on a file system without
// copy_file_range), or missing (no koffi, not Linux).
const mode = vi.hoisted(() => ({ async: 'refused' as 'refused' | 'missing' }));
vi.mock('../../src/mkfs/copy-range.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/mkfs/copy-range.js')>();
  return {
    ...real,
    asyncCopy: () =>
      mode.async === 'missing'
        ? null
        : (_fdIn: number, _offIn: number, _fdOut: number, _offOut: number, _len: number, done: (n: number) => void) => setImmediate(() => done(-1)),
  };
});
const { RangeCopier } = await import('../../src/mkfs/range-copier.js');

describe('copying ranges of a tar file where the thread pool cannot', () => {
  const out = scratchDir('erofs-ranges-fallback-');
  afterAll(() => out.cleanup());

  /** Copies two ranges of a tar, expects each in its place in the image; says whether the pool took them. */
  const copyTwoRanges = async (name: string): Promise<boolean> => {
    const src = randomBytes(1 << 20);
    writeFileSync(`${out.dir}/${name}.tar`, src);
    const fd = openSync(`${out.dir}/${name}.tar`, 'r');
    const w = ImageWriter.create(`${out.dir}/${name}.img`);
    const ranges = new RangeCopier(w);
    const settled: boolean[] = [];
    const endedAt = (): Error => new Error('ended early');
    ranges.copy({ fd, at: 4096, dst: 65536, length: 300_000, endedAt, settled: (copied) => settled.push(copied) });
    ranges.copy({ fd, at: 512, dst: 0, length: 65536, endedAt, settled: (copied) => settled.push(copied) });
    const pooled = ranges.inUse;
    await ranges.finish();
    await ranges.close();
    expect(settled).toEqual([true, true]);
    w.setSize(65536 + 300_000);
    w.commit();
    closeSync(fd);
    const img = readFileSync(`${out.dir}/${name}.img`);
    expect(img.subarray(65536).equals(src.subarray(4096, 4096 + 300_000))).toBe(true);
    expect(img.subarray(0, 65536).equals(src.subarray(512, 512 + 65536))).toBe(true);
    return pooled;
  };

  it('a call the system refuses is made again on the main thread, with reads and writes where it must', async () => {
    mode.async = 'refused';
    expect(await copyTwoRanges('refused')).toBe(true);
  });

  it('without thread-pool calls every range is copied at once, on the main thread', async () => {
    mode.async = 'missing';
    // Nothing was left for later: the tar may be closed as soon as the walk ends.
    expect(await copyTwoRanges('missing')).toBe(false);
  });
});
