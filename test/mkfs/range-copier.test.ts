import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { KOFFI_ASYNC_POOLS } from '../../src/ffi.js';
import { byteOffset } from '../../src/format/types.js';
import { BuildError, tarEndedEarly } from '../../src/mkfs/errors.js';
import { COPY_HERE_BELOW, RangeCopier, type RangeCopierOptions } from '../../src/mkfs/range-copier.js';
import { ImageWriter } from '../../src/mkfs/writer.js';
import { scratchDir } from '../helpers/build.js';

const tarEnded = (shown: string) => (): Error => tarEndedEarly(shown);

describe('copying ranges of a source into the image', () => {
  const out = scratchDir('erofs-ranges-');
  afterAll(() => out.cleanup());

  const source = (name: string, bytes: Buffer): number => {
    writeFileSync(`${out.dir}/${name}`, bytes);
    return openSync(`${out.dir}/${name}`, 'r');
  };

  // In processes of their own: koffi takes settings only before its first library is loaded.
  const ffi = pathToFileURL(fileURLToPath(new URL('../../dist/ffi.js', import.meta.url))).href;
  const poolsAfter = (before: string): number =>
    Number(execFileSync(process.execPath, ['-e', `${before}; import('${ffi}').then((m) => console.log(m.loadKoffi().config().resident_async_pools))`], { encoding: 'utf8' }));

  it('koffi keeps a call stack ready for every call in flight and the one issued from a callback', () => {
    expect(poolsAfter('')).toBeGreaterThanOrEqual(KOFFI_ASYNC_POOLS);
  });

  it('koffi that a host loaded a library with first is used as it is', () => {
    expect(poolsAfter(`require('koffi').load('libc.so.6')`)).toBe(4);
  });

  type Planned = { at: number; dst: number; length: number };

  /**
   * Copies the planned ranges of a random source (each with its settled()), expects each in
   * its place and every one settled as copied; returns the lengths copied on the calling thread.
   */
  const copyPlan = async (name: string, plan: Planned[], options: RangeCopierOptions = {}): Promise<number[]> => {
    const src = randomBytes(3 << 20);
    const fd = source(`${name}.tar`, src);
    const w = ImageWriter.create(`${out.dir}/${name}.img`);
    const here = vi.spyOn(w, 'copyFrom');
    const ranges = new RangeCopier(w, options);
    let settled = 0;
    for (const r of plan) ranges.copy({ fd, ...r, endedAt: tarEnded(`${name}.tar`), settled: (copied) => (settled += copied ? 1 : 0) });
    expect(ranges.busy).toBe(true);
    await ranges.finish();
    await ranges.close();
    expect(settled).toBe(plan.length);
    w.setSize(Math.max(...plan.map((r) => r.dst + r.length)));
    w.commit();
    closeSync(fd);
    const img = readFileSync(`${out.dir}/${name}.img`);
    for (const r of plan) expect(img.subarray(r.dst, r.dst + r.length).equals(src.subarray(r.at, r.at + r.length))).toBe(true);
    return here.mock.calls.map((c) => c[3]);
  };

  it('puts every range at its place, copied off the main thread, and is done when finish() resolves', async () => {
    // More ranges than calls in flight, one of several MiB, placed out of source order.
    const plan = [
      { at: 0, dst: 8192, length: 65536 },
      { at: 65536, dst: 0, length: 4096 },
      { at: 1 << 20, dst: 1 << 20, length: 2 << 20 },
      ...Array.from({ length: 12 }, (_, i) => ({ at: 70000 + i * 1000, dst: 80 * 1024 + i * 4096, length: 1000 })),
    ];
    expect(await copyPlan('three', plan)).toEqual([]);
  });

  it('with copyHereBelow, shorter ranges are copied at once, on the calling thread, longer ones off it', async () => {
    const plan = [
      { at: 0, dst: 8192, length: COPY_HERE_BELOW },
      { at: COPY_HERE_BELOW, dst: 0, length: 4096 },
      { at: 1 << 20, dst: 1 << 20, length: 2 << 20 },
      ...Array.from({ length: 12 }, (_, i) => ({ at: 300_000 + i * 1000, dst: (4 << 20) + i * 4096, length: 1000 })),
    ];
    expect(await copyPlan('busy', plan, { copyHereBelow: COPY_HERE_BELOW })).toEqual(plan.filter((r) => r.length < COPY_HERE_BELOW).map((r) => r.length));
  });

  /** A random source of `bytes`, an image, and a copier that copies short ranges here, its copyFrom watched. */
  const copyingHere = (name: string, bytes: number) => {
    const src = randomBytes(bytes);
    const fd = source(`${name}.bin`, src);
    const w = ImageWriter.create(`${out.dir}/${name}.img`);
    return { src, fd, w, here: vi.spyOn(w, 'copyFrom'), ranges: new RangeCopier(w, { copyHereBelow: COPY_HERE_BELOW }) };
  };

  it('with copyHereBelow, short ranges that go on where the one before ends, in the source and in the image, are one copy', async () => {
    const { src, fd, w, here, ranges } = copyingHere('spill', 64 << 10);
    const endedAt = (): Error => new Error('spill file cut short');
    // Four pieces in a row, then one that skips a block of the image, then one after it.
    const plan = [
      { at: 0, dst: 4096, length: 8192 },
      { at: 8192, dst: 12288, length: 4096 },
      { at: 12288, dst: 16384, length: 12288 },
      { at: 24576, dst: 28672, length: 4096 },
      { at: 28672, dst: 36864, length: 8192 },
      { at: 36864, dst: 45056, length: 4096 },
    ];
    for (const r of plan) ranges.copy({ fd, ...r, endedAt });
    // The last run is held back until finish() shows nothing continues it.
    expect(here.mock.calls.map((c) => [c[1], c[2], c[3]])).toEqual([[0, 4096, 28672]]);
    expect(ranges.inUse).toBe(true);
    await ranges.finish();
    await ranges.close();
    expect(here.mock.calls.map((c) => [c[1], c[2], c[3]])).toEqual([
      [0, 4096, 28672],
      [28672, 36864, 12288],
    ]);
    w.setSize(64 << 10);
    w.commit();
    closeSync(fd);
    const img = readFileSync(`${out.dir}/spill.img`);
    for (const r of plan) expect(img.subarray(r.dst, r.dst + r.length).equals(src.subarray(r.at, r.at + r.length))).toBe(true);
    expect(img.subarray(32768, 36864).equals(Buffer.alloc(4096))).toBe(true);
  });

  it('with copyHereBelow, ranges with their own settled() are copied one by one, even where they continue each other', async () => {
    const { src, fd, w, here, ranges } = copyingHere('files', 16 << 10);
    const settled: boolean[] = [];
    for (let i = 0; i < 4; i++) ranges.copy({ fd, at: i * 4096, dst: i * 4096, length: 4096, endedAt: tarEnded('files.bin'), settled: (copied) => settled.push(copied) });
    // Each settled as it is copied: a file's descriptor closes at once.
    expect(settled).toEqual([true, true, true, true]);
    expect(here).toHaveBeenCalledTimes(4);
    await ranges.finish();
    await ranges.close();
    w.commit();
    closeSync(fd);
    expect(readFileSync(`${out.dir}/files.img`).equals(src)).toBe(true);
  });

  it('a copy lands after the writes made to its range before it, still in the merge buffer', async () => {
    const src = randomBytes(3 * 4096);
    const fd = source('over.bin', src);
    const w = ImageWriter.create(`${out.dir}/over.img`);
    const ranges = new RangeCopier(w);
    // Flat data of a file written first; the next file's output copied over its last blocks.
    w.writeAt(byteOffset(0), Buffer.alloc(4 * 4096, 0xee));
    ranges.copy({ fd, at: 0, dst: 4096, length: src.length, endedAt: tarEnded('over.bin') });
    await ranges.finish();
    await ranges.close();
    w.commit();
    closeSync(fd);
    const img = readFileSync(`${out.dir}/over.img`);
    expect(img.subarray(0, 4096).equals(Buffer.alloc(4096, 0xee))).toBe(true);
    expect(img.subarray(4096).equals(src)).toBe(true);
  });

  it('an empty range is settled as copied at once', async () => {
    const fd = source('empty.bin', Buffer.alloc(0));
    const w = ImageWriter.create(`${out.dir}/empty.img`);
    const ranges = new RangeCopier(w);
    const settled: boolean[] = [];
    ranges.copy({ fd, at: 0, dst: 0, length: 0, endedAt: tarEnded('empty.bin'), settled: (copied) => settled.push(copied) });
    expect(settled).toEqual([true]);
    await ranges.finish();
    await ranges.close();
    w.abort();
    closeSync(fd);
  });

  it('a range past the end of its source fails the build with the error the range names', async () => {
    const fd = source('short.tar', randomBytes(10_000));
    const w = ImageWriter.create(`${out.dir}/short.img`);
    const ranges = new RangeCopier(w);
    const settled: boolean[] = [];
    ranges.copy({ fd, at: 8192, dst: 0, length: 65536, endedAt: tarEnded('short.tar'), settled: (copied) => settled.push(copied) });
    const failed = await ranges.finish().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(BuildError);
    expect((failed as Error).message).toMatch(/^short\.tar: the tar file ended early/);
    // A later range is refused with the same error, not copied; both are settled as not copied.
    expect(() => ranges.copy({ fd, at: 0, dst: 0, length: 4096, endedAt: tarEnded('short.tar'), settled: (copied) => settled.push(copied) })).toThrow(/ended early/);
    expect(settled).toEqual([false, false]);
    await ranges.close();
    w.abort();
    closeSync(fd);
  });

  it('with copyHereBelow, a short range past the end of its source fails at once, or at finish() if it was held back', async () => {
    const fd = source('shorter.tar', randomBytes(10_000));
    const w = ImageWriter.create(`${out.dir}/shorter.img`);
    const settled: boolean[] = [];
    const ranges = new RangeCopier(w, { copyHereBelow: COPY_HERE_BELOW });
    expect(() => ranges.copy({ fd, at: 8192, dst: 0, length: 4096, endedAt: tarEnded('shorter.tar'), settled: (copied) => settled.push(copied) })).toThrow(
      /^shorter\.tar: the tar file ended early/,
    );
    expect(settled).toEqual([false]);
    await ranges.close();
    const held = new RangeCopier(w, { copyHereBelow: COPY_HERE_BELOW });
    held.copy({ fd, at: 8192, dst: 0, length: 4096, endedAt: tarEnded('shorter.tar') });
    const failed = await held.finish().catch((e: unknown) => e);
    expect((failed as Error).message).toMatch(/^shorter\.tar: the tar file ended early/);
    await held.close();
    w.abort();
    closeSync(fd);
  });

  it('close() drops what is queued, settles it, waits for the calls in flight, then releases the tar', async () => {
    const fd = source('many.tar', randomBytes(1 << 20));
    const w = ImageWriter.create(`${out.dir}/many.img`);
    const ranges = new RangeCopier(w);
    const settled: boolean[] = [];
    for (let i = 0; i < 64; i++) ranges.copy({ fd, at: i * 16384, dst: i * 16384, length: 16384, endedAt: tarEnded('many.tar'), settled: (copied) => settled.push(copied) });
    let released = false;
    ranges.releaseAfterClose(() => {
      released = true;
      closeSync(fd);
    });
    expect(ranges.inUse).toBe(true);
    const closing = ranges.close();
    expect(released).toBe(false);
    await closing;
    expect(released).toBe(true);
    expect(ranges.busy).toBe(false);
    // Every range is settled, the dropped ones as not copied.
    expect(settled.length).toBe(64);
    expect(settled.filter((c) => !c).length).toBeGreaterThan(0);
    w.abort();
  });
});
