import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createCompressor } from '../../src/compress/index.js';
import { compressSteps, drain, runSliced, storedAsIs, type ZJob, type ZParams, zBuffers } from '../../src/mkfs/zdata.js';
import { HAVE, randomBytes, textBytes } from '../compress/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'zdata-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function jobFor(path: string, size: number): ZJob {
  return { path: Buffer.from(path), size, start: 0, length: size, fd: null, offset: 0, algorithm: 0, pclusterBytes: 4096, inlineStart: 0 };
}

const params: ZParams = {
  specs: [{ name: 'lzma' }],
  maxPclusterBytes: 4096,
  ztailpacking: false,
  maxExtentBytes: 1 << 30,
  blkszbits: 12,
};

const lz4: ZParams = { specs: [{ name: 'lz4' }], maxPclusterBytes: 4096, ztailpacking: false, maxExtentBytes: 1 << 30, blkszbits: 12 };

/** Files of these bytes in the test directory, named after `name`, and a job for each. */
function jobsFor(name: string, contents: Uint8Array[]): ZJob[] {
  return contents.map((bytes, i) => {
    const path = join(dir, `${name}-${i}`);
    writeFileSync(path, bytes);
    return jobFor(path, bytes.length);
  });
}

/**
 * Random bytes after a run of zeros: raw pclusters but for the first, so that compression
 * still wins for the whole file (a whole file it does not shrink comes back without output).
 */
function mostlyRandom(n: number, seed: number): Buffer {
  const bytes = Buffer.from(randomBytes(n, seed));
  bytes.fill(0, 0, Math.min(64 << 10, n >> 2));
  return bytes;
}

/** The bytes compressSteps gives for an LZ4 job, padding and all. */
function expectedOutput(job: ZJob): Buffer {
  const image = Buffer.alloc(job.size + 4096);
  let end = 0;
  drain(
    compressSteps(createCompressor('lz4', {}), lz4, job, zBuffers(lz4), (at, bytes) => {
      image.set(bytes, at);
      end = at + bytes.length;
    }),
  );
  return image.subarray(0, end);
}

describe.skipIf(!HAVE.lzma)('compression steps with a compressor slow on incompressible input', () => {
  it('stores random spans raw without asking the compressor, and compresses the text after them', () => {
    const data = Buffer.concat([randomBytes(128 << 10, 11), textBytes(64 << 10, 12)]);
    const path = join(dir, 'mixed');
    writeFileSync(path, data);
    const c = createCompressor('lzma', {});
    const asked = vi.spyOn(c, 'compressDestSize');
    const image = Buffer.alloc(data.length);
    const res = drain(compressSteps(c, params, jobFor(path, data.length), zBuffers(params), (at, bytes) => image.set(bytes, at)));
    const raw = res.extents.filter((e) => e.raw);
    // The 32 random blocks, one raw extent each, holding the file's bytes in place.
    expect(raw).toHaveLength(32);
    raw.forEach((e, i) => {
      expect(e.start).toBe(i * 4096);
      expect(image.subarray(e.pblk * 4096, (e.pblk + 1) * 4096).equals(data.subarray(e.start, e.start + 4096))).toBe(true);
    });
    // Only the text was offered to LZMA, which packed it into fewer blocks than it spans.
    expect(asked.mock.calls.every(([src]) => Buffer.from(src).indexOf(data.subarray(0, 64)) === -1)).toBe(true);
    expect(res.blocks - 32).toBeLessThan(16);
  });
});

describe('output that is a file as it is', () => {
  /** What compressSteps makes of these bytes with LZ4 into 4 KiB pclusters (tail packing as asked), and its output. */
  function compressed(name: string, bytes: Uint8Array, ztailpacking = false) {
    const [job] = jobsFor(name, [bytes]);
    const p = { ...lz4, ztailpacking };
    const out = Buffer.alloc(bytes.length + 8192);
    const res = drain(compressSteps(createCompressor('lz4', {}), p, { ...job!, inlineStart: ztailpacking ? 64 : 0 }, zBuffers(p), (at, b) => out.set(b, at)));
    return { res, out };
  }

  it('is told apart: random bytes stored raw block after block, the last block zero-padded', () => {
    for (const size of [4096, 5000, 3 * 4096, 70_001]) {
      const bytes = randomBytes(size, size);
      const { res, out } = compressed(`raw-${size}`, bytes);
      expect(storedAsIs(res, size, 4096)).toBe(true);
      expect(out.subarray(0, size).equals(Buffer.from(bytes))).toBe(true);
      expect(out.subarray(size, res.blocks * 4096).every((b) => b === 0)).toBe(true);
    }
  });

  it('is not a file with a compressed pcluster, nor one whose tail is packed inline', () => {
    const mixed = Buffer.concat([randomBytes(8192, 1), textBytes(20_000, 2)]);
    expect(storedAsIs(compressed('mixed', mixed).res, mixed.length, 4096)).toBe(false);
    const packed = randomBytes(9000, 3);
    const { res } = compressed('packed', packed, true);
    expect(res.inline).not.toBeNull();
    expect(storedAsIs(res, packed.length, 4096)).toBe(false);
  });
});

