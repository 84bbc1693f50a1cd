// Uncompressed builds from a directory: file data goes into the image on a thread of its
// own while the main thread walks the tree, ahead of the metadata (as compressed builds and
// --tar=f lay it out), and goes on while the main thread writes the metadata. The thread
// starts once there is enough to copy; when it has a lot queued, the walk copies the next
// file itself. Each file gets its blocks when it is found, so the layout does not depend on
// who copies it or when; inline tails wait in a spool for the inode writer, which reads the
// tails the thread has not reached yet itself (settleTails) rather than wait for it.

import type { Worker } from 'node:worker_threads';
import { workerThreads } from '../builtins.js';
import { type BlockGeometry, byteOffset } from '../format/types.js';
import { BuildError } from './errors.js';
import { type CopyJob, readTail, runCopy } from './file-copy.js';
import type { BuildConfig } from './options.js';
import { plannedInlineTail, superBlockAddr } from './planner.js';
import type { TreeInode } from './tree.js';
import { workerScript } from './worker-script.js';
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

/** A batch goes out at this many files or bytes: few messages, and the thread starts early. */
const BATCH_FILES = 32;
const BATCH_BYTES = 1 << 20;
/**
 * Files queued for the thread at most: past that the walk copies files itself. The thread
 * goes on copying while the metadata is written, so it may have a good part of the tree
 * left when the walk ends; the walk helps only when it is far behind.
 */
const BACKLOG_FILES = 1024;
/** The thread's read buffer: files smaller than this take a single read. */
const BUFFER_BYTES = 1 << 20;
/**
 * The thread starts once the walk has found this many files or bytes to copy: its start-up
 * (about 40 ms, 9 MB) would cost a small tree more than copying it on the walk's thread.
 */
const START_FILES = 200;
const START_BYTES = 16 << 20;

export class FileCopier {
  private worker: Worker | null = null;
  private readonly firstBlk: number;
  private nextBlk: number;
  private batch: CopyJob[] = [];
  private batchBytes = 0;
  /** Files and file bytes placed, by either thread. */
  private files = 0;
  private bytes = 0;
  private error: Error | null = null;
  private finished: Promise<void> = Promise.resolve();
  private exited: Promise<void> = Promise.resolve();
  private ended = false;
  /** Jobs handed to the thread (batched or posted), and how many it has finished. */
  private queued = 0;
  private readonly done: Int32Array;
  /** The walk's own copies: inline tails go to their place in the spool through this. */
  private readonly ownTails: FdWriter;
  private buf: Buffer | null = null;
  /** Jobs handed to the thread with an inline tail it may not have written yet, and their numbers. */
  private unsettled: Array<{ n: number; job: CopyJob }> = [];
  private unsettledHead = 0;

  constructor(
    private readonly cfg: BuildConfig,
    private readonly g: BlockGeometry,
    private readonly writer: ImageWriter,
    private readonly tails: Spool,
    /**
     * Whether a thread may copy: not in compressed builds, whose files here are the few
     * smaller than a block, where the main thread reads them for less than the thread's start
     * costs (and its 10 MB, beside the compression workers).
     */
    private readonly threaded = true,
  ) {
    this.firstBlk = superBlockAddr(g) + 1;
    this.nextBlk = this.firstBlk;
    this.done = new Int32Array(new SharedArrayBuffer(12));
    this.ownTails = new FdWriter(tails.readableFd(), tails.path, 64 << 10);
  }

  private start(): void {
    const data: CopierData = {
      imageFd: this.writer.descriptor,
      imagePath: this.writer.imagePath,
      tailsFd: this.tails.readableFd(),
      tailsPath: this.tails.path,
      bufferBytes: BUFFER_BYTES,
      progress: this.done.buffer as SharedArrayBuffer,
    };
    // No execArgv: the host's (say --input-type) may not apply to a worker script.
    const worker = new (workerThreads().Worker)(workerScript('copy-worker'), { workerData: data, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 2 } });
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
   * given out before and its tail gets a place in the spool; then the thread is told to copy
   * it, or, when the thread has enough to do, it is copied right here.
   */
  add(inode: TreeInode, path: Buffer): void {
    if (inode.size === 0) return;
    const { blksz } = this.g;
    const inline = plannedInlineTail(this.cfg, this.g, inode);
    const inlineTail = inline ? inode.size % blksz : 0;
    inode.dataBlk = this.nextBlk;
    inode.dataOffset = inline ? this.tails.reserve(inlineTail) : -1;
    const job: CopyJob = { path, size: inode.size, inlineTail, dst: this.nextBlk * blksz, tailAt: inode.dataOffset };
    this.nextBlk += Math.ceil((inode.size - inlineTail) / blksz);
    this.bytes += inode.size;
    this.files++;
    if (!this.worker && this.threaded && (this.files >= START_FILES || this.bytes >= START_BYTES)) this.start();
    if (!this.worker || this.queued - Atomics.load(this.done, 0) >= BACKLOG_FILES) {
      this.copyHere(job);
      return;
    }
    this.batch.push(job);
    if (job.inlineTail > 0) this.unsettled.push({ n: this.queued, job });
    this.queued++;
    this.dropSettled();
    this.batchBytes += inode.size;
    if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) this.post();
  }

  private copyHere(job: CopyJob): void {
    this.buf ??= Buffer.allocUnsafe(BUFFER_BYTES);
    const tail = runCopy(job, this.writer, this.buf);
    if (tail) this.ownTails.writeAt(byteOffset(job.tailAt), tail);
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
   * Every inline tail in the spool, while the thread may still be copying blocks: those of
   * files it has not reached are read here (it writes the same bytes there when it does).
   * No more files may be added.
   */
  settleTails(): void {
    this.endJobs();
    this.buf ??= Buffer.allocUnsafe(BUFFER_BYTES);
    // From the last: the thread works from the first, and what it has done needs nothing.
    for (let i = this.unsettled.length - 1; i >= this.unsettledHead; i--) {
      const { n, job } = this.unsettled[i]!;
      if (n < Atomics.load(this.done, 2)) break;
      this.ownTails.writeAt(byteOffset(job.tailAt), readTail(job, this.buf));
    }
    this.unsettled = [];
    this.unsettledHead = 0;
    this.ownTails.flush();
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
    if (this.worker) this.post(true);
    this.ownTails.flush();
  }

  /** Waits until every file is in the image and every tail in the spool; returns the file bytes copied. */
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
    if (!this.worker) return;
    Atomics.store(this.done, 1, 1);
    const m: CopyMessage = { stop: true };
    this.worker.postMessage(m);
    await this.exited;
  }
}

