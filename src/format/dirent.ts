// struct erofs_dirent blocks: an array of 12-byte dirents, then the names they point at.

import { EROFS_DIRENT_SIZE } from './constants.js';
import type { Nid } from './types.js';
import { writeLatin1 } from '../latin1.js';

export interface DirEntry {
  name: Uint8Array;
  nid: Nid;
  fileType: number;
}

/** Bytewise name order (memcmp, shorter prefix first), which readers binary-search on. */
export function compareNames(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/**
 * Directory i_size for entries with these name lengths (in directory order).
 * A block holds as many whole dirent+name pairs as fit; the last block is not padded.
 */
export function dirSize(nameLengths: Iterable<number>, blksz: number): number {
  let full = 0;
  let used = 0;
  for (const len of nameLengths) {
    const cost = EROFS_DIRENT_SIZE + len;
    if (used + cost > blksz) {
      full++;
      used = 0;
    }
    used += cost;
  }
  return full * blksz + used;
}

/**
 * A dirent to encode. The name is bytes, or a latin1 string with one char per byte (as the
 * tree walkers keep names, so no buffer is made per name).
 */
export interface DirEntryIn {
  name: Uint8Array | string;
  nid: Nid;
  fileType: number;
}

/** Encodes sorted entries into the directory's data (size = dirSize of their names). */
export function encodeDirectory(entries: readonly DirEntryIn[], blksz: number): Uint8Array {
  const out = new Uint8Array(dirSize(entries.map((e) => e.name.length), blksz));
  const v = new DataView(out.buffer);
  let i = 0;
  for (let blockStart = 0; i < entries.length; blockStart += blksz) {
    // Find how many entries fit into this block.
    let used = 0;
    let end = i;
    while (end < entries.length && used + EROFS_DIRENT_SIZE + entries[end]!.name.length <= blksz) {
      used += EROFS_DIRENT_SIZE + entries[end]!.name.length;
      end++;
    }
    let nameoff = (end - i) * EROFS_DIRENT_SIZE;
    for (let k = i; k < end; k++) {
      const e = entries[k]!;
      const d = blockStart + (k - i) * EROFS_DIRENT_SIZE;
      // nid: a u64, as two u32 halves (a nid stays below 2^53).
      v.setUint32(d, e.nid % 0x100000000, true);
      v.setUint32(d + 4, Math.floor(e.nid / 0x100000000), true);
      v.setUint16(d + 8, nameoff, true);
      v.setUint8(d + 10, e.fileType);
      const name = e.name;
      const at = blockStart + nameoff;
      if (typeof name === 'string') writeLatin1(out, name, at);
      else out.set(name, at);
      nameoff += name.length;
    }
    i = end;
  }
  return out;
}

export class DirentError extends Error {}

/**
 * Decodes one directory block. `used` is the number of valid bytes in it (blksz for
 * full blocks, i_size % blksz for the last one). Validates every offset.
 */
export function decodeDirBlock(block: Uint8Array, used: number): DirEntry[] {
  if (used < EROFS_DIRENT_SIZE) throw new DirentError('directory block too small');
  const v = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const first = v.getUint16(8, true);
  if (first < EROFS_DIRENT_SIZE || first % EROFS_DIRENT_SIZE !== 0 || first > used) {
    throw new DirentError(`bad first nameoff ${first}`);
  }
  const count = first / EROFS_DIRENT_SIZE;
  const out: DirEntry[] = [];
  for (let k = 0; k < count; k++) {
    const d = k * EROFS_DIRENT_SIZE;
    const off = v.getUint16(d + 8, true);
    let end: number;
    if (k + 1 < count) {
      end = v.getUint16(d + EROFS_DIRENT_SIZE + 8, true);
    } else {
      // The last name ends at the first NUL or at the end of the used bytes.
      const nul = block.subarray(off, used).indexOf(0);
      end = nul < 0 ? used : off + nul;
    }
    if (off < first || end <= off || end > used) throw new DirentError(`bad name offsets ${off}..${end}`);
    out.push({
      nid: Number(v.getBigUint64(d, true)) as Nid,
      fileType: v.getUint8(d + 10),
      name: block.slice(off, end),
    });
  }
  return out;
}