describe('a compressor whose result does not depend on input past what it took', () => {
  /** Random bytes, a run of zeros, text, another run, random: the runs end on either side of the first window. */
  function runsOfZeros(zeros: number, seed: number): Uint8Array {
    return Buffer.concat([randomBytes(40_000, seed), new Uint8Array(zeros), textBytes(90_000, seed), new Uint8Array(zeros >> 1), randomBytes(30_000, seed + 1)]);
  }

  /** compressSteps' output bytes and result for one file, from a compressor made fresh. */
  function run(name: 'lz4' | 'lz4hc' | 'lzma', level: number | undefined, pclusterBytes: number, path: string, size: number, wholeWindow: boolean) {
    const c = createCompressor(name, { level, maxPclusterBytes: pclusterBytes });
    if (wholeWindow) Object.defineProperty(c, 'stableBeyond', { value: undefined });
    const p: ZParams = { specs: [{ name }], maxPclusterBytes: pclusterBytes, ztailpacking: true, maxExtentBytes: 1 << 30, blkszbits: 12 };
    const out = Buffer.alloc(size + 2 * pclusterBytes);
    let end = 0;
    const buffers = zBuffers(p);
    const res = drain(
      compressSteps(c, p, { ...jobFor(path, size), pclusterBytes, inlineStart: 64 }, buffers, (at, bytes) => {
        out.set(bytes, at);
        end = Math.max(end, at + bytes.length);
      }),
    );
    return { res, out: out.subarray(0, end), queue: buffers.queue };
  }

  type Case = ['lz4' | 'lz4hc' | 'lzma', number | undefined, number];
  const lzmaCases: Case[] = [
    ['lzma', undefined, 4096],
    ['lzma', undefined, 65536],
  ];
  const cases: Case[] = [['lz4', undefined, 4096], ['lz4', undefined, 65536], ['lz4hc', 9, 4096], ['lz4hc', 12, 65536], ...(HAVE.lzma ? lzmaCases : [])];

  it('is offered a shorter window first, and gives the pclusters the whole window gives', () => {
    const files = jobsFor('zero-runs', [150_000, 190_000, 200_000, 260_000, 600_000].map((n, i) => runsOfZeros(n, 30 + i)));
    files.push(...jobsFor('text', [textBytes(1_200_000, 41)]));
    for (const [name, level, pclusterBytes] of cases) {
      for (const job of files) {
        const short = run(name, level, pclusterBytes, job.path.toString(), job.size, false);
        const whole = run(name, level, pclusterBytes, job.path.toString(), job.size, true);
        expect(short.res, `${name} -C${pclusterBytes} ${job.path.toString()}`).toEqual(whole.res);
        expect(short.out.equals(whole.out), `${name} -C${pclusterBytes} ${job.path.toString()}`).toBe(true);
      }
    }
  });

  it('reads no more than twice its first window into the buffer, unless the input compresses to within 64 KiB of its end', () => {
    const [text, run_] = jobsFor('window', [textBytes(2_000_000, 51), new Uint8Array(2_000_000).fill(0x61)]);
    /** Bytes of the buffer up to its last one written (a fresh buffer is zeros, and the input has none). */
    const touched = (queue: Uint8Array): number => {
      let end = queue.length;
      while (end > 0 && queue[end - 1] === 0) end--;
      return end;
    };
    expect(touched(run('lz4', undefined, 4096, text!.path.toString(), text!.size, false).queue)).toBeLessThanOrEqual(512 << 10);
    expect(touched(run('lz4', undefined, 4096, text!.path.toString(), text!.size, true).queue)).toBeGreaterThan(1_900_000);
    expect(touched(run('lz4', undefined, 4096, run_!.path.toString(), run_!.size, false).queue)).toBeGreaterThan(1_900_000);
  });
});

describe('compression steps with tail packing', () => {
  const tailParams: ZParams = { specs: [{ name: 'lz4hc' }], maxPclusterBytes: 16384, ztailpacking: true, maxExtentBytes: 1 << 30, blkszbits: 12 };

  /** A file whose one pcluster ends well into its second block: about 7 KiB of input past its first. */
  function spillingFile(): { path: string; size: number } {
    const data = textBytes(16500, 21);
    const path = join(dir, 'spill');
    writeFileSync(path, data);
    return { path, size: data.length };
  }

  function compressCalls(withEstimate: boolean): number {
    const c = createCompressor('lz4hc', { backend: 'js' });
    if (!withEstimate) Object.defineProperty(c, 'inputBefore', { value: undefined });
    const asked = vi.spyOn(c, 'compressDestSize');
    const { path, size } = spillingFile();
    const res = drain(compressSteps(c, tailParams, { ...jobFor(path, size), pclusterBytes: 16384, inlineStart: 64 }, zBuffers(tailParams), () => {}));
    expect(res.blocks).toBe(2);
    return asked.mock.calls.length;
  }

  it('does not recompress the last pcluster into fewer blocks when what it would leave over cannot be inlined', () => {
    expect(compressCalls(false)).toBe(2); // tried, and lost
    expect(compressCalls(true)).toBe(1); // LZ4 tells the leftover is over a block: not tried
  });
});

