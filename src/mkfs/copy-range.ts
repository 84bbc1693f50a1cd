// In-kernel copies between files (copy_file_range through libc), so tar data reaches the
// image without passing through JavaScript; plain reads and writes where the call is missing
// or refused (other platforms, file systems or kernels).

import { readSync, writeSync } from 'node:fs';
import { loadKoffi } from '../ffi.js';

type CopyFn = ((fdIn: number, offIn: [bigint], fdOut: number, offOut: [bigint], len: number, flags: number) => number) & {
  async: (fdIn: number, offIn: [bigint], fdOut: number, offOut: [bigint], len: number, flags: number, cb: (err: unknown, n: number) => void) => void;
};
type SeekFn = (fd: number, offset: number, whence: number) => number;
type SpliceFn = (fdIn: number, offIn: null, fdOut: number, offOut: [bigint], len: number, flags: number) => number;

let libc: { copyFileRange: CopyFn; lseek: SeekFn; splice: SpliceFn } | null | undefined;

function load(): typeof libc {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform === 'linux') {
    try {
      const lib = loadKoffi().load('libc.so.6');
      libc = {
        copyFileRange: lib.func(
          'intptr_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, size_t len, unsigned int flags)',
        ) as CopyFn,
        lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as SeekFn,
        splice: lib.func(
          'intptr_t splice(int fd_in, int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, size_t len, unsigned int flags)',
        ) as SpliceFn,
      };
    } catch {
      libc = null;
    }
  }
  return libc;
}

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/**
 * Copies bytes [off, off + len) of a source file to the same range starting at `offOut`,
 * skipping its holes (the destination is new and reads as zeros there). Returns false where
 * holes cannot be asked for; the caller then copies another way.
 */
export function copyDataRanges(fdIn: number, fdOut: number, offOut: number, len: number): boolean {
  const c = load();
  if (!c) return false;
  let pos = 0;
  while (pos < len) {
    const data = Number(c.lseek(fdIn, pos, SEEK_DATA));
    // ENXIO: nothing but holes up to the end of the file.
    if (data < 0) return loadKoffi().errno() === ENXIO;
    if (data >= len) return true;
    const hole = Math.min(Number(c.lseek(fdIn, data, SEEK_HOLE)), len);
    if (hole < 0) return false;
    const n = copyRange(fdIn, data, fdOut, offOut + data, hole - data);
    if (n < hole - data) throw new ShortCopyError(data + n);
    pos = hole;
  }
  return true;
}

/**
 * Whether bytes [0, len) of a file are all data, no hole among them (file systems that
 * cannot tell holes apart say so of every file). False where lseek cannot be called.
 */
export function allData(fd: number, len: number): boolean {
  const c = load();
  return !!c && Number(c.lseek(fd, 0, SEEK_DATA)) === 0 && Number(c.lseek(fd, 0, SEEK_HOLE)) >= len;
}

const ENXIO = 6;
const EAGAIN = 11;
const SPLICE_F_MOVE = 1;
const SPLICE_F_NONBLOCK = 2;

/**
 * Moves up to `len` bytes from a pipe to `offOut` in a file, in the kernel (splice(2)),
 * without waiting for the pipe: the bytes moved (0 at the pipe's end), 'empty' when it has
 * none yet, or null where the call is missing or refused (then read and write instead).
 */
export function spliceFromPipe(pipeFd: number, fdOut: number, offOut: number, len: number): number | 'empty' | null {
  const c = load();
  if (!c) return null;
  const n = c.splice(pipeFd, null, fdOut, [BigInt(offOut)], Math.min(len, MAX_CALL), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n >= 0) return n;
  return loadKoffi().errno() === EAGAIN ? 'empty' : null;
}

/** The source ended early, at `at`. */
export class ShortCopyError extends Error {
  constructor(readonly at: number) {
    super(`source ended at ${at}`);
  }
}

const CHUNK = 1 << 20;
/** Largest single request: the kernel caps one call near 2 GiB anyway. */
const MAX_CALL = 1 << 30;

/**
 * Copies `len` bytes from fdIn at offIn to fdOut at offOut. Returns how many bytes were
 * copied: fewer than len only when fdIn ends first.
 */
export function copyRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): number {
  const copy = load()?.copyFileRange;
  let done = 0;
  if (copy) {
    const inPos: [bigint] = [BigInt(offIn)];
    const outPos: [bigint] = [BigInt(offOut)];
    while (done < len) {
      const n = copy(fdIn, inPos, fdOut, outPos, Math.min(len - done, MAX_CALL), 0);
      if (n === 0) return done;
      // EXDEV, EINVAL, EOPNOTSUPP, ENOSYS...: finish with plain reads and writes, which
      // report real I/O errors themselves.
      if (n < 0) break;
      done += n;
    }
  }
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, len - done)));
  while (done < len) {
    const n = readSync(fdIn, buf, 0, Math.min(buf.length, len - done), offIn + done);
    if (n === 0) return done;
    let w = 0;
    while (w < n) w += writeSync(fdOut, buf, w, n - w, offOut + done + w);
    done += n;
  }
  return done;
}

/** copy_file_range(2) made on libuv's thread pool; `done` gets the bytes copied, or -1 on any failure. */
export type AsyncCopy = (fdIn: number, offIn: number, fdOut: number, offOut: number, len: number, done: (n: number) => void) => void;

/** copy_file_range(2) on libuv's thread pool, where koffi can call it so; else null. */
export function asyncCopy(): AsyncCopy | null {
  const copy = load()?.copyFileRange;
  if (!copy) return null;
  return (fdIn, offIn, fdOut, offOut, len, done) =>
    copy.async(fdIn, [BigInt(offIn)], fdOut, [BigInt(offOut)], Math.min(len, MAX_CALL), 0, (err, n) => done(err ? -1 : n));
}
