// Compressed file data: cuts each regular file into extents, each compressed into a
// fixed-size pcluster (or stored raw where compression saves no block), writes the
// pclusters ahead of the metadata, and spools the index (and any tail-packed pcluster)
// for the inode writer.

import * as fs from 'node:fs';
import type { Compressor } from '../compress/compressor.js';
import {
  EROFS_INODE_COMPRESSED_COMPACT,
  EROFS_INODE_COMPRESSED_FULL,
  EROFS_INODE_FLAT_INLINE,
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
import { BuildError, describeFsError } from './errors.js';
import type { InodePlan } from './planner.js';
import type { ImageWriter, Spool } from './writer.js';

/** How much of a file is looked at for one extent; bounds memory, not pcluster size. */
const WINDOW = 4 << 20;

export interface CompressionSetup {
  compressor: Compressor;
  /** Largest pcluster in bytes (-C), a multiple of the block size. */
  pclusterBytes: number;
  ztailpacking: boolean;
  legacyCompress: boolean;
  maxExtentBytes: number;
  /** COMPR_CFGS/BIG_PCLUSTER is on: the first NONHEAD of an extent carries its block count. */
  bigPcluster: boolean;
}

export interface ZdataStats {
  /** Files stored compressed; some used a tail-packed pcluster. */
  compressedFiles: number;
  inlinePclusters: number;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Streams a file through a window buffer without ever holding more than 2 * WINDOW. */
class FileQueue {
  head = 0;
  tail = 0;
  /** File offset of buf[head]. */
  pos = 0;
  private readPos = 0;

  constructor(
    readonly buf: Buffer,
    private readonly fd: number,
    private readonly size: number,
    private readonly shown: string,
  ) {}

  /** Makes at least min(WINDOW, bytes left) bytes available at head. */
  fill(): void {
    if (this.tail - this.head >= WINDOW || this.readPos >= this.size) return;
    this.buf.copy(this.buf, 0, this.head, this.tail);
    this.tail -= this.head;
    this.head = 0;
    while (this.tail < this.buf.length && this.readPos < this.size) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, this.tail, Math.min(this.buf.length - this.tail, this.size - this.readPos), null);
      } catch (e) {
        throw new BuildError(`${this.shown}: read failed: ${describeFsError(e)}`);
      }
      if (n === 0) throw new BuildError(`${this.shown}: file shrank while being read (expected ${this.size} bytes, got ${this.readPos})`);
      this.tail += n;
      this.readPos += n;
    }
    if (this.readPos >= this.size) {
      let extra: number;
      try {
        extra = fs.readSync(this.fd, Buffer.alloc(1), 0, 1, null);
      } catch {
        extra = 0;
      }
      if (extra > 0) throw new BuildError(`${this.shown}: file grew while being read (expected ${this.size} bytes)`);
    }
  }

  consume(n: number): void {
    this.head += n;
    this.pos += n;
  }
}

/** Scratch memory reused for every file of a build. */
export interface ZBuffers {
  queue: Buffer;
  raw: Buffer;
  pcluster: Buffer;
}

