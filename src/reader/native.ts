// The few system calls extraction needs that Node's fs lacks: setting xattrs,
// creating device nodes / FIFOs / sockets, and nanosecond timestamps. Bound
// lazily through koffi so that merely reading images never loads native code.

import { constants as osConstants } from 'node:os';
import { cString, loadKoffi } from '../ffi.js';

type Fn = (...args: unknown[]) => unknown;
interface Libc {
  lsetxattr: Fn;
  mknod: Fn;
  utimensat: Fn;
}

let libc: Libc | null = null;

function load(): Libc {
  if (libc) return libc;
  const koffi = loadKoffi();
  const lib = koffi.load('libc.so.6');
  const times = koffi.struct('erofs_reader_timespec2', {
    atime_sec: 'int64_t',
    atime_nsec: 'long',
    mtime_sec: 'int64_t',
    mtime_nsec: 'long',
  });
  libc = {
    lsetxattr: lib.func('int lsetxattr(const uint8_t *path, const uint8_t *name, const uint8_t *value, size_t size, int flags)'),
    mknod: lib.func('int mknod(const uint8_t *path, uint32_t mode, uint64_t dev)'),
    utimensat: lib.func('utimensat', 'int', ['int', 'const uint8_t *', koffi.pointer(times), 'int']),
  };
  return libc;
}

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k] as [number, string]));

export class SyscallError extends Error {
  constructor(
    readonly syscall: string,
    readonly code: string,
  ) {
    super(`${syscall}: ${code}`);
  }
}

function fail(syscall: string): never {
  const n = loadKoffi().errno();
  throw new SyscallError(syscall, errnoNames.get(n) ?? `errno ${n}`);
}

export function lsetxattr(path: Buffer, name: Buffer, value: Buffer): void {
  if (Number(load().lsetxattr(cString(path), cString(name), value, value.length, 0)) < 0) fail('lsetxattr');
}

/** glibc makedev(). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

export function mknod(path: Buffer, mode: number, dev: bigint): void {
  if (Number(load().mknod(cString(path), mode, dev)) < 0) fail('mknod');
}

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;

/** Sets atime and mtime (both to the given time) without following symlinks. */
export function setTimes(path: Buffer, sec: bigint, nsec: number): void {
  const t = { atime_sec: sec, atime_nsec: nsec, mtime_sec: sec, mtime_nsec: nsec };
  if (Number(load().utimensat(AT_FDCWD, cString(path), t, AT_SYMLINK_NOFOLLOW)) < 0) fail('utimensat');
}
