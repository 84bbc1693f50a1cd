// Compressed file data: cuts each regular file into extents, each compressed into a
// fixed-size pcluster (or stored raw where compression saves no block), writes the
// pclusters ahead of the metadata, and spools the index (and any tail-packed pcluster)
// for the inode writer.

import { closeSync, readSync } from 'node:fs';
import type { Compressor, DestSizeResult } from '../compress/compressor.js';
import { IncompressibleScreen, SCREEN_SPAN } from '../compress/screen.js';
import type { CompressionSpec } from '../compress/registry.js';
import {
  EROFS_INODE_COMPRESSED_COMPACT,
  EROFS_INODE_COMPRESSED_FULL,
  EROFS_INODE_FLAT_INLINE,
  EROFS_ISLOTSIZE,
  EROFS_NULL_ADDR,
  Z_EROFS_ADVISE_BIG_PCLUSTER_1,
  Z_EROFS_ADVISE_BIG_PCLUSTER_2,
  Z_EROFS_ADVISE_COMPACTED_2B,
  Z_EROFS_ADVISE_INLINE_PCLUSTER,
  Z_EROFS_MAP_HEADER_SIZE,
} from '../format/constants.js';
import { inodeSize } from '../format/inode.js';
import { type BlockGeometry, blockAddr, byteOffset } from '../format/types.js';
import {
  buildLclusterRecords,
  compactIndexSize,
  encodeCompactIndexes,
  encodeFullIndexes,
  type Extent,
  fullIndexSize,
  type MapHeader,
} from '../format/zmap.js';
import { BuildError, describeFsError, fileGrew, fileShrank } from './errors.js';
import { type InodePlan, setPrewritten } from './planner.js';
import { isReg, sourcePath, type TreeInode } from './tree.js';
import type { RangeCopier } from './range-copier.js';
import type { ImageWriter, Spool } from './writer.js';
import type { ZOutcome, ZPool } from './zpool.js';
import { type FileToCopy, openSource, readTailAt } from './file-copy.js';
import type { ProgressCounter } from './progress.js';

/** Where a read past a file's expected end lands: it should find nothing. */
const PAST_END = Buffer.alloc(1);

/** How much of a file is looked at for one extent; bounds memory, not pcluster size. */
const WINDOW = 4 << 20;
/**
 * The read buffer holds WINDOW and this much more: the window moves to its start each time
 * this much of it is used. Each compressing thread has one, so a megabyte beyond the window
 * rather than another window is 3 MiB less peak RSS per thread, for moving 4 MiB per MiB
 * of big files in memory (a few milliseconds per 100 MB).
 */
const REFILL_BYTES = 1 << 20;
/**
 * A compressor whose result is stable past what it consumed (Compressor.stableBeyond) is
 * offered this much first, at least 256 KiB: a 4 KiB pcluster takes some 16 KiB of typical
 * input. The read buffer's pages past twice this are then never touched, 4.5 MB less peak
 * RSS per compressing thread; only input that compresses to within stableBeyond of the
 * window's end (runs of zeros) takes the whole WINDOW, for the rest of its job.
 */
const FIRST_WINDOW_MIN = 256 << 10;
const FIRST_WINDOW_PCLUSTERS = 16;

/** The window a job starts with (see FIRST_WINDOW_MIN). */
function firstWindow(c: Compressor, pclusterBytes: number): number {
  if (c.stableBeyond === undefined) return WINDOW;
  return Math.min(WINDOW, Math.max(FIRST_WINDOW_MIN, FIRST_WINDOW_PCLUSTERS * pclusterBytes));
}

export interface CompressionSetup {
  /** One per -z algorithm, in order; files use the first unless a hint says otherwise. */
  compressors: Compressor[];
  /** What the user asked for (-z), to make the same compressors in a worker. */
  specs: CompressionSpec[];
  /** pcluster size (-C) for files no hint matches, a multiple of the block size. */
  pclusterBytes: number;
  /** Largest pcluster any file may use. */
  maxPclusterBytes: number;
  hints: CompressHint[];
  /** Length of the source root path: file paths after it are what hints match. */
  sourcePrefix: number;
  /** The tar data spool (--tar=f): files with a dataOffset are read from it by position. */
  dataFd: number | null;
  ztailpacking: boolean;
  legacyCompress: boolean;
  maxExtentBytes: number;
  /** COMPR_CFGS/BIG_PCLUSTER is on: the first NONHEAD of an extent carries its block count. */
  bigPcluster: boolean;
}

export interface ZdataStats {
  /** Threads that compressed: 1 where no worker started (a small tree, or --workers=1). */
  threads: number;
  /** Files stored compressed; some used a tail-packed pcluster. */
  compressedFiles: number;
  inlinePclusters: number;
  /** Bytes of those files, and what they take in the image (pclusters and inline tails). */
  inputBytes: number;
  storedBytes: number;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Streams a file range through a window buffer without ever holding more than WINDOW + REFILL_BYTES. */
class FileQueue {
  head = 0;
  tail = 0;
  /** Offset in the range of buf[head]. */
  pos = 0;
  private readPos = 0;
  /** A read asked for a byte past the range and found the file's end there. */
  endSeen = false;
  /** Bytes were moved to the buffer's start: buf[0] is no longer the range's first byte. */
  shifted = false;

