// Extended attributes: the inline area after an inode, shared entries referenced
// by id, short and long name prefixes, and the per-inode name bloom filter.

import {
  EROFS_FEATURE_COMPAT_XATTR_FILTER,
  EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES,
  EROFS_XATTR_FILTER_BITS,
  EROFS_XATTR_FILTER_SEED,
  EROFS_XATTR_IBODY_HEADER_SIZE,
  EROFS_XATTR_INDEX_LUSTRE,
  EROFS_XATTR_LONG_PREFIX,
  EROFS_XATTR_LONG_PREFIX_MASK,
} from '../format/constants.js';
import { decodeXattrEntryHeader, splitXattrName, xattrPrefix } from '../format/xattr.js';
import { xxh32 } from '../format/xxhash.js';
import { CorruptImageError, UnsupportedFeatureError } from './errors.js';
import type { ImageReader } from './image.js';
import type { Inode } from './inode.js';
import { COMPAT_PLAIN_XATTR_PFX, type SuperInfo } from './super.js';

export interface XattrEntry {
  /** Full name as user space sees it, e.g. "user.comment". */
  readonly name: Buffer;
  readonly value: Buffer;
  /** Stored in the shared area (referenced by id) rather than inline. */
  readonly shared: boolean;
  /** On-disk e_name_index (bit 7 = long prefix). */
  readonly nameIndex: number;
}

export interface LongPrefix {
  readonly baseIndex: number;
  readonly infix: Buffer;
  /** short prefix + infix */
  readonly full: Buffer;
}

const align4 = (n: number): number => (n + 3) & ~3;

export function shortPrefix(index: number): Buffer | null {
  if (index === EROFS_XATTR_INDEX_LUSTRE) return Buffer.from('lustre.');
  const p = xattrPrefix(index);
  return p === null ? null : Buffer.from(p);
}

/**
 * Loads the long-prefix table. `readPacked` reads bytes of the packed inode,
 * where the table lives unless the PLAIN_XATTR_PFX compat bit says it is in the metadata area.
 */
export function loadLongPrefixes(
  img: ImageReader,
  sb: SuperInfo,
  readPacked: (off: number, len: number) => Uint8Array,
): LongPrefix[] {
  const count = sb.raw.xattrPrefixCount;
  if (!(sb.featureIncompat & EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES) || count === 0) return [];
  const plain = (sb.featureCompat & COMPAT_PLAIN_XATTR_PFX) !== 0;
  const read = (off: number, len: number): Uint8Array => (plain ? img.read(off, len, 'xattr prefix table') : readPacked(off, len));
  const out: LongPrefix[] = [];
  let pos = sb.raw.xattrPrefixStart * 4;
  for (let i = 0; i < count; i++) {
    const h = read(pos, 2);
    const len = h[0]! | (h[1]! << 8);
    if (len < 1) throw new CorruptImageError(`long xattr prefix ${i} is empty`);
    const rec = Buffer.from(read(pos + 2, len));
    const base = rec[0]!;
    const short = shortPrefix(base);
    if (short === null) throw new CorruptImageError(`long xattr prefix ${i} has unknown base index ${base}`);
    const infix = rec.subarray(1);
    out.push({ baseIndex: base, infix, full: Buffer.concat([short, infix]) });
    pos = align4(pos + 2 + len);
  }
  return out;
}

function entryName(nameIndex: number, suffix: Uint8Array, prefixes: readonly LongPrefix[], ctx: { nid: Inode['nid'] }): Buffer {
  if (nameIndex & EROFS_XATTR_LONG_PREFIX) {
    const id = nameIndex & EROFS_XATTR_LONG_PREFIX_MASK;
    const p = prefixes[id];
    if (p === undefined) throw new CorruptImageError(`xattr uses long prefix ${id}, but the image has ${prefixes.length}`, ctx);
    return Buffer.concat([p.full, suffix]);
  }
  if (nameIndex === 0) {
    // mkfs stores names without a known prefix whole, with index 0.
    if (suffix.length === 0) throw new CorruptImageError('xattr with an empty name', ctx);
    return Buffer.from(suffix);
  }
  const p = shortPrefix(nameIndex);
  if (p === null) throw new CorruptImageError(`xattr with unknown name index ${nameIndex}`, ctx);
  return Buffer.concat([p, suffix]);
}