describe('the compression worker pool', () => {
  it('ends its workers by asking them, even before they are up, never with terminate() (a thread stopped inside koffi aborts the process)', async () => {
    const { Worker } = await import('node:worker_threads');
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const terminate = vi.spyOn(Worker.prototype, 'terminate');
    try {
      const pool = new ZPool(2, { specs: [{ name: 'lz4' }], maxPclusterBytes: 4096, ztailpacking: false, maxExtentBytes: 1 << 30, blkszbits: 12 });
      await pool.close();
      expect(terminate).not.toHaveBeenCalled();
    } finally {
      terminate.mockRestore();
    }
  });

  it('hands back every output byte in order, across chunks, and the same again when it reuses the chunks it was given back', async () => {
    const { Worker } = await import('node:worker_threads');
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    // Output of several chunks (random data stays raw), of part of one, and none.
    const files = jobsFor('pooled', [mostlyRandom(700 << 10, 3), textBytes(90_000, 4), textBytes(5000, 5), Buffer.alloc(20_000)]);
    const expected = files.map(expectedOutput);
    const posted = vi.spyOn(Worker.prototype, 'postMessage');
    const pool = new ZPool(1, lz4);
    try {
      expect(pool.rate()).toBe(0);
      for (let round = 0; round < 2; round++) {
        const outcomes = await Promise.all(files.map((job) => pool.compress(job)));
        outcomes.forEach(({ data }, i) => expect(Buffer.concat(data).equals(expected[i]!)).toBe(true));
        for (const { data } of outcomes) for (const piece of data) pool.written(piece);
      }
      const sentBack = posted.mock.calls.flatMap(([m]) => ('jobs' in (m as object) ? (m as { spare: ArrayBuffer[] }).spare : []));
      expect(sentBack.length).toBeGreaterThan(1);
      // What a worker took per second of its time, for ZFeed to tell slow segments.
      expect(pool.rate()).toBeGreaterThan(0);
    } finally {
      posted.mockRestore();
      await pool.close();
    }
  });
});

