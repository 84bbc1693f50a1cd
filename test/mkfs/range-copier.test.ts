import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { KOFFI_ASYNC_POOLS } from '../../src/ffi.js';
import { byteOffset } from '../../src/format/types.js';
import { BuildError, tarEndedEarly } from '../../src/mkfs/errors.js';
import { RangeCopier } from '../../src/mkfs/range-copier.js';
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

  it('puts every range at its place, copied off the main thread, and is done when finish() resolves', async () => {
    const src = randomBytes(3 << 20);
    const fd = source('three.tar', src);
    const w = ImageWriter.create(`${out.dir}/three.img`);
    const here = vi.spyOn(w, 'copyFrom');
    const ranges = new RangeCopier(w);
    // More ranges than calls in flight, one of several MiB, placed out of source order.
    const plan = [
      { at: 0, dst: 8192, length: 65536 },
      { at: 65536, dst: 0, length: 4096 },
      { at: 1 << 20, dst: 1 << 20, length: 2 << 20 },
      ...Array.from({ length: 12 }, (_, i) => ({ at: 70000 + i * 1000, dst: 80 * 1024 + i * 4096, length: 1000 })),
    ];
    let settled = 0;
    for (const r of plan) ranges.copy({ fd, ...r, endedAt: tarEnded('three.tar'), settled: (copied) => (settled += copied ? 1 : 0) });
    expect(ranges.busy).toBe(true);
    await ranges.finish();
    await ranges.close();
    expect(settled).toBe(plan.length);
    expect(here).not.toHaveBeenCalled();
    w.setSize(3 << 20);
    w.commit();
    closeSync(fd);
    const img = readFileSync(`${out.dir}/three.img`);
    for (const r of plan) expect(img.subarray(r.dst, r.dst + r.length).equals(src.subarray(r.at, r.at + r.length))).toBe(true);
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