/** Reads one entry (header, name, value) at `pos`; `limit` bounds where it may end. */
function readEntry(
  img: ImageReader,
  pos: number,
  limit: number,
  what: string,
  ctx: { nid: Inode['nid'] },
): { nameIndex: number; suffix: Uint8Array; value: Uint8Array; size: number } {
  if (pos + 4 > limit) throw new CorruptImageError(`${what} header runs past its area`, ctx);
  const hdr = decodeXattrEntryHeader(img.read(pos, 4, what));
  const size = align4(4 + hdr.nameLen + hdr.valueSize);
  if (pos + 4 + hdr.nameLen + hdr.valueSize > limit) {
    throw new CorruptImageError(`${what} (${hdr.nameLen}-byte name, ${hdr.valueSize}-byte value) runs past its area`, ctx);
  }
  const body = img.read(pos + 4, hdr.nameLen + hdr.valueSize, what);
  return {
    nameIndex: hdr.nameIndex,
    suffix: body.subarray(0, hdr.nameLen),
    value: body.subarray(hdr.nameLen),
    size,
  };
}

export interface XattrIbodyInfo {
  nameFilter: number;
  sharedIds: number[];
  entries: XattrEntry[];
}

export function readXattrs(img: ImageReader, sb: SuperInfo, inode: Inode, prefixes: () => readonly LongPrefix[]): XattrIbodyInfo {
  const ctx = { nid: inode.nid };
  if (inode.xattrSize === 0) return { nameFilter: 0xffffffff, sharedIds: [], entries: [] };
  // i_xattr_icount 1: Linux refuses every xattr access of such an inode, and with it the
  // permission checks that read ACLs ("xattr_isize 12 of nid ... is not supported yet").
  if (inode.xattrSize === EROFS_XATTR_IBODY_HEADER_SIZE) throw new UnsupportedFeatureError('an xattr area of only its header (i_xattr_icount 1), which Linux refuses', ctx);
  const start = inode.pos + inode.inodeSize;
  const end = start + inode.xattrSize;
  const area = img.read(start, inode.xattrSize, 'inline xattr area');
  const v = new DataView(area.buffer, area.byteOffset, area.byteLength);
  const nameFilter = v.getUint32(0, true);
  const sharedCount = v.getUint8(4);
  let p = start + EROFS_XATTR_IBODY_HEADER_SIZE;
  if (p + sharedCount * 4 > end) {
    throw new CorruptImageError(`${sharedCount} shared xattr ids do not fit in a ${inode.xattrSize}-byte xattr area`, ctx);
  }
  const sharedIds: number[] = [];
  const entries: XattrEntry[] = [];
  let pfx: readonly LongPrefix[] | null = null;
  const longPrefixes = (): readonly LongPrefix[] => (pfx ??= prefixes());
  for (let i = 0; i < sharedCount; i++) {
    const id = v.getUint32(EROFS_XATTR_IBODY_HEADER_SIZE + i * 4, true);
    sharedIds.push(id);
    const pos = sb.raw.xattrBlkaddr * sb.blksz + id * 4;
    if (!img.contains(pos, 4)) throw new CorruptImageError(`shared xattr id ${id} points outside the image`, ctx);
    const e = readEntry(img, pos, img.size, `shared xattr ${id}`, ctx);
    const name = entryName(e.nameIndex, e.suffix, e.nameIndex & EROFS_XATTR_LONG_PREFIX ? longPrefixes() : [], ctx);
    entries.push({ name, value: Buffer.from(e.value), shared: true, nameIndex: e.nameIndex });
  }
  p += sharedCount * 4;
  while (p + 4 <= end) {
    const e = readEntry(img, p, end, 'inline xattr entry', ctx);
    p += e.size;
    // An all-zero header is padding (e.g. a reserved root xattr area).
    if (e.nameIndex === 0 && e.suffix.length === 0 && e.value.length === 0) continue;
    const name = entryName(e.nameIndex, e.suffix, e.nameIndex & EROFS_XATTR_LONG_PREFIX ? longPrefixes() : [], ctx);
    entries.push({ name, value: Buffer.from(e.value), shared: false, nameIndex: e.nameIndex });
  }
  return { nameFilter, sharedIds, entries };
}

/** Whether the inode's bloom filter proves `name` absent (so no lookup is needed). */
export function filterExcludes(sb: SuperInfo, nameFilter: number, name: Uint8Array): boolean {
  if (!(sb.featureCompat & EROFS_FEATURE_COMPAT_XATTR_FILTER) || sb.raw.xattrFilterReserved !== 0) return false;
  const key = splitXattrName(name);
  if (key === null) return false;
  const bit = xxh32(key.suffix, (EROFS_XATTR_FILTER_SEED + key.index) >>> 0) & (EROFS_XATTR_FILTER_BITS - 1);
  return ((nameFilter >>> bit) & 1) === 1;
}
