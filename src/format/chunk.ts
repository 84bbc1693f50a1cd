// Chunk-based inodes (EROFS_INODE_CHUNK_BASED): i_u holds the chunk format, and after the
// inode and its xattrs (aligned to the entry size) comes one entry per chunk, either a
// 4-byte block map entry or an 8-byte struct erofs_inode_chunk_index.
// Also struct erofs_deviceslot, the device table entry for extra devices.

import {
  EROFS_CHUNK_FORMAT_BLKBITS_MASK,
  EROFS_CHUNK_FORMAT_INDEXES,
} from './constants.js';
import { TWO32 } from './types.js';

export const EROFS_BLOCK_MAP_ENTRY_SIZE = 4;
export const EROFS_CHUNK_INDEX_SIZE = 8;
export const EROFS_DEVT_SLOT_SIZE = 128;

/** The smallest chunk size (as bits) that holds `size` bytes in one chunk, within the format's range. */
export function chunkBitsFor(size: number, blkszbits: number): number {
  let bits = blkszbits;
  while (bits < blkszbits + EROFS_CHUNK_FORMAT_BLKBITS_MASK && 2 ** bits < size) bits++;
  return bits;
}

export function chunkFormat(chunkbits: number, blkszbits: number, indexes: boolean): number {
  return (chunkbits - blkszbits) | (indexes ? EROFS_CHUNK_FORMAT_INDEXES : 0);
}

/**
 * 8-byte chunk indexes for a file stored contiguously from block `startBlk` of `deviceId`:
 * startblk_hi u16, device_id u16, startblk_lo u32.
 */
export function encodeChunkIndexes(count: number, chunkBlocks: number, startBlk: number, deviceId: number): Uint8Array {
  const out = new Uint8Array(count * EROFS_CHUNK_INDEX_SIZE);
  const v = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    const blk = startBlk + i * chunkBlocks;
    v.setUint16(i * 8, Math.floor(blk / TWO32), true);
    v.setUint16(i * 8 + 2, deviceId, true);
    v.setUint32(i * 8 + 4, blk % TWO32, true);
  }
  return out;
}

/** A block map of holes: every chunk reads as zeros. */
export function encodeHoleBlockMap(count: number): Uint8Array {
  // EROFS_NULL_ADDR in every entry.
  return new Uint8Array(count * EROFS_BLOCK_MAP_ENTRY_SIZE).fill(0xff);
}

export interface DeviceSlot {
  /** Device path or digest used when the device is not given at mount time (may be empty). */
  tag: Uint8Array;
  blocks: number;
  /** Where the device's blocks appear in the unified address space (flat-device mounts). */
  mappedBlkaddr: number;
}

/** struct erofs_deviceslot: tag[64], blocks_lo, uniaddr_lo, blocks_hi, uniaddr_hi, reserved. */
export function encodeDeviceSlot(d: DeviceSlot): Uint8Array {
  const out = new Uint8Array(EROFS_DEVT_SLOT_SIZE);
  out.set(d.tag.subarray(0, 64), 0);
  const v = new DataView(out.buffer);
  v.setUint32(64, d.blocks % TWO32, true);
  v.setUint32(68, d.mappedBlkaddr % TWO32, true);
  v.setUint32(72, Math.floor(d.blocks / TWO32), true);
  v.setUint16(76, Math.floor(d.mappedBlkaddr / TWO32), true);
  return out;
}
