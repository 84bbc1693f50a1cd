// Depth-first traversal of the directory tree with the structural checks every
// consumer needs: "." and ".." point where they should, names are sorted and
// unique, dirent types agree with inodes, and no directory is entered twice
// (which is what turns a corrupt image into an infinite loop).

import type { Nid } from '../format/types.js';
import { type DirEntry, fileTypeKind } from './dir.js';
import { CorruptImageError, ErofsError } from './errors.js';
import type { ErofsImage } from './index.js';
import type { Inode } from './inode.js';

export interface WalkEntry {
  /** Absolute path inside the image as bytes ("/" for the root). */
  readonly path: Buffer;
  /** Last path component ("" for the root). */
  readonly name: Buffer;
  readonly nid: Nid;
  readonly inode: Inode;
  /** nid of the directory holding the entry (the root's parent is itself). */
  readonly parent: Nid;
  readonly depth: number;
}

export interface WalkHooks {
  /** Pre-order, root first. Return false to skip a directory's contents. */
  onEntry(e: WalkEntry): boolean | void;
  /** Post-order, after every entry below a directory was visited. */
  onDirDone?(e: WalkEntry): void;
  /** A problem at `path`; the walk continues with the next entry. */
  onError(path: Buffer, nid: Nid | undefined, err: ErofsError): void;
}

export const DOT = Buffer.from('.');
export const DOTDOT = Buffer.from('..');

export function showPath(p: Buffer): string {
  return p.toString('utf8');
}

export function childPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 ? Buffer.concat([dir, name]) : Buffer.concat([dir, Buffer.from('/'), name]);
}

interface Frame {
  entry: WalkEntry;
  children: DirEntry[];
  next: number;
}

export function walkTree(img: ErofsImage, hooks: WalkHooks): void {
  const root = img.rootNid;
  const rootPath = Buffer.from('/');
  let rootInode: Inode;
  try {
    rootInode = img.inode(root);
  } catch (e) {
    if (e instanceof ErofsError) return hooks.onError(rootPath, root, e);
    throw e;
  }
  if (rootInode.kind !== 'dir') {
    return hooks.onError(rootPath, root, new CorruptImageError('the root inode is not a directory', { nid: root }));
  }
  const visitedDirs = new Set<number>();
  const stack: Frame[] = [];

  const enter = (entry: WalkEntry): void => {
    if (hooks.onEntry(entry) === false || entry.inode.kind !== 'dir') return;
    if (visitedDirs.has(entry.nid)) {
      hooks.onError(entry.path, entry.nid, new CorruptImageError('directory reached twice (directory loop or hard link)', { nid: entry.nid }));
      return;
    }
    visitedDirs.add(entry.nid);
    let children: DirEntry[];
    try {
      children = img.readdir(entry.nid);
      checkDirectory(entry, children, (err) => hooks.onError(entry.path, entry.nid, err));
    } catch (e) {
      if (!(e instanceof ErofsError)) throw e;
      hooks.onError(entry.path, entry.nid, e);
      hooks.onDirDone?.(entry);
      return;
    }
    stack.push({ entry, children, next: 0 });
  };

  enter({ path: rootPath, name: Buffer.alloc(0), nid: root, inode: rootInode, parent: root, depth: 0 });
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.children.length) {
      stack.pop();
      hooks.onDirDone?.(top.entry);
      continue;
    }
    const d = top.children[top.next++]!;
    if (d.name.equals(DOT) || d.name.equals(DOTDOT)) continue;
    const path = childPath(top.entry.path, d.name);
    let inode: Inode;
    try {
      inode = img.inode(d.nid);
    } catch (e) {
      if (!(e instanceof ErofsError)) throw e;
      hooks.onError(path, d.nid, e);
      continue;
    }
    const want = fileTypeKind(d.fileType);
    if (want !== 'unknown' && want !== inode.kind) {
      hooks.onError(path, d.nid, new CorruptImageError(`directory entry says ${want}, inode is a ${inode.kind}`, { nid: d.nid }));
      continue;
    }
    enter({ path, name: d.name, nid: d.nid, inode, parent: top.entry.nid, depth: top.entry.depth + 1 });
  }
}

/** Dot entries, order and uniqueness of one directory's entries. */
function checkDirectory(dir: WalkEntry, entries: DirEntry[], report: (e: CorruptImageError) => void): void {
  const ctx = { nid: dir.nid };
  let dot: DirEntry | undefined;
  let dotdot: DirEntry | undefined;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.name.equals(DOT)) dot = e;
    else if (e.name.equals(DOTDOT)) dotdot = e;
    if (i > 0) {
      const c = Buffer.compare(entries[i - 1]!.name, e.name);
      if (c === 0) report(new CorruptImageError(`duplicate entry ${JSON.stringify(e.name.toString())}`, ctx));
      else if (c > 0) report(new CorruptImageError(`entries out of order at ${JSON.stringify(e.name.toString())}`, ctx));
    }
  }
  if (!dot) report(new CorruptImageError('missing "." entry', ctx));
  else if (dot.nid !== dir.nid) report(new CorruptImageError(`"." points to nid ${dot.nid}`, ctx));
  if (!dotdot) report(new CorruptImageError('missing ".." entry', ctx));
  else if (dotdot.nid !== dir.parent) report(new CorruptImageError(`".." points to nid ${dotdot.nid}, expected ${dir.parent}`, ctx));
}
