// Extended attributes: struct erofs_xattr_ibody_header and struct erofs_xattr_entry.

import {
  EROFS_XATTR_ENTRY_SIZE,
  EROFS_XATTR_FILTER_BITS,
  EROFS_XATTR_FILTER_DEFAULT,
  EROFS_XATTR_FILTER_SEED,
  EROFS_XATTR_IBODY_HEADER_SIZE,
  EROFS_XATTR_INDEX_POSIX_ACL_ACCESS,
  EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT,
  EROFS_XATTR_INDEX_SECURITY,
  EROFS_XATTR_INDEX_TRUSTED,
  EROFS_XATTR_INDEX_USER,
} from './constants.js';
import { xxh32 } from './xxhash.js';

/** Short prefixes the kernel has handlers for; ACL names are whole names (empty suffix). */
const PREFIXES: ReadonlyArray<{ index: number; prefix: Buffer; whole: boolean }> = [
  { index: EROFS_XATTR_INDEX_USER, prefix: Buffer.from('user.'), whole: false },
  { index: EROFS_XATTR_INDEX_POSIX_ACL_ACCESS, prefix: Buffer.from('system.posix_acl_access'), whole: true },
  { index: EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT, prefix: Buffer.from('system.posix_acl_default'), whole: true },
  { index: EROFS_XATTR_INDEX_TRUSTED, prefix: Buffer.from('trusted.'), whole: false },
  { index: EROFS_XATTR_INDEX_SECURITY, prefix: Buffer.from('security.'), whole: false },
];

export interface Xattr {
  /** Full name as the kernel reports it, e.g. "user.comment". */
  name: Uint8Array;
  value: Uint8Array;
}

export interface XattrKey {
  index: number;
  suffix: Uint8Array;
}

/** Splits a full name into its short-prefix index and suffix; null if no prefix applies. */
export function splitXattrName(name: Uint8Array): XattrKey | null {
  const n = Buffer.from(name.buffer, name.byteOffset, name.byteLength);
  for (const p of PREFIXES) {
    if (p.whole ? n.equals(p.prefix) : n.length > p.prefix.length && n.subarray(0, p.prefix.length).equals(p.prefix)) {
      return { index: p.index, suffix: name.subarray(p.prefix.length) };
    }
  }
  return null;
}

export function xattrPrefix(index: number): Uint8Array | null {
  return PREFIXES.find((p) => p.index === index)?.prefix ?? null;
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Bytes an entry takes, padded to EROFS_XATTR_ENTRY_SIZE alignment. */
export function xattrEntrySize(suffixLen: number, valueLen: number): number {
  return align4(EROFS_XATTR_ENTRY_SIZE + suffixLen + valueLen);
}

export function encodeXattrEntry(key: XattrKey, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(xattrEntrySize(key.suffix.length, value.length));
  const v = new DataView(out.buffer);
  v.setUint8(0, key.suffix.length);
  v.setUint8(1, key.index);
  v.setUint16(2, value.length, true);
  out.set(key.suffix, 4);
  out.set(value, 4 + key.suffix.length);
  return out;
}

/**
 * Bloom-filter word of an inode: a set bit means "no xattr hashes here".
 * Hash of the suffix after the short prefix, seeded by the prefix index.
 */
export function xattrNameFilter(keys: Iterable<XattrKey>): number {
  let filter = EROFS_XATTR_FILTER_DEFAULT;
  for (const k of keys) {
    const bit = xxh32(k.suffix, (EROFS_XATTR_FILTER_SEED + k.index) >>> 0) & (EROFS_XATTR_FILTER_BITS - 1);
    filter &= ~(1 << bit);
  }
  return filter >>> 0;
}

/** Canonical order of an inode's xattrs: bytes of "name\0value". */
export function compareXattrs(a: Xattr, b: Xattr): number {
  const c = Buffer.compare(a.name, b.name);
  if (c !== 0) return c;
  return Buffer.compare(a.value, b.value);
}

export interface XattrIbody {
  nameFilter: number;
  sharedIds: readonly number[];
  /** Encoded inline entries (encodeXattrEntry). */
  entries: readonly Uint8Array[];
  /** Extra zero bytes at the end (--root-xattr-isize); a multiple of 4. */
  padding: number;
}

export function xattrIbodyLength(sharedCount: number, entryBytes: number, padding: number): number {
  return EROFS_XATTR_IBODY_HEADER_SIZE + sharedCount * 4 + entryBytes + padding;
}

export function encodeXattrIbody(body: XattrIbody): Uint8Array {
  const entryBytes = body.entries.reduce((s, e) => s + e.length, 0);
  const out = new Uint8Array(xattrIbodyLength(body.sharedIds.length, entryBytes, body.padding));
  const v = new DataView(out.buffer);
  v.setUint32(0, body.nameFilter, true);
  v.setUint8(4, body.sharedIds.length);
  let p = EROFS_XATTR_IBODY_HEADER_SIZE;
  for (const id of body.sharedIds) {
    v.setUint32(p, id, true);
    p += 4;
  }
  for (const e of body.entries) {
    out.set(e, p);
    p += e.length;
  }
  return out;
}

export interface XattrEntryHeader {
  nameLen: number;
  nameIndex: number;
  valueSize: number;
}

export function decodeXattrEntryHeader(bytes: Uint8Array): XattrEntryHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { nameLen: v.getUint8(0), nameIndex: v.getUint8(1), valueSize: v.getUint16(2, true) };
}
