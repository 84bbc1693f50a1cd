// PAX extended header records ("LEN KEY=VALUE\n"), decoded. Pure: bytes in, attributes out.

import { TarFormatError } from './header.js';

/** What PAX records can override or add, for one entry (or, for 'g', for all that follow). */
export interface PaxAttributes {
  path?: Buffer;
  linkpath?: Buffer;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: { sec: number; nsec: number };
  devmajor?: number;
  devminor?: number;
  /** Full xattr names (latin1, as raw bytes) to values; an empty value is a real value. */
  xattrs: Map<string, Buffer>;
}

export const emptyPax = (): PaxAttributes => ({ xattrs: new Map() });

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
    const space = data.indexOf(0x20, pos);
    if (space < 0 || space - pos > 20) throw new TarFormatError('malformed PAX record length');
    const lenText = data.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw new TarFormatError('malformed PAX record length');
    const len = Number(lenText);
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

/**
 * Applies records on top of `into`. An empty value removes the keyword's effect (the header
 * field is used again), except for xattrs, where an empty value is a value.
 */
export function applyPaxRecords(into: PaxAttributes, records: ReadonlyArray<{ key: string; value: Buffer }>): void {
  for (const { key, value } of records) {
    const empty = value.length === 0;
    switch (key) {
      case 'path':
        if (empty) delete into.path;
        else into.path = Buffer.from(value);
        break;
      case 'linkpath':
        if (empty) delete into.linkpath;
        else into.linkpath = Buffer.from(value);
        break;
      case 'size':
        if (empty) delete into.size;
        else into.size = decimal(value, key, false);
        break;
      case 'uid':
        if (empty) delete into.uid;
        else into.uid = decimal(value, key, false);
        break;
      case 'gid':
        if (empty) delete into.gid;
        else into.gid = decimal(value, key, false);
        break;
      case 'mtime':
        if (empty) delete into.mtime;
        else into.mtime = parsePaxTime(value);
        break;
      case 'SCHILY.devmajor':
        if (empty) delete into.devmajor;
        else into.devmajor = decimal(value, key, false);
        break;
      case 'SCHILY.devminor':
        if (empty) delete into.devminor;
        else into.devminor = decimal(value, key, false);
        break;
      default:
        if (key.startsWith(SCHILY_XATTR)) {
          into.xattrs.set(key.slice(SCHILY_XATTR.length), Buffer.from(value));
        } else if (key.startsWith(LIBARCHIVE_XATTR)) {
          into.xattrs.set(urlDecode(key.slice(LIBARCHIVE_XATTR.length)), Buffer.from(value.toString('latin1'), 'base64'));
        } else if (key.startsWith('GNU.sparse.')) {
          // Sparse members store a map and only the data blocks: copying them as they are
          // would give a file with the wrong content.
          throw new TarFormatError('GNU sparse files are not supported');
        }
      // Other keywords (atime, ctime, uname, gname, charset, comments, SCHILY.acl.*, ...)
      // do not change what is stored in the image.
    }
  }
}