  constructor(
    readonly buf: Uint8Array,
    private readonly fd: number,
    /** Where the range starts in fd, and how long it is. */
    private readonly base: number,
    private readonly length: number,
    private readonly shown: string,
    /** File offset of the range, for messages. */
    private readonly fileOffset: number,
    private readonly fileSize: number,
    /** The range ends the file: reads ask for a byte more, to see that nothing follows. */
    private readonly endCheck: boolean,
  ) {}

  /**
   * Makes at least min(window, bytes left) bytes available at head, reading up to twice the
   * window (the whole buffer for WINDOW): only that much of the buffer is ever touched.
   */
  fill(window: number): void {
    if (this.tail - this.head >= window || this.readPos >= this.length) return;
    if (this.head > 0) {
      this.buf.copyWithin(0, this.head, this.tail);
      this.tail -= this.head;
      this.head = 0;
      this.shifted = true;
    }
    const end = Math.min(this.buf.length, 2 * window);
    while (this.tail < end && this.readPos < this.length) {
      let n: number;
      const left = this.length - this.readPos;
      // A short read of a regular file ends at its end: asking for one byte more than is
      // left tells, without another call, whether the file has grown.
      const want = Math.min(end - this.tail, this.endCheck ? left + 1 : left);
      try {
        n = readSync(this.fd, this.buf, this.tail, want, this.base + this.readPos);
      } catch (e) {
        throw new BuildError(`${this.shown}: read failed: ${describeFsError(e)}`);
      }
      if (n === 0) {
        throw fileShrank(this.shown, this.fileSize, this.fileOffset + this.readPos);
      }
      if (n > left) throw fileGrew(this.shown, this.fileSize);
      if (n === left && want > left) this.endSeen = true;
      this.tail += n;
      this.readPos += n;
    }
  }

  consume(n: number): void {
    this.head += n;
    this.pos += n;
  }
}

/** Scratch memory reused for every file one thread compresses. */
export interface ZBuffers {
  // Plain Uint8Arrays: a Buffer's subarray() costs several times a typed array's, and
  // compression takes a few per pcluster.
  queue: Uint8Array;
  /**
   * Whether the last job's input lies whole at the queue's start, read in one go and never
   * moved: a file compression does not help is then written flat from there.
   */
  heldWhole: boolean;
  /** Zeros: the padding in front of a pcluster's data, after a raw extent's bytes. */
  zeros: Uint8Array;
  screen: IncompressibleScreen;
}

export function zBuffers(params: ZParams): ZBuffers {
  return {
    // Pages of it are touched only as the windows reach them (see firstWindow).
    queue: new Uint8Array(WINDOW + REFILL_BYTES),
    heldWhole: false,
    zeros: new Uint8Array(params.maxPclusterBytes),
    screen: new IncompressibleScreen(),
  };
}

/** What a compressing thread needs to know; plain data, so it can be sent to a worker. */
export interface ZParams {
  specs: CompressionSpec[];
  maxPclusterBytes: number;
  ztailpacking: boolean;
  maxExtentBytes: number;
  blkszbits: number;
}

export interface ZJob {
  path: Uint8Array;
  /** The whole file's length. */
  size: number;
  /** The segment of the file this job compresses: files are cut into SEGMENT_BYTES pieces. */
  start: number;
  length: number;
  /** Read the data from this descriptor at `offset` instead of opening `path`. */
  fd: number | null;
  offset: number;
  /** Index into the -z algorithms. */
  algorithm: number;
  pclusterBytes: number;
  /** Bytes of inode, xattrs, padding and index in front of an inline pcluster. */
  inlineStart: number;
}

/** A compressed file before it has a place: pclusters are numbered from block 0. */
export interface ZResult {
  extents: Extent[];
  blocks: number;
  inline: Uint8Array | null;
}

export function zParams(setup: CompressionSetup, g: BlockGeometry): ZParams {
  return {
    specs: setup.specs,
    maxPclusterBytes: setup.maxPclusterBytes,
    ztailpacking: setup.ztailpacking,
    maxExtentBytes: setup.maxExtentBytes,
    blkszbits: g.blkszbits,
  };
}

/** What of an inode's plan its index layout depends on. */
type IndexShape = Pick<InodePlan, 'inode' | 'extended' | 'xattrSize'>;

/** Where a file's index starts relative to its inode, which decides the index layout. */
function indexGeometry(setup: CompressionSetup, g: BlockGeometry, plan: IndexShape) {
  const metaBase = inodeSize(plan.extended) + plan.xattrSize;
  const mapPos = alignUp(metaBase, 8);
  const lclusters = Math.ceil(plan.inode.size / g.blksz);
  const indexBytes = setup.legacyCompress
    ? fullIndexSize(lclusters)
    : compactIndexSize(lclusters, mapPos + Z_EROFS_MAP_HEADER_SIZE, true);
  return { mapPos, pad: mapPos - metaBase, lclusters, inlineStart: mapPos + indexBytes };
}

/** --compress-hints: files whose path (relative to the source) matches use these settings. */
export interface CompressHint {
  pattern: RegExp;
  /** 0: store the file uncompressed. */
  pclusterBytes: number;
  algorithm: number;
}

/** The job for a file, or null when it is not to be compressed (too small, or a hint says so). */
export function zJob(setup: CompressionSetup, g: BlockGeometry, plan: IndexShape): ZJob | null {
  const inode = plan.inode;
  if (!isReg(inode) || inode.size === 0) return null;
  if (inode.size <= g.blksz && !setup.ztailpacking) return null; // cannot save a block
  const path = sourcePath(inode);
  let pclusterBytes = setup.pclusterBytes;
  let algorithm = 0;
  if (setup.hints.length > 0) {
    const rel = path.subarray(setup.sourcePrefix).toString().replace(/^\/+/, '');
    const hit = setup.hints.find((h) => h.pattern.test(rel));
    if (hit) ({ pclusterBytes, algorithm } = hit);
  }
  if (pclusterBytes === 0) return null;
  const spooled = setup.dataFd !== null && plan.inode.dataOffset >= 0;
  return {
    path,
    size: plan.inode.size,
    start: 0,
    length: plan.inode.size,
    fd: spooled ? setup.dataFd : null,
    offset: spooled ? plan.inode.dataOffset : 0,
    algorithm,
    pclusterBytes,
    inlineStart: indexGeometry(setup, g, plan).inlineStart,
  };
}

/** Runs steps to the end at once. */
export function drain<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** How long the main thread steps through compression before its event loop gets a turn. */
const SLICE_MS = 50;

/**
 * Runs steps to the end on the main thread, giving its event loop a turn (yieldNow) every
 * SLICE_MS: a Ctrl-C, an abort or a progress update need not wait for a whole segment
 * (seconds with lzma). If yieldNow throws, the steps are ended first (a file is closed).
 */
export async function runSliced<T>(steps: Generator<void, T, void>, yieldNow: () => Promise<void>): Promise<T> {
  let until = performance.now() + SLICE_MS;
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() < until) continue;
    try {
      await yieldNow();
    } catch (e) {
      steps.return(undefined as T);
      throw e;
    }
    until = performance.now() + SLICE_MS;
  }
}

