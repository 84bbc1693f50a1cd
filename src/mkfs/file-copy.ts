// Uncompressed file data into the image: the block part straight to its blocks (in the
// kernel where it can be), the inline tail handed back for the inode writer. Shared by the
// main thread and the copy thread (copy-worker.ts).

import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { type ByteOffset, byteOffset } from '../format/types.js';
import { ShortCopyError } from './copy-range.js';
import { BuildError, describeFsError, fileGrew, fileShrank } from './errors.js';

/** Where file data goes: the image writer, or the copy thread's writer on the same file. */
export interface DataSink {
  writeAt(off: ByteOffset, bytes: Uint8Array): void;
  /** False where the system cannot tell holes apart; ShortCopyError if the source ends first. */
  copySparseFrom(srcFd: number, off: ByteOffset, length: number): boolean;
}

export interface FileData {
  /** The source file, opened here unless the bytes come from `spool`; named in errors. */
  path: Buffer;
  size: number;
  /** Bytes at the end that go inline after the inode rather than into a block. */
  inlineTail: number;
  /** Where the block part starts in the image. */
  dst: ByteOffset;
  /** The bytes are at `offset` in this descriptor (the --tar=f data spool). */
  spool: { fd: number; offset: number } | null;
  /** The destination still reads as zeros, so all-zero runs need not be written. */
  untouched: boolean;
}

/** A file's data for a thread to put in blocks nothing else wrote; plain data, to post. */
export interface FileToCopy {
  path: Uint8Array;
  size: number;
  /** Its last bytes that go inline, left out. */
  inlineTail: number;
  /** Byte offset of the file's first block in the image. */
  dst: number;
  /** The bytes are at `offset` in this descriptor (the --tar=f data spool), not in `path`. */
  spool?: { fd: number; offset: number } | null;
}

/** A source file for the copy thread (or the walk) to put in place. */
export interface CopyJob extends FileToCopy {
  /** Where its inline tail goes in the tails spool. */
  tailAt: number;
}

/** A job's path as a Buffer: posted to a worker, a Buffer arrives as a plain Uint8Array. */
const jobPath = (job: FileToCopy): Buffer => Buffer.from(job.path.buffer, job.path.byteOffset, job.path.byteLength);

/** Copies a file into a fresh image and returns its inline tail. */
export function runCopy(job: FileToCopy, image: DataSink, buf: Buffer): Buffer | null {
  const steps = copyFileData(
    { path: jobPath(job), size: job.size, inlineTail: job.inlineTail, dst: byteOffset(job.dst), spool: job.spool ?? null, untouched: true },
    image,
    buf,
  );
  let step = steps.next();
  while (!step.done) step = steps.next();
  return step.value;
}

/** A job's inline tail, read on its own: the last `inlineTail` bytes of the file (in `buf`). */
export function readTail(job: CopyJob, buf: Buffer): Buffer {
  const path = jobPath(job);
  const shown = path.toString();
  const fd = openSource(path, shown);
  try {
    const tail = buf.subarray(0, job.inlineTail);
    readTailAt(fd, shown, tail, job.size);
    return tail;
  } finally {
    closeSync(fd);
  }
}

