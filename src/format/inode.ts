// struct erofs_inode_compact (32 bytes) and struct erofs_inode_extended (64 bytes).

import {
  EROFS_INODE_COMPACT_SIZE,
  EROFS_INODE_EXTENDED_SIZE,
  EROFS_INODE_LAYOUT_COMPACT,
  EROFS_INODE_LAYOUT_EXTENDED,
  EROFS_I_DATALAYOUT_BIT,
  EROFS_I_VERSION_BIT,
  EROFS_XATTR_ENTRY_SIZE,
  EROFS_XATTR_IBODY_HEADER_SIZE,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  EROFS_FT_BLKDEV,
  EROFS_FT_CHRDEV,
  EROFS_FT_DIR,
  EROFS_FT_FIFO,
  EROFS_FT_REG_FILE,
  EROFS_FT_SOCK,
  EROFS_FT_SYMLINK,
  EROFS_FT_UNKNOWN,
} from './constants.js';

export interface DiskInode {
  extended: boolean;
  /** EROFS_INODE_FLAT_PLAIN, ..._FLAT_INLINE, ... */
  datalayout: number;
  /** i_format bits above the layout (bit 4: NLINK_1 / DOT_OMITTED); 0 for what we write. */
  formatFlags: number;
  xattrIcount: number;
  mode: number;
  nlink: number;
  size: bigint;
  /** startblk, compressed block count, chunk format or encoded rdev, by layout/type. */
  u: number;
  ino: number;
  uid: number;
  gid: number;
  /** Extended: absolute seconds. Compact: seconds relative to the superblock epoch. */
  mtime: bigint;
  mtimeNsec: number;
}

export const inodeSize = (extended: boolean): number =>
  extended ? EROFS_INODE_EXTENDED_SIZE : EROFS_INODE_COMPACT_SIZE;

export function encodeInode(ino: DiskInode): Uint8Array {
  const b = new Uint8Array(inodeSize(ino.extended));
  writeInode(b, 0, ino);
  return b;
}

/** Encodes an inode into `out` at `at` (the inode writer fills its metadata blocks so, without a copy). */
export function writeInode(out: Uint8Array, at: number, ino: DiskInode): void {
  const v = new DataView(out.buffer, out.byteOffset + at, inodeSize(ino.extended));
  const format =
    ((ino.extended ? EROFS_INODE_LAYOUT_EXTENDED : EROFS_INODE_LAYOUT_COMPACT) << EROFS_I_VERSION_BIT) |
    (ino.datalayout << EROFS_I_DATALAYOUT_BIT) |
    ino.formatFlags;
  v.setUint16(0, format, true);
  v.setUint16(2, ino.xattrIcount, true);
  v.setUint16(4, ino.mode, true);
  if (ino.extended) {
    v.setBigUint64(8, ino.size, true);
    v.setUint32(16, ino.u, true);
    v.setUint32(20, ino.ino, true);
    v.setUint32(24, ino.uid, true);
    v.setUint32(28, ino.gid, true);
    v.setBigUint64(32, ino.mtime, true);
    v.setUint32(40, ino.mtimeNsec, true);
    v.setUint32(44, ino.nlink, true);
  } else {
    v.setUint16(6, ino.nlink, true);
    v.setUint32(8, Number(ino.size), true);
    v.setUint32(12, Number(ino.mtime), true);
    v.setUint32(16, ino.u, true);
    v.setUint32(20, ino.ino, true);
    v.setUint16(24, ino.uid, true);
    v.setUint16(26, ino.gid, true);
  }
}

/** Decodes an inode; `bytes` must hold at least 64 bytes, or 32 for a compact one. */
export function decodeInode(bytes: Uint8Array): DiskInode {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = v.getUint16(0, true);
  const extended = ((format >> EROFS_I_VERSION_BIT) & 1) === EROFS_INODE_LAYOUT_EXTENDED;
  const base = {
    extended,
    datalayout: (format >> EROFS_I_DATALAYOUT_BIT) & 0x7,
    formatFlags: format & ~0xf,
    xattrIcount: v.getUint16(2, true),
    mode: v.getUint16(4, true),
  };
  if (extended) {
    if (bytes.length < EROFS_INODE_EXTENDED_SIZE) throw new RangeError('extended inode truncated');
    return {
      ...base,
      size: v.getBigUint64(8, true),
      u: v.getUint32(16, true),
      ino: v.getUint32(20, true),
      uid: v.getUint32(24, true),
      gid: v.getUint32(28, true),
      mtime: v.getBigUint64(32, true),
      mtimeNsec: v.getUint32(40, true),
      nlink: v.getUint32(44, true),
    };
  }
  return {
    ...base,
    nlink: v.getUint16(6, true),
    size: BigInt(v.getUint32(8, true)),
    mtime: BigInt(v.getUint32(12, true)),
    u: v.getUint32(16, true),
    ino: v.getUint32(20, true),
    uid: v.getUint16(24, true),
    gid: v.getUint16(26, true),
    mtimeNsec: 0,
  };
}

/** Size in bytes of the inline xattr area for a given i_xattr_icount. */
export function xattrIbodySize(icount: number): number {
  return icount === 0 ? 0 : EROFS_XATTR_IBODY_HEADER_SIZE + (icount - 1) * EROFS_XATTR_ENTRY_SIZE;
}

/** i_xattr_icount for an inline xattr area of `bytes` (a multiple of 4, at least 12). */
export function xattrIcount(bytes: number): number {
  return bytes === 0 ? 0 : (bytes - EROFS_XATTR_IBODY_HEADER_SIZE) / EROFS_XATTR_ENTRY_SIZE + 1;
}

/** The largest device numbers i_rdev holds: Linux's dev_t, 12 bits of major and 20 of minor (MINORBITS). */
export const MAX_DEV_MAJOR = 0xfff;
export const MAX_DEV_MINOR = 0xfffff;

/** Linux new_encode_dev(): 12-bit major and 20-bit minor in 32 bits. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & MAX_DEV_MAJOR) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeDev(dev: number): { major: number; minor: number } {
  return { major: (dev & 0xfff00) >>> 8, minor: ((dev & 0xff) | ((dev >>> 12) & 0xfff00)) >>> 0 };
}

/** The dirent file_type for a mode. */
export function fileTypeOf(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG: return EROFS_FT_REG_FILE;
    case S_IFDIR: return EROFS_FT_DIR;
    case S_IFCHR: return EROFS_FT_CHRDEV;
    case S_IFBLK: return EROFS_FT_BLKDEV;
    case S_IFIFO: return EROFS_FT_FIFO;
    case S_IFSOCK: return EROFS_FT_SOCK;
    case S_IFLNK: return EROFS_FT_SYMLINK;
    default: return EROFS_FT_UNKNOWN;
  }
}
