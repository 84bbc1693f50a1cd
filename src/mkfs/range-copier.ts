// Uncompressed --tar=f from a tar file: big members go into the image by copy_file_range(2)
// calls made on libuv's thread pool, while the main thread reads on through the headers and
// then writes the metadata; the kernel copies on another core. A Node worker would cost
// more to start (a tenth of a second of CPU) than the copies take.

import { type ByteOffset, byteOffset } from '../format/types.js';
import { type AsyncCopy, asyncCopy } from './copy-range.js';
import { tarEndedEarly } from './errors.js';
import type { ImageWriter } from './writer.js';

interface Range {
  fd: number;
  at: number;
  dst: number;
  length: number;
  /** The tar, named in errors. */
  shown: string;
}

/**
 * Calls in flight at most: koffi keeps this many call stacks ready (more are allocated, a
 * quarter MiB each, up to its limit of 256 calls, past which it ends the process), and the
 * copies all write one file, whose lock lets one at a time through anyway.
 */
const IN_FLIGHT = 4;

export class RangeCopier {
  private readonly copyAsync: AsyncCopy | null = asyncCopy();
  private queue: Range[] = [];
  private head = 0;
  private inFlight = 0;
  private failure: Error | null = null;
  private stopped = false;
  private used = false;
  /** Called once nothing is queued or in flight. */
  private idle: Array<() => void> = [];
  private release: (() => void) | null = null;

  constructor(private readonly writer: ImageWriter) {}

  /**
   * Copies `length` bytes at `at` in `fd` to `dst` in the image: queued, or at once where
   * the calls cannot be made on the thread pool. Throws the failure of an earlier copy.
   */
  copy(fd: number, at: number, dst: ByteOffset, length: number, shown: string): void {
    if (this.failure) throw this.failure;
    if (!this.copyAsync) {
      this.copyHere({ fd, at, dst, length, shown });
      return;
    }
    this.queue.push({ fd, at, dst, length, shown });
    this.used = true;
    this.pump();
  }

  /** Whether copies were handed to the thread pool: they may read the source until close(). */
  get inUse(): boolean {
    return this.used;
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
    if (this.failure || this.stopped) this.head = this.queue.length;
    while (this.inFlight < IN_FLIGHT && this.head < this.queue.length) this.issue(this.queue[this.head++]!);
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    if (this.inFlight === 0) for (const wake of this.idle.splice(0)) wake();
  }

  private issue(r: Range): void {
    this.inFlight++;
    this.copyAsync!(r.fd, r.at, this.writer.descriptor, r.dst, r.length, (n) => {
      this.inFlight--;
      try {
        if (n === r.length) {
          // done
        } else if (n > 0) this.issue({ ...r, at: r.at + n, dst: r.dst + n, length: r.length - n });
        else if (n === 0) throw tarEndedEarly(r.shown);
        // Refused (another file system, an old kernel): copied here, which falls back to
        // reads and writes and reports real I/O errors.
        else this.copyHere(r);
      } catch (e) {
        this.failure ??= e as Error;
      }
      this.pump();
    });
  }

  private copyHere(r: Range): void {
    if (this.writer.copyFrom(r.fd, r.at, byteOffset(r.dst), r.length) < r.length) throw tarEndedEarly(r.shown);
  }

  /** Resolves once nothing is queued or in flight. */
  private drained(): Promise<void> {
    if (this.inFlight === 0 && this.head === this.queue.length) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Waits until every range is in the image; throws the first failure. */
  async finish(): Promise<void> {
    await this.drained();
    if (this.failure) throw this.failure;
  }

  /** Runs `release` (closing the tar file) in close(), once no call can read it. */
  releaseAfterClose(release: () => void): void {
    this.release = release;
  }

  /** Drops what is queued and waits for the calls in flight: the descriptors may be closed then. */
  async close(): Promise<void> {
    this.stopped = true;
    this.pump();
    await this.drained();
    const release = this.release;
    this.release = null;
    release?.();
  }
}