export function openSource(path: Buffer, shown: string): number {
  try {
    return openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (e) {
    throw new BuildError(`${shown}: cannot open: ${describeFsError(e)}`);
  }
}

/**
 * Fills `tail` with the last tail.length bytes of a file of `size` bytes, by position; the
 * file starts at `base` in fd (a spool holds it there).
 */
export function readTailAt(fd: number, shown: string, tail: Buffer, size: number, base = 0): void {
  const at = size - tail.length;
  for (let got = 0; got < tail.length; ) {
    let n: number;
    try {
      n = readSync(fd, tail, got, tail.length - got, base + at + got);
    } catch (e) {
      throw new BuildError(`${shown}: read failed: ${describeFsError(e)}`);
    }
    if (n === 0) throw fileShrank(shown, size, at + got);
    got += n;
  }
}

/** Below this, one read and one write cost less than asking the kernel for data ranges. */
export const KERNEL_COPY_MIN = 64 << 10;

/**
 * Copies a file's block part to the sink and returns its inline tail (null if none). Yields
 * the bytes handled after each step, so a caller can let its event loop run in between;
 * `buf` is scratch space, and files smaller than it take a single read.
 */
export function* copyFileData(f: FileData, sink: DataSink, buf: Buffer): Generator<number, Buffer | null, void> {
  const shown = f.path.toString();
  const fd = f.spool ? f.spool.fd : openSource(f.path, shown);
  try {
    const blockBytes = f.size - f.inlineTail;
    if (!f.spool && f.untouched && blockBytes >= KERNEL_COPY_MIN) {
      const tail = copyInKernel(fd, shown, f, sink);
      if (tail !== undefined) {
        yield f.size;
        return tail;
      }
    }
    if (!f.spool && f.size < buf.length) {
      const tail = copySmall(fd, shown, f, sink, buf);
      yield f.size;
      return tail;
    }
    return yield* copyByReading(fd, shown, f, sink, buf);
  } finally {
    if (!f.spool) closeSync(fd);
  }
}

/** Spooled data is read by position; source files sequentially, to notice growth. */
function* copyByReading(fd: number, shown: string, f: FileData, sink: DataSink, buf: Buffer): Generator<number, Buffer | null, void> {
  const blockBytes = f.size - f.inlineTail;
  let spoolPos = f.spool?.offset ?? 0;
  const read = (into: Buffer, off: number, len: number): number => {
    try {
      if (!f.spool) return readSync(fd, into, off, len, null);
      const n = readSync(fd, into, off, len, spoolPos);
      spoolPos += n;
      return n;
    } catch (e) {
      throw new BuildError(`${shown}: read failed: ${describeFsError(e)}`);
    }
  };
  let pos = 0;
  while (pos < blockBytes) {
    const want = Math.min(buf.length, blockBytes - pos);
    let got = 0;
    while (got < want) {
      const n = read(buf, got, want - got);
      if (n === 0) throw fileShrank(shown, f.size, pos + got);
      got += n;
    }
    // All-zero chunks are left as holes where nothing was written yet.
    const chunk = buf.subarray(0, got);
    if (!f.untouched || !isZero(chunk)) sink.writeAt(byteOffset(f.dst + pos), chunk);
    pos += got;
    yield got;
  }
  const tail = f.inlineTail > 0 ? Buffer.allocUnsafe(f.inlineTail) : null;
  if (tail) {
    let got = 0;
    while (got < tail.length) {
      const n = read(tail, got, tail.length - got);
      if (n === 0) throw fileShrank(shown, f.size, pos + got);
      got += n;
    }
  }
  if (!f.spool && read(buf, 0, 1) !== 0) throw fileGrew(shown, f.size);
  return tail;
}

/**
 * A file that fits the buffer, in as few reads as it takes: one, asking for a byte more
 * than expected, usually tells the whole file and its end (a short read of a regular file
 * ends at its end), where reading blocks, tail and end apart took three.
 */
function copySmall(fd: number, shown: string, f: FileData, sink: DataSink, buf: Buffer): Buffer | null {
  const size = f.size;
  let got = 0;
  for (;;) {
    const ask = size + 1 - got;
    let n: number;
    try {
      n = readSync(fd, buf, got, ask, null);
    } catch (e) {
      throw new BuildError(`${shown}: read failed: ${describeFsError(e)}`);
    }
    got += n;
    if (got > size) throw fileGrew(shown, size);
    if (n === 0 || (n < ask && got === size)) break;
  }
  if (got < size) throw fileShrank(shown, size, got);
  const tail = placeWhole(f, buf.subarray(0, size), sink);
  return tail && Buffer.from(tail);
}

/**
 * A file read whole (`data`, its `size` bytes): its blocks to the sink; returns its inline
 * tail, a view of `data` (null if none).
 */
export function placeWhole(f: Pick<FileData, 'size' | 'inlineTail' | 'dst' | 'untouched'>, data: Buffer, sink: DataSink): Buffer | null {
  const blockBytes = f.size - f.inlineTail;
  // All-zero blocks are left as holes where nothing was written yet.
  const blocks = data.subarray(0, blockBytes);
  if (blockBytes > 0 && (!f.untouched || !isZero(blocks))) sink.writeAt(f.dst, blocks);
  return f.inlineTail > 0 ? data.subarray(blockBytes, f.size) : null;
}

/**
 * A source file's blocks copied in the kernel, holes kept; returns its inline tail, or
 * undefined when holes cannot be found on this system (copy it by reading instead).
 */
function copyInKernel(fd: number, shown: string, f: FileData, sink: DataSink): Buffer | null | undefined {
  const blockBytes = f.size - f.inlineTail;
  try {
    if (!sink.copySparseFrom(fd, f.dst, blockBytes)) return undefined;
  } catch (e) {
    if (e instanceof ShortCopyError) throw fileShrank(shown, f.size, e.at);
    throw e;
  }
  let tail: Buffer | null = null;
  if (f.inlineTail > 0) {
    tail = Buffer.alloc(f.inlineTail);
    readTailAt(fd, shown, tail, f.size);
  }
  checkSize(fd, shown, f.size);
  return tail;
}

/** After an in-kernel copy, which cannot notice it: a file that changed size is an error. */
export function checkSize(fd: number, shown: string, size: number): void {
  let now: number;
  try {
    now = fstatSync(fd).size;
  } catch (e) {
    throw new BuildError(`${shown}: read failed: ${describeFsError(e)}`);
  }
  if (now < size) throw fileShrank(shown, size, now);
  if (now > size) throw fileGrew(shown, size);
}

let zeros = Buffer.alloc(0);
/** Whether every byte is zero: such runs of a new image are left as holes. */
export function isZero(b: Buffer): boolean {
  if (zeros.length < b.length) zeros = Buffer.alloc(Math.max(b.length, 1 << 20));
  return b.equals(zeros.subarray(0, b.length));
}