/**
 * Cuts a file into extents: each compressed into one pcluster of at most pclusterBytes
 * (`emit`ted right-aligned, at byte offsets from the first block), stored raw where compression saves no
 * block, and with tail packing the last one inline. Deterministic for a given file.
 * It pauses before each extent, so that a thread with an event loop to keep turning (the
 * main thread: signals, progress) can step through a big segment (runSliced; drain runs it
 * at once). Ended early (return()), it closes the file.
 */
export function* compressSteps(
  c: Compressor,
  p: ZParams,
  job: ZJob,
  buffers: ZBuffers,
  emit: (at: number, bytes: Uint8Array) => void,
): Generator<void, ZResult, void> {
  const B = 1 << p.blkszbits;
  const size = job.length;
  // Only the file's own end may be tail-packed; a segment's end is an end of input all the same.
  const lastSegment = job.start + job.length === job.size;
  const packTail = p.ztailpacking && lastSegment;
  // Sent to a worker, a Buffer arrives as a plain Uint8Array.
  const path = Buffer.from(job.path.buffer, job.path.byteOffset, job.path.byteLength);
  const shown = path.toString();
  c.resetSearchHint?.();
  // A tail-packed pcluster follows the index and must not cross a block boundary. The unit
  // starts on any 32-byte slot and the index may run into the next block, so the pcluster
  // can start as early as inlineStart % 32 bytes into a block (placeLayout finds where).
  const canInline = (len: number): boolean => (job.inlineStart % EROFS_ISLOTSIZE) + len <= B;

  buffers.heldWhole = false;
  const fd = job.fd ?? openSource(path, shown);
  const extents: Extent[] = [];
  let cursor = 0;
  let inlineData: Uint8Array | null = null;
  const { zeros } = buffers;
  let q: FileQueue;
  /** Input before this (from q.pos 0) was found compressible: not screened again. */
  let screenedTo = 0;
  /** Raw extents are "shifted": the extent's first byte at the start of its block. */
  const storeRaw = (bytes: number): void => {
    for (let left = bytes; left > 0; ) {
      const n = Math.min(B, left);
      emit(cursor * B, q.buf.subarray(q.head, q.head + n));
      if (n < B) emit(cursor * B + n, zeros.subarray(0, B - n));
      extents.push({ start: job.start + q.pos, length: n, raw: true, pblk: cursor, pblocks: 1 });
      cursor++;
      q.consume(n);
      left -= n;
    }
  };
  try {
    const endCheck = lastSegment && job.fd === null;
    q = new FileQueue(buffers.queue, fd, (job.fd === null ? 0 : job.offset) + job.start, size, shown, job.start, job.size, endCheck);
    let window = firstWindow(c, job.pclusterBytes);
    while (q.pos < size) {
      yield;
      q.fill(window);
      const len = q.tail - q.head;
      const final = q.pos + len === size;
      const src = q.buf.subarray(q.head, q.head + Math.min(len, p.maxExtentBytes));
      // Input no compressor can shrink (a whole screen span, whole pclusters) is stored raw
      // without asking a slow compressor to fail on it.
      const span = Math.max(SCREEN_SPAN, job.pclusterBytes);
      if (c.slowOnIncompressible && len >= span && q.pos >= screenedTo) {
        if (buffers.screen.incompressible(q.buf.subarray(q.head, q.head + span))) {
          storeRaw(span);
          continue;
        }
        screenedTo = q.pos + span;
      }
      let r = final && len <= B && !packTail ? null : c.compressDestSize(src, job.pclusterBytes);
      if (window < WINDOW && !final && src.length === len && (!r || r.consumed + c.stableBeyond! > len)) {
        // Near the end of what it was offered, the result may depend on what follows: the
        // whole window gives what it would have given from the start.
        window = WINDOW;
        continue;
      }
      if (r && packTail && final && r.consumed === len && r.data.length < Math.min(B, len) && canInline(r.data.length)) {
        // The last extent compresses below a block: pack it right after the index.
        inlineData = r.data.slice();
        extents.push({ start: job.start + q.pos, length: len, raw: false, pblk: cursor, pblocks: 1 });
        q.consume(len);
        break;
      }
      // Keep compressed data only where it saves at least a whole block. Input that did not
      // compress is stored raw as a whole, not retried block by block (16x the work for
      // incompressible data with 64 KiB pclusters), as the reference does.
      let rawBytes = B;
      if (r && alignUp(r.data.length, B) >= r.consumed) {
        rawBytes = Math.max(B, Math.floor(r.consumed / B) * B);
        r = null;
      }
      if (r && packTail && final && r.consumed === len && r.data.length % B !== 0 && r.data.length > B && retryMayWin(c, r, len, B)) {
        // The last pcluster ends part-way into a block: fitting less input into whole blocks
        // and packing the rest inline may save that block.
        const kept = { consumed: r.consumed, data: r.data.slice() }; // the next call reuses r.data's buffer
        const fewer = c.compressDestSize(src, Math.floor(r.data.length / B) * B);
        r = fewer && fewer.data.length + (len - fewer.consumed) < alignUp(kept.data.length, B) ? fewer : kept;
      }
      if (!r) {
        if (packTail && final && len < B && canInline(len)) {
          inlineData = Uint8Array.from(q.buf.subarray(q.head, q.tail));
          extents.push({ start: job.start + q.pos, length: len, raw: true, pblk: cursor, pblocks: 1 });
          q.consume(len);
          break;
        }
        storeRaw(Math.min(rawBytes, len));
        continue;
      }
      // Right-aligned in the pcluster: the leading zeros are padding (ZERO_PADDING).
      const pblocks = alignUp(r.data.length, B) / B;
      const pad = pblocks * B - r.data.length;
      if (pad > 0) emit(cursor * B, zeros.subarray(0, pad));
      emit(cursor * B + pad, r.data);
      extents.push({ start: job.start + q.pos, length: r.consumed, raw: false, pblk: cursor, pblocks });
      cursor += pblocks;
      q.consume(r.consumed);
    }
    if (endCheck && !q.endSeen) {
      let extra = 0;
      try {
        extra = readSync(fd, PAST_END, 0, 1, job.size);
      } catch {
        extra = 0;
      }
      if (extra > 0) throw fileGrew(shown, job.size);
    }
    buffers.heldWhole = !q.shifted;
  } finally {
    if (job.fd === null) closeSync(fd);
  }
  return { extents, blocks: cursor, inline: inlineData };
}