describe('files copied flat by the pool\'s workers', () => {
  /** A target file and what its bytes should become. */
  function target(name: string, size: number): { path: string; fd: number; expected: Buffer } {
    const path = join(dir, name);
    writeFileSync(path, '');
    return { path, fd: openSync(path, 'r+'), expected: Buffer.alloc(size) };
  }

  it('copies each file\'s block part to its place, from its source or a spool, shared out among the workers', async () => {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const files = [randomBytes(5000, 121), randomBytes(300_000, 122), randomBytes(3 << 20, 123), randomBytes(4096, 124)];
    const paths = files.map((bytes, i) => {
      const path = join(dir, `flat-${i}`);
      writeFileSync(path, bytes);
      return path;
    });
    // The third file's bytes also sit at offset 777 of a spool.
    const spoolPath = join(dir, 'flat-spool');
    writeFileSync(spoolPath, Buffer.concat([Buffer.alloc(777, 9), files[2]!]));
    const spoolFd = openSync(spoolPath, 'r');
    const out = target('flat-image', 8 << 20);
    const copies = [
      { path: Buffer.from(paths[0]!), size: 5000, inlineTail: 904, dst: 0, spool: null },
      { path: Buffer.from(paths[1]!), size: 300_000, inlineTail: 0, dst: 8192, spool: null },
      { path: Buffer.from('in the spool'), size: 3 << 20, inlineTail: 0, dst: 1 << 20, spool: { fd: spoolFd, offset: 777 } },
      { path: Buffer.from(paths[3]!), size: 4096, inlineTail: 0, dst: 5 << 20, spool: null },
    ];
    copies.forEach((c, i) => out.expected.set(files[i]!.subarray(0, c.size - c.inlineTail), c.dst));
    const pool = new ZPool(2, lz4);
    const posted = vi.spyOn((await import('node:worker_threads')).Worker.prototype, 'postMessage');
    try {
      await pool.copyFlat(copies, out.fd, out.path);
      const shares = posted.mock.calls.map(([m]) => m as { flat?: unknown[] }).filter((m) => m.flat);
      expect(shares.map((m) => m.flat!.length)).toEqual([2, 2]);
      const written = Buffer.alloc(out.expected.length);
      readSync(out.fd, written, 0, written.length, 0);
      expect(written.equals(out.expected)).toBe(true);
    } finally {
      posted.mockRestore();
      await pool.close();
      closeSync(spoolFd);
      closeSync(out.fd);
    }
  });

  it('fails with the file\'s error when a source is not what it was (here shorter), as a build error naming it', async () => {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const { BuildError } = await import('../../src/mkfs/errors.js');
    const path = join(dir, 'flat-shrunk');
    writeFileSync(path, randomBytes(10_000, 131));
    const out = target('flat-shrunk-image', 0);
    const pool = new ZPool(1, lz4);
    try {
      const copy = pool.copyFlat([{ path: Buffer.from(path), size: 20_000, inlineTail: 0, dst: 0, spool: null }], out.fd, out.path);
      await expect(copy).rejects.toThrow(BuildError);
      await expect(copy).rejects.toThrow(`${path}: file shrank while being read`);
    } finally {
      await pool.close();
      closeSync(out.fd);
    }
  });

  it('stops between files once the pool is halted, and says so', async () => {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const path = join(dir, 'flat-halted');
    writeFileSync(path, randomBytes(10_000, 141));
    const out = target('flat-halted-image', 0);
    const pool = new ZPool(1, lz4);
    try {
      pool.halt();
      await expect(pool.copyFlat([{ path: Buffer.from(path), size: 10_000, inlineTail: 0, dst: 0, spool: null }], out.fd, out.path)).rejects.toThrow('stopped');
      expect(readFileSync(out.path).length).toBe(0);
    } finally {
      await pool.close();
      closeSync(out.fd);
    }
  });
});

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('the main thread in the compression pool', () => {

  function jobs(): { jobs: ZJob[]; expected: Buffer[] } {
    const list = jobsFor('here', [textBytes(300_000, 41), mostlyRandom(50_000, 42), textBytes(9000, 43)]);
    return { jobs: list, expected: list.map(expectedOutput) };
  }

  it('compresses the jobs queued on the calling thread, with the same output a worker gives, while the workers are busy', async () => {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const { jobs: list, expected } = jobs();
    const pool = new ZPool(1, lz4, [createCompressor('lz4', {})]);
    try {
      expect(pool.threads).toBe(2);
      // More input than the worker is given at once: the jobs after it stay queued.
      const big = join(dir, 'here-big');
      writeFileSync(big, textBytes(3 << 20, 44));
      const filler = pool.compress(jobFor(big, 3 << 20));
      const results = list.map((job) => pool.compress(job));
      let here = 0;
      while (await pool.runQueued(nextTurn)) here++;
      expect(here).toBeGreaterThan(0);
      expect(results.some((r) => pool.isDelivered(r))).toBe(true);
      const outcomes = await Promise.all(results);
      outcomes.forEach(({ data }, i) => expect(Buffer.concat(data).equals(expected[i]!)).toBe(true));
      await filler;
    } finally {
      await pool.close();
    }
  });

  it('gives a worker jobs only once its thread runs: those queued before stay for the main thread to take', async () => {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const { jobs: list, expected } = jobs();
    const pool = new ZPool(1, lz4, [createCompressor('lz4', {})]);
    try {
      const results = list.map((job) => pool.compress(job));
      expect(pool.queuedJobs).toBe(list.length);
      // With no help from the main thread, the jobs go to the worker once it runs.
      const outcomes = await Promise.all(results);
      outcomes.forEach(({ data }, i) => expect(Buffer.concat(data).equals(expected[i]!)).toBe(true));
      expect(pool.queuedJobs).toBe(0);
    } finally {
      await pool.close();
    }
  });

  /** A pool whose scratch files go to the test directory (outputOf reads spilled output back). */
  async function spillingPool(workers: number, local: boolean) {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const { Spool } = await import('../../src/mkfs/writer.js');
    const made: string[] = [];
    const pool = new ZPool(workers, lz4, local ? [createCompressor('lz4', {})] : null, (what) => {
      const file = new Spool(join(dir, `scratch-${made.length}-${what}`));
      made.push(file.path);
      return file;
    });
    return { pool, made };
  }

  function outputOf(o: { res: { blocks: number }; data: Uint8Array[]; spilled: { fd: number; offset: number } | null }): Buffer {
    if (!o.spilled) return Buffer.concat(o.data);
    expect(o.data).toEqual([]);
    const out = Buffer.alloc(o.res.blocks * 4096);
    expect(readSync(o.spilled.fd, out, 0, out.length, o.spilled.offset)).toBe(out.length);
    return out;
  }

  it('sends the output of batches past what it holds in memory to a spill file, the same bytes', async () => {
    const list = jobsFor('spilled', Array.from({ length: 120 }, (_, i) => textBytes(100_000, 60 + i)));
    const expected = list.map(expectedOutput);
    const { pool, made } = await spillingPool(1, false);
    try {
      // Nothing is written: every result held in memory keeps its chunk.
      const outcomes = await Promise.all(list.map((job) => pool.compress(job)));
      const inMemory = outcomes.filter((o) => !o.spilled);
      expect(inMemory.length).toBeGreaterThan(0);
      expect(inMemory.length).toBeLessThan(outcomes.length);
      outcomes.forEach((o, i) => expect(outputOf(o).equals(expected[i]!)).toBe(true));
      // In memory: 16 chunks' worth (a thread's share), and the batch that crossed it.
      expect(new Set(inMemory.flatMap((o) => o.data.map((d) => d.buffer))).size).toBeLessThanOrEqual(16 + 3);
    } finally {
      await pool.close();
    }
    // Closing the pool removes its scratch files.
    expect(made.filter((f) => existsSync(f))).toEqual([]);
  });

  it('a spill file that cannot be written fails the jobs that needed it with the file\'s error, not the process', async () => {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const { Spool } = await import('../../src/mkfs/writer.js');
    const { BuildError } = await import('../../src/mkfs/errors.js');
    const list = jobsFor('full', Array.from({ length: 120 }, (_, i) => textBytes(100_000, 160 + i)));
    const full = new Spool(join(dir, 'full-spill'));
    vi.spyOn(full, 'append').mockImplementation(() => {
      throw new BuildError(`${full.path}: write failed: No space left on device`);
    });
    const made: Array<InstanceType<typeof Spool>> = [];
    const pool = new ZPool(1, lz4, null, (what) => {
      const file = what === 'spill' ? full : new Spool(join(dir, `full-${made.length}-${what}`));
      made.push(file);
      return file;
    });
    try {
      const outcomes = await Promise.allSettled(list.map((job) => pool.compress(job)));
      const failed = outcomes.filter((o) => o.status === 'rejected');
      expect(failed.length).toBeGreaterThan(0);
      for (const f of failed) expect((f as PromiseRejectedResult).reason.message).toMatch(/full-spill: write failed: No space left on device/);
    } finally {
      await pool.close();
    }
  });

  it('a scratch file that cannot be made fails the pool at once, and the files made before it go', async () => {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const { Spool } = await import('../../src/mkfs/writer.js');
    const made: string[] = [];
    expect(
      () =>
        new ZPool(2, lz4, [createCompressor('lz4', {})], (what) => {
          if (made.length === 2) throw new Error(`${what}: cannot create scratch file: No space left on device`);
          const file = new Spool(join(dir, `unmade-${what}`));
          made.push(file.path);
          return file;
        }),
    ).toThrow('spill-main: cannot create scratch file');
    expect(made).toHaveLength(2);
    expect(made.filter((f) => existsSync(f))).toEqual([]);
  });

  it('a job whose output passes a megabyte goes on in its thread\'s spill file, on a worker and on the main thread', async () => {
    const list = jobsFor('overflow', [mostlyRandom(3 << 20, 71), textBytes(50_000, 72), mostlyRandom((2 << 20) + 123, 73)]);
    const expected = list.map(expectedOutput);
    const { pool } = await spillingPool(1, true);
    try {
      // Jobs go to a worker once its thread runs: this one answers first, then takes the first job.
      await pool.compress(jobsFor('warm-up', [textBytes(1000, 70)])[0]!);
      const results = list.map((job) => pool.compress(job));
      while (await pool.runQueued(nextTurn));
      const outcomes = await Promise.all(results);
      outcomes.forEach((o, i) => expect(outputOf(o).equals(expected[i]!)).toBe(true));
      expect(outcomes.map((o) => o.spilled !== null)).toEqual([true, false, true]);
      expect(new Set(outcomes.filter((o) => o.spilled).map((o) => o.spilled!.fd)).size).toBe(2);
    } finally {
      await pool.close();
    }
  });

  /**
   * An LZ4 ChunkedCompressor with a spill file of its own; every chunk it cannot fill again
   * itself comes from `given`.
   */
  async function spillingCompressor(name: string) {
    const { ChunkedCompressor, CHUNK_BYTES } = await import('../../src/mkfs/zchunks.js');
    const { FdAppender } = await import('../../src/mkfs/writer.js');
    const spillPath = join(dir, name);
    writeFileSync(spillPath, '');
    const fd = openSync(spillPath, 'r+');
    const given: ArrayBuffer[] = [];
    const give = (): ArrayBuffer => {
      given.push(new ArrayBuffer(CHUNK_BYTES));
      return given[given.length - 1]!;
    };
    const spill = new FdAppender(fd, spillPath);
    return { chunked: new ChunkedCompressor([createCompressor('lz4', {})], lz4, zBuffers(lz4), give, spill), given, spill, fd, CHUNK_BYTES };
  }

  it('fills again the chunks a job going to the spill file had filled alone, and sends them with no reply', async () => {
    const { chunked, given, fd, CHUNK_BYTES } = await spillingCompressor('refill-spill');
    // A small job, one of five chunks (random data stays raw), then another small one.
    const list = jobsFor('refill', [textBytes(9000, 81), mostlyRandom(5 * CHUNK_BYTES, 82), textBytes(9000, 83)]);
    const expected = list.map(expectedOutput);
    try {
      const [first, big, last] = list.map((job, id) => chunked.run(id, job));
      expect(Buffer.concat(first!.data!).equals(expected[0]!)).toBe(true);
      expect(big!.data).toEqual([]);
      expect(big!.spilled).toBe(0);
      const spilled = Buffer.alloc(expected[1]!.length);
      readSync(fd, spilled, 0, spilled.length, 0);
      expect(spilled.equals(expected[1]!)).toBe(true);
      expect(Buffer.concat(last!.data!).equals(expected[2]!)).toBe(true);
      // The first chunk, shared by the first two jobs, and three the big one filled alone
      // before it went to the spill file; the last job fills one of those three again.
      expect(given).toHaveLength(4);
      const reused = last!.data![0]!.buffer;
      expect(given.slice(1)).toContain(reused);
      // Sent with the replies: the chunks replies point into, not the other two.
      expect(chunked.takeChunks()).toEqual([given[0], reused]);
    } finally {
      closeSync(fd);
    }
  });

  it('gives back no output for a whole file compression does not shrink, and fills again the chunks and spill file it took', async () => {
    const { chunked, given, spill, fd, CHUNK_BYTES } = await spillingCompressor('lost-spill');
    // Whole random files: one within the chunk in progress, one of three chunks, one past
    // four (it goes on in the spill file); a small job before and after each.
    const contents = [
      textBytes(9000, 101),
      randomBytes(20_000, 102),
      textBytes(9000, 103),
      randomBytes(3 * CHUNK_BYTES + 1000, 104),
      textBytes(9000, 105),
      randomBytes(6 * CHUNK_BYTES, 106),
      textBytes(9000, 107),
    ];
    const list = jobsFor('lost', contents);
    const expected = list.map(expectedOutput);
    try {
      const replies = list.map((job, id) => chunked.run(id, job));
      for (const i of [1, 3, 5]) {
        expect(replies[i]!.lost).toBe(true);
        expect(replies[i]!.data).toEqual([]);
        expect(replies[i]!.spilled).toBeUndefined();
        expect(replies[i]!.res!.extents).toEqual([]);
      }
      // Each comes back with its last size % 4096 bytes (they may go inline): from the read
      // buffer for the small file read whole, from the file for the others.
      expect(Buffer.from(replies[1]!.tail!).equals(contents[1]!.subarray(20_000 - 20_000 % 4096))).toBe(true);
      expect(Buffer.from(replies[3]!.tail!).equals(contents[3]!.subarray(contents[3]!.length - 1000))).toBe(true);
      expect(replies[5]!.tail).toBeUndefined();
      for (const i of [0, 2, 4, 6]) {
        expect(replies[i]!.lost).toBeUndefined();
        expect(Buffer.concat(replies[i]!.data!).equals(expected[i]!)).toBe(true);
      }
      // Each small job's output starts where the one before the lost file ended.
      const end = (piece: Uint8Array): number => piece.byteOffset + piece.length;
      for (const i of [2, 4, 6]) {
        const before = replies[i - 2]!.data!;
        expect(replies[i]!.data![0]!.buffer).toBe(before[0]!.buffer);
        expect(replies[i]!.data![0]!.byteOffset).toBe(end(before[before.length - 1]!));
      }
      // The three chunks the second lost file began carried the third, nothing stayed spilled,
      // and only the chunk the replies point into goes with them.
      expect(given).toHaveLength(4);
      expect(spill.length).toBe(0);
      expect(chunked.takeChunks()).toEqual([given[0]]);
    } finally {
      closeSync(fd);
    }
  });

  it('gives back the output of a segment compression does not shrink: only the whole file\'s result tells', async () => {
    const { ChunkedCompressor } = await import('../../src/mkfs/zchunks.js');
    const [whole] = jobsFor('lost-segment', [randomBytes(40_000, 111)]);
    const segment: ZJob = { ...whole!, length: 20_000 };
    const expected = expectedOutput(segment);
    const chunked = new ChunkedCompressor([createCompressor('lz4', {})], lz4, zBuffers(lz4), () => undefined);
    const reply = chunked.run(0, segment);
    expect(reply.lost).toBeUndefined();
    expect(Buffer.concat(reply.data!).equals(expected)).toBe(true);
  });

  describe('with tail packing', () => {
    const packed: ZParams = { ...lz4, ztailpacking: true };
    /** Jobs whose last pcluster can go inline after a 64-byte inode. */
    const packedJobs = (name: string, contents: Uint8Array[]): ZJob[] => jobsFor(name, contents).map((job) => ({ ...job, inlineStart: 64 }));

    /** The pcluster bytes and the inline pcluster compressSteps gives for a job. */
    function expectedPacked(job: ZJob): { blocks: Buffer; inline: Uint8Array | null } {
      const image = Buffer.alloc(job.size + 4096);
      let end = 0;
      const res = drain(
        compressSteps(createCompressor('lz4', {}), packed, job, zBuffers(packed), (at, bytes) => {
          image.set(bytes, at);
          end = at + bytes.length;
        }),
      );
      return { blocks: image.subarray(0, end), inline: res.inline };
    }

    it('carries a job\'s inline pcluster in the chunk after its pclusters, as a piece of its own, not in a buffer of its own', async () => {
      const { ChunkedCompressor, CHUNK_BYTES } = await import('../../src/mkfs/zchunks.js');
      const list = packedJobs('inline', [textBytes(10_000, 91), textBytes(700, 92)]);
      const expected = list.map(expectedPacked);
      expect(expected.every((e) => e.inline !== null)).toBe(true);
      const chunked = new ChunkedCompressor([createCompressor('lz4', {})], packed, zBuffers(packed), () => new ArrayBuffer(CHUNK_BYTES));
      const replies = list.map((job, id) => chunked.run(id, job));
      const chunks = chunked.takeChunks();
      replies.forEach((r, i) => {
        expect(r.inlineLast).toBe(true);
        expect(r.res!.inline).toBeNull();
        const last = r.data![r.data!.length - 1]!;
        expect(Buffer.from(last).equals(Buffer.from(expected[i]!.inline!))).toBe(true);
        expect(Buffer.concat(r.data!.slice(0, -1)).equals(expected[i]!.blocks)).toBe(true);
        expect(chunks).toContain(last.buffer);
      });
    });

    it('gives the inline pcluster back as the job\'s result, in memory or after its batch went to the spill file', async () => {
      const { ZPool } = await import('../../src/mkfs/zpool.js');
      const { Spool } = await import('../../src/mkfs/writer.js');
      const list = packedJobs('inline-pool', Array.from({ length: 120 }, (_, i) => textBytes(100_000 + 77 * i, 200 + i)));
      const expected = list.map(expectedPacked);
      const pool = new ZPool(1, packed, null, (what) => new Spool(join(dir, `inline-${what}`)));
      try {
        // Nothing is written: past what the pool holds, batches go to the spill file.
        const outcomes = await Promise.all(list.map((job) => pool.compress(job)));
        expect(outcomes.some((o) => o.spilled)).toBe(true);
        expect(outcomes.some((o) => !o.spilled)).toBe(true);
        outcomes.forEach((o, i) => {
          expect(Buffer.from(o.res.inline!).equals(Buffer.from(expected[i]!.inline!))).toBe(true);
          // Held in memory it is a view into a chunk; from a batch spilled, whose chunks
          // were filled again at once, a copy.
          expect(o.res.inline!.buffer.byteLength === o.res.inline!.length).toBe(o.spilled !== null);
        });
      } finally {
        await pool.close();
      }
    });
  });

  it('frees a chunk it lets go at once, not when the collector gets to it', async () => {
    const { discardChunk, CHUNK_BYTES } = await import('../../src/mkfs/zchunks.js');
    const chunk = new ArrayBuffer(CHUNK_BYTES);
    const view = new Uint8Array(chunk);
    discardChunk(chunk);
    expect(chunk.byteLength).toBe(0);
    expect(view.length).toBe(0);
  });

  it('takes no part without compressors of its own', async () => {
    const { ZPool } = await import('../../src/mkfs/zpool.js');
    const { jobs: list } = jobs();
    const pool = new ZPool(1, lz4);
    try {
      expect(pool.threads).toBe(1);
      const results = list.map((job) => pool.compress(job));
      expect(await pool.runQueued(nextTurn)).toBe(false);
      await Promise.all(results);
      expect(results.every((r) => pool.isDelivered(r))).toBe(true);
    } finally {
      await pool.close();
    }
  });
});

