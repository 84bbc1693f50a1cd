import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { geometry } from '../../src/format/types.js';
import { FileCopier } from '../../src/mkfs/copier.js';
import { BuildError } from '../../src/mkfs/errors.js';
import { resolveOptions } from '../../src/mkfs/options.js';
import { RangeCopier } from '../../src/mkfs/range-copier.js';
import { WalkProgress, walkSource } from '../../src/mkfs/walker.js';
import { newInode, type TreeInode } from '../../src/mkfs/tree.js';
import { ImageWriter, Spool } from '../../src/mkfs/writer.js';
import { scratchDir } from '../helpers/build.js';

const g = geometry(12);
const B = 4096;

describe('copying the files of an uncompressed build from a directory', () => {
  const out = scratchDir('erofs-copier-');
  afterAll(() => out.cleanup());

  /**
   * A copier into a fresh image, with the thread pool's copies and a spool for the tails;
   * the copy thread starts after `threadAfter` files copied by the walk.
   */
  const setup = (name: string, threadAfter?: number, entriesLeft?: () => number) => {
    const cfg = resolveOptions({ image: `${out.dir}/${name}.img`, source: out.dir, timestamp: 0 });
    const writer = ImageWriter.create(cfg.image);
    const tails = Spool.beside(writer);
    const ranges = new RangeCopier(writer);
    const copier = new FileCopier(cfg, g, writer, tails, ranges, { afterFiles: threadAfter, entriesLeft });
    /** Adds a file, written first unless `bytes` is null; `claimed` is the size the walk saw. */
    const add = (file: string, bytes: Buffer | null, claimed?: number): TreeInode => {
      const path = `${out.dir}/${name}-${file}`;
      if (bytes) writeFileSync(path, bytes);
      const inode = newInode(0o100644, { uid: 0, gid: 0, mtime: 0, mtimeNsec: 0 }, file, null);
      inode.size = claimed ?? statSync(path).size;
      copier.add(inode, Buffer.from(path));
      return inode;
    };
    /** Waits for the copies; the image's bytes and the tails spool's. */
    const finish = async (): Promise<{ image: Buffer; tails: Spool }> => {
      copier.settleTails();
      try {
        await copier.finish();
        await ranges.finish();
      } finally {
        await copier.close();
        await ranges.close();
      }
      writer.setSize((1 + copier.blocks) * B);
      writer.commit();
      return { image: readFileSync(cfg.image), tails };
    };
    return { add, finish, ranges, path: (file: string) => `${out.dir}/${name}-${file}` };
  };

  it('puts big files on the thread pool and copies small ones itself; blocks follow each other, tails wait in the spool', async () => {
    const s = setup('mixed');
    const copy = vi.spyOn(s.ranges, 'copy');
    const big = randomBytes(300 * 1024 + 123);
    const small = randomBytes(5000);
    const bigInode = s.add('big', big);
    const smallInode = s.add('small', small);
    expect(copy).toHaveBeenCalledTimes(1);
    expect(bigInode.dataBlk).toBe(1);
    expect(smallInode.dataBlk).toBe(1 + Math.floor(big.length / B));
    const { image, tails } = await s.finish();
    const bigBlocks = big.length - (big.length % B);
    expect(image.subarray(B, B + bigBlocks).equals(big.subarray(0, bigBlocks))).toBe(true);
    expect(tails.read(bigInode.dataOffset, big.length % B).equals(big.subarray(bigBlocks))).toBe(true);
    const at = smallInode.dataBlk * B;
    expect(image.subarray(at, at + B).equals(small.subarray(0, B))).toBe(true);
    expect(tails.read(smallInode.dataOffset, small.length - B).equals(small.subarray(B))).toBe(true);
  });

  it('a big file that shrinks after it was handed over fails the build, naming it', async () => {
    const s = setup('shrinks');
    s.add('file', randomBytes(1 << 20));
    // Before or after the copy: either way the copy finds the file shorter than walked.
    truncateSync(s.path('file'), 100_000);
    const failed = await s.finish().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(BuildError);
    expect((failed as Error).message).toMatch(new RegExp(`^${s.path('file')}: file shrank while being read`));
  });

  it('a big file that grows after it was handed over fails the build, naming it', async () => {
    const s = setup('grows');
    s.add('file', randomBytes(1 << 20));
    appendFileSync(s.path('file'), 'more');
    const failed = await s.finish().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(BuildError);
    expect((failed as Error).message).toMatch(new RegExp(`^${s.path('file')}: file grew while being read`));
  });

  it('a big file with holes is copied by the walk, its holes left unwritten', async () => {
    const s = setup('sparse');
    const copy = vi.spyOn(s.ranges, 'copy');
    const path = s.path('file');
    const data = randomBytes(B);
    writeFileSync(path, '');
    truncateSync(path, 64 << 20);
    writeFileSync(path, data, { flag: 'r+' });
    const inode = s.add('file', null);
    expect(copy).not.toHaveBeenCalled();
    const { image } = await s.finish();
    expect(image.subarray(inode.dataBlk * B, inode.dataBlk * B + B).equals(data)).toBe(true);
    // The image file itself has blocks for the data, not for the 64 MiB hole.
    expect(statSync(`${out.dir}/sparse.img`).blocks * 512).toBeLessThan(1 << 20);
  });

  it('with many big files waiting for the pool, the walk copies the next ones itself', async () => {
    const s = setup('backlog');
    const copy = vi.spyOn(s.ranges, 'copy');
    const files = Array.from({ length: 100 }, (_, i) => randomBytes(65536 + i));
    const inodes = files.map((f, i) => s.add(`f${i}`, f));
    // Nothing was copied meanwhile (no turn of the event loop): 64 wait, the walk took the rest.
    expect(copy).toHaveBeenCalledTimes(64);
    const { image, tails } = await s.finish();
    files.forEach((f, i) => {
      const at = inodes[i]!.dataBlk * B;
      expect(image.subarray(at, at + 65536).equals(f.subarray(0, 65536))).toBe(true);
      if (i > 0) expect(tails.read(inodes[i]!.dataOffset, i).equals(f.subarray(65536))).toBe(true);
    });
  });

  it('past the files the walk copies itself, a thread copies the rest; the tails it has not written yet are read for the inode writer', async () => {
    const s = setup('threaded', 10);
    const files = Array.from({ length: 300 }, (_, i) => randomBytes(1 + ((i * 977) % 9000)));
    const inodes = files.map((f, i) => s.add(`f${i}`, f));
    const { image, tails } = await s.finish();
    files.forEach((f, i) => {
      // A tail too long to go inline is in a block of its own.
      const inline = inodes[i]!.dataOffset >= 0;
      const blockBytes = inline ? f.length - (f.length % B) : f.length;
      const at = inodes[i]!.dataBlk * B;
      expect(image.subarray(at, at + blockBytes).equals(f.subarray(0, blockBytes))).toBe(true);
      if (inline) expect(tails.read(inodes[i]!.dataOffset, f.length % B).equals(f.subarray(blockBytes))).toBe(true);
    });
  });

  /** What `run` returns, and how many threads it started (Node announces each Worker on `process`). */
  const countingThreads = async <T>(run: () => Promise<T>): Promise<{ threads: number; result: T }> => {
    const started = vi.fn();
    process.on('worker', started);
    try {
      const result = await run();
      return { threads: started.mock.calls.length, result };
    } finally {
      process.off('worker', started);
    }
  };

  it('no thread starts when the walk has few entries left to come, and the walk copies every file', async () => {
    const s = setup('few-left', 10, () => 8191);
    const files = Array.from({ length: 100 }, (_, i) => randomBytes(1 + i * 37));
    // The thread would start as files are added: they count too.
    const { threads, result } = await countingThreads(async () => {
      const inodes = files.map((f, i) => s.add(`f${i}`, f));
      return { inodes, ...(await s.finish()) };
    });
    expect(threads).toBe(0);
    const { inodes, image, tails } = result;
    files.forEach((f, i) => {
      const blockBytes = f.length - (f.length % B);
      const at = inodes[i]!.dataBlk * B;
      expect(image.subarray(at, at + blockBytes).equals(f.subarray(0, blockBytes))).toBe(true);
      expect(tails.read(inodes[i]!.dataOffset, f.length % B).equals(f.subarray(blockBytes))).toBe(true);
    });
  });

  it('the thread starts once the walk has copied its share and has many entries left to come', async () => {
    const s = setup('many-left', 10, () => 8192);
    const { threads } = await countingThreads(async () => {
      for (let i = 0; i < 20; i++) s.add(`f${i}`, randomBytes(100));
      await s.finish();
    });
    expect(threads).toBe(1);
  });

  it('the walk estimates the entries left from the average directory so far', () => {
    const root = `${out.dir}/estimate`;
    for (let d = 0; d < 10; d++) {
      mkdirSync(`${root}/d${d}`, { recursive: true });
      for (let f = 0; f < 50; f++) writeFileSync(`${root}/d${d}/f${String(f).padStart(2, '0')}`, 'x');
    }
    const cfg = resolveOptions({ image: `${out.dir}/estimate.img`, source: root, timestamp: 0 });
    const progress = new WalkProgress();
    const seen: number[] = [];
    const walk = walkSource(cfg, (inode) => {
      if (inode.name === 'f00') seen.push(progress.entriesLeft());
    }, undefined, progress);
    while (!walk.next().done);
    // In d2, first file: 49 names left there, 7 directories to come, 160 names in the 4 walked.
    expect(seen[2]).toBe(49 + (7 * 160) / 4);
    expect(progress.entriesLeft()).toBe(0);
  });

  it('a file shorter than walked, copied by the thread, fails the build naming it', async () => {
    const s = setup('thread-short', 2);
    for (let i = 0; i < 5; i++) s.add(`f${i}`, randomBytes(100));
    s.add('short', randomBytes(100), 5000);
    const failed = await s.finish().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(BuildError);
    expect((failed as Error).message).toMatch(new RegExp(`^${s.path('short')}: file shrank while being read`));
  });

  it('a small file the walk reads in a batch, shorter than walked, fails the build naming it once the batch is read', async () => {
    const s = setup('batch-short');
    for (let i = 0; i < 10; i++) s.add(`f${i}`, randomBytes(100 + i));
    s.add('short', randomBytes(100), 3000);
    const failed = await s.finish().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(BuildError);
    expect((failed as Error).message).toMatch(new RegExp(`^${s.path('short')}: file shrank while being read`));
  });

  it('the walk pauses every 16 entries while copies are in flight, so the next ones start, and every 512 otherwise', () => {
    const root = `${out.dir}/pauses`;
    mkdirSync(root);
    for (let i = 0; i < 100; i++) writeFileSync(`${root}/f${i}`, `${i}`);
    const cfg = resolveOptions({ image: `${out.dir}/pauses.img`, source: root, timestamp: 0 });
    const pauses = (copying: boolean): number => {
      const walk = walkSource(cfg, undefined, () => copying);
      let n = 0;
      while (!walk.next().done) n++;
      return n;
    };
    expect(pauses(true)).toBe(Math.floor(100 / 16));
    expect(pauses(false)).toBe(0);
  });
});