/**
 * Whether recompressing a file's last pcluster into its whole blocks can win: only when the
 * input it leaves over, packed inline, fits the block given up. Where the format tells how
 * much input the whole blocks' worth of the stream stands for, a leftover past a block and a
 * quarter rules it out (on the Debian root the recompressed pcluster never took more than 6
 * bytes beyond that estimate; the retry costs as much as the first compression).
 */
function retryMayWin(c: Compressor, r: DestSizeResult, len: number, B: number): boolean {
  if (!c.inputBefore) return true;
  const left = len - c.inputBefore(r.data, Math.floor(r.data.length / B) * B);
  return left < B + (B >> 2);
}

export interface CompressedData {
  /** i_u: data blocks of the pclusters (the inline tail is not counted). */
  blocks: number;
  datalayout: number;
  /** Map header, indexes and any inline pcluster, as stored after the inode's xattrs. */
  blob: Uint8Array;
  /** Alignment bytes between the xattrs and the map header. */
  pad: number;
  inline: boolean;
}

/**
 * Places a compressed file's pclusters at block `start` and encodes its index, or returns
 * null when compression does not make the file smaller: it is then stored flat, as the
 * reference does.
 */
export function finishCompressedFile(
  setup: CompressionSetup,
  g: BlockGeometry,
  plan: InodePlan,
  res: ZResult,
  start: number,
  algorithm: number,
): CompressedData | null {
  const ig = indexGeometry(setup, g, plan);
  const records = buildLclusterRecords(res.extents, g.blkszbits, setup.bigPcluster, start);
  if (records.length !== ig.lclusters) throw new Error(`internal: ${records.length} index records for ${ig.lclusters} lclusters`);
  const inlineLen = res.inline?.length ?? 0;
  if (compressionLoses(g.blksz, res, plan.inode.size)) return null;

  const header: MapHeader = {
    idataSize: inlineLen,
    advise:
      (setup.legacyCompress ? 0 : Z_EROFS_ADVISE_COMPACTED_2B) |
      (setup.bigPcluster ? Z_EROFS_ADVISE_BIG_PCLUSTER_1 | (setup.legacyCompress ? 0 : Z_EROFS_ADVISE_BIG_PCLUSTER_2) : 0) |
      (res.inline ? Z_EROFS_ADVISE_INLINE_PCLUSTER : 0),
    algorithmType: setup.compressors[algorithm]!.algorithm,
    clusterBits: 0,
  };
  const index = setup.legacyCompress
    ? encodeFullIndexes(header, records)
    : encodeCompactIndexes(header, records, ig.mapPos + Z_EROFS_MAP_HEADER_SIZE, setup.bigPcluster);
  const blob = new Uint8Array(index.length + inlineLen);
  blob.set(index, 0);
  if (res.inline) blob.set(res.inline, index.length);
  return {
    blocks: res.blocks,
    datalayout: setup.legacyCompress ? EROFS_INODE_COMPRESSED_FULL : EROFS_INODE_COMPRESSED_COMPACT,
    blob,
    pad: ig.pad,
    inline: res.inline !== null,
  };
}

