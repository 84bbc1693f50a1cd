// Uncompressed layouts: FLAT_PLAIN, FLAT_INLINE and CHUNK_BASED (block maps and
// chunk indexes), each translated into extents after checking that what they
// point at lies inside the image.

import {
  EROFS_CHUNK_FORMAT_48BIT,
  EROFS_CHUNK_FORMAT_BLKBITS_MASK,
  EROFS_CHUNK_FORMAT_INDEXES,
  EROFS_INODE_FLAT_INLINE,
  EROFS_INODE_FLAT_PLAIN,
  EROFS_NULL_ADDR,
} from '../format/constants.js';
import { CorruptImageError, UnsupportedFeatureError } from './errors.js';
import type { Extent } from './extent.js';
import type { ImageReader } from './image.js';
import type { Inode } from './inode.js';
import type { SuperInfo } from './super.js';
import { byteOffset } from '../format/types.js';

/** Maps an offset of a FLAT_PLAIN or FLAT_INLINE inode. */
export function mapFlat(img: ImageReader, sb: SuperInfo, inode: Inode, pos: number): Extent {
  const ctx = { nid: inode.nid };
  const size = inode.size;
  if (!(pos >= 0 && pos < size)) throw new CorruptImageError(`offset ${pos} outside the file (${size} bytes)`, ctx);
  const blksz = sb.blksz;
  const startblk = inode.disk.u;
  const inline = inode.layout === EROFS_INODE_FLAT_INLINE;
  const blockBytes = inline ? Math.floor(size / blksz) * blksz : size;
  if (!inline && inode.layout !== EROFS_INODE_FLAT_PLAIN) {
    throw new CorruptImageError(`layout ${inode.layout} is not a flat layout`, ctx);
  }
  if (pos < blockBytes) {
    const physical = startblk * blksz;
    if (!img.contains(physical, blockBytes)) {
      throw new CorruptImageError(
        `data blocks (start block ${startblk}, ${Math.ceil(blockBytes / blksz)} blocks) lie outside the image`,
        ctx,
      );
    }
    return { logical: 0, length: blockBytes, kind: 'plain', physical: byteOffset(physical), physicalLength: blockBytes };
  }
  // The inline tail follows the inode and its xattrs and must not cross a block boundary.
  const tail = size - blockBytes;
  const at = inode.tailPos;
  if ((at % blksz) + tail > blksz) throw new CorruptImageError('inline data crosses a block boundary', ctx);
  if (!img.contains(at, tail)) throw new CorruptImageError('inline data runs past the end of the image', ctx);
  return { logical: blockBytes, length: tail, kind: 'plain', physical: at, physicalLength: tail, inline: true };
}

/** Chunk-based inode: a block map (4-byte entries) or chunk indexes (8-byte entries). */
export class ChunkMap {
  readonly chunkBits: number;
  readonly indexes: boolean;
  readonly count: number;
  readonly indexPos: number;
  private readonly unit: number;
  private readonly deviceMask: number;

  constructor(
    private readonly img: ImageReader,
    private readonly sb: SuperInfo,
    private readonly inode: Inode,
    /** Readers for the extra devices, when given; else their blocks are looked for in img. */
    private readonly devices: readonly ImageReader[] = [],
  ) {
    const ctx = { nid: inode.nid };
    const format = inode.disk.u & 0xffff;
    const known = EROFS_CHUNK_FORMAT_BLKBITS_MASK | EROFS_CHUNK_FORMAT_INDEXES | EROFS_CHUNK_FORMAT_48BIT;
    if (format & ~known) throw new UnsupportedFeatureError(`unknown chunk format 0x${format.toString(16)}`, ctx);
    if (format & EROFS_CHUNK_FORMAT_48BIT) throw new UnsupportedFeatureError('48-bit chunk indexes', ctx);
    this.chunkBits = sb.blkszbits + (format & EROFS_CHUNK_FORMAT_BLKBITS_MASK);
    this.indexes = (format & EROFS_CHUNK_FORMAT_INDEXES) !== 0;
    this.unit = this.indexes ? 8 : 4;
    this.count = Math.ceil(inode.size / 2 ** this.chunkBits);
    this.indexPos = Math.ceil(inode.tailPos / this.unit) * this.unit;
    if (!img.contains(this.indexPos, this.count * this.unit)) {
      throw new CorruptImageError(`chunk index (${this.count} entries) runs past the end of the image`, ctx);
    }
    // Device ids are masked to the number of devices, rounded up to a power of two.
    let m = 1;
    while (m < sb.raw.extraDevices + 1) m *= 2;
    this.deviceMask = m - 1;
  }

  get chunkSize(): number {
    return 2 ** this.chunkBits;
  }

  /** Bytes of the index area, for statistics. */
  get metadataBytes(): number {
    return this.count * this.unit;
  }

  map(pos: number): Extent {
    const ctx = { nid: this.inode.nid };
    const size = this.inode.size;
    if (!(pos >= 0 && pos < size)) throw new CorruptImageError(`offset ${pos} outside the file (${size} bytes)`, ctx);
    const cs = this.chunkSize;
    const i = Math.floor(pos / cs);
    const logical = i * cs;
    const length = Math.min(cs, size - logical);
    const e = this.img.read(this.indexPos + i * this.unit, this.unit, 'chunk index');
    const v = new DataView(e.buffer, e.byteOffset, e.byteLength);
    let blk: number;
    let device = 0;
    if (this.indexes) {
      device = v.getUint16(2, true) & this.deviceMask;
      blk = v.getUint32(4, true);
    } else {
      blk = v.getUint32(0, true);
    }
    if (blk === EROFS_NULL_ADDR) return { logical, length, kind: 'hole', physical: byteOffset(0), physicalLength: 0 };
    let base = 0;
    if (device !== 0) {
      // Without the device itself, its blocks are read where the kernel's flat-device mode
      // finds them: at mapped_blkaddr in this file (a tar index image with the tar appended).
      const dev = this.sb.devices[device - 1];
      if (!dev) throw new CorruptImageError(`chunk ${i} names extra device ${device}, beyond the device table`, ctx);
      if (blk + Math.ceil(length / this.sb.blksz) > dev.blocks) {
        throw new CorruptImageError(`chunk ${i} (block ${blk}) lies outside extra device ${device} (${dev.blocks} blocks)`, ctx);
      }
      const given = this.devices[device - 1];
      if (given) {
        const at = blk * this.sb.blksz;
        if (!given.contains(at, length)) throw new CorruptImageError(`chunk ${i} (block ${blk}) lies past the end of device ${device}`, ctx);
        return { logical, length, kind: 'plain', physical: byteOffset(at), physicalLength: length, device };
      }
      base = dev.mappedBlkaddr;
    }
    const physical = (base + blk) * this.sb.blksz;
    if (device !== 0 && !this.img.contains(physical, length)) {
      throw new UnsupportedFeatureError(`chunk ${i} is on extra device ${device}, which is neither given nor appended to the image`, ctx);
    }
    if (!this.img.contains(physical, length)) {
      throw new CorruptImageError(`chunk ${i} (block ${blk}, ${length} bytes) lies outside the image`, ctx);
    }
    // Read from this file: a given device's chunks returned above.
    return { logical, length, kind: 'plain', physical: byteOffset(physical), physicalLength: length };
  }
}
