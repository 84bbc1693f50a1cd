// Reads extended attributes of source files through libc (llistxattr/lgetxattr):
// Node has no xattr API, and koffi ships prebuilt, so nothing is compiled at install.

import { cString, loadKoffi } from '../ffi.js';
import type { Xattr } from '../format/xattr.js';

type ListFn = (path: Buffer, list: Buffer | null, size: number) => number;
type GetFn = (path: Buffer, name: Buffer, value: Buffer | null, size: number) => number;

interface Libc {
  llistxattr: ListFn;
  lgetxattr: GetFn;
}

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  if (process.platform !== 'linux') return (libc = null);
  try {
    const lib = loadKoffi().load('libc.so.6');
    libc = {
      llistxattr: lib.func('intptr_t llistxattr(const uint8_t *path, _Out_ uint8_t *list, size_t size)') as ListFn,
      lgetxattr: lib.func(
        'intptr_t lgetxattr(const uint8_t *path, const uint8_t *name, _Out_ uint8_t *value, size_t size)',
      ) as GetFn,
    };
  } catch {
    libc = null;
  }
  return libc;
}

export function xattrsSupported(): boolean {
  return loadLibc() !== null;
}

const ENOTSUP = 95;
const ENODATA = 61;
const ERANGE = 34;

export class XattrReadError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

function errnoText(errno: number): string {
  const known: Record<number, string> = { 1: 'Operation not permitted', 2: 'No such file or directory', 13: 'Permission denied' };
  return known[errno] ?? `errno ${errno}`;
}

/**
 * All xattrs of `path` (not following symlinks), unsorted. Empty where the fs has none.
 * The path may end with a NUL already (no name has one inside).
 */
export function readXattrs(path: Buffer): Xattr[] {
  const c = loadLibc();
  if (!c) return [];
  const p = cString(path);
  let list: Buffer;
  for (;;) {
    const need = c.llistxattr(p, null, 0);
    if (need < 0) {
      const e = loadKoffi().errno();
      if (e === ENOTSUP) return [];
      throw new XattrReadError(e, `cannot list xattrs: ${errnoText(e)}`);
    }
    if (need === 0) return [];
    list = Buffer.alloc(need);
    const got = c.llistxattr(p, list, need);
    if (got >= 0) {
      list = list.subarray(0, got);
      break;
    }
    const e = loadKoffi().errno();
    if (e !== ERANGE) throw new XattrReadError(e, `cannot list xattrs: ${errnoText(e)}`);
  }
  const out: Xattr[] = [];
  let start = 0;
  while (start < list.length) {
    let end = list.indexOf(0, start);
    if (end < 0) end = list.length;
    const name = list.subarray(start, end);
    // The list's own NUL ends the name for lgetxattr (the last one may lack it).
    const cname = end < list.length ? list.subarray(start, end + 1) : cString(name);
    start = end + 1;
    if (name.length === 0) continue;
    const value = getOne(c, p, cname);
    if (value) out.push({ name: Buffer.from(name), value });
  }
  return out;
}

function getOne(c: Libc, p: Buffer, name: Buffer): Buffer | null {
  for (;;) {
    const need = c.lgetxattr(p, name, null, 0);
    if (need < 0) {
      const e = loadKoffi().errno();
      if (e === ENODATA) return null; // removed between list and get
      throw new XattrReadError(e, `cannot read xattr ${name.subarray(0, -1).toString()}: ${errnoText(e)}`);
    }
    const value = Buffer.alloc(need);
    const got = need === 0 ? 0 : c.lgetxattr(p, name, value, need);
    if (got >= 0) return value.subarray(0, got);
    const e = loadKoffi().errno();
    if (e !== ERANGE) throw new XattrReadError(e, `cannot read xattr: ${errnoText(e)}`);
  }
}