describe('compression on the main thread, a slice at a time', () => {
  /** Steps that each keep the thread busy for `ms`; `ended` tells whether the finally ran. */
  function* busySteps(count: number, ms: number, state: { ended: boolean }): Generator<void, string, void> {
    try {
      for (let i = 0; i < count; i++) {
        const until = performance.now() + ms;
        while (performance.now() < until);
        yield;
      }
      return 'done';
    } finally {
      state.ended = true;
    }
  }

  it('gives the event loop a turn every 50 ms, not after every step, and returns what the steps return', async () => {
    let turns = 0;
    const state = { ended: false };
    const began = performance.now();
    const value = await runSliced(busySteps(24, 10, state), async () => {
      turns++;
    });
    const elapsed = performance.now() - began;
    expect(value).toBe('done');
    expect(turns).toBeGreaterThanOrEqual(2);
    expect(turns).toBeLessThanOrEqual(Math.floor(elapsed / 50));
  });

  it('ends the steps when a turn throws (an abort), and passes the error on', async () => {
    const state = { ended: false };
    const aborted = runSliced(busySteps(10, 30, state), async () => {
      throw new Error('aborted');
    });
    await expect(aborted).rejects.toThrow('aborted');
    expect(state.ended).toBe(true);
  });

  it('closes the source file when a compression is ended part way', () => {
    const path = join(dir, 'ended');
    writeFileSync(path, textBytes(200_000, 51));
    const open = () => readdirSync('/proc/self/fd').length;
    const before = open();
    const steps = compressSteps(createCompressor('lz4', {}), lz4, jobFor(path, 200_000), zBuffers(lz4), () => {});
    steps.next();
    steps.next();
    expect(open()).toBe(before + 1);
    steps.return({ extents: [], blocks: 0, inline: null });
    expect(open()).toBe(before);
  });
});

