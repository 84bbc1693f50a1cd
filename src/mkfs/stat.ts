// lstat() for the directory walk: statx(2) through libc into one reused buffer, since
// fs.lstatSync's BigInt stats (needed for nanosecond times) cost more than the system call;
// fs.lstatSync where statx is missing.

import * as fs from 'node:fs';
import { loadKoffi } from '../ffi.js';

export interface SourceStat {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  rdevMajor: number;
  rdevMinor: number;
  /** Identifies a file with more than one link (device and inode number); '' for the rest. */
  key: string;
}

type StatxFn = (dirfd: number, path: Buffer, flags: number, mask: number, buf: Buffer) => number;

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_BASIC_STATS = 0x7ff;
/** struct statx is the same on every architecture: 256 bytes. */
const STATX_SIZE = 256;

let statx: StatxFn | null | undefined;
const buf = Buffer.alloc(STATX_SIZE);

function load(): StatxFn | null {
  if (statx !== undefined) return statx;
  statx = null;
  if (process.platform === 'linux') {
    try {
      statx = loadKoffi()
        .load('libc.so.6')
        .func('int statx(int dirfd, const uint8_t *path, int flags, unsigned int mask, _Out_ uint8_t *buf)') as StatxFn;
    } catch {
      statx = null;
    }
  }
  return statx;
}

const ERRNO_CODES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  5: 'EIO',
  12: 'ENOMEM',
  13: 'EACCES',
  20: 'ENOTDIR',
  36: 'ENAMETOOLONG',
  40: 'ELOOP',
  75: 'EOVERFLOW',
};

/**
 * lstat(path), path as raw bytes, which may end with a NUL already (no name has one inside);
 * failures throw an Error with a Node-style `code`.
 */
export function lstatSource(path: Buffer): SourceStat {
  const sx = load();
  const terminated = path.length > 0 && path[path.length - 1] === 0;
  if (!sx) return fromNode(fs.lstatSync(terminated ? path.subarray(0, -1) : path, { bigint: true }));
  // statx wants a NUL-terminated name.
  const cpath = terminated ? path : Buffer.concat([path, NUL]);
  if (sx(AT_FDCWD, cpath, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, buf) !== 0) {
    const errno = loadKoffi().errno();
    const e = new Error(`statx failed: errno ${errno}`) as NodeJS.ErrnoException;
    e.code = ERRNO_CODES[errno] ?? `errno ${errno}`;
    throw e;
  }
  const nlink = buf.readUInt32LE(16);
  return {
    nlink,
    uid: buf.readUInt32LE(20),
    gid: buf.readUInt32LE(24),
    mode: buf.readUInt16LE(28),
    size: Number(buf.readBigUInt64LE(40)),
    mtimeSec: Number(buf.readBigInt64LE(112)),
    mtimeNsec: buf.readUInt32LE(120),
    rdevMajor: buf.readUInt32LE(128),
    rdevMinor: buf.readUInt32LE(132),
    // Only hard links are looked up: no BigInt and string for every other entry.
    key: nlink > 1 ? `${buf.readUInt32LE(136)}:${buf.readUInt32LE(140)}:${buf.readBigUInt64LE(32)}` : '',
  };
}

const NUL = Buffer.alloc(1);

function fromNode(st: fs.BigIntStats): SourceStat {
  const ns = st.mtimeNs;
  const sec = ns / 1_000_000_000n - (ns < 0n && ns % 1_000_000_000n !== 0n ? 1n : 0n);
  const rdev = st.rdev;
  return {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nlink: Number(st.nlink),
    size: Number(st.size),
    mtimeSec: Number(sec),
    mtimeNsec: Number(ns - sec * 1_000_000_000n),
    rdevMajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    rdevMinor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
    key: `${st.dev}:${st.ino}`,
  };
}
