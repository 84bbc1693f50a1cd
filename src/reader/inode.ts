// Inode loading: nid -> on-disk inode, with every field that later code relies
// on validated here (position, format bits, layout, type, size).

import {
  EROFS_INODE_CHUNK_BASED,
  EROFS_INODE_COMPACT_SIZE,
  EROFS_INODE_COMPRESSED_COMPACT,
  EROFS_INODE_COMPRESSED_FULL,
  EROFS_INODE_EXTENDED_SIZE,
  EROFS_INODE_FLAT_INLINE,
  EROFS_INODE_FLAT_PLAIN,
  EROFS_ISLOTSIZE,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
} from '../format/constants.js';
import { type DiskInode, decodeDev, decodeInode, xattrIbodySize } from '../format/inode.js';
import { type ByteOffset, type Nid, byteOffset } from '../format/types.js';
import { CorruptImageError } from './errors.js';
import type { ImageReader } from './image.js';
import type { SuperInfo } from './super.js';

export type FileKind = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

export const LAYOUT_NAMES: readonly string[] = [
  'flat-plain',
  'compressed-full',
  'flat-inline',
  'compressed-compact',
  'chunk-based',
];

export function kindOfMode(mode: number): FileKind | null {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'file';
    case S_IFDIR: return 'dir';
    case S_IFLNK: return 'symlink';
    case S_IFCHR: return 'chardev';
    case S_IFBLK: return 'blockdev';
    case S_IFIFO: return 'fifo';
    case S_IFSOCK: return 'socket';
    default: return null;
  }
}

/** A validated inode. All positions are absolute image byte offsets. */
export interface Inode {
  readonly nid: Nid;
  readonly pos: ByteOffset;
  readonly disk: DiskInode;
  readonly kind: FileKind;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  /** i_size; always a safe integer. */
  readonly size: number;
  /** Modification time, seconds since the Unix epoch (negative before 1970). */
  readonly mtime: bigint;
  readonly mtimeNsec: number;
  /** Device number for character/block devices, else 0. */
  readonly rdev: { major: number; minor: number };
  readonly layout: number;
  /** 32 (compact) or 64 (extended). */
  readonly inodeSize: number;
  /** Bytes of the inline xattr area right after the inode (0 if none). */
  readonly xattrSize: number;
  /** First byte after inode + inline xattrs: where inline data/indexes begin. */
  readonly tailPos: ByteOffset;
}

export const isCompressedLayout = (layout: number): boolean =>
  layout === EROFS_INODE_COMPRESSED_FULL || layout === EROFS_INODE_COMPRESSED_COMPACT;

export function loadInode(img: ImageReader, sb: SuperInfo, n: Nid): Inode {
  const ctx = { nid: n };
  if (!Number.isSafeInteger(n) || n < 0) throw new CorruptImageError(`invalid nid ${n}`, ctx);
  const pos = sb.raw.metaBlkaddr * sb.blksz + n * EROFS_ISLOTSIZE;
  if (!img.contains(pos, EROFS_INODE_COMPACT_SIZE)) {
    throw new CorruptImageError(`nid ${n} points outside the image`, ctx);
  }
  let bytes = img.read(pos, EROFS_INODE_COMPACT_SIZE, 'inode');
  const format = bytes[0]! | (bytes[1]! << 8);
  const extended = (format & 1) === 1;
  if (extended) {
    if (!img.contains(pos, EROFS_INODE_EXTENDED_SIZE)) {
      throw new CorruptImageError('extended inode is cut off by the end of the image', ctx);
    }
    bytes = img.read(pos, EROFS_INODE_EXTENDED_SIZE, 'inode');
  }
  // Bit 4 (NLINK_1 / DOT_OMITTED) only exists with the 48bit feature, which is refused.
  if (format & ~0xf) throw new CorruptImageError(`unsupported i_format 0x${format.toString(16)}`, ctx);
  const disk = decodeInode(bytes);
  const layout = disk.datalayout;
  if (layout > EROFS_INODE_CHUNK_BASED) throw new CorruptImageError(`unknown data layout ${layout}`, ctx);

  const kind = kindOfMode(disk.mode);
  if (kind === null) throw new CorruptImageError(`invalid file type in mode 0${disk.mode.toString(8)}`, ctx);
  if (disk.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new CorruptImageError(`i_size ${disk.size} is too large`, ctx);
  const size = Number(disk.size);

  const special = kind === 'chardev' || kind === 'blockdev' || kind === 'fifo' || kind === 'socket';
  if (special && layout !== EROFS_INODE_FLAT_PLAIN && layout !== EROFS_INODE_FLAT_INLINE) {
    throw new CorruptImageError(`special file with data layout ${LAYOUT_NAMES[layout]}`, ctx);
  }
  // The kernel reads chunk-based inodes whatever the feature bits say; mkfs.erofs --tar=i
  // writes them with only DEVICE_TABLE set.

  const inodeSize = extended ? EROFS_INODE_EXTENDED_SIZE : EROFS_INODE_COMPACT_SIZE;
  const xattrSize = xattrIbodySize(disk.xattrIcount);
  if (!img.contains(pos + inodeSize, xattrSize)) {
    throw new CorruptImageError(`inline xattr area (${xattrSize} bytes) runs past the end of the image`, ctx);
  }
  // Times are signed 64-bit on disk (pre-1970 mtimes are stored in two's complement).
  const mtime = extended ? BigInt.asIntN(64, disk.mtime) : BigInt.asIntN(64, sb.raw.epoch) + disk.mtime;
  const mtimeNsec = extended ? disk.mtimeNsec : sb.raw.fixedNsec;

  return {
    nid: n,
    pos: byteOffset(pos),
    disk,
    kind,
    mode: disk.mode,
    uid: disk.uid,
    gid: disk.gid,
    nlink: disk.nlink,
    size,
    mtime,
    mtimeNsec,
    rdev: kind === 'chardev' || kind === 'blockdev' ? decodeDev(disk.u) : { major: 0, minor: 0 },
    layout,
    inodeSize,
    xattrSize,
    tailPos: byteOffset(pos + inodeSize + xattrSize),
  };
}
