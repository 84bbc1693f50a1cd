// A pool of worker threads that compress whole files (zworker.ts); the main thread
// places their output in inode order, so the image is the same for any pool size.

import type { Worker } from 'node:worker_threads';
import { workerThreads } from '../builtins.js';
import { BuildError } from './errors.js';
import { workerScript } from './worker-script.js';
import type { ZJob, ZParams, ZResult } from './zdata.js';

export interface ZReply {
  id: number;
  res?: ZResult;
  /** The output, in order: views of the worker's chunks, each to go back once written. */
  data?: Uint8Array[];
  error?: string;
  internal?: boolean;
}

/** A worker's answer to a batch: a reply per job, and how long the batch took it. */
export interface ZAnswer {
  replies: ZReply[];
  busyMs: number;
}

/** What a compression worker starts with. */
export interface ZWorkerData {
  params: ZParams;
  /** Int32 [0]: nonzero once the pool is closing; jobs still queued are dropped. */
  stop: SharedArrayBuffer;
}

/**
 * Messages to a compression worker: a batch of jobs, with output chunks it sent before and
 * the main thread has written (to fill again), or the request to end.
 */
export type ZMessage = { jobs: Array<{ id: number; job: ZJob }>; spare: ArrayBuffer[] } | { stop: true };

/** The output chunk a worker fills (see zworker.ts). */
export const CHUNK_BYTES = 256 << 10;
/** Written chunks kept to go back to the workers, at most (more are left to the collector). */
const SPARE_CHUNKS_PER_WORKER = 8;

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

export class ZPool {
  private readonly workers: Worker[] = [];
  /** Resolve when each worker has ended. */
  private readonly exited: Array<Promise<void>> = [];
  private readonly stop = new Int32Array(new SharedArrayBuffer(4));
  /** Input bytes posted to each worker and not answered yet. */
  private readonly outstanding = new Map<Worker, number>();
  /** Each posted batch's input bytes, in the order the worker answers them. */
  private readonly posted = new Map<Worker, number[]>();
  private readonly queue: Array<{ id: number; job: ZJob }> = [];
  private readonly waiting = new Map<number, { resolve: (v: { res: ZResult; data: Uint8Array[] }) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failure: Error | null = null;
  /** Input bytes in `queue`. */
  private queuedBytes = 0;
  private holding = false;
  /** Input of the batches answered, and the time the workers spent on them. */
  private answeredBytes = 0;
  private busyMs = 0;
  /** Results not written yet, per output chunk. */
  private readonly unwritten = new Map<ArrayBuffer, number>();
  private readonly spare: ArrayBuffer[] = [];

  constructor(
    readonly size: number,
    params: ZParams,
  ) {
    const script = workerScript('zworker');
    const { Worker } = workerThreads();
    for (let i = 0; i < size; i++) {
      // A small young generation: workers allocate little but their pclusters, and every
      // megabyte of it is a megabyte of peak RSS per worker.
      // No execArgv: the host's (say --input-type) may not apply to a worker script.
      const data: ZWorkerData = { params, stop: this.stop.buffer as SharedArrayBuffer };
      const worker = new Worker(script, { workerData: data, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 2 } });
      worker.on('message', (answer: ZAnswer) => this.settle(worker, answer));
      worker.on('error', (e) => this.fail(new Error(`compression worker failed: ${e.message}`)));
      this.exited.push(new Promise((resolve) => worker.once('exit', () => resolve())));
      this.workers.push(worker);
      this.outstanding.set(worker, 0);
      this.posted.set(worker, []);
    }
  }

  /** Queues a job, at the end, or `first` to go before every job queued. */
  compress(job: ZJob, first = false): Promise<{ res: ZResult; data: Uint8Array[] }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const p = new Promise<{ res: ZResult; data: Uint8Array[] }>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    // Callers await results in order; a rejection is observed there, never left unhandled.
    p.catch(() => {});
    if (first) this.queue.unshift({ id, job });
    else this.queue.push({ id, job });
    this.queuedBytes += job.length;
    this.pump();
    return p;
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
   * Each worker gets a few batches queued on its port, so it keeps working while the main
   * thread is busy (compressing a big file) and cannot hand out more; the next batch goes
   * to the worker with the least input waiting.
   */
  private pump(): void {
    const perWorker = this.holding ? HOLDING_PER_WORKER_BYTES : PER_WORKER_BYTES;
    while (this.queue.length > 0) {
      if (this.holding && this.queue.length < BATCH_FILES && this.queuedBytes < BATCH_BYTES) return;
      let best: Worker | null = null;
      for (const w of this.workers) if (!best || this.outstanding.get(w)! < this.outstanding.get(best)!) best = w;
      if (!best || this.outstanding.get(best)! >= perWorker) return;
      const batch: Array<{ id: number; job: ZJob }> = [];
      let bytes = 0;
      while (this.queue.length > 0 && batch.length < BATCH_FILES && bytes < BATCH_BYTES) {
        const item = this.queue.shift()!;
        batch.push(item);
        bytes += item.job.length;
      }
      this.queuedBytes -= bytes;
      this.outstanding.set(best, this.outstanding.get(best)! + bytes);
      this.posted.get(best)!.push(bytes);
      // About the chunks the batch's output takes (it is seldom larger than the input).
      const spare = this.spare.splice(0, Math.ceil(bytes / CHUNK_BYTES) + 1);
      const m: ZMessage = { jobs: batch, spare };
      best.postMessage(m, spare);
    }
  }

  private settle(worker: Worker, { replies, busyMs }: ZAnswer): void {
    const bytes = this.posted.get(worker)!.shift()!;
    this.outstanding.set(worker, this.outstanding.get(worker)! - bytes);
    this.answeredBytes += bytes;
    this.busyMs += busyMs;
    for (const m of replies) {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (!w) continue;
      if (m.error !== undefined) w.reject(m.internal ? new Error(m.error) : new BuildError(m.error));
      else {
        for (const piece of m.data!) {
          const chunk = piece.buffer as ArrayBuffer;
          this.unwritten.set(chunk, (this.unwritten.get(chunk) ?? 0) + 1);
        }
        w.resolve({ res: m.res!, data: m.data! });
      }
    }
    this.pump();
  }

  /** Input bytes a worker compresses per second of its time, so far; 0 until an answer is in. */
  rate(): number {
    return this.answeredBytes > 0 && this.busyMs > 0 ? (this.answeredBytes / this.busyMs) * 1000 : 0;
  }

  /** A piece of a result's output is in the image: its chunk goes back to a worker once all of it is. */
  written(piece: Uint8Array): void {
    const chunk = piece.buffer as ArrayBuffer;
    const left = this.unwritten.get(chunk);
    if (left === undefined) return;
    if (left > 1) {
      this.unwritten.set(chunk, left - 1);
      return;
    }
    this.unwritten.delete(chunk);
    if (this.spare.length < SPARE_CHUNKS_PER_WORKER * this.size) this.spare.push(chunk);
  }

  private fail(e: Error): void {
    this.failure = e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  /**
   * Asks every worker to end and waits until they have. Not worker.terminate(): a worker
   * stopped while it loads koffi or is inside a koffi call makes Node abort the process
   * (node-addon-api cannot throw into a terminating thread). Jobs still queued are dropped.
   */
  async close(): Promise<void> {
    Atomics.store(this.stop, 0, 1);
    const m: ZMessage = { stop: true };
    for (const w of this.workers) w.postMessage(m);
    await Promise.all(this.exited);
  }
}
