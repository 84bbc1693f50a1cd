// A pool of worker threads that compress whole files (zworker.ts), with the main thread
// compressing queued jobs too while it waits for a result; the main thread places the
// output in inode order, so the image is the same for any number of threads.

import type { Worker } from 'node:worker_threads';
import type { Compressor } from '../compress/compressor.js';
import { BuildError } from './errors.js';
import type { FileToCopy } from './file-copy.js';
import { startWorker, type WorkerBoot, workerScript } from './worker-script.js';
import { ChunkedCompressor, CHUNK_BYTES, discardChunk, type ZReply } from './zchunks.js';
import { runSliced, zBuffers, type ZJob, type ZParams, type ZResult } from './zdata.js';
import { FdAppender, type Spool } from './writer.js';

/** A worker's answer to a batch: a reply per job, and how long the batch took it. */
export interface ZAnswer {
  replies: ZReply[];
  busyMs: number;
}

/** What a compression worker starts with. */
export interface ZWorkerData {
  params: ZParams;
  /** Its spill file (see ChunkedCompressor), opened by the main thread. */
  spill: { fd: number; path: string } | null;
  /** Int32 [0]: nonzero once the pool is closing; jobs still queued are dropped. */
  stop: SharedArrayBuffer;
  boot: WorkerBoot | null;
}

/**
 * Messages to a compression worker: a batch of jobs, with output chunks it sent before and
 * the main thread has written (to fill again); files to copy flat into the image, once
 * compression is over; or the request to end.
 */
export type ZMessage =
  | { jobs: Array<{ id: number; job: ZJob }>; spare: ArrayBuffer[] }
  | { flat: FileToCopy[]; imageFd: number; imagePath: string }
  | { stop: true };

/** A worker's answer to its flat copies. */
export type ZFlatAnswer = { flatDone: true } | { flatError: string; internal: boolean };

/**
 * Written chunks kept to fill again, at most, per thread (more are let go, discardChunk):
 * enough to take back the chunks the workers filled while the tree was walked (see
 * zworker.ts); peak RSS is no higher for it, fewer chunks made again.
 */
const SPARE_CHUNKS_PER_THREAD = 32;

/**
 * Input bytes queued on each worker's port: enough that it keeps working while the main
 * thread is busy, few enough that work goes to whichever worker is free.
 */
const PER_WORKER_BYTES = 2 << 20;
/**
 * While the main thread walks the source tree it cannot answer the workers: each gets more
 * queued, in full batches only.
 */
const HOLDING_PER_WORKER_BYTES = 16 << 20;
/** A batch: this many files or bytes of input, whichever comes first. */
const BATCH_FILES = 32;
const BATCH_BYTES = 512 << 10;

/**
 * A compressed job: its extents, and its output (res.blocks whole blocks) as pieces of
 * chunks, or, spilled, on disk in a scratch file (data is then empty). An inline pcluster
 * (res.inline) can be a piece of a chunk too: written() once it is placed. `lost`: the whole
 * file is to go flat, and only its last bytes came back (see ZReply.lost).
 */
export type ZOutcome = { res: ZResult; data: Uint8Array[]; spilled: { fd: number; offset: number } | null; lost?: { tail: Uint8Array | null } };

/** Makes a scratch file beside the image (a Spool), named after `what`. */
export type ScratchMaker = (what: string) => Spool;

/**
 * Output waiting for its turn to be placed takes this many chunks per thread at most; the
 * results of batches that arrive past that wait in the spill file. A thread done with the
 * files after a big one (a segment can take seconds) holds all their output otherwise:
 * 30-50 MB on the Debian root with lz4hc, where the page cache costs no RSS.
 */
const HELD_CHUNKS_PER_THREAD = 16;