/**
 * As the reference: a file stays compressed only if its data, inline tail and full-size
 * index take fewer bytes than its i_size; else it is stored flat.
 */
export function compressionLoses(blksz: number, res: ZResult, size: number): boolean {
  return res.blocks * blksz + (res.inline?.length ?? 0) + fullIndexSize(Math.ceil(size / blksz)) >= size;
}

/**
 * Writes a file flat at plan.startBlk, its tail inline or in a padded last block; returns
 * the tail to keep inline. `untouched`: nothing was written to those blocks yet (they read
 * as zeros, so runs of zeros can be left as holes, and the copy can be made in the kernel).
 */
export type FlatWriter = (plan: InodePlan, untouched: boolean) => Promise<Uint8Array | null>;

/**
 * The whole file a job just compressed, while it is still in the read buffer: the job is
 * the whole file and its bytes were never moved (see ZBuffers.heldWhole). Valid until the
 * next job uses the buffers.
 */
function heldInput(buffers: ZBuffers, job: ZJob): Uint8Array | null {
  return job.start === 0 && job.length === job.size && buffers.heldWhole ? buffers.queue.subarray(0, job.size) : null;
}

/**
 * The last `n` bytes of a whole-file job just compressed (a copy; null for none): from the
 * read buffer where the file lies whole, else read from the source.
 */
export function fileEnd(job: ZJob, buffers: ZBuffers, n: number): Uint8Array | null {
  if (n === 0) return null;
  const held = heldInput(buffers, job);
  if (held) return held.slice(held.length - n);
  const path = Buffer.from(job.path.buffer, job.path.byteOffset, job.path.byteLength);
  const shown = path.toString();
  const out = Buffer.alloc(n);
  const fd = job.fd ?? openSource(path, shown);
  try {
    readTailAt(fd, shown, out, job.size, job.fd === null ? 0 : job.offset);
  } finally {
    if (job.fd === null) closeSync(fd);
  }
  return out;
}

/** A file whose bytes are in memory, written flat at plan.startBlk as streamFile would; returns its inline tail. */
function writeHeldFlat(w: ImageWriter, g: BlockGeometry, p: InodePlan, bytes: Uint8Array): Uint8Array | null {
  const blockBytes = bytes.length - p.inlineTail;
  if (blockBytes > 0) w.writeAt(byteOffset(p.startBlk * g.blksz), bytes.subarray(0, blockBytes));
  return p.inlineTail > 0 ? bytes.slice(blockBytes) : null;
}

/**
 * Whether a file's pclusters are its bytes as they are, block after block from its first
 * (every extent stored raw, in order, none inline): written flat from `startBlk`, the file
 * would have the same bytes in the same blocks, its last block's rest zeros either way.
 */
export function storedAsIs(res: ZResult, size: number, blksz: number): boolean {
  if (res.inline || res.blocks !== Math.ceil(size / blksz) || res.extents.length !== res.blocks) return false;
  for (let i = 0; i < res.extents.length; i++) {
    const e = res.extents[i]!;
    if (!e.raw || e.pblk !== i || e.start !== i * blksz || e.length !== Math.min(blksz, size - i * blksz)) return false;
  }
  return true;
}

/**
 * A file stored as is (see storedAsIs) goes flat where it is: its blocks are written already,
 * and its inline tail is read back from the image rather than the whole file from its source.
 */
function flatTailInPlace(w: ImageWriter, g: BlockGeometry, p: InodePlan): Uint8Array | null {
  if (p.inlineTail === 0) return null;
  return w.readAt(byteOffset(p.startBlk * g.blksz + p.inode.size - p.inlineTail), p.inlineTail);
}

/**
 * Files are compressed in segments of this much input, each on its own (extents restart at
 * a segment boundary), so workers share big files; as the reference's multithreaded mode.
 * Every build cuts the same way, so the image does not depend on the number of workers.
 */
export const SEGMENT_BYTES = 16 << 20;

/** A file's segment jobs. */
export function segmentsOf(job: ZJob): ZJob[] {
  const out: ZJob[] = [];
  for (let start = 0; start < job.size; start += SEGMENT_BYTES) out.push({ ...job, start, length: Math.min(SEGMENT_BYTES, job.size - start) });
  return out;
}

/** A file to compress: its segments, and what the pool was asked for them so far. */
export interface ZWork {
  inode: TreeInode;
  job: ZJob;
  segments: ZJob[];
  results: Array<Promise<ZOutcome> | undefined>;
  /** Segments handed to the pool. */
  submitted: number;
  /** Of those, the first ones went ahead of their turn (see ZFeed). */
  ahead: number;
}

const sameJob = (a: ZJob, b: ZJob): boolean =>
  a.size === b.size &&
  a.algorithm === b.algorithm &&
  a.pclusterBytes === b.pclusterBytes &&
  a.inlineStart === b.inlineStart &&
  a.fd === b.fd &&
  a.offset === b.offset;

