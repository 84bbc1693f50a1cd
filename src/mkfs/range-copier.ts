// Ranges of other files into the image by copy_file_range(2) calls made on libuv's thread
// pool: big source files and tar members, and compressed output the workers spilled to
// their scratch files. The kernel copies on another core while the main thread goes on
// (walking, placing, writing the metadata). A Node worker would cost more to start (a
// tenth of a second of CPU, more on a busy machine) than the copies take.
//
// A call on the pool costs the main thread about 0.1 ms (koffi's marshalling, waking a pool
// thread, the callback), as much as the kernel takes to copy 256 KiB. Where every core is
// busy compressing, the pool's work only takes a core from the compression: shorter ranges
// are then copied at once, here, and ranges that continue the one before in both files
// (consecutive files' output spilled by one worker: most of them, a few KiB each) become
// one call.

import { byteOffset } from '../format/types.js';
import { type AsyncCopy, asyncCopy } from './copy-range.js';
import type { ImageWriter } from './writer.js';

/** Bytes of a source to copy to `dst` in the image. */
export interface CopyRange {
  fd: number;
  at: number;
  dst: number;
  length: number;
  /** The error for a source that ends at `at`, before the range does. */
  endedAt(at: number): Error;
  /**
   * Runs once the range is in the image (its checks may throw, failing the build) or will
   * never be (after a failure, or on close): it releases what the range holds.
   */
  settled?(copied: boolean): void;
}

/**
 * Calls in flight at most: koffi keeps call stacks ready for these (KOFFI_ASYNC_POOLS; more
 * are mapped per call, up to its limit of 256 calls, past which it ends the process), and
 * the copies all write one file, whose lock lets one at a time through anyway.
 */
const IN_FLIGHT = 4;

/** Where every core compresses, ranges shorter than this are copied at once, on the calling thread. */
export const COPY_HERE_BELOW = 256 << 10;

export interface RangeCopierOptions {
  /**
   * Ranges shorter than this are copied here (0: none). A short one without settled() is
   * held back until the next range shows whether it continues it.
   */
  copyHereBelow?: number;
}

export class RangeCopier {
  private readonly copyAsync: AsyncCopy | null = asyncCopy();
  private queue: CopyRange[] = [];
  private head = 0;
  /** The latest range, held back while the next may continue it. */
  private pending: CopyRange | null = null;
  private inFlight = 0;
  private failure: Error | null = null;
  private stopped = false;
  private used = false;
  /** Called once nothing is queued or in flight. */
  private idle: Array<() => void> = [];
  private release: (() => void) | null = null;

  private readonly copyHereBelow: number;

  constructor(
    private readonly writer: ImageWriter,
    options: RangeCopierOptions = {},
  ) {
    this.copyHereBelow = options.copyHereBelow ?? 0;
  }

  /**
   * Copies a range into the image: queued for the pool, or at once if short (see
   * copyHereBelow) or where the calls cannot be made on the pool. It lands after every write
   * made to the image before (the writer's merge buffer goes out first: compressed output
   * can be written over by the file after it); nothing may write to its range again before
   * finish(). Throws the failure of an earlier copy (the range is settled as not copied).
   */
  copy(r: CopyRange): void {
    if (this.failure) {
      r.settled?.(false);
      throw this.failure;
    }
    if (r.length === 0) {
      // copy_file_range(2) would say 0 bytes, as at the end of the source.
      r.settled?.(true);
      return;
    }
    this.writer.flush();
    const p = this.pending;
    if (p && continues(p, r)) {
      this.pending = { ...p, length: p.length + r.length };
      if (this.pending.length >= this.copyHereBelow) this.flushPending();
      return;
    }
    try {
      this.flushPending();
    } catch (e) {
      r.settled?.(false);
      throw e;
    }
    this.pending = r;
    // Only a range to copy here that a next one may continue waits: a long one is copied
    // on the pool while the build goes on.
    if (r.settled || r.length >= this.copyHereBelow) this.flushPending();
  }