export class ZPool {
  private readonly workers: Worker[] = [];
  /** Resolve when each worker has ended. */
  private readonly exited: Array<Promise<void>> = [];
  private readonly stop = new Int32Array(new SharedArrayBuffer(4));
  /**
   * Workers whose thread runs: jobs go to one only from then on. Posted earlier, they would
   * wait the thread's start (25 ms or more) on its port, where the main thread cannot take
   * them back: a tree of 20 MB then waits for the one worker's 16 MB.
   */
  private readonly online = new Set<Worker>();
  /** Input bytes posted to each worker and not answered yet. */
  private readonly outstanding = new Map<Worker, number>();
  /** Each posted batch's input bytes, in the order the worker answers them. */
  private readonly posted = new Map<Worker, number[]>();
  private readonly queue: Array<{ id: number; job: ZJob }> = [];
  private readonly waiting = new Map<number, { resolve: (v: ZOutcome) => void; reject: (e: Error) => void; result: Promise<ZOutcome> }>();
  /** Results delivered (resolved or rejected). */
  private readonly delivered = new WeakSet<Promise<ZOutcome>>();
  private nextId = 0;
  private failure: Error | null = null;
  /** Input bytes in `queue`. */
  private queuedBytes = 0;
  private holding = false;
  /** Input of the batches answered, and the time the threads spent on them. */
  private answeredBytes = 0;
  private busyMs = 0;
  /** Results not written yet, per output chunk. */
  private readonly unwritten = new Map<ArrayBuffer, number>();
  private readonly spare: ArrayBuffer[] = [];
  /** The main thread's own compression (runQueued), made on first use. */
  private here: ChunkedCompressor | null = null;
  /** Compressing threads: the workers, and the main thread if it takes part. */
  readonly threads: number;
  /** Chunks of output held in memory at most, before batches go to the spill file. */
  private readonly heldChunks: number;
  /** Each worker's spill file (made by the pool, appended to by the worker), and the main thread's. */
  private readonly threadSpills: Spool[] = [];
  private hereSpill: FdAppender | null = null;
  /** Where whole batches go past heldChunks (made when first needed). */
  private batchSpill: Spool | null = null;
  /** Workers copying files flat (copyFlat), and how to settle each one's part. */
  private readonly copying = new Map<Worker, { resolve: () => void; reject: (e: Error) => void }>();

  constructor(
    /** Worker threads. */
    readonly size: number,
    private readonly params: ZParams,
    /** The main thread's compressors, one per -z algorithm: with them it compresses queued jobs too. */
    private readonly local: readonly Compressor[] | null = null,
    /** Makes the files output waits in rather than in memory (none: it all waits in memory). */
    private readonly scratch: ScratchMaker | null = null,
  ) {
    this.threads = size + (local ? 1 : 0);
    this.heldChunks = HELD_CHUNKS_PER_THREAD * this.threads;
    // Every file before any thread: a thread started would keep the process alive.
    const names = Array.from({ length: size }, (_, i) => `spill${i}`);
    if (local) names.push('spill-main');
    try {
      if (scratch) for (const what of names) this.threadSpills.push(scratch(what));
    } catch (e) {
      for (const file of this.threadSpills) file.dispose();
      throw e;
    }
    for (let i = 0; i < size; i++) {
      // The first thread's code cache records the algorithms (each thread runs them all).
      const entry = workerScript('zworker', i === 0 ? params.specs.map((s) => s.name) : null);
      const file = this.threadSpills[i] ?? null;
      const spillFd = file?.readableFd() ?? -1;
      const data: ZWorkerData = {
        params,
        spill: file ? { fd: spillFd, path: file.path } : null,
        stop: this.stop.buffer as SharedArrayBuffer,
        boot: entry.boot,
      };
      const worker = startWorker(entry, data);
      worker.once('online', () => {
        this.online.add(worker);
        this.pump();
      });
      worker.on('message', (answer: ZAnswer | ZFlatAnswer) => ('replies' in answer ? this.settle(worker, answer, spillFd) : this.copied(worker, answer)));
      worker.on('error', (e) => this.fail(new Error(`compression worker failed: ${e.message}`)));
      this.exited.push(
        new Promise((resolve) =>
          worker.once('exit', () => {
            this.copied(worker, { flatError: 'a compression worker ended before its files were copied', internal: true });
            resolve();
          }),
        ),
      );
      this.workers.push(worker);
      this.outstanding.set(worker, 0);
      this.posted.set(worker, []);
    }
    const mine = scratch && local ? this.threadSpills[size]! : null;
    if (mine) this.hereSpill = new FdAppender(mine.readableFd(), mine.path);
  }