describe('compression steps reading a source file', () => {
  function run(actual: number, walked: number): () => unknown {
    const path = join(dir, `sized-${actual}-${walked}`);
    writeFileSync(path, textBytes(actual, 31));
    return () => drain(compressSteps(createCompressor('lz4', {}), lz4, jobFor(path, walked), zBuffers(lz4), () => {}));
  }

  it('reads a file that kept its size', () => {
    expect(run(50_000, 50_000)).not.toThrow();
  });

  it('reports a file longer than when it was walked', () => {
    expect(run(50_001, 50_000)).toThrow(/grew while being read \(expected 50000 bytes\)/);
  });

  it('reports a file that grew past the read window (the end is then checked by a read of its own)', () => {
    // Larger than the window buffer, so no read has room to ask for the byte past the end.
    expect(run((8 << 20) + 10, 8 << 20)).toThrow(/grew while being read/);
  });

  it('reports a file shorter than when it was walked', () => {
    expect(run(40_000, 50_000)).toThrow(/shrank while being read/);
  });
});

/**
 * A ZFeed for `algorithm` over a stand-in pool of two threads that has measured no rate yet
 * (no segment counts as slow), and `file(name, size)` adopting a file into it.
 */
async function feedOver(algorithm: string, pool: { compress: (job: ZJob, first?: boolean) => Promise<unknown>; delivered: boolean }) {
  const { ZFeed } = await import('../../src/mkfs/zdata.js');
  const { newInode } = await import('../../src/mkfs/tree.js');
  const { geometry } = await import('../../src/format/types.js');
  const stand = {
    threads: 2,
    compress: pool.compress,
    isDelivered: () => pool.delivered,
    runQueued: async () => false,
    rate: () => 0,
    hold: () => {},
    release: () => {},
    close: async () => {},
  };
  type Feed = InstanceType<typeof ZFeed>;
  const feed = new ZFeed(() => stand as unknown as NonNullable<Feed['pool']>, { specs: [{ name: algorithm }] } as unknown as ConstructorParameters<typeof ZFeed>[1], geometry(12));
  const ids = { uid: 0, gid: 0, mtime: 0, mtimeNsec: 0 };
  return { feed, file: (name: string, size: number) => feed.adopt(newInode(0o100644, ids, name, null), jobFor(name, size)) };
}

