// Compresses jobs for the pool, on a worker thread or on the main thread, into output chunks
// of CHUNK_BYTES: the results of a batch one after another, a big one across several. The
// main thread recycles a chunk once it has written every piece of it (ZPool.written), so the
// same memory carries pcluster after pcluster: no buffer per result left to the garbage
// collector, none grown and copied for a big one.

import type { Compressor } from '../compress/compressor.js';
import { BuildError } from './errors.js';
import { compressSteps, drain, type ZBuffers, type ZJob, type ZParams, type ZResult } from './zdata.js';

/** The output chunk a compressing thread fills. */
export const CHUNK_BYTES = 256 << 10;

export interface ZReply {
  id: number;
  res?: ZResult;
  /** The output, in order: views of the thread's chunks, each to be recycled once written. */
  data?: Uint8Array[];
  error?: string;
  internal?: boolean;
}

export class ChunkedCompressor {
  private chunk = new Uint8Array(0);
  private used = 0;
  /** Chunks begun since the last takeChunks(): they go with the replies. */
  private begun: ArrayBuffer[] = [];
  /** The job in progress: its output so far, and where its bytes in `chunk` start. */
  private pieces: Uint8Array[] = [];
  private pieceStart = 0;

  constructor(
    private readonly compressors: readonly Compressor[],
    private readonly params: ZParams,
    private readonly buffers: ZBuffers,
    /** A recycled chunk to fill, if there is one. */
    private readonly recycled: () => ArrayBuffer | undefined,
  ) {}

  run(id: number, job: ZJob): ZReply {
    return drain(this.steps(id, job));
  }

  /** run() an extent at a time (see compressSteps). */
  *steps(id: number, job: ZJob): Generator<void, ZReply, void> {
    this.pieces = [];
    this.pieceStart = this.used;
    try {
      let end = 0;
      // Every byte of every block is emitted, in order; a gap (padding) is zeros.
      const res = yield* compressSteps(this.compressors[job.algorithm]!, this.params, job, this.buffers, (at, bytes) => {
        if (at > end) this.putZeros(at - end);
        this.put(bytes);
        end = at + bytes.length;
      });
      this.closePiece();
      return { id, res, data: this.pieces };
    } catch (e) {
      return { id, error: (e as Error).message, internal: !(e instanceof BuildError) };
    }
  }

  /**
   * The chunks the replies since the last call point into. The chunk in progress is among
   * them: the next job starts a fresh one, as this one may be recycled once written.
   */
  takeChunks(): ArrayBuffer[] {
    const out = this.begun;
    this.begun = [];
    this.chunk = new Uint8Array(0);
    this.used = 0;
    return out;
  }

  private closePiece(): void {
    if (this.used > this.pieceStart) this.pieces.push(this.chunk.subarray(this.pieceStart, this.used));
    this.pieceStart = this.used;
  }

  /** Room in `chunk` for at least one byte; returns how much. */
  private room(): number {
    if (this.used === this.chunk.length) {
      this.closePiece();
      this.chunk = new Uint8Array(this.recycled() ?? new ArrayBuffer(CHUNK_BYTES));
      this.used = 0;
      this.pieceStart = 0;
      this.begun.push(this.chunk.buffer as ArrayBuffer);
    }
    return this.chunk.length - this.used;
  }

  private put(bytes: Uint8Array): void {
    for (let done = 0; done < bytes.length; ) {
      const n = Math.min(bytes.length - done, this.room());
      this.chunk.set(n === bytes.length ? bytes : bytes.subarray(done, done + n), this.used);
      this.used += n;
      done += n;
    }
  }

  /** Zeros, written: a recycled chunk holds old bytes. */
  private putZeros(count: number): void {
    for (let done = 0; done < count; ) {
      const n = Math.min(count - done, this.room());
      this.chunk.fill(0, this.used, this.used + n);
      this.used += n;
      done += n;
    }
  }
}