  /** Copies the range held back: at once if short (or where the pool cannot), else on the pool. */
  private flushPending(): void {
    const r = this.pending;
    if (!r) return;
    this.pending = null;
    if (!this.copyAsync || r.length < this.copyHereBelow) {
      let copied = false;
      try {
        this.copyHere(r);
        copied = true;
      } catch (e) {
        this.failure ??= e as Error;
      } finally {
        this.settle(r, copied);
      }
      if (this.failure) throw this.failure;
      return;
    }
    this.queue.push(r);
    this.used = true;
    this.pump();
  }

  /** Whether copies run on the thread pool here (else copy() copies at once). */
  get threaded(): boolean {
    return this.copyAsync !== null;
  }

  /** Ranges queued or in flight. */
  get backlog(): number {
    return this.queue.length - this.head + this.inFlight + (this.pending ? 1 : 0);
  }

  /**
   * Whether copies were handed to the thread pool, or one is held back: they may read the
   * source until close().
   */
  get inUse(): boolean {
    return this.used || this.pending !== null;
  }

  /**
   * Whether copies are in flight (none waits in the queue while fewer are): the next ones
   * start only at a turn of the event loop.
   */
  get busy(): boolean {
    return this.inFlight > 0;
  }

  private pump(): void {
    // After a failure (or once closed) what is queued is dropped.
    if (this.failure || this.stopped) {
      if (this.pending) this.settle(this.pending, false);
      this.pending = null;
      while (this.head < this.queue.length) this.settle(this.queue[this.head++]!, false);
    }
    while (this.inFlight < IN_FLIGHT && this.head < this.queue.length) this.issue(this.queue[this.head++]!);
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    if (this.inFlight === 0) for (const wake of this.idle.splice(0)) wake();
  }

  private issue(r: CopyRange): void {
    this.inFlight++;
    this.copyAsync!(r.fd, r.at, this.writer.descriptor, r.dst, r.length, (n) => {
      this.inFlight--;
      if (n > 0 && n < r.length) {
        // The rest in another call, which settles the range.
        this.issue({ ...r, at: r.at + n, dst: r.dst + n, length: r.length - n });
        return;
      }
      let copied = false;
      try {
        if (n === 0) throw r.endedAt(r.at);
        // Refused (another file system, an old kernel): copied here, which falls back to
        // reads and writes and reports real I/O errors.
        if (n < 0) this.copyHere(r);
        copied = true;
      } catch (e) {
        this.failure ??= e as Error;
      }
      this.settle(r, copied);
      this.pump();
    });
  }

  /** Runs a range's settled(); a failure of its checks fails the build. */
  private settle(r: CopyRange, copied: boolean): void {
    try {
      r.settled?.(copied && !this.failure);
    } catch (e) {
      this.failure ??= e as Error;
    }
  }

  private copyHere(r: CopyRange): void {
    const n = this.writer.copyFrom(r.fd, r.at, byteOffset(r.dst), r.length);
    if (n < r.length) throw r.endedAt(r.at + n);
  }

  /** Resolves once nothing is queued or in flight. */
  private drained(): Promise<void> {
    if (this.inFlight === 0 && this.head === this.queue.length) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Waits until every range is in the image; throws the first failure. */
  async finish(): Promise<void> {
    if (!this.failure) this.flushPending();
    await this.drained();
    if (this.failure) throw this.failure;
  }

  /** Runs `release` (closing the tar file) in close(), once no call can read it. */
  releaseAfterClose(release: () => void): void {
    this.release = release;
  }

  /** Drops what is queued or held back and waits for the calls in flight: the descriptors may be closed then. */
  async close(): Promise<void> {
    this.stopped = true;
    this.pump();
    await this.drained();
    const release = this.release;
    this.release = null;
    release?.();
  }
}

/**
 * Whether `r` goes on where the held-back `p` ends, in the same source and in the image, and
 * may be copied with it (`p` has no settled(): only such ranges are held back).
 */
function continues(p: CopyRange, r: CopyRange): boolean {
  return r.fd === p.fd && r.at === p.at + p.length && r.dst === p.dst + p.length && r.endedAt === p.endedAt && r.settled === undefined;
}
