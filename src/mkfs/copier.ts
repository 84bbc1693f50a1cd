// Uncompressed builds from a directory: file data goes into the image while the walk goes
// on, ahead of the metadata (as compressed builds and --tar=f lay it out). Big files are
// copied in the kernel on libuv's thread pool (see RangeCopier), which goes on while the
// metadata is written. The walk reads the others itself, until it has found many: a tree
// of thousands of small files then gets a thread of its own for them (copy-worker.ts),
// which goes on while the metadata is written too; the inode writer reads the tails of the
// files it has not reached yet itself (settleTails) rather than wait for it. Each file gets
// its blocks when it is found, so the layout does not depend on who copies it or when.

import { closeSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { type BlockGeometry, byteOffset } from '../format/types.js';
import { allData } from './copy-range.js';
import { BuildError, fileShrank } from './errors.js';
import { checkSize, type CopyJob, KERNEL_COPY_MIN, openSource, placeWhole, readTail, readTailAt, runCopy } from './file-copy.js';
import type { BuildConfig } from './options.js';
import { plannedInlineTail, superBlockAddr } from './planner.js';
import type { RangeCopier } from './range-copier.js';
import { SmallFileReads } from './small-reads.js';
import type { TreeInode } from './tree.js';
import { startWorker, type WorkerBoot, workerScript } from './worker-script.js';
import { FdWriter, type ImageWriter, type Spool } from './writer.js';

/** What the thread is started with. */
export interface CopierData {
  imageFd: number;
  imagePath: string;
  tailsFd: number;
  tailsPath: string;
  bufferBytes: number;
  /**
   * Int32 [0]: jobs the thread has finished (or dropped); [1]: nonzero once it is to stop;
   * [2]: jobs whose inline tails are in the spool file (written out after each batch).
   */
  progress: SharedArrayBuffer;
  boot: WorkerBoot | null;
}

export interface CopyMessage {
  jobs?: CopyJob[];
  /** No more jobs: flush, then answer `done`. */
  end?: boolean;
  /** End the thread (jobs still queued are dropped). */
  stop?: boolean;
}

export interface CopyReply {
  done?: boolean;
  error?: string;
  /** Not a user's error: a bug, shown as such. */
  internal?: boolean;
}

/**
 * Big files waiting for the thread pool at most, each holding its descriptor open: past
 * that the next big file goes the way of the small ones (the pool is behind, and
 * descriptors are limited).
 */
const POOL_BACKLOG_FILES = 64;
/** A batch goes out to the thread at this many files or bytes: few messages. */
const BATCH_FILES = 32;
const BATCH_BYTES = 1 << 20;
/** Files queued for the thread at most: past that the walk copies files itself. */
const THREAD_BACKLOG_FILES = 1024;
/** The read buffers, the walk's and the thread's: files smaller than this take a single read. */
const BUFFER_BYTES = 1 << 20;
/**
 * The thread starts once the walk has read this many files itself, if the walk has at least
 * THREAD_WORTH_ENTRIES entries still to come by its estimate: it costs 80-130 ms of CPU to
 * come online and 15 MB of memory, which a few thousand small files do not win back (a
 * Debian root's 4,900 build as fast without it, 10,000 of a few bytes 0.27 s without it
 * against 0.31 with it from the 8,192nd on), and 100,000 win well (2.3 s against 1.8; 1.175
 * s from the 4,096th against 1.205 from the 8,192nd).
 */
const THREAD_START_FILES = 4096;
const THREAD_WORTH_ENTRIES = 8192;

/** When the copy thread starts (see THREAD_START_FILES). */
export interface CopyThreadRule {
  /** Files the walk copies itself first. */
  afterFiles?: number;
  /** The walk's estimate of the entries it has still to come (see WalkProgress). */
  entriesLeft?: () => number;
}

export class FileCopier {
  private worker: Worker | null = null;
  private readonly firstBlk: number;
  private nextBlk: number;
  /** File bytes placed. */
  private bytes = 0;
  /** Files the walk copied itself. */
  private copiedHere = 0;
  /** Inline tails of the walk's own copies go to their place in the spool through this. */
  private readonly tailsOut: FdWriter;
  private buf: Buffer | null = null;
  /** Small files the walk reads itself, in batches (undefined: not tried yet; null: one by one). */
  private reads: SmallFileReads<CopyJob> | null | undefined;
  private batch: CopyJob[] = [];
  private batchBytes = 0;
  private error: Error | null = null;
  private finished: Promise<void> = Promise.resolve();
  private exited: Promise<void> = Promise.resolve();
  private ended = false;
  /** Jobs handed to the thread (batched or posted), and how many it has finished. */
  private queued = 0;
  private readonly done: Int32Array;
  /** Jobs handed to the thread with an inline tail it may not have written yet, and their numbers. */
  private unsettled: Array<{ n: number; job: CopyJob }> = [];
  private unsettledHead = 0;

  constructor(
    private readonly cfg: BuildConfig,
    private readonly g: BlockGeometry,
    private readonly writer: ImageWriter,
    private readonly tails: Spool,
    /**
     * Copies on the thread pool, and the copy thread, or null for neither: compressed builds
     * copy only files smaller than a block here (the rest is compressed), which the main
     * thread reads for less than a thread's start costs.
     */
    private readonly ranges: RangeCopier | null,
    private readonly thread: CopyThreadRule = {},
  ) {
    this.firstBlk = superBlockAddr(g) + 1;
    this.nextBlk = this.firstBlk;
    this.done = new Int32Array(new SharedArrayBuffer(12));
    this.tailsOut = new FdWriter(tails.readableFd(), tails.path, 64 << 10);
  }

  private start(): void {
    const entry = workerScript('copy-worker', ['copy']);
    const data: CopierData = {
      imageFd: this.writer.descriptor,
      imagePath: this.writer.imagePath,
      tailsFd: this.tails.readableFd(),
      tailsPath: this.tails.path,
      bufferBytes: BUFFER_BYTES,
      progress: this.done.buffer as SharedArrayBuffer,
      boot: entry.boot,
    };
    const worker = startWorker(entry, data);
    this.finished = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: CopyReply) => {
        if (m.error !== undefined) this.error ??= m.internal ? new Error(`file-copy thread: ${m.error}`) : new BuildError(m.error);
        if (!m.done) return;
        if (this.error) reject(this.error);
        else resolve();
        // Its work is done: the thread (and its heap) goes now, while the metadata is written.
        const stop: CopyMessage = { stop: true };
        worker.postMessage(stop);
      });
      worker.on('error', (e) => reject(new Error(`file-copy thread failed: ${e.message}`)));
      worker.on('exit', () => reject(this.error ?? new Error('file-copy thread stopped early')));
    });
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    // Observed in finish(); an early failure must not count as unhandled meanwhile.
    this.finished.catch(() => {});
    this.worker = worker;
  }

  /**
   * A regular file whose inode form is final (see walkSource): its blocks follow the ones
   * given out before and its tail gets a place in the spool; then its blocks are copied on
   * the thread pool, by the copy thread, or here.
   */
  add(inode: TreeInode, path: Buffer): void {
    const size = inode.size;
    if (size === 0) return;
    const { blksz } = this.g;
    const inline = plannedInlineTail(this.cfg, this.g, inode);
    const inlineTail = inline ? size % blksz : 0;
    const dst = this.nextBlk * blksz;
    inode.dataBlk = this.nextBlk;
    inode.dataOffset = inline ? this.tails.reserve(inlineTail) : -1;
    this.nextBlk += Math.ceil((size - inlineTail) / blksz);
    this.bytes += size;
    const tail = this.copyAhead(path, size, inlineTail, dst);
    if (tail === undefined) {
      const job: CopyJob = { path, size, inlineTail, dst, tailAt: inode.dataOffset };
      if (this.toThread(job)) return;
      // The walk copies it: in a batch of reads where it can, else now.
      this.copiedHere++;
      if (this.reads === undefined) this.reads = SmallFileReads.create((j: CopyJob, bytes) => this.readDone(j, bytes));
      if (!this.reads?.add(path, size, job)) this.copyHere(job);
    } else if (tail) this.tailsOut.writeAt(byteOffset(inode.dataOffset), tail);
  }

  /** A small file of a batch of reads: its bytes, or null to read it now. */
  private readDone(job: CopyJob, bytes: Buffer | null): void {
    if (!bytes) {
      this.copyHere(job);
      return;
    }
    const tail = placeWhole({ size: job.size, inlineTail: job.inlineTail, dst: byteOffset(job.dst), untouched: true }, bytes, this.writer);
    if (tail) this.tailsOut.writeAt(byteOffset(job.tailAt), tail);
  }

  private copyHere(job: CopyJob): void {
    this.buf ??= Buffer.allocUnsafe(BUFFER_BYTES);
    const tail = runCopy(job, this.writer, this.buf);
    if (tail) this.tailsOut.writeAt(byteOffset(job.tailAt), tail);
  }

  /**
   * A big file's blocks (at `dst` in the image) handed to the thread pool, its inline tail
   * read here and returned (null if none); undefined, and nothing done, for a file to copy
   * another way: small, with holes (copied by reading, skipping them), or with the pool behind.
   */
  copyAhead(path: Buffer, size: number, inlineTail: number, dst: number): Buffer | null | undefined {
    const blockBytes = size - inlineTail;
    if (blockBytes < KERNEL_COPY_MIN || !this.ranges?.threaded || this.ranges.backlog >= POOL_BACKLOG_FILES) return undefined;
    const shown = path.toString();
    const fd = openSource(path, shown);
    let tail: Buffer | null = null;
    try {
      if (!allData(fd, blockBytes)) {
        closeSync(fd);
        return undefined;
      }
      if (inlineTail > 0) {
        tail = Buffer.allocUnsafe(inlineTail);
        readTailAt(fd, shown, tail, size);
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.ranges.copy({
      fd,
      at: 0,
      dst,
      length: blockBytes,
      endedAt: (at) => fileShrank(shown, size, at),
      settled: (copied) => {
        try {
          if (copied) checkSize(fd, shown, size);
        } finally {
          closeSync(fd);
        }
      },
    });
    return tail;
  }

  /** Queues a job for the copy thread (started once the walk has copied enough itself); false: copy it here. */
  private toThread(job: CopyJob): boolean {
    if (!this.ranges || this.ended) return false;
    if (
      !this.worker &&
      this.copiedHere >= (this.thread.afterFiles ?? THREAD_START_FILES) &&
      (this.thread.entriesLeft?.() ?? Infinity) >= THREAD_WORTH_ENTRIES
    )
      this.start();
    if (!this.worker || this.queued - Atomics.load(this.done, 0) >= THREAD_BACKLOG_FILES) return false;
    this.batch.push(job);
    if (job.inlineTail > 0) this.unsettled.push({ n: this.queued, job });
    this.queued++;
    this.dropSettled();
    this.batchBytes += job.size;
    if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) this.post();
    return true;
  }

  /** Forgets the tails the thread has written out (the list stays as short as its backlog). */
  private dropSettled(): void {
    const onDisk = Atomics.load(this.done, 2);
    while (this.unsettledHead < this.unsettled.length && this.unsettled[this.unsettledHead]!.n < onDisk) this.unsettledHead++;
    if (this.unsettledHead > 1024 && this.unsettledHead * 2 > this.unsettled.length) {
      this.unsettled = this.unsettled.slice(this.unsettledHead);
      this.unsettledHead = 0;
    }
  }

  /**
   * Every inline tail in the spool, while the pool and the thread may still be copying
   * blocks: those of files the thread has not reached are read here (it writes the same
   * bytes there when it does). No more files may be added.
   */
  settleTails(): void {
    this.endJobs();
    this.buf ??= Buffer.allocUnsafe(BUFFER_BYTES);
    // From the last: the thread works from the first, and what it has done needs nothing.
    for (let i = this.unsettled.length - 1; i >= this.unsettledHead; i--) {
      const { n, job } = this.unsettled[i]!;
      if (n < Atomics.load(this.done, 2)) break;
      this.tailsOut.writeAt(byteOffset(job.tailAt), readTail(job, this.buf));
    }
    this.unsettled = [];
    this.unsettledHead = 0;
    this.tailsOut.flush();
  }

  /** Blocks given out so far, right after the superblock's block. */
  get blocks(): number {
    return this.nextBlk - this.firstBlk;
  }

  private post(end = false): void {
    const m: CopyMessage = { jobs: this.batch, end };
    this.worker!.postMessage(m);
    this.batch = [];
    this.batchBytes = 0;
  }

  /** No more files: the thread gets its last batch. */
  private endJobs(): void {
    if (this.ended) return;
    this.ended = true;
    this.reads?.flush();
    this.reads?.close();
    if (this.worker) this.post(true);
    this.tailsOut.flush();
  }

  /** Waits until the thread has put every file it was given in the image; returns the file bytes placed. */
  async finish(): Promise<number> {
    this.endJobs();
    await this.finished;
    return this.bytes;
  }

  /**
   * Ends the thread; the descriptors it writes to may be closed once this resolves. Not
   * worker.terminate(): stopped inside a koffi call, the thread would abort the process.
   */
  async close(): Promise<void> {
    this.reads?.close();
    if (!this.worker) return;
    Atomics.store(this.done, 1, 1);
    const m: CopyMessage = { stop: true };
    this.worker.postMessage(m);
    await this.exited;
  }
}