/**
 * Hands files to the worker pool in the order their pclusters are placed, a bounded amount
 * of input ahead of placement: enough to keep every worker busy on a big file's segments,
 * never a whole big file's output in memory. Files can be offered during the directory
 * walk, before any plan exists, so compression overlaps the walk.
 *
 * Files of a segment or more also go ahead of their turn, first in the pool's queue, with a
 * budget of their own as large: a big file left for the end keeps one thread busy on its
 * last segment while the others have nothing left to do (seconds where a segment takes
 * seconds: lzma, lz4hc's optimal parser; 20 ms with lz4 on a Debian root, whose last file
 * in placement order is 50 MB). Their output waits for its turn to be placed, in the
 * compressing thread's spill file past a megabyte. With the faster algorithms they wait
 * until the directory walk is over: during it the main thread reads the small files, and
 * a worker busy with a big file ahead of them leaves that to the main thread alone.
 */
export class ZFeed {
  private work: ZWork[] = [];
  private readonly early = new Map<TreeInode, ZWork>();
  /** work[0, next) are wholly submitted. */
  private next = 0;
  private inFlight = 0;
  private limit = 0;
  /** Big files, to send ahead of their turn: big[0, nextBig) are wholly submitted. */
  private big: ZWork[] = [];
  private nextBig = 0;
  /** Input sent ahead and not placed yet: it has a budget of its own, `limit` as well. */
  private aheadInFlight = 0;

  private made: ZPool | null = null;
  /** When placing results gives the event loop its next turn (see result()). */
  private nextTurn = 0;
  /** Input of the files offered so far, or of all the files once they are planned. */
  private wanted = 0;
  private readonly startBytes: number;
  /** The main thread walks the source tree: nothing is placed meanwhile. */
  private holding = false;
  /**
   * The share of `limit` in flight while the tree is walked. Nothing is placed then, and
   * output past what the pool holds in memory goes to a spill file, written by the main
   * thread and copied into place later. Plain LZ4 keeps up with the walk's offers: with
   * the whole budget (48 MiB with one worker) a Debian root spilled 15-19 MB so, with half
   * of it 6 MB, and built 10-16 ms sooner (with a quarter the worker ran dry). The other
   * algorithms lag behind the walk, and the budget is not what holds them back.
   */
  private readonly walkShare: number;

  constructor(
    /** Makes the worker pool; null: the main thread compresses alone. */
    private readonly makePool: (() => ZPool) | null,
    private readonly setup: CompressionSetup,
    private readonly g: BlockGeometry,
  ) {
    const lz4 = setup.specs.every((s) => s.name === 'lz4');
    this.startBytes = lz4 ? POOL_START_BYTES_LZ4 : POOL_START_BYTES;
    this.walkShare = lz4 ? 0.5 : 1;
  }

  /** The worker pool, once there is enough input for it (see POOL_START_BYTES). */
  get pool(): ZPool | null {
    return this.made;
  }

  /** Makes the pool once `wanted` reaches startBytes. */
  private want(bytes: number): void {
    this.wanted += bytes;
    if (this.made || !this.makePool || this.wanted < this.startBytes) return;
    this.made = this.makePool();
    this.limit = (this.made.threads + 1) * SEGMENT_BYTES;
    if (this.holding) this.made.hold();
  }

  /** The main thread is about to be busy for a while (see ZPool.hold). */
  hold(): void {
    this.holding = true;
    this.pool?.hold();
  }

  release(): void {
    this.holding = false;
    this.pool?.release();
  }

  /** The pool's threads stop after the job or file in progress (see ZPool.halt). */
  halt(): void {
    this.made?.halt();
  }

  /** Ends the pool's threads, if it was made: their memory goes. */
  async close(): Promise<void> {
    const pool = this.made;
    this.made = null;
    await pool?.close();
  }

  /**
   * During the walk: a file whose inode form and xattrs are already final (no hard links, no
   * xattrs), offered in inode order, so the walk's offers come in placement order (a pool
   * made later starts from the first).
   */
  offer(inode: TreeInode, extended: boolean): void {
    if (!this.makePool) return;
    const job = zJob(this.setup, this.g, { inode, extended, xattrSize: 0 });
    if (!job) return;
    const item = newWork(inode, job);
    this.early.set(inode, item);
    this.work.push(item);
    if (isBig(item)) this.big.push(item);
    this.want(job.size);
    this.submitAhead();
  }

  /** The work item for a planned file: the one offered during the walk if its job is the same. */
  adopt(inode: TreeInode, job: ZJob): ZWork {
    const offered = this.early.get(inode);
    if (offered && sameJob(offered.job, job)) {
      this.early.delete(inode);
      return offered;
    }
    return newWork(inode, job);
  }

  /** From now on, `work` is the placement order; offers not adopted are dropped. */
  start(work: ZWork[]): void {
    if (!this.pool) {
      this.wanted = 0;
      this.want(work.reduce((sum, item) => sum + item.job.size, 0));
    }
    for (const orphan of this.early.values()) {
      for (let k = 0; k < orphan.submitted; k++) this.settled(orphan, k);
    }
    this.early.clear();
    this.work = work;
    this.next = 0;
    this.big = work.filter(isBig);
    this.nextBig = 0;
    this.submitAhead();
  }

