// Regular files of --tar=i and --tar=headerball: chunk-based inodes whose data is not in the
// image. Index mode points each file at its data inside the tar (extra device 1, 512-byte
// blocks); a headerball has no data, so its files are holes that read as zeros.

import { EROFS_INODE_CHUNK_BASED } from '../format/constants.js';
import {
  chunkBitsFor,
  chunkFormat,
  EROFS_BLOCK_MAP_ENTRY_SIZE,
  EROFS_CHUNK_INDEX_SIZE,
  encodeChunkIndexes,
  encodeHoleBlockMap,
} from '../format/chunk.js';
import { inodeSize } from '../format/inode.js';
import type { BlockGeometry } from '../format/types.js';
import { BuildError } from './errors.js';
import { type InodePlan, setPrewritten } from './planner.js';
import { isReg, sourcePath } from './tree.js';
import type { Spool } from './writer.js';

/** The tar is extra device 1. */
export const TAR_DEVICE_ID = 1;

/** Turns every non-empty regular file into a chunk-based inode; returns how many. */
export function planChunkedFiles(plans: readonly InodePlan[], g: BlockGeometry, mode: 'index' | 'headerball', spool: Spool): number {
  const indexes = mode === 'index';
  const unit = indexes ? EROFS_CHUNK_INDEX_SIZE : EROFS_BLOCK_MAP_ENTRY_SIZE;
  let n = 0;
  for (const p of plans) {
    const inode = p.inode;
    if (!isReg(inode) || inode.size === 0) continue;
    const chunkbits = chunkBitsFor(inode.size, g.blkszbits);
    const count = Math.ceil(inode.size / 2 ** chunkbits);
    let entries: Uint8Array;
    if (indexes) {
      // Tar data always starts on a 512-byte record, which is a block here.
      if (inode.dataOffset % g.blksz !== 0) throw new BuildError(`${sourcePath(inode).toString()}: tar data not block-aligned`);
      const start = inode.dataOffset / g.blksz;
      if (start + Math.ceil(inode.size / g.blksz) > 0xffffffff) {
        throw new BuildError(`${sourcePath(inode).toString()}: tar larger than 2 TiB cannot be indexed with 32-bit block addresses`);
      }
      entries = encodeChunkIndexes(count, 2 ** (chunkbits - g.blkszbits), start, TAR_DEVICE_ID);
    } else {
      entries = encodeHoleBlockMap(count);
    }
    // The entries start after the inode and xattrs, aligned to the entry size.
    const base = inodeSize(p.extended) + p.xattrSize;
    const pad = Math.ceil(base / unit) * unit - base;
    p.datalayout = EROFS_INODE_CHUNK_BASED;
    p.dataBlocks = 0;
    p.inlineTail = pad + entries.length;
    setPrewritten(p, chunkFormat(chunkbits, g.blkszbits, indexes), spool.append(new Uint8Array(pad), entries));
    n++;
  }
  return n;
}