  /** Queues a job, at the end, or `first` to go before every job queued. */
  compress(job: ZJob, first = false): Promise<ZOutcome> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    let settle!: { resolve: (v: ZOutcome) => void; reject: (e: Error) => void };
    const result = new Promise<ZOutcome>((resolve, reject) => (settle = { resolve, reject }));
    this.waiting.set(id, { ...settle, result });
    // Callers await results in order; a rejection is observed there, never left unhandled.
    result.catch(() => {});
    if (first) this.queue.unshift({ id, job });
    else this.queue.push({ id, job });
    this.queuedBytes += job.length;
    this.pump();
    return result;
  }

  /** Jobs queued and not yet given to a thread. */
  get queuedJobs(): number {
    return this.queue.length;
  }

  /** Whether a result compress() returned is in (awaiting it takes no wait). */
  isDelivered(result: Promise<ZOutcome>): boolean {
    return this.delivered.has(result);
  }

  /** The main thread is about to be busy for a while (see HOLDING_PER_WORKER_BYTES). */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    this.pump();
  }

  /**
   * Compresses the next batch queued on the main thread, which would otherwise wait for a
   * worker's result; false when it does not take part or nothing is queued. Each worker
   * first gets as much input queued as the batch, so it does not run dry meanwhile.
   */
  async runQueued(yieldNow: () => Promise<void>): Promise<boolean> {
    if (!this.local || this.queue.length === 0 || this.failure) return false;
    const { batch, bytes } = this.takeBatch();
    this.pump(Math.max(PER_WORKER_BYTES, bytes));
    this.here ??= new ChunkedCompressor(this.local, this.params, zBuffers(this.params), () => this.spare.pop(), this.hereSpill);
    const began = performance.now();
    const replies: ZReply[] = [];
    // A segment can take seconds: the event loop (signals, progress, the workers' answers)
    // gets its turns meanwhile.
    for (const { id, job } of batch) replies.push(await runSliced(this.here.steps(id, job), yieldNow));
    this.here.takeChunks();
    this.deliver(replies, bytes, performance.now() - began, this.hereSpill?.fd ?? -1);
    return true;
  }

  /** The next batch from the head of the queue. */
  private takeBatch(): { batch: Array<{ id: number; job: ZJob }>; bytes: number } {
    const batch: Array<{ id: number; job: ZJob }> = [];
    let bytes = 0;
    while (this.queue.length > 0 && batch.length < BATCH_FILES && bytes < BATCH_BYTES) {
      const item = this.queue.shift()!;
      batch.push(item);
      bytes += item.job.length;
    }
    this.queuedBytes -= bytes;
    return { batch, bytes };
  }

  /**
   * Each worker gets a few batches queued on its port, so it keeps working while the main
   * thread is busy (compressing a big file) and cannot hand out more; the next batch goes
   * to the worker with the least input waiting.
   */
  private pump(perWorker = this.holding ? HOLDING_PER_WORKER_BYTES : PER_WORKER_BYTES): void {
    while (this.queue.length > 0) {
      if (this.holding && this.queue.length < BATCH_FILES && this.queuedBytes < BATCH_BYTES) return;
      let best: Worker | null = null;
      for (const w of this.online) if (!best || this.outstanding.get(w)! < this.outstanding.get(best)!) best = w;
      if (!best || this.outstanding.get(best)! >= perWorker) return;
      const { batch, bytes } = this.takeBatch();
      this.outstanding.set(best, this.outstanding.get(best)! + bytes);
      this.posted.get(best)!.push(bytes);
      // About the chunks the batch's output takes (it is seldom larger than the input).
      const spare = this.spare.splice(0, Math.ceil(bytes / CHUNK_BYTES) + 1);
      const m: ZMessage = { jobs: batch, spare };
      best.postMessage(m, spare);
    }
  }

  private settle(worker: Worker, { replies, busyMs }: ZAnswer, spillFd: number): void {
    const bytes = this.posted.get(worker)!.shift()!;
    this.outstanding.set(worker, this.outstanding.get(worker)! - bytes);
    this.deliver(replies, bytes, busyMs, spillFd);
    this.pump();
  }

  /**
   * A batch's results, which took a thread `busyMs`. Past the output the pool holds in
   * memory, the whole batch goes to the spill file: its chunks (no other batch's results
   * are in them) are free at once.
   */
  private deliver(replies: ZReply[], bytes: number, busyMs: number, threadSpillFd: number): void {
    this.answeredBytes += bytes;
    this.busyMs += busyMs;
    let spill: Spool | null = null;
    if (this.scratch && this.unwritten.size >= this.heldChunks) {
      try {
        spill = this.batchSpill ??= this.scratch('spill');
      } catch (e) {
        // Called from a worker's message: an error thrown here would end the process.
        this.fail(e as Error);
        return;
      }
    }
    for (const m of replies) {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (!w) continue;
      this.delivered.add(w.result);
      if (m.error !== undefined) w.reject(m.internal ? new Error(m.error) : new BuildError(m.error));
      else if (m.lost) w.resolve({ res: m.res!, data: [], spilled: null, lost: { tail: m.tail ?? null } });
      else if (m.spilled !== undefined) w.resolve({ res: m.res!, data: [], spilled: { fd: threadSpillFd, offset: m.spilled } });
      else {
        const data = m.inlineLast ? m.data!.slice(0, -1) : m.data!;
        const inline = m.inlineLast ? m.data![data.length]! : m.res!.inline;
        if (spill) {
          try {
            const offset = spill.append(...data);
            // A copy: the batch's chunks are filled again at once (below).
            const res = { ...m.res!, inline: m.inlineLast ? inline!.slice() : inline };
            w.resolve({ res, data: [], spilled: { fd: spill.readableFd(), offset } });
          } catch (e) {
            w.reject(e as Error);
          }
          continue;
        }
        for (const piece of m.data!) {
          const chunk = piece.buffer as ArrayBuffer;
          this.unwritten.set(chunk, (this.unwritten.get(chunk) ?? 0) + 1);
        }
        w.resolve({ res: { ...m.res!, inline }, data, spilled: null });
      }
    }
    if (!spill) return;
    const chunks = new Set<ArrayBuffer>();
    for (const m of replies) for (const piece of m.data ?? []) chunks.add(piece.buffer as ArrayBuffer);
    for (const chunk of chunks) this.recycle(chunk);
  }

  /** Input bytes a thread compresses per second of its time, so far; 0 until an answer is in. */
  rate(): number {
    return this.answeredBytes > 0 && this.busyMs > 0 ? (this.answeredBytes / this.busyMs) * 1000 : 0;
  }

  /** A piece of a result's output is in the image: its chunk is filled again once all of it is. */
  written(piece: Uint8Array): void {
    const chunk = piece.buffer as ArrayBuffer;
    const left = this.unwritten.get(chunk);
    if (left === undefined) return;
    if (left > 1) {
      this.unwritten.set(chunk, left - 1);
      return;
    }
    this.unwritten.delete(chunk);
    this.recycle(chunk);
  }

  private recycle(chunk: ArrayBuffer): void {
    if (this.spare.length < SPARE_CHUNKS_PER_THREAD * this.threads) this.spare.push(chunk);
    else discardChunk(chunk);
  }

  /**
   * Copies files compression lost on into the image, flat, on the workers (idle once every
   * file is compressed) while the main thread writes the metadata: they would have taken
   * it 20-40 ms on a Debian root, with the second core idle meanwhile. Each worker takes a
   * share of about as many bytes; resolves once all are in place. After an error or a stop
   * (halt, close), the copies end after the file in progress.
   */
  copyFlat(copies: readonly FileToCopy[], imageFd: number, imagePath: string): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const shares = this.workers.map(() => ({ copies: [] as FileToCopy[], bytes: 0 }));
    for (const c of copies) {
      const share = shares.reduce((a, b) => (b.bytes < a.bytes ? b : a));
      share.copies.push(c);
      share.bytes += c.size;
    }
    const parts: Array<Promise<void>> = [];
    shares.forEach((share, i) => {
      if (share.copies.length === 0) return;
      const worker = this.workers[i]!;
      parts.push(new Promise((resolve, reject) => this.copying.set(worker, { resolve, reject })));
      const m: ZMessage = { flat: share.copies, imageFd, imagePath };
      worker.postMessage(m);
    });
    return Promise.all(parts).then(() => undefined);
  }

  private copied(worker: Worker, answer: ZFlatAnswer): void {
    const part = this.copying.get(worker);
    if (!part) return;
    this.copying.delete(worker);
    if ('flatDone' in answer) part.resolve();
    else part.reject(answer.internal ? new Error(answer.flatError) : new BuildError(answer.flatError));
  }

  /** Workers stop what they do after the job or file in progress (see close). */
  halt(): void {
    Atomics.store(this.stop, 0, 1);
  }

  private fail(e: Error): void {
    this.failure = e;
    for (const part of this.copying.values()) part.reject(e);
    this.copying.clear();
    for (const w of this.waiting.values()) {
      this.delivered.add(w.result);
      w.reject(e);
    }
    this.waiting.clear();
  }

  /**
   * Asks every worker to end and waits until they have. Not worker.terminate(): a worker
   * stopped while it loads koffi or is inside a koffi call makes Node abort the process
   * (node-addon-api cannot throw into a terminating thread). Jobs still queued are dropped.
   */
  async close(): Promise<void> {
    this.halt();
    const m: ZMessage = { stop: true };
    for (const w of this.workers) w.postMessage(m);
    await Promise.all(this.exited);
    for (const chunk of this.spare.splice(0)) discardChunk(chunk);
    // The workers wrote through these descriptors: they go once the threads have ended.
    const files = this.batchSpill ? [...this.threadSpills, this.batchSpill] : this.threadSpills;
    await Promise.all(files.map((file) => file.disposeAsync()));
  }
}
