// Compresses jobs for the pool, on a worker thread or on the main thread, into output chunks
// of CHUNK_BYTES: the results of a batch one after another, a big one across several. The
// main thread recycles a chunk once it has written every piece of it (ZPool.written), so the
// same memory carries pcluster after pcluster: no buffer per result left to the garbage
// collector, none grown and copied for a big one.

import type { MessagePort } from 'node:worker_threads';
import type { Compressor } from '../compress/compressor.js';
import { BuildError } from './errors.js';
import type { FdAppender } from './writer.js';
import { compressionLoses, compressSteps, drain, fileEnd, type ZBuffers, type ZJob, type ZParams, type ZResult } from './zdata.js';

/** The output chunk a compressing thread fills. */
export const CHUNK_BYTES = 256 << 10;

export interface ZReply {
  id: number;
  res?: ZResult;
  /** The output, in order: views of the thread's chunks, each to be recycled once written. */
  data?: Uint8Array[];
  /** Instead (data is empty): where the output starts in the thread's spill file. */
  spilled?: number;
  /** The last piece of data is the inline (tail-packed) pcluster; res.inline is then null. */
  inlineLast?: true;
  /**
   * Compression lost on this whole file (see compressionLoses): it goes flat, and its
   * output was taken back (data is empty, res has no extents). `tail` is its last
   * size % block size bytes, which may go inline (the rest is copied later, see ZPool.copyFlat).
   */
  lost?: true;
  tail?: Uint8Array;
  error?: string;
  internal?: boolean;
}

/** Where discardChunk() sends chunks: one end of a channel whose other end is closed. */
let sink: MessagePort | null = null;

/**
 * Lets go of a chunk no thread keeps, its memory freed at once. Left to the collector, a
 * chunk that waited for its placement long enough to be promoted stays until a full
 * collection, which external memory brings on only 64 MB later: lz4hc,12 -C65536 on a
 * Debian root let go of 100-500 chunks, 25-125 MB. A transferred buffer posted to a closed
 * channel is detached, and the message that took its memory is dropped undelivered.
 */
export function discardChunk(chunk: ArrayBuffer): void {
  if (!sink) {
    const channel = new MessageChannel();
    channel.port2.close();
    sink = channel.port1;
  }
  sink.postMessage(null, [chunk]);
}

/**
 * A job whose output passes this many chunks (a big file's segment) goes on in the thread's
 * spill file, if it has one: the thread holds a megabyte of it, not up to a segment's worth.
 */
const SPILL_AFTER_CHUNKS = 4;

export class ChunkedCompressor {
  private chunk = new Uint8Array(0);
  private used = 0;
  /** Chunks begun since the last takeChunks(): they go with the replies. */
  private begun: ArrayBuffer[] = [];
  /** The job in progress: its output so far, and where its bytes in `chunk` start. */
  private pieces: Uint8Array[] = [];
  private pieceStart = 0;
  /** Where the job in progress starts in the spill file, once it went there; else -1. */
  private spillAt = -1;
  /** Chunks a spilled job filled alone: its bytes are in the spill file, the chunks free to fill again here. */
  private free: ArrayBuffer[] = [];

  constructor(
    private readonly compressors: readonly Compressor[],
    private readonly params: ZParams,
    private readonly buffers: ZBuffers,
    /** A recycled chunk to fill, if there is one. */
    private readonly recycled: () => ArrayBuffer | undefined,
    /** This thread's spill file, only it appends to (see SPILL_AFTER_CHUNKS). */
    private readonly spill: FdAppender | null = null,
  ) {}

  run(id: number, job: ZJob): ZReply {
    return drain(this.steps(id, job));
  }

