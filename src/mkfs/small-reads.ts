// Small files read whole, many at a time, through one io_uring (uring.ts). For each file
// an openat into a file slot, a read of one byte more than its size (so the read tells
// whether the file grew) and a close, linked; a batch of 64 files is one system call where
// reading them one by one took 192. On a Debian root's 4,900 small files that is 18 ms less
// of the walk's thread (measured alone: 48 ms one by one, 30 batched).
//
// A file read whole comes back with its bytes; any other outcome (cannot be opened or read,
// grew, shrank) comes back without them, for the caller to read it the ordinary way, which
// names the problem as it always did.

import { constants as fsConstants } from 'node:fs';
import { loadKoffi } from '../ffi.js';
import { AT_FDCWD, IORING_OP_CLOSE, IORING_OP_OPENAT, IORING_OP_READ, IOSQE_FIXED_FILE, IOSQE_IO_HARDLINK, IOSQE_IO_LINK, Uring } from './uring.js';

/** Files in a batch, and the bytes their reads may take together. */
export const BATCH_FILES = 64;
export const BATCH_BYTES = 1 << 20;
/** A path's room, its NUL included (PATH_MAX). */
const PATH_BYTES = 4096;

/** A request's user data: its file's place in the batch, times four, plus which of the three. */
const OPEN = 0;
const READ = 1;
const CLOSE = 2;

interface NativeBuffer {
  ptr: unknown;
  addr: number;
  bytes: Buffer;
}

function allocNative(length: number): NativeBuffer {
  const koffi = loadKoffi();
  const ptr = koffi.alloc('uint8_t', length);
  return { ptr, addr: Number(koffi.address(ptr)), bytes: Buffer.from(koffi.view(ptr, length)) };
}

/** Where each file's bytes are, or null: read it another way. Views are valid during the call only. */
export type SmallReadHandler<T> = (token: T, bytes: Buffer | null) => void;

export class SmallFileReads<T> {
  private count = 0;
  private used = 0;
  private readonly tokens: Array<T | undefined> = new Array(BATCH_FILES);
  private readonly sizes = new Int32Array(BATCH_FILES);
  private readonly offsets = new Int32Array(BATCH_FILES);
  /** Per file: what its read returned (negative: an error, or cancelled after its open failed). */
  private readonly results = new Int32Array(BATCH_FILES);
  private ring: Uring | null;

  private constructor(
    ring: Uring,
    private readonly data: NativeBuffer,
    private readonly paths: NativeBuffer,
    private readonly handler: SmallReadHandler<T>,
  ) {
    this.ring = ring;
    const flags = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;
    for (let k = 0; k < BATCH_FILES; k++) {
      // A read of a file opened into slot k, then its close, whatever the read did.
      ring.prep(3 * k, IORING_OP_OPENAT, IOSQE_IO_LINK, AT_FDCWD, paths.addr + k * PATH_BYTES, 0, flags, 4 * k + OPEN, k + 1);
      ring.prep(3 * k + 1, IORING_OP_READ, IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK, k, 0, 0, 0, 4 * k + READ);
      ring.prep(3 * k + 2, IORING_OP_CLOSE, 0, 0, 0, 0, 0, 4 * k + CLOSE, k + 1);
    }
  }

  /** Batched reads, or null where io_uring cannot do them here. */
  static create<T>(handler: SmallReadHandler<T>): SmallFileReads<T> | null {
    const ring = Uring.open(4 * BATCH_FILES, BATCH_FILES);
    if (!ring) return null;
    try {
      return new SmallFileReads(ring, allocNative(BATCH_BYTES), allocNative(BATCH_FILES * PATH_BYTES), handler);
    } catch {
      ring.close();
      return null;
    }
  }

  /**
   * Queues a read of the whole file at `path` (its bytes, with or without a NUL after them),
   * of `size` bytes; its handler runs when the batch does (when full, or at flush()). False,
   * and nothing queued, for a file too big for a batch or a path too long.
   */
  add(path: Buffer, size: number, token: T): boolean {
    const named = path.length > 0 && path[path.length - 1] === 0 ? path.length - 1 : path.length;
    if (!this.ring || size + 1 > BATCH_BYTES || named + 1 > PATH_BYTES) return false;
    if (this.count === BATCH_FILES || this.used + size + 1 > BATCH_BYTES) this.flush();
    const ring = this.ring;
    if (!ring) return false;
    const k = this.count++;
    const at = k * PATH_BYTES;
    path.copy(this.paths.bytes, at, 0, named);
    this.paths.bytes[at + named] = 0;
    ring.setAddr(3 * k + 1, this.data.addr + this.used);
    ring.setLen(3 * k + 1, size + 1);
    ring.queue(3 * k);
    ring.queue(3 * k + 1);
    ring.queue(3 * k + 2);
    this.tokens[k] = token;
    this.sizes[k] = size;
    this.offsets[k] = this.used;
    this.used += size + 1;
    return true;
  }

  /** Runs the batch queued: every file's handler, in the order they were added. */
  flush(): void {
    const n = this.count;
    if (n === 0) return;
    this.count = 0;
    this.used = 0;
    const results = this.results;
    results.fill(-1, 0, n);
    try {
      this.ring!.run((userData, result) => {
        if ((userData & 3) === READ) results[userData >>> 2] = result;
      });
    } catch {
      // The ring is not to be trusted any more: these files and the rest are read one by one.
      // Its buffers stay allocated: requests handed over may still be writing into them.
      const ring = this.ring!;
      this.ring = null;
      ring.close();
      results.fill(-1, 0, n);
    }
    for (let k = 0; k < n; k++) {
      const token = this.tokens[k]!;
      this.tokens[k] = undefined;
      const size = this.sizes[k]!;
      const whole = results[k] === size;
      this.handler(token, whole ? this.data.bytes.subarray(this.offsets[k]!, this.offsets[k]! + size) : null);
    }
  }

  /** Frees the ring and its buffers (every batch run has completed); files still queued are dropped. */
  close(): void {
    if (!this.ring) return;
    this.ring.close();
    this.ring = null;
    this.count = 0;
    const koffi = loadKoffi();
    koffi.free(this.data.ptr);
    koffi.free(this.paths.ptr);
  }
}
