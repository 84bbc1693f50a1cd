// The in-memory inode tree every input (directory walk, tar stream) produces
// and the planner consumes. Holds metadata only: file data stays in the source.

import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../format/constants.js';
import type { Xattr } from '../format/xattr.js';

export interface TreeInode {
  /** st_mode including the file type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the UNIX epoch (may be negative) and nanoseconds, after the time policy. */
  mtime: number;
  mtimeNsec: number;
  /** Regular file: byte length; symlink: target length; directory: set by the planner. */
  size: number;
  /** Device number as new_encode_dev() for char/block devices, else 0. */
  rdev: number;
  /**
   * Where a regular file's bytes are when they do not come from its source path: the offset
   * in the tar data spool (--tar=f) or in the tar stream (--tar=i); -1 otherwise.
   */
  dataOffset: number;
  /**
   * First block of a regular file's data when the walk wrote it, ahead of the metadata
   * (uncompressed --tar=f); its inline tail, if any, is then at dataOffset in the tails
   * spool. -1 otherwise.
   */
  dataBlk: number;
  /**
   * The name it was first reached by (the source path for the root), as a latin1 string:
   * one character per byte, far smaller than a Buffer each. With `parent`, this locates the
   * source file without storing a path per inode (see sourcePath).
   */
  name: string;
  symlink: Buffer | null;
  /** In canonical order (compareXattrs). */
  xattrs: Xattr[];
  /** Links inside the image: dirents naming it (directories: 2 + subdirectories). */
  nlink: number;
  /** The 32-bit inode serial, root = 1, in layout order: set by inodeOrder (0 until then). */
  ino: number;
  /**
   * Directories: entries sorted bytewise by name, without "." and "..". An entry named as
   * its inode is the inode itself; only another name for it (a hard link) takes a TreeEntry:
   * an object per entry would cost 40 bytes an inode.
   */
  children: TreeChild[] | null;
  parent: TreeInode | null;
}

export interface TreeEntry {
  /** latin1: byte for byte the name on disk; `<` on these strings is bytewise order. */
  name: string;
  inode: TreeInode;
}

export type TreeChild = TreeInode | TreeEntry;

const isEntry = (c: TreeChild): c is TreeEntry => (c as TreeEntry).inode !== undefined;

/** The inode a directory entry names. */
export const childInode = (c: TreeChild): TreeInode => (isEntry(c) ? c.inode : c);

/** A directory entry as stored in `children`: the inode itself when the names agree. */
export const asChild = (name: string, inode: TreeInode): TreeChild => (inode.name === name ? inode : { name, inode });

/** Shared by every inode without xattrs, the usual case: one array, not one per inode. */
const NO_XATTRS: Xattr[] = [];

/** A fresh inode: no data, no xattrs, no links yet; a directory with no entries. */
export function newInode(
  mode: number,
  ids: Pick<TreeInode, 'uid' | 'gid' | 'mtime' | 'mtimeNsec'>,
  name: string,
  parent: TreeInode | null,
): TreeInode {
  return {
    mode,
    uid: ids.uid,
    gid: ids.gid,
    mtime: ids.mtime,
    mtimeNsec: ids.mtimeNsec,
    size: 0,
    rdev: 0,
    dataOffset: -1,
    dataBlk: -1,
    name,
    symlink: null,
    xattrs: NO_XATTRS,
    nlink: 0,
    ino: 0,
    children: (mode & S_IFMT) === S_IFDIR ? [] : null,
    parent,
  };
}

/** The inode's path in the source tree, rebuilt from parent links. */
export function sourcePath(inode: TreeInode): Buffer {
  const parts: string[] = [];
  let n = inode;
  for (; n.parent && n.parent !== n; n = n.parent) parts.push(n.name);
  parts.push(n.name);
  return Buffer.from(parts.reverse().join('/'), 'latin1');
}

export const isDir = (i: TreeInode): boolean => (i.mode & S_IFMT) === S_IFDIR;
export const isReg = (i: TreeInode): boolean => (i.mode & S_IFMT) === S_IFREG;
export const isSymlink = (i: TreeInode): boolean => (i.mode & S_IFMT) === S_IFLNK;

/**
 * Inodes in the order they are numbered and laid out, each given its serial `ino`: the
 * root, then for each directory (pre-order, sorted) its children as a group. A hard-linked
 * inode appears once, where it is first reached.
 */
export function inodeOrder(root: TreeInode): TreeInode[] {
  const order: TreeInode[] = [root];
  root.ino = 1;
  const stack: TreeInode[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const subdirs: TreeInode[] = [];
    for (const c of dir.children!) {
      const inode = childInode(c);
      // A serial already given: reached before, through another hard link.
      if (inode.ino !== 0) continue;
      order.push(inode);
      inode.ino = order.length;
      if (inode.children) subdirs.push(inode);
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
  return order;
}