describe('placing compressed files in order', () => {
  it('lets the event loop turn every few milliseconds while results already in are placed, so the workers get their next batches', async () => {
    const outcome = { res: { extents: [], blocks: 0, inline: null }, data: [], spilled: null };
    // Every result is in at once: the main thread never has to wait for one.
    const { feed, file } = await feedOver('lzma', { compress: () => Promise.resolve(outcome), delivered: true });
    const work = Array.from({ length: 200 }, (_, i) => file(`f${i}`, 16 << 10));
    feed.start(work);
    let turns = 0;
    const yieldNow = async (): Promise<void> => {
      turns++;
      await nextTurn();
    };
    const began = performance.now();
    for (const item of work) {
      await feed.result(item, 0, yieldNow);
      // Placing a file takes the main thread a while.
      for (const until = performance.now() + 0.25; performance.now() < until; );
    }
    const elapsed = performance.now() - began;
    expect(elapsed).toBeGreaterThanOrEqual(50);
    expect(turns).toBeGreaterThanOrEqual(Math.floor(elapsed / 4));
  });
});

describe('handing files to the pool', () => {
  /** What a feed hands its pool from start() on (each segment's length, and whether it went first), before any is placed. */
  async function firstSubmissions(algorithm: string, walking: boolean): Promise<Array<{ length: number; first: boolean }>> {
    const { SEGMENT_BYTES } = await import('../../src/mkfs/zdata.js');
    const sent: Array<{ length: number; first: boolean }> = [];
    const { feed, file } = await feedOver(algorithm, {
      compress: (job, first = false) => {
        sent.push({ length: job.length, first });
        return new Promise(() => {});
      },
      delivered: false,
    });
    // More small files than the pool may have in flight (three segments' worth), then a big one.
    const small = Array.from({ length: 64 }, (_, i) => file(`s${i}`, 1 << 20));
    const big = file('big', 2 * SEGMENT_BYTES);
    if (walking) feed.hold();
    feed.start([...small, big]);
    return sent;
  }

  it('sends big files ahead of their turn once the walk is over, for a fast algorithm too (no thread is left alone with a big last file)', async () => {
    const { SEGMENT_BYTES } = await import('../../src/mkfs/zdata.js');
    const sent = await firstSubmissions('lz4', false);
    expect(sent.slice(0, 2)).toEqual([
      { length: SEGMENT_BYTES, first: true },
      { length: SEGMENT_BYTES, first: true },
    ]);
    expect(sent.slice(2)).toEqual(Array.from({ length: 3 * 16 }, () => ({ length: 1 << 20, first: false })));
  });

  it('sends big files in their turn while a fast algorithm\'s walk goes on (the main thread then reads the small files)', async () => {
    const sent = await firstSubmissions('lz4', true);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((s) => s.length === 1 << 20 && !s.first)).toBe(true);
  });

  it('has half its input budget in flight while plain LZ4\'s walk goes on (nothing is placed, and more output would be spilled), all of it for slower algorithms', async () => {
    expect((await firstSubmissions('lz4', true)).length).toBe(3 * 8);
    expect((await firstSubmissions('zstd', true)).length).toBe(3 * 16);
  });
});