  /**
   * Segment k's outcome, once the pool has it; the next inputs go out meanwhile, and the
   * main thread compresses queued ones (yieldNow gives its event loop a turn).
   */
  async result(item: ZWork, k: number, yieldNow: () => Promise<void>): Promise<ZOutcome> {
    this.submitAhead();
    // Files offered during the walk can be ahead of this one (not offered: it has xattrs or
    // hard links) and hold the whole in-flight budget; it goes out regardless.
    while (item.submitted <= k) this.submit(item);
    const pending = item.results[k]!;
    // Rather than wait, the main thread compresses what is queued, the workers' answers
    // let in between batches.
    while (!this.pool!.isDelivered(pending) && (await this.pool!.runQueued(yieldNow))) {
      this.submitAhead();
      await yieldNow();
      this.nextTurn = performance.now() + TURN_MS;
    }
    // Results already in are placed one after another without a wait, hundreds of small
    // files in tens of milliseconds: the workers' answers, which free them for the next
    // batches, are let in all the same, or a worker runs dry meanwhile.
    if (performance.now() >= this.nextTurn) {
      await yieldNow();
      this.nextTurn = performance.now() + TURN_MS;
    }
    const done = await pending;
    item.results[k] = undefined;
    this.settled(item, k);
    this.submitAhead();
    return done;
  }

  /** Segment k is no longer in flight (placed, or dropped). */
  private settled(item: ZWork, k: number): void {
    if (k < item.ahead) this.aheadInFlight -= item.segments[k]!.length;
    else this.inFlight -= item.segments[k]!.length;
  }

  private submitAhead(): void {
    const pool = this.pool;
    if (!pool) return;
    while (this.nextBig < this.big.length && this.aheadInFlight < this.limit && (!this.holding || slowSegments(pool))) {
      const item = this.big[this.nextBig]!;
      // Sent ahead only from its first segment on, and only while nothing went in its turn.
      if (item.submitted !== item.ahead || item.submitted === item.segments.length) {
        this.nextBig++;
        continue;
      }
      this.submit(item, true);
    }
    const limit = this.holding ? this.limit * this.walkShare : this.limit;
    while (this.next < this.work.length && (this.inFlight < limit || this.inFlight === 0)) {
      const item = this.work[this.next]!;
      if (item.submitted === item.segments.length) {
        this.next++;
        continue;
      }
      this.submit(item);
    }
  }

  /** The item's next segment to the pool: in its turn, or ahead of it to the head of the queue. */
  private submit(item: ZWork, ahead = false): void {
    const seg = item.segments[item.submitted]!;
    item.results[item.submitted++] = this.pool!.compress(seg, ahead);
    if (ahead) {
      item.ahead++;
      this.aheadInFlight += seg.length;
    } else this.inFlight += seg.length;
  }
}

/**
 * Input below which the main thread compresses alone: a worker thread costs CPU and 20-30 MB
 * to start, more than it saves on a small tree. Plain LZ4 gains from a worker only past some
 * 30 MB (with threads starting in 25 ms, bin/v8-flags.js, and given jobs once they run:
 * 21 MB 0.13 s alone, 0.14 s with one; 42 MB 0.18 s alone, 0.16 s with one; 53 MB 0.28 s,
 * 0.24 s).
 */
const POOL_START_BYTES = 1 << 20;
const POOL_START_BYTES_LZ4 = 32 << 20;

function newWork(inode: TreeInode, job: ZJob): ZWork {
  return { inode, job, segments: segmentsOf(job), results: [], submitted: 0, ahead: 0 };
}

const isBig = (item: ZWork): boolean => item.job.size >= SEGMENT_BYTES;

/**
 * Placing results that are in gives the event loop a turn after this long: a worker has
 * 2 MiB of input queued (PER_WORKER_BYTES), a few milliseconds of LZ4.
 */
const TURN_MS = 2;

const spillCutShort = (): Error => new Error('internal: spilled output cut short');

/** A segment that takes a worker longer than this is worth sending ahead during the walk too (see ZFeed). */
const SLOW_SEGMENT_SECONDS = 1;

function slowSegments(pool: ZPool): boolean {
  const rate = pool.rate();
  return rate > 0 && SEGMENT_BYTES / rate > SLOW_SEGMENT_SECONDS;
}

/**
 * Writes every regular file worth compressing, right after the superblock's block, and
 * returns how many blocks that took. Workers compress segments in parallel; results are
 * placed in inode order, so the image does not depend on the number of workers. Files
 * compression does not help are written flat in place, over the pclusters tried for them;
 * with workers, a whole file's pclusters are never written, and the files are returned in
 * `flat` for the workers to copy once compression is over (ZPool.copyFlat). Output a
 * worker spilled to its scratch file is copied into place on the thread pool by `ranges`;
 * everything else is in place once its finish() resolves.
 */
