/**
 * Tiny koffi bindings to the few libc calls Node's `fs` does not offer (or offers only with
 * lossy precision): extended attributes, nanosecond timestamps, mknod and unix-socket bind.
 *
 * Every path is passed as bytes (a `Buffer`), so names that are not valid UTF-8 work.
 * Failures throw an `Error` carrying `code` (e.g. 'ENODATA') and `errno`, like Node's fs errors.
 */
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

type Fn = (...args: unknown[]) => unknown;

interface Libc {
  llistxattr: Fn;
  lgetxattr: Fn;
  lsetxattr: Fn;
  utimensat: Fn;
  mknod: Fn;
  socket: Fn;
  bind: Fn;
  close: Fn;
}

let cached: Libc | undefined;

function libc(): Libc {
  if (cached) return cached;
  const lib = koffi.load('libc.so.6');
  // struct timespec times[2] as one flat struct: [0] = atime, [1] = mtime.
  const timespecPair = koffi.struct('erofs_test_timespec_pair', {
    atime_sec: 'int64_t',
    atime_nsec: 'long',
    mtime_sec: 'int64_t',
    mtime_nsec: 'long',
  });
  const sockaddrUn = koffi.struct('erofs_test_sockaddr_un', {
    sun_family: 'uint16_t',
    sun_path: koffi.array('uint8_t', 108),
  });
  cached = {
    llistxattr: lib.func('intptr_t llistxattr(const uint8_t *path, _Out_ uint8_t *list, size_t size)'),
    lgetxattr: lib.func(
      'intptr_t lgetxattr(const uint8_t *path, const uint8_t *name, _Out_ uint8_t *value, size_t size)',
    ),
    lsetxattr: lib.func(
      'int lsetxattr(const uint8_t *path, const uint8_t *name, const uint8_t *value, size_t size, int flags)',
    ),
    utimensat: lib.func('utimensat', 'int', ['int', 'const uint8_t *', koffi.pointer(timespecPair), 'int']),
    mknod: lib.func('int mknod(const uint8_t *path, uint32_t mode, uint64_t dev)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('bind', 'int', ['int', koffi.pointer(sockaddrUn), 'uint32_t']),
    close: lib.func('int close(int fd)'),
  };
  return cached;
}

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, num]) => [num, name] as [number, string]),
);

function fail(syscall: string, path: Buffer | string): never {
  const errno = koffi.errno();
  const code = errnoNames.get(errno) ?? `errno ${errno}`;
  const shown = typeof path === 'string' ? path : path.toString('utf8');
  const err = new Error(`${code}: ${syscall} failed on '${shown}'`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  throw err;
}

/** A NUL-terminated copy of a path or name, for passing to C. */
export function cstr(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  if (b.includes(0)) throw new Error(`NUL byte in C string: ${b.toString('hex')}`);
  return Buffer.concat([b, Buffer.alloc(1)]);
}

/** Names of all extended attributes of `path` (not following symlinks), as raw bytes. */
export function llistxattr(path: string | Buffer): Buffer[] {
  const p = cstr(path);
  for (;;) {
    const size = Number(libc().llistxattr(p, null, 0));
    if (size < 0) fail('llistxattr', path);
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(libc().llistxattr(p, buf, size));
    if (got < 0) {
      if (koffi.errno() === osConstants.errno.ERANGE) continue; // list grew meanwhile
      fail('llistxattr', path);
    }
    const names: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < got; i++) {
      if (buf[i] === 0) {
        if (i > start) names.push(Buffer.from(buf.subarray(start, i)));
        start = i + 1;
      }
    }
    return names;
  }
}

/** Value of extended attribute `name` of `path` (not following symlinks). */
export function lgetxattr(path: string | Buffer, name: string | Buffer): Buffer {
  const p = cstr(path);
  const n = cstr(name);
  for (;;) {
    const size = Number(libc().lgetxattr(p, n, null, 0));
    if (size < 0) fail(`lgetxattr(${n.subarray(0, -1).toString('latin1')})`, path);
    const buf = Buffer.alloc(size);
    if (size === 0) return buf;
    const got = Number(libc().lgetxattr(p, n, buf, size));
    if (got < 0) {
      if (koffi.errno() === osConstants.errno.ERANGE) continue;
      fail(`lgetxattr(${n.subarray(0, -1).toString('latin1')})`, path);
    }
    return buf.subarray(0, got);
  }
}

/** Sets extended attribute `name` of `path` (not following symlinks) to `value`. */
export function lsetxattr(path: string | Buffer, name: string | Buffer, value: Buffer): void {
  const n = cstr(name);
  // koffi passes an empty Buffer as NULL, which the kernel accepts only with size 0: fine.
  const rc = Number(libc().lsetxattr(cstr(path), n, value, value.length, 0));
  if (rc < 0) fail(`lsetxattr(${n.subarray(0, -1).toString('latin1')})`, path);
}

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const UTIME_OMIT = (1 << 30) - 2;

/**
 * Sets the modification time of `path` (not following symlinks) with nanosecond precision;
 * the access time is left alone. `mtimeNs` is nanoseconds since the epoch and may be negative.
 */
export function setMtimeNs(path: string | Buffer, mtimeNs: bigint): void {
  let sec = mtimeNs / 1_000_000_000n;
  let nsec = mtimeNs % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  const times = { atime_sec: 0, atime_nsec: UTIME_OMIT, mtime_sec: sec, mtime_nsec: Number(nsec) };
  const rc = Number(libc().utimensat(AT_FDCWD, cstr(path), times, AT_SYMLINK_NOFOLLOW));
  if (rc < 0) fail('utimensat', path);
}

/** glibc's makedev(): 12+20 bit encoding widened to 32+32 bits. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return (
    ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn)
  );
}

/** glibc's major()/minor() of a dev_t (as given by a bigint lstat). */
export function splitdev(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

/** mknod(2): `mode` includes the file type bits (S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK). */
export function mknod(path: string | Buffer, mode: number, dev: bigint = 0n): void {
  const rc = Number(libc().mknod(cstr(path), mode, dev));
  if (rc < 0) fail('mknod', path);
}

/**
 * Creates a unix socket file at `path` by binding a socket there and closing it; the socket
 * file stays behind. `path` must fit in sun_path (107 bytes).
 */
export function bindUnixSocket(path: string | Buffer): void {
  const p = typeof path === 'string' ? Buffer.from(path, 'utf8') : path;
  if (p.length > 107) throw new Error(`socket path too long for sun_path: ${p.length} bytes`);
  const AF_UNIX = 1;
  const SOCK_STREAM = 1;
  const fd = Number(libc().socket(AF_UNIX, SOCK_STREAM, 0));
  if (fd < 0) fail('socket', path);
  try {
    const sunPath = new Array<number>(108).fill(0);
    for (let i = 0; i < p.length; i++) sunPath[i] = p[i]!;
    const addr = { sun_family: AF_UNIX, sun_path: sunPath };
    const rc = Number(libc().bind(fd, addr, 2 + p.length + 1));
    if (rc < 0) fail('bind', path);
  } finally {
    libc().close(fd);
  }
}
