// PAX extended header records ("LEN KEY=VALUE\n"), decoded. Pure: bytes in, attributes out.

import { TarFormatError } from './header.js';

/**
 * What PAX records can override or add, for one entry (or, for 'g', for all that follow).
 * null: an empty record in the entry's own header, which restores the ustar field even over
 * a global value.
 */
export interface PaxAttributes {
  path?: Buffer | null;
  linkpath?: Buffer | null;
  size?: number | null;
  uid?: number | null;
  gid?: number | null;
  mtime?: { sec: number; nsec: number } | null;
  devmajor?: number | null;
  devminor?: number | null;
  /** Full xattr names (latin1, as raw bytes) to values; an empty value is a real value. */
  xattrs: Map<string, Buffer>;
  /** POSIX ACLs as text (SCHILY.acl.access / .default), used where no ACL xattr is given. */
  aclAccess?: string | null;
  aclDefault?: string | null;
}

/** The xattrs of attributes that have none, shared: never changed (see xattrsOf). */
const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

export const emptyPax = (): PaxAttributes => ({ xattrs: NO_XATTRS as Map<string, Buffer> });

/** The attributes' own xattr map, made on the first xattr: most members have none. */
function xattrsOf(p: PaxAttributes): Map<string, Buffer> {
  if (p.xattrs === NO_XATTRS) p.xattrs = new Map();
  return p.xattrs;
}

export function copyPax(p: PaxAttributes): PaxAttributes {
  return { ...p, xattrs: new Map(p.xattrs) };
}

/** Splits a PAX header's data into (key, value) records, checking every length. */
export function parsePaxRecords(data: Buffer): Array<{ key: string; value: Buffer }> {
  const out: Array<{ key: string; value: Buffer }> = [];
  let pos = 0;
  while (pos < data.length) {
    // Some writers pad the header data with NULs after the last record.
    if (data[pos] === 0) break;
    // The decimal length, up to the space: at most 15 digits, so it stays an exact number.
    let len = 0;
    let space = pos;
    for (; space < data.length && space - pos <= 15; space++) {
      const c = data[space]!;
      if (c === 0x20) break;
      if (c < 0x30 || c > 0x39) throw new TarFormatError('malformed PAX record length');
      len = len * 10 + (c - 0x30);
    }
    if (space === pos || space >= data.length || data[space] !== 0x20) throw new TarFormatError('malformed PAX record length');
    const end = pos + len;
    if (len < 5 || end > data.length || data[end - 1] !== 0x0a) throw new TarFormatError('malformed PAX record');
    const eq = data.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= end - 1 || eq === space + 1) throw new TarFormatError('malformed PAX record (no key)');
    out.push({ key: data.toString('latin1', space + 1, eq), value: data.subarray(eq + 1, end - 1) });
    pos = end;
  }
  return out;
}

function decimal(value: Buffer, key: string, allowNegative: boolean): number {
  const text = value.toString('latin1');
  if (!(allowNegative ? /^-?[0-9]+$/ : /^[0-9]+$/).test(text)) throw new TarFormatError(`invalid PAX ${key}=${text}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`PAX ${key} out of range`);
  return n;
}

/** "SECONDS[.FRACTION]", possibly negative: the fraction counts away from zero, as in POSIX. */
export function parsePaxTime(value: Buffer): { sec: number; nsec: number } {
  const text = value.toString('latin1');
  const m = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(text);
  if (!m) throw new TarFormatError(`invalid PAX mtime=${text}`);
  const whole = Number(m[2]);
  if (!Number.isSafeInteger(whole)) throw new TarFormatError('PAX mtime out of range');
  const nsec = Number(((m[3] ?? '') + '000000000').slice(0, 9));
  if (m[1] !== '-') return { sec: whole, nsec };
  return nsec === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1_000_000_000 - nsec };
}

/** LIBARCHIVE.xattr names are URL-encoded (%XX). */
function urlDecode(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

const SCHILY_XATTR = 'SCHILY.xattr.';
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';

type Field = Exclude<keyof PaxAttributes, 'xattrs'>;

const FIELDS: Record<string, { field: Field; parse: (v: Buffer, key: string) => unknown }> = {
  path: { field: 'path', parse: (v) => Buffer.from(v) },
  linkpath: { field: 'linkpath', parse: (v) => Buffer.from(v) },
  size: { field: 'size', parse: (v, k) => decimal(v, k, false) },
  uid: { field: 'uid', parse: (v, k) => decimal(v, k, false) },
  gid: { field: 'gid', parse: (v, k) => decimal(v, k, false) },
  mtime: { field: 'mtime', parse: (v) => parsePaxTime(v) },
  'SCHILY.devmajor': { field: 'devmajor', parse: (v, k) => decimal(v, k, false) },
  'SCHILY.devminor': { field: 'devminor', parse: (v, k) => decimal(v, k, false) },
  'SCHILY.acl.access': { field: 'aclAccess', parse: (v) => v.toString('latin1') },
  'SCHILY.acl.default': { field: 'aclDefault', parse: (v) => v.toString('latin1') },
};

/**
 * Applies records on top of `into`. An empty value cancels the keyword: a global one is
 * forgotten, an entry's own restores the ustar header field. For xattrs an empty value is a
 * value.
 */
export function applyPaxRecords(into: PaxAttributes, records: ReadonlyArray<{ key: string; value: Buffer }>, global: boolean): void {
  const fields = into as Record<Field, unknown>;
  for (const { key, value } of records) {
    const f = FIELDS[key];
    if (f) {
      if (value.length > 0) fields[f.field] = f.parse(value, key);
      else if (global) delete fields[f.field];
      else fields[f.field] = null;
      continue;
    }
    if (key.startsWith(SCHILY_XATTR)) {
      xattrsOf(into).set(key.slice(SCHILY_XATTR.length), Buffer.from(value));
    } else if (key.startsWith(LIBARCHIVE_XATTR)) {
      xattrsOf(into).set(urlDecode(key.slice(LIBARCHIVE_XATTR.length)), Buffer.from(value.toString('latin1'), 'base64'));
    } else if (key.startsWith('GNU.sparse.')) {
      // Sparse members store a map and only the data blocks: copying them as they are
      // would give a file with the wrong content.
      throw new TarFormatError('GNU sparse files are not supported');
    }
    // Other keywords (atime, ctime, uname, gname, charset, comments, ...) do not change
    // what is stored in the image.
  }
}
