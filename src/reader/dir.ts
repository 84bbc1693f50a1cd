// Directories: decoding dirent blocks (with validation of every name offset,
// name and file type) and looking a name up by binary search over the sorted
// blocks, as the kernel's namei does.

import { EROFS_FT_SYMLINK, EROFS_NAME_LEN } from '../format/constants.js';
import { DirentError, decodeDirBlock } from '../format/dirent.js';
import type { Nid } from '../format/types.js';
import { CorruptImageError } from './errors.js';
import type { FileKind, Inode } from './inode.js';

export interface DirEntry {
  /** Raw name bytes (Linux names need not be UTF-8). */
  readonly name: Buffer;
  readonly nid: Nid;
  /** On-disk EROFS_FT_* value. */
  readonly fileType: number;
}

const FT_KINDS: ReadonlyArray<FileKind | 'unknown'> = [
  'unknown',
  'file',
  'dir',
  'chardev',
  'blockdev',
  'fifo',
  'socket',
  'symlink',
];

export function fileTypeKind(ft: number): FileKind | 'unknown' {
  return FT_KINDS[ft] ?? 'unknown';
}

/** Reads `len` bytes of the directory's data at `off` (through whatever layout it has). */
export type DirDataReader = (off: number, len: number) => Uint8Array;

/** Decodes directory block `index` (0-based) of `dir`. */
export function readDirBlock(dir: Inode, blksz: number, index: number, read: DirDataReader): DirEntry[] {
  const ctx = { nid: dir.nid };
  const start = index * blksz;
  const used = Math.min(blksz, dir.size - start);
  const block = read(start, used);
  let raw;
  try {
    raw = decodeDirBlock(block, used);
  } catch (e) {
    if (e instanceof DirentError) throw new CorruptImageError(`directory block ${index}: ${e.message}`, ctx);
    throw e;
  }
  return raw.map((d) => {
    const name = Buffer.from(d.name);
    if (name.length > EROFS_NAME_LEN) {
      throw new CorruptImageError(`directory block ${index}: name of ${name.length} bytes is too long`, ctx);
    }
    if (name.includes(0x2f) || name.includes(0)) {
      throw new CorruptImageError(`directory block ${index}: name ${JSON.stringify(name.toString('latin1'))} contains '/' or NUL`, ctx);
    }
    if (d.fileType > EROFS_FT_SYMLINK) {
      throw new CorruptImageError(`directory block ${index}: entry ${JSON.stringify(name.toString())} has file type ${d.fileType}`, ctx);
    }
    return { name, nid: d.nid, fileType: d.fileType };
  });
}

export function dirBlockCount(dir: Inode, blksz: number): number {
  return Math.ceil(dir.size / blksz);
}

/** All entries, in on-disk order (including "." and ".."). */
export function readDirectory(dir: Inode, blksz: number, read: DirDataReader): DirEntry[] {
  const out: DirEntry[] = [];
  const n = dirBlockCount(dir, blksz);
  for (let i = 0; i < n; i++) for (const e of readDirBlock(dir, blksz, i, read)) out.push(e);
  return out;
}

/** Binary search over blocks (by their first and last names), then within the block. */
export function lookupName(dir: Inode, blksz: number, name: Uint8Array, read: DirDataReader): DirEntry | null {
  let lo = 0;
  let hi = dirBlockCount(dir, blksz) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const entries = readDirBlock(dir, blksz, mid, read);
    if (entries.length === 0) return null;
    if (Buffer.compare(name, entries[0]!.name) < 0) {
      hi = mid - 1;
      continue;
    }
    if (Buffer.compare(name, entries[entries.length - 1]!.name) > 0) {
      lo = mid + 1;
      continue;
    }
    let a = 0;
    let b = entries.length - 1;
    while (a <= b) {
      const m = (a + b) >>> 1;
      const c = Buffer.compare(name, entries[m]!.name);
      if (c === 0) return entries[m]!;
      if (c < 0) b = m - 1;
      else a = m + 1;
    }
    return null;
  }
  return null;
}
