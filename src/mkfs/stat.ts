// lstat() for the directory walk: statx(2) through libc into one reused buffer, since
// lstatSync's BigInt stats (needed for nanosecond times) cost more than the system call;
// lstatSync where statx is missing.

import { type BigIntStats, lstatSync } from 'node:fs';
import { cString, loadKoffi } from '../ffi.js';
import { TWO32 } from '../format/types.js';

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
/**
 * struct statx as native-order 32-bit words (every field read is 4-byte aligned), so no
 * BigInt per entry; LO and HI pick a 64-bit field's halves.
 */
const u32 = new Uint32Array(buf.buffer, buf.byteOffset, STATX_SIZE / 4);
const i32 = new Int32Array(buf.buffer, buf.byteOffset, STATX_SIZE / 4);
const u16 = new Uint16Array(buf.buffer, buf.byteOffset, STATX_SIZE / 2);
const LO = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const HI = 1 - LO;
/**
 * A 64-bit field from its halves. The high half is almost always 0, and then the low one is
 * kept as it is: arithmetic would make every size and time a double, which V8 then boxes
 * in every inode that holds one (9 MB more on a Debian root).
 */
const join64 = (lo: number, hi: number): number => (hi === 0 ? lo : lo + hi * TWO32);

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
  const cpath = cString(path);
  if (!sx) return fromNode(lstatSync(cpath.subarray(0, -1), { bigint: true }));
  if (sx(AT_FDCWD, cpath, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, buf) !== 0) {
    const errno = loadKoffi().errno();
    const e = new Error(`statx failed: errno ${errno}`) as NodeJS.ErrnoException;
    e.code = ERRNO_CODES[errno] ?? `errno ${errno}`;
    throw e;
  }
  // Word indexes: byte offsets in struct statx / 4.
  const nlink = u32[4]!;
  return {
    nlink,
    uid: u32[5]!,
    gid: u32[6]!,
    mode: u16[14]!,
    size: join64(u32[10 + LO]!, u32[10 + HI]!),
    mtimeSec: join64(u32[28 + LO]!, i32[28 + HI]!),
    mtimeNsec: u32[30]!,
    rdevMajor: u32[32]!,
    rdevMinor: u32[33]!,
    // Only hard links are looked up: no BigInt and string for every other entry.
    key: nlink > 1 ? `${u32[34]}:${u32[35]}:${u32[8]}:${u32[9]}` : '',
  };
}

function fromNode(st: BigIntStats): SourceStat {
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
