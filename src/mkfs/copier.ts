// Uncompressed builds from a directory: file data goes into the image while the walk goes
// on, ahead of the metadata (as compressed builds and --tar=f lay it out). Big files are
// copied in the kernel on libuv's thread pool (see RangeCopier), which goes on while the
// metadata is written; the walk reads the others itself. Each file gets its blocks when it
// is found, so the layout does not depend on who copies it or when; inline tails are read
// here either way and wait in a spool for the inode writer.

import * as fs from 'node:fs';
import { type BlockGeometry, byteOffset } from '../format/types.js';
import { allData } from './copy-range.js';
import { fileShrank } from './errors.js';
import { checkSize, copyWholeFile, KERNEL_COPY_MIN, openSource, readTailAt } from './file-copy.js';
import type { BuildConfig } from './options.js';
import { plannedInlineTail, superBlockAddr } from './planner.js';
import type { RangeCopier } from './range-copier.js';
import type { TreeInode } from './tree.js';
import { FdWriter, type ImageWriter, type Spool } from './writer.js';

/**
 * Big files waiting for the thread pool at most, each holding its descriptor open: past
 * that the walk copies the next big file itself (the pool is behind, and descriptors are
 * limited).
 */
const BACKLOG_FILES = 64;
/** The walk's read buffer: files smaller than this take a single read. */
const BUFFER_BYTES = 1 << 20;

export class FileCopier {
  private readonly firstBlk: number;
  private nextBlk: number;
  /** File bytes placed. */
  private bytes = 0;
  /** Inline tails go to their place in the spool through this. */
  private readonly tailsOut: FdWriter;
  private buf: Buffer | null = null;

  constructor(
    private readonly cfg: BuildConfig,
    private readonly g: BlockGeometry,
    private readonly writer: ImageWriter,
    private readonly tails: Spool,
    /**
     * Copies on the thread pool, or null: compressed builds copy only files smaller than a
     * block here (the rest is compressed), which take no block copy.
     */
    private readonly ranges: RangeCopier | null,
  ) {
    this.firstBlk = superBlockAddr(g) + 1;
    this.nextBlk = this.firstBlk;
    this.tailsOut = new FdWriter(tails.readableFd(), tails.path, 64 << 10);
  }

  /**
   * A regular file whose inode form is final (see walkSource): its blocks follow the ones
   * given out before and its tail gets a place in the spool; then its blocks are copied on
   * the thread pool, or here.
   */
  add(inode: TreeInode, path: Buffer): void {
    const size = inode.size;
    if (size === 0) return;
    const { blksz } = this.g;
    const inline = plannedInlineTail(this.cfg, this.g, inode);
    const inlineTail = inline ? size % blksz : 0;
    const dst = this.nextBlk * blksz;
    inode.dataBlk = this.nextBlk;
    inode.dataOffset = inline ? this.tails.reserve(inlineTail) : -1;
    this.nextBlk += Math.ceil((size - inlineTail) / blksz);
    this.bytes += size;
    let tail = this.copyAhead(path, size, inlineTail, dst);
    if (tail === undefined) {
      this.buf ??= Buffer.allocUnsafe(BUFFER_BYTES);
      tail = copyWholeFile(path, size, inlineTail, byteOffset(dst), this.writer, this.buf);
    }
    if (tail) this.tailsOut.writeAt(byteOffset(inode.dataOffset), tail);
  }

  /**
   * A big file's blocks (at `dst` in the image) handed to the thread pool, its inline tail
   * read here and returned (null if none); undefined, and nothing done, for a file to copy
   * another way: small, with holes (copied here, skipping them), or with the pool behind.
   */
  copyAhead(path: Buffer, size: number, inlineTail: number, dst: number): Buffer | null | undefined {
    const blockBytes = size - inlineTail;
    if (blockBytes < KERNEL_COPY_MIN || !this.ranges?.threaded || this.ranges.backlog >= BACKLOG_FILES) return undefined;
    const shown = path.toString();
    const fd = openSource(path, shown);
    let tail: Buffer | null = null;
    try {
      if (!allData(fd, blockBytes)) {
        fs.closeSync(fd);
        return undefined;
      }
      if (inlineTail > 0) {
        tail = Buffer.allocUnsafe(inlineTail);
        readTailAt(fd, shown, tail, size);
      }
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.ranges.copy({
      fd,
      at: 0,
      dst,
      length: blockBytes,
      endedAt: (at) => fileShrank(shown, size, at),
      settled: (copied) => {
        try {
          if (copied) checkSize(fd, shown, size);
        } finally {
          fs.closeSync(fd);
        }
      },
    });
    return tail;
  }

  /** Whether copies are in flight on the thread pool: the next ones start at a turn of the event loop. */
  get busy(): boolean {
    return this.ranges?.busy ?? false;
  }

  /** Every inline tail in the spool (the blocks may still be being copied). No more files may be added. */
  settleTails(): void {
    this.tailsOut.flush();
  }

  /** Blocks given out so far, right after the superblock's block. */
  get blocks(): number {
    return this.nextBlk - this.firstBlk;
  }

  /** File bytes placed so far. */
  get fileBytes(): number {
    return this.bytes;
  }
}