  /** run() an extent at a time (see compressSteps). */
  *steps(id: number, job: ZJob): Generator<void, ZReply, void> {
    this.pieces = [];
    this.pieceStart = this.used;
    this.spillAt = -1;
    const before = { chunk: this.chunk, used: this.used, begun: this.begun.length, spill: this.spill?.length ?? 0 };
    try {
      let end = 0;
      // Every byte of every block is emitted, in order; a gap (padding) is zeros.
      const res = yield* compressSteps(this.compressors[job.algorithm]!, this.params, job, this.buffers, (at, bytes) => {
        if (at > end) this.putZeros(at - end);
        this.put(bytes);
        end = at + bytes.length;
      });
      this.closePiece();
      if (job.start === 0 && job.length === job.size && compressionLoses(1 << this.params.blkszbits, res, job.size)) {
        // The file goes flat (already compressed data, say): its pclusters would only be
        // written to be written over. The chunks it began are filled again here.
        this.free.push(...this.begun.splice(before.begun));
        this.chunk = before.chunk;
        this.used = before.used;
        this.pieceStart = before.used;
        this.pieces = [];
        if (this.spillAt >= 0) this.spill!.rewind(before.spill);
        const reply: ZReply = { id, res: { extents: [], blocks: res.blocks, inline: null }, data: [], lost: true };
        const tail = fileEnd(job, this.buffers, job.size % (1 << this.params.blkszbits));
        if (tail) reply.tail = tail;
        return reply;
      }
      if (this.spillAt >= 0) {
        this.spill!.flush();
        return { id, res, data: [], spilled: this.spillAt };
      }
      if (res.inline && this.putInline(res.inline)) return { id, res: { ...res, inline: null }, data: this.pieces, inlineLast: true };
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

  /**
   * Room in `chunk` for at least one byte; returns how much. 0: the job has just gone to the
   * spill file, with what it had in chunks so far.
   */
  private room(): number {
    if (this.used === this.chunk.length) {
      this.closePiece();
      if (this.spill && this.pieces.length >= SPILL_AFTER_CHUNKS) {
        this.spillAt = this.spill.length;
        for (const piece of this.pieces) this.spill.append(piece);
        this.freeChunksOf(this.pieces);
        this.pieces = [];
        return 0;
      }
      this.freshChunk();
    }
    return this.chunk.length - this.used;
  }

  private freshChunk(): void {
    this.chunk = new Uint8Array(this.free.pop() ?? this.recycled() ?? new ArrayBuffer(CHUNK_BYTES));
    this.used = 0;
    this.pieceStart = 0;
    this.begun.push(this.chunk.buffer as ArrayBuffer);
  }

  /**
   * The job's inline pcluster as a piece of its own, in one chunk, after its pclusters; false
   * (it is sent apart) for a job in the spill file. Apart, each is an ArrayBuffer of its own
   * on the main thread, held until placed and then until a full garbage collection: some 8
   * MB of malloc heap for the 3,750 tails of a Debian root, where chunks are recycled.
   */
  private putInline(bytes: Uint8Array): boolean {
    if (this.spillAt >= 0 || bytes.length === 0) return false;
    // The rest of the chunk in progress goes unused: a tail is at most a block.
    if (this.chunk.length - this.used < bytes.length) this.freshChunk();
    this.chunk.set(bytes, this.used);
    this.used += bytes.length;
    this.closePiece();
    return true;
  }

  /**
   * The chunks that hold nothing but these pieces of the job going to the spill file (all
   * but the first piece's, and that one too if the job began it): not sent with the
   * replies, filled again here. A fresh chunk costs a page fault per 4 KiB: 0.2 ms.
   */
  private freeChunksOf(pieces: readonly Uint8Array[]): void {
    const own = new Set<ArrayBuffer>();
    pieces.forEach((piece, i) => {
      if (i > 0 || piece.byteOffset === 0) own.add(piece.buffer as ArrayBuffer);
    });
    this.begun = this.begun.filter((chunk) => !own.has(chunk));
    this.free.push(...own);
  }

  private put(bytes: Uint8Array): void {
    for (let done = 0; done < bytes.length; ) {
      if (this.spillAt >= 0) {
        this.spill!.append(done === 0 ? bytes : bytes.subarray(done));
        return;
      }
      const n = Math.min(bytes.length - done, this.room());
      this.chunk.set(n === bytes.length ? bytes : bytes.subarray(done, done + n), this.used);
      this.used += n;
      done += n;
    }
  }

  /** Zeros, written: a recycled chunk holds old bytes. */
  private putZeros(count: number): void {
    for (let done = 0; done < count; ) {
      if (this.spillAt >= 0) {
        const n = Math.min(count - done, this.buffers.zeros.length);
        this.spill!.append(this.buffers.zeros.subarray(0, n));
        done += n;
        continue;
      }
      const n = Math.min(count - done, this.room());
      this.chunk.fill(0, this.used, this.used + n);
      this.used += n;
      done += n;
    }
  }
}