export async function writeCompressedFiles(
  setup: CompressionSetup,
  g: BlockGeometry,
  plans: readonly InodePlan[],
  w: ImageWriter,
  spool: Spool,
  writeFlat: FlatWriter,
  yieldNow: () => Promise<void>,
  feed: ZFeed,
  progress: ProgressCounter,
  ranges: RangeCopier,
): Promise<{ preDataBlocks: number; stats: ZdataStats; flat: FileToCopy[] }> {
  const first = Math.floor(1024 / g.blksz) + 1;
  let cursor = first;
  let dirtyEnd = first;
  const stats: ZdataStats = { threads: 1, compressedFiles: 0, inlinePclusters: 0, inputBytes: 0, storedBytes: 0 };
  const params = zParams(setup, g);
  let buffers: ZBuffers | null = null;

  /** Files compression lost on, to be copied flat once it is over (see ZPool.copyFlat). */
  const flat: FileToCopy[] = [];

  /**
   * The file's pclusters are in the image from `cursor` on: index it, or write it flat over
   * them. `lost`: compression lost on the whole file, and no pcluster was written (its last
   * bytes came back, see ZReply.lost).
   */
  const place = async (p: InodePlan, job: ZJob, res: ZResult, held: Uint8Array | null, lost: { tail: Uint8Array | null } | null): Promise<void> => {
    const z = lost ? null : finishCompressedFile(setup, g, p, res, cursor, job.algorithm);
    if (z) {
      p.datalayout = z.datalayout;
      p.inlineTail = z.pad + z.blob.length;
      p.inlinePcluster = res.inline?.length ?? 0;
      p.dataBlocks = z.blocks;
      setPrewritten(p, z.blocks, spool.append(new Uint8Array(z.pad), z.blob));
      cursor += z.blocks;
      stats.compressedFiles++;
      stats.inputBytes += p.inode.size;
      stats.storedBytes += z.blocks * g.blksz + (res.inline?.length ?? 0);
      if (z.inline) stats.inlinePclusters++;
    } else {
      p.startBlk = blockAddr(cursor);
      let tail: Uint8Array | null;
      if (lost && dirtyEnd <= cursor) {
        // Compression lost before anything was written for the file: its blocks are copied
        // from the source once compression is over, by a worker (in the kernel where it
        // can), not written twice; its inline tail, its last size % block size bytes if it
        // has one, came back with the result.
        if (p.inlineTail > 0 && lost.tail?.length !== p.inlineTail) throw new Error(`internal: a ${p.inlineTail}-byte tail, ${lost.tail?.length ?? 0} bytes back`);
        tail = p.inlineTail > 0 ? lost.tail : null;
        if (p.dataBlocks > 0) flat.push({ path: sourcePath(p.inode), size: p.inode.size, inlineTail: p.inlineTail, dst: cursor * g.blksz, spool: job.fd === null ? null : { fd: job.fd, offset: job.offset } });
      } else {
        if (!lost) {
          // Compression lost: the file goes flat, over the blocks written for it, which must
          // all be there first (a copy still in flight would land over the flat data).
          dirtyEnd = Math.max(dirtyEnd, cursor + res.blocks);
          await ranges.finish();
        }
        // (Lost with nothing written too, but over blocks a file before it left pclusters in.)
        tail = held ? writeHeldFlat(w, g, p, held) : storedAsIs(res, p.inode.size, g.blksz) ? flatTailInPlace(w, g, p) : await writeFlat(p, false);
      }
      const start = p.dataBlocks > 0 ? cursor : p.datalayout === EROFS_INODE_FLAT_INLINE ? EROFS_NULL_ADDR : 0;
      setPrewritten(p, start, spool.append(tail ?? new Uint8Array(0)));
      cursor += p.dataBlocks;
    }
    dirtyEnd = Math.max(dirtyEnd, cursor);
    progress.file(p.inode.size);
  };

  // Files to compress, in the order their pclusters are placed, each cut into segments.
  const work: ZWork[] = [];
  const workPlans: InodePlan[] = [];
  for (const p of plans) {
    const job = zJob(setup, g, p);
    if (!job) continue;
    work.push(feed.adopt(p.inode, job));
    workPlans.push(p);
  }
  feed.start(work);

  for (let i = 0; i < work.length; i++) {
    const item = work[i]!;
    const fileStart = cursor;
    const extents: Extent[] = [];
    let blocks = 0;
    let inline: Uint8Array | null = null;
    let held: Uint8Array | null = null;
    let lost: { tail: Uint8Array | null } | null = null;
    for (let k = 0; k < item.segments.length; k++) {
      const segStart = fileStart + blocks;
      let res: ZResult;
      if (feed.pool) {
        const done = await feed.result(item, k, yieldNow);
        res = done.res;
        // A whole file whose compression lost came back without its output (see ZReply.lost).
        lost = done.lost ?? null;
        let at = segStart * g.blksz;
        if (done.spilled) {
          ranges.copy({ fd: done.spilled.fd, at: done.spilled.offset, dst: at, length: res.blocks * g.blksz, endedAt: spillCutShort });
        }
        for (const piece of done.data) {
          w.writeAt(byteOffset(at), piece);
          at += piece.length;
          // Its chunk may be let go now (discardChunk): the piece is empty from here on.
          feed.pool.written(piece);
        }
      } else {
        buffers ??= zBuffers(params);
        const seg = item.segments[k]!;
        res = await runSliced(
          compressSteps(setup.compressors[item.job.algorithm]!, params, seg, buffers, (at, bytes) =>
            w.writeAt(byteOffset(segStart * g.blksz + at), bytes),
          ),
          yieldNow,
        );
        held = heldInput(buffers, seg);
        await yieldNow();
      }
      for (const e of res.extents) extents.push(blocks === 0 ? e : { ...e, pblk: e.pblk + blocks });
      blocks += res.blocks;
      inline = res.inline;
    }
    await place(workPlans[i]!, item.job, { extents, blocks, inline }, held, lost);
    // The inline pcluster is in the spool now.
    if (inline) feed.pool?.written(inline);
  }
  // Blocks a fallen-back file left behind past the end are cleared, not leaked into metadata.
  await ranges.finish();
  if (dirtyEnd > cursor) w.writeAt(byteOffset(cursor * g.blksz), new Uint8Array((dirtyEnd - cursor) * g.blksz));
  stats.threads = feed.pool?.threads ?? 1;
  return { preDataBlocks: cursor - first, stats, flat };
}