export function zBuffers(setup: CompressionSetup, g: BlockGeometry): ZBuffers {
  return { queue: Buffer.allocUnsafe(2 * WINDOW), raw: Buffer.alloc(g.blksz), pcluster: Buffer.alloc(setup.pclusterBytes) };
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

/** Compression did not make the file smaller; `written` blocks from the start were used. */
export interface NotWorthIt {
  written: number;
}

/**
 * Compresses `plan`'s file into pclusters starting at block `start`. When compression
 * would not make the file smaller it is to be stored flat instead, as the reference does.
 */
export function compressFile(
  setup: CompressionSetup,
  g: BlockGeometry,
  plan: InodePlan,
  start: number,
  w: ImageWriter,
  buffers: ZBuffers,
): CompressedData | NotWorthIt {
  const inode = plan.inode;
  const size = inode.size;
  const shown = inode.dataPath!.toString();
  const B = g.blksz;
  const c = setup.compressor;
  c.resetSearchHint?.();

  // Where the index starts relative to the 32-byte aligned inode decides its 4B/2B split.
  const metaBase = inodeSize(plan.extended) + plan.xattrSize;
  const mapPos = alignUp(metaBase, 8);
  const pad = mapPos - metaBase;
  const lclusters = Math.ceil(size / B);
  const indexBytes = setup.legacyCompress
    ? fullIndexSize(lclusters)
    : compactIndexSize(lclusters, mapPos + Z_EROFS_MAP_HEADER_SIZE, true);
  // A tail-packed pcluster follows the index and must not cross a block boundary.
  const canInline = (len: number): boolean => {
    const before = mapPos + indexBytes;
    return before + len <= B || (before % B) + len <= B;
  };

  let fd: number;
  try {
    fd = fs.openSync(inode.dataPath!, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    throw new BuildError(`${shown}: cannot open: ${describeFsError(e)}`);
  }
  const extents: Extent[] = [];
  let cursor = start;
  let inlineData: Uint8Array | null = null;
  const { raw, pcluster } = buffers;
  try {
    const q = new FileQueue(buffers.queue, fd, size, shown);
    while (q.pos < size) {
      q.fill();
      const len = q.tail - q.head;
      const final = q.pos + len === size;
      const src = q.buf.subarray(q.head, q.head + Math.min(len, setup.maxExtentBytes));
      let r = final && len <= B && !setup.ztailpacking ? null : c.compressDestSize(src, setup.pclusterBytes);
      if (r && setup.ztailpacking && final && r.consumed === len && r.data.length < Math.min(B, len) && canInline(r.data.length)) {
        // The last extent compresses below a block: pack it right after the index.
        inlineData = r.data;
        extents.push({ start: q.pos, length: len, raw: false, pblk: cursor, pblocks: 1 });
        q.consume(len);
        break;
      }
      // Keep compressed data only where it saves at least a whole block.
      if (r && alignUp(r.data.length, B) >= r.consumed) r = null;
      if (r && setup.ztailpacking && final && r.consumed === len && r.data.length % B !== 0 && r.data.length > B) {
        // The last pcluster ends part-way into a block: fitting less input into whole blocks
        // and packing the rest inline may save that block.
        const fewer = c.compressDestSize(src, Math.floor(r.data.length / B) * B);
        if (fewer && fewer.data.length + (len - fewer.consumed) < alignUp(r.data.length, B)) r = fewer;
      }
      if (!r) {
        if (setup.ztailpacking && final && len < B && canInline(len)) {
          inlineData = Uint8Array.from(q.buf.subarray(q.head, q.tail));
          extents.push({ start: q.pos, length: len, raw: true, pblk: cursor, pblocks: 1 });
          q.consume(len);
          break;
        }
        // Raw extents are "shifted": the extent's first byte at the start of its block.
        const n = Math.min(B, len);
        raw.fill(0, n, B);
        q.buf.copy(raw, 0, q.head, q.head + n);
        w.writeAt(byteOffset(cursor * B), raw.subarray(0, B));
        extents.push({ start: q.pos, length: n, raw: true, pblk: cursor, pblocks: 1 });
        cursor++;
        q.consume(n);
        continue;
      }
      // Right-aligned in the pcluster: the leading zeros are padding (ZERO_PADDING).
      const pblocks = alignUp(r.data.length, B) / B;
      const out = pcluster.subarray(0, pblocks * B);
      out.fill(0, 0, out.length - r.data.length);
      out.set(r.data, out.length - r.data.length);
      w.writeAt(byteOffset(cursor * B), out);
      extents.push({ start: q.pos, length: r.consumed, raw: false, pblk: cursor, pblocks });
      cursor += pblocks;
      q.consume(r.consumed);
    }
  } finally {
    fs.closeSync(fd);
  }

  const blocks = cursor - start;
  const records = buildLclusterRecords(extents, g.blkszbits, setup.bigPcluster);
  if (records.length !== lclusters) throw new Error(`internal: ${records.length} index records for ${lclusters} lclusters`);
  const inlineLen = inlineData?.length ?? 0;
  // As the reference: compressed only if data, inline tail and full-size index beat i_size.
  if (blocks * B + inlineLen + fullIndexSize(lclusters) >= size) return { written: blocks };

  const header: MapHeader = {
    idataSize: inlineLen,
    advise:
      (setup.legacyCompress ? 0 : Z_EROFS_ADVISE_COMPACTED_2B) |
      (setup.bigPcluster ? Z_EROFS_ADVISE_BIG_PCLUSTER_1 | (setup.legacyCompress ? 0 : Z_EROFS_ADVISE_BIG_PCLUSTER_2) : 0) |
      (inlineData ? Z_EROFS_ADVISE_INLINE_PCLUSTER : 0),
    algorithmType: c.algorithm,
    clusterBits: 0,
  };
  const index = setup.legacyCompress
    ? encodeFullIndexes(header, records)
    : encodeCompactIndexes(header, records, mapPos + Z_EROFS_MAP_HEADER_SIZE, setup.bigPcluster);
  const blob = new Uint8Array(index.length + inlineLen);
  blob.set(index, 0);
  if (inlineData) blob.set(inlineData, index.length);
  return {
    blocks,
    datalayout: setup.legacyCompress ? EROFS_INODE_COMPRESSED_FULL : EROFS_INODE_COMPRESSED_COMPACT,
    blob,
    pad,
    inline: inlineData !== null,
  };
}

/**
 * Writes a file flat at plan.startBlk, its tail inline or in a padded last block;
 * returns the tail to keep inline.
 */
export type FlatWriter = (plan: InodePlan) => Promise<Uint8Array | null>;

/**
 * Writes every regular file worth compressing, right after the superblock's block, and
 * returns how many blocks that took. Files compression does not help are written flat
 * in place, over the pclusters tried for them.
 */
export async function writeCompressedFiles(
  setup: CompressionSetup,
  g: BlockGeometry,
  plans: readonly InodePlan[],
  w: ImageWriter,
  spool: Spool,
  writeFlat: FlatWriter,
  yieldNow: () => Promise<void>,
): Promise<{ preDataBlocks: number; stats: ZdataStats }> {
  const first = Math.floor(1024 / g.blksz) + 1;
  let cursor = first;
  let dirtyEnd = first;
  const stats: ZdataStats = { compressedFiles: 0, inlinePclusters: 0 };
  const buffers = zBuffers(setup, g);
  for (const p of plans) {
    const inode = p.inode;
    if (!inode.dataPath || inode.size === 0) continue;
    if (inode.size <= g.blksz && !setup.ztailpacking) continue; // cannot save a block
    const z = compressFile(setup, g, p, cursor, w, buffers);
    if ('blob' in z) {
      p.datalayout = z.datalayout;
      p.inlineTail = z.pad + z.blob.length;
      p.dataBlocks = z.blocks;
      p.prewritten = { u: z.blocks, spoolOffset: spool.append(new Uint8Array(z.pad), z.blob) };
      cursor += z.blocks;
      stats.compressedFiles++;
      if (z.inline) stats.inlinePclusters++;
    } else {
      dirtyEnd = Math.max(dirtyEnd, cursor + z.written);
      p.startBlk = blockAddr(cursor);
      const tail = await writeFlat(p);
      const start = p.dataBlocks > 0 ? cursor : p.datalayout === EROFS_INODE_FLAT_INLINE ? EROFS_NULL_ADDR : 0;
      p.prewritten = { u: start, spoolOffset: spool.append(tail ?? new Uint8Array(0)) };
      cursor += p.dataBlocks;
    }
    dirtyEnd = Math.max(dirtyEnd, cursor);
    await yieldNow();
  }
  // Blocks a fallen-back file left behind past the end are cleared, not leaked into metadata.
  if (dirtyEnd > cursor) w.writeAt(byteOffset(cursor * g.blksz), new Uint8Array((dirtyEnd - cursor) * g.blksz));
  return { preDataBlocks: cursor - first, stats };
}
