// The image writer: positional writes into a temporary file beside the image, put in its
// place only once everything is written. Every write to the output goes through this
// module, but for the copies made on libuv's thread pool (see RangeCopier).

import { close, closeSync, constants as fsConstants, ftruncateSync, lstatSync, openSync, readSync, realpathSync, renameSync, unlink, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from '../builtins.js';
import { type ByteOffset, byteOffset as byteOffsetOf } from '../format/types.js';
import { BuildError, describeFsError } from './errors.js';
import { copyDataRanges, copyRange, ShortCopyError, spliceFromPipe } from './copy-range.js';

/**
 * Adjacent writes are merged up to this much. Every buffer of the main thread's is peak RSS
 * beside the compressing threads': past 2 MiB (or 256 KiB for a spool's small appends)
 * fewer system calls gain no measurable time.
 */
const COALESCE_BYTES = 2 << 20;
const SPOOL_READ_AHEAD = 256 << 10;
/** Appends are merged into writes of up to this much. */
const SPOOL_PENDING_BYTES = 256 << 10;
/**
 * A spool up to this size is read whole when first read (see Spool.read): the inline tails
 * of a Debian root's 4,900 small files take 8.5 MB, read in one call rather than 5,000
 * (10-20 ms of a 0.3 s build, for 8 MB more peak RSS).
 */
const SPOOL_READ_WHOLE = 16 << 20;

/** Temporary files of builds in progress, so a signal handler can remove them. */
const activeTemps = new Set<string>();

/** Removes every unfinished temporary image; safe to call from a signal handler. */
export function removeActiveTempFiles(): void {
  for (const t of activeTemps) {
    try {
      unlinkSync(t);
    } catch {
      // already gone
    }
  }
  activeTemps.clear();
}

/**
 * The file the finished image replaces: the image path, or the file a symlink there points
 * to (the link stays). checkImagePath has refused anything but a regular file already.
 */
function replacedPath(imagePath: string): string {
  try {
    return lstatSync(imagePath).isSymbolicLink() ? realpathSync(imagePath) : imagePath;
  } catch {
    return imagePath;
  }
}

function dropOldImage(imagePath: string): void {
  try {
    unlinkSync(imagePath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Metadata blocks kept in memory at most: inodes land in a few open blocks at a time, and
 * the inode writer goes block by block, so one written out is rarely filled further (then
 * it is read back). Few blocks also means few fresh pages: blocks written out are reused.
 */
const META_CACHE_BLOCKS = 64;

/**
 * Positional writes to one descriptor, neighbours merged into large writes, and in-kernel
 * copies from other files: the image writer, and the spools' writers.
 */
export class FdWriter {
  private readonly pending: Buffer;
  private pendingStart = 0;
  private pendingLen = 0;
  /**
   * Nonzero when the last write ends inside a block of this size that nothing else writes
   * (file data, the rest of its last block padding): the next block's write may then merge,
   * the padding written as the zeros it reads as.
   */
  private ownedBlock = 0;

  constructor(
    protected readonly fd: number,
    /** The file named in errors. */
    protected readonly shownPath: string,
    /** Largest merged write. */
    coalesceBytes = COALESCE_BYTES,
  ) {
    this.pending = Buffer.allocUnsafe(coalesceBytes);
  }

  protected fail(e: unknown): never {
    throw new BuildError(`${this.shownPath}: write failed: ${describeFsError(e)}`);
  }

  private writeFully(buf: Uint8Array, pos: number): void {
    let done = 0;
    try {
      while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done, pos + done);
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * A copy of bytes [off, off + length) where they all wait in the merge buffer still (the
   * newest bytes there: every other write flushes it first), else null.
   */
  protected pendingCopy(off: number, length: number): Buffer | null {
    const at = off - this.pendingStart;
    if (this.pendingLen === 0 || at < 0 || at + length > this.pendingLen) return null;
    return Buffer.from(this.pending.subarray(at, at + length));
  }

  flush(): void {
    if (this.pendingLen === 0) return;
    this.writeFully(this.pending.subarray(0, this.pendingLen), this.pendingStart);
    this.pendingLen = 0;
  }

  /**
   * Writes bytes at an absolute offset; consecutive writes are merged into large ones. With
   * `ownedBlock` (the block size), the rest of the block the bytes end in is theirs alone (a
   * file's last block): a write starting at the next block merges across it.
   */
  writeAt(off: ByteOffset, bytes: Uint8Array, ownedBlock = 0): void {
    const end = this.pendingStart + this.pendingLen;
    const owned = this.ownedBlock;
    this.ownedBlock = ownedBlock;
    if (this.pendingLen > 0 && owned > 0 && off > end && off === Math.ceil(end / owned) * owned && off - this.pendingStart + bytes.length <= this.pending.length) {
      this.pending.fill(0, this.pendingLen, off - this.pendingStart);
      this.pendingLen = off - this.pendingStart;
    }
    if (this.pendingLen > 0 && off === this.pendingStart + this.pendingLen && this.pendingLen + bytes.length <= this.pending.length) {
      this.pending.set(bytes, this.pendingLen);
      this.pendingLen += bytes.length;
      return;
    }
    this.flush();
    if (bytes.length >= this.pending.length) {
      this.writeFully(bytes, off);
      return;
    }
    this.pending.set(bytes, 0);
    this.pendingStart = off;
    this.pendingLen = bytes.length;
  }

  /**
   * Copies `length` bytes of another file, from `srcOffset`, to `off` in the kernel. Returns
   * how many bytes the source had (fewer than length if it ended first).
   */
  copyFrom(srcFd: number, srcOffset: number, off: ByteOffset, length: number): number {
    this.flush();
    try {
      return copyRange(srcFd, srcOffset, this.fd, off, length);
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * Moves up to `length` bytes from a pipe to `off` in the kernel (see spliceFromPipe): the
   * bytes moved, 'empty' while the pipe has none, null where the system refuses.
   */
  spliceFrom(pipeFd: number, off: ByteOffset, length: number): number | 'empty' | null {
    this.flush();
    return spliceFromPipe(pipeFd, this.fd, off, length);
  }

  /**
   * Copies the first `length` bytes of a source file to `off` in the kernel, leaving its
   * holes as holes (the image is new and reads as zeros there). False when the system
   * cannot tell holes apart; throws ShortCopyError when the source is shorter.
   */
  copySparseFrom(srcFd: number, off: ByteOffset, length: number): boolean {
    this.flush();
    try {
      return copyDataRanges(srcFd, this.fd, off, length);
    } catch (e) {
      if (e instanceof ShortCopyError) throw e;
      this.fail(e);
    }
  }
}

export class ImageWriter extends FdWriter {
  private closed = false;
  /** Metadata blocks being filled, least recently used first. */
  private meta = new Map<number, Buffer>();
  /** Metadata blocks already written out once (read back if filled further). */
  private metaEvicted = new Set<number>();
  /** Buffers of blocks written out, for the next blocks. */
  private metaFree: Buffer[] = [];
  private metaBlksz = 0;
  /** The metadata block used last, and its number (-1: none). */
  private lastMetaBlk = -1;
  private lastMeta: Buffer | null = null;

  private constructor(
    readonly imagePath: string,
    readonly tempPath: string,
    fd: number,
  ) {
    super(fd, imagePath);
  }

  static create(imagePath: string): ImageWriter {
    const target = replacedPath(imagePath);
    const dir = path.dirname(path.resolve(target));
    const tempPath = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    let fd: number;
    try {
      fd = openSync(tempPath, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
    } catch (e) {
      throw new BuildError(`${imagePath}: cannot create image: ${describeFsError(e)}`);
    }
    activeTemps.add(tempPath);
    return new ImageWriter(target, tempPath, fd);
  }

  /** The image's descriptor, for the copies made on the thread pool (see RangeCopier). */
  get descriptor(): number {
    return this.fd;
  }

  setSize(bytes: number): void {
    try {
      ftruncateSync(this.fd, bytes);
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * Writes inode-sized pieces of metadata through a block cache, so that thousands of small
   * units packed into a block cost one write. flushMeta() must run before anything else
   * writes to or reads those blocks.
   */
  writeMeta(off: ByteOffset, bytes: Uint8Array, blksz: number): void {
    this.metaBlksz = blksz;
    let done = 0;
    while (done < bytes.length) {
      const at = off + done;
      const blk = Math.floor(at / blksz);
      const inBlock = at - blk * blksz;
      const n = Math.min(bytes.length - done, blksz - inBlock);
      this.metaBlock(blk).set(bytes.subarray(done, done + n), inBlock);
      done += n;
    }
  }

  /**
   * The cached metadata block that holds [off, off + length), to be filled in place at
   * off % blksz; null when the range runs into the next block (then writeMeta it).
   */
  metaBlockOf(off: ByteOffset, length: number, blksz: number): Buffer | null {
    const blk = Math.floor(off / blksz);
    if (off - blk * blksz + length > blksz) return null;
    this.metaBlksz = blksz;
    return this.metaBlock(blk);
  }

  private metaBlock(blk: number): Buffer {
    // Units come block by block: most land in the block the one before did, whose place at
    // the end of the LRU order no other block has taken since.
    if (blk === this.lastMetaBlk) return this.lastMeta!;
    const b = this.lruMetaBlock(blk);
    this.lastMetaBlk = blk;
    this.lastMeta = b;
    return b;
  }

  private lruMetaBlock(blk: number): Buffer {
    let b = this.meta.get(blk);
    if (b) {
      // Most recently used last.
      this.meta.delete(blk);
      this.meta.set(blk, b);
      return b;
    }
    if (this.meta.size >= META_CACHE_BLOCKS) {
      const [old, data] = this.meta.entries().next().value as [number, Buffer];
      this.meta.delete(old);
      this.metaEvicted.add(old);
      this.writeAt(byteOffsetOf(old * this.metaBlksz), data);
      this.metaFree.push(data);
    }
    b = this.metaEvicted.has(blk) ? this.readAt(byteOffsetOf(blk * this.metaBlksz), this.metaBlksz) : this.zeroBlock();
    this.meta.set(blk, b);
    return b;
  }

  /** A zeroed block buffer: a written-out one again where there is one (fresh memory costs a page fault per block). */
  private zeroBlock(): Buffer {
    const b = this.metaFree.pop();
    return b && b.length === this.metaBlksz ? b.fill(0) : Buffer.alloc(this.metaBlksz);
  }

  /** Writes every cached metadata block, neighbours merged into one write. */
  flushMeta(): void {
    const blocks = [...this.meta.keys()].sort((a, b) => a - b);
    for (const blk of blocks) this.writeAt(byteOffsetOf(blk * this.metaBlksz), this.meta.get(blk)!);
    this.metaFree = [];
    this.meta.clear();
    this.metaEvicted.clear();
    this.lastMetaBlk = -1;
    this.lastMeta = null;
  }

  readAt(off: ByteOffset, length: number): Buffer {
    const merged = this.pendingCopy(off, length);
    if (merged) return merged;
    this.flush();
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, off + done);
      if (n === 0) break;
      done += n;
    }
    return out;
  }

  /** Flushes, closes and replaces the image. */
  commit(): void {
    this.flush();
    try {
      closeSync(this.fd);
      this.closed = true;
      // ext4 (auto_da_alloc) starts writeback of a file renamed over another, in the rename
      // call: 0.35 s for a 190 MB image. An old image is removed first instead, so a reader
      // sees the old image, then no image for an instant, then the new one.
      dropOldImage(this.imagePath);
      renameSync(this.tempPath, this.imagePath);
    } catch (e) {
      this.abort();
      this.fail(e);
    }
    activeTemps.delete(this.tempPath);
  }

  /** Drops the temporary file; an existing image is left untouched. */
  abort(): void {
    if (!this.closed) {
      try {
        closeSync(this.fd);
      } catch {
        // closing can only fail if already closed
      }
      this.closed = true;
    }
    try {
      unlinkSync(this.tempPath);
    } catch {
      // already gone
    }
    activeTemps.delete(this.tempPath);
  }
}

/**
 * Appends to a scratch file by its descriptor (which another thread may have opened),
 * buffered: a Spool's writes, and a compressing thread's output of a job too big to hold.
 */
export class FdAppender {
  private written = 0;
  private buf: Buffer | null = null;
  private pending = 0;

  constructor(
    readonly fd: number,
    /** The file named in errors. */
    private readonly shownPath: string,
    private readonly bufferBytes = 256 << 10,
  ) {}

  /** Bytes appended so far: the offset the next append starts at. */
  get length(): number {
    return this.written + this.pending;
  }

  append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.buf ??= Buffer.allocUnsafe(this.bufferBytes);
    if (this.pending + bytes.length > this.buf.length) this.flush();
    if (bytes.length >= this.buf.length) {
      this.writeOut(bytes);
      return;
    }
    this.buf.set(bytes, this.pending);
    this.pending += bytes.length;
  }

  /** Takes back what was appended from `offset` on: later appends go over it. */
  rewind(offset: number): void {
    if (offset >= this.written) this.pending = Math.min(this.pending, offset - this.written);
    else {
      this.pending = 0;
      this.written = offset;
    }
  }

  /** Room for `length` bytes that another thread writes; returns its offset. */
  reserve(length: number): number {
    this.flush();
    const at = this.written;
    this.written += length;
    return at;
  }

  /** Puts everything appended on disk, for other threads to read. */
  flush(): void {
    if (this.pending === 0) return;
    const n = this.pending;
    this.pending = 0;
    this.writeOut(this.buf!.subarray(0, n));
  }

  private writeOut(bytes: Uint8Array): void {
    try {
      for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done, bytes.length - done, this.written + done);
    } catch (e) {
      throw new BuildError(`${this.shownPath}: write failed: ${describeFsError(e)}`);
    }
    this.written += bytes.length;
  }
}

/**
 * Append-only scratch file beside the image for what must wait until the metadata is
 * laid out (compressed indexes, inline tails), so memory does not grow with file data.
 */
export class Spool {
  private readonly fd: number;
  /** Appended bytes not written yet are copied in (callers reuse their buffers). */
  private readonly out: FdAppender;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    } catch (e) {
      throw new BuildError(`${path}: cannot create scratch file: ${describeFsError(e)}`);
    }
    activeTemps.add(path);
    this.out = new FdAppender(this.fd, path, SPOOL_PENDING_BYTES);
  }

  /** A scratch file beside the image's temporary file, named after it and `what`. */
  static beside(w: ImageWriter, what = 'spool'): Spool {
    return new Spool(`${w.tempPath}.${what}`);
  }

  /** A uniquely named scratch file in `dir`. */
  static inDir(dir: string, what: string): Spool {
    return new Spool(path.join(dir, `.${what}-${process.pid}-${randomBytes(6).toString('hex')}.spool`));
  }

  /** Bytes appended so far: the offset the next append starts at. */
  get length(): number {
    return this.out.length;
  }

  /** The descriptor, with everything appended on disk, for positional reads (any thread). */
  readableFd(): number {
    this.out.flush();
    return this.fd;
  }

  /** Appends the parts back to back; returns the offset of the first. */
  append(...parts: Uint8Array[]): number {
    const at = this.out.length;
    for (const p of parts) this.out.append(p);
    return at;
  }

  /** Room for `length` bytes that another thread writes; returns its offset. */
  reserve(length: number): number {
    return this.out.reserve(length);
  }

  /** What was last read from the spool: all of a small one, or a read-ahead window. */
  private window = Buffer.alloc(0);
  private windowStart = 0;
  private windowLen = 0;

  /** Bytes appended at `offset`; valid until the next read. */
  read(offset: number, length: number): Buffer {
    const at = offset - this.windowStart;
    if (at >= 0 && at + length <= this.windowLen) return this.window.subarray(at, at + length);
    this.out.flush();
    // The inode writer goes block by block, which jumps all over the spool: a small one is
    // read whole at the first read, in one call rather than thousands of a few bytes.
    const whole = this.windowLen === 0 && this.length <= SPOOL_READ_WHOLE;
    // Else read ahead only for reads in order (right after the window): random ones take what they ask.
    const sequential = offset === this.windowStart + this.windowLen;
    const start = whole ? 0 : offset;
    const want = whole ? this.length : sequential ? Math.min(Math.max(length, SPOOL_READ_AHEAD), this.length - offset) : length;
    if (this.window.length < want) this.window = Buffer.allocUnsafe(Math.max(want, SPOOL_READ_AHEAD));
    let done = 0;
    while (done < want) {
      const n = readSync(this.fd, this.window, done, want - done, start + done);
      if (n === 0) throw new Error(`internal: spool ends at ${start + done}`);
      done += n;
    }
    this.windowStart = start;
    this.windowLen = want;
    return this.window.subarray(offset - start, offset - start + length);
  }


  dispose(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
    activeTemps.delete(this.path);
  }

  /**
   * dispose() on libuv's thread pool: dropping a file of tens of megabytes from the page
   * cache takes milliseconds of the thread that closes and unlinks it.
   */
  disposeAsync(): Promise<void> {
    const done = new Promise<void>((resolve) => close(this.fd, () => unlink(this.path, () => resolve())));
    return done.then(() => {
      activeTemps.delete(this.path);
    });
  }
}
