// In-kernel copies between files (copy_file_range through libc), so tar data reaches the
// image without passing through JavaScript; plain reads and writes where the call is missing
// or refused (other platforms, file systems or kernels).

import * as fs from 'node:fs';
import koffi from 'koffi';

type CopyFn = (fdIn: number, offIn: [bigint], fdOut: number, offOut: [bigint], len: number, flags: number) => number;

let copyFileRange: CopyFn | null | undefined;

function load(): CopyFn | null {
  if (copyFileRange !== undefined) return copyFileRange;
  copyFileRange = null;
  if (process.platform === 'linux') {
    try {
      copyFileRange = koffi
        .load('libc.so.6')
        .func('intptr_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, size_t len, unsigned int flags)') as CopyFn;
    } catch {
      copyFileRange = null;
    }
  }
  return copyFileRange;
}

const CHUNK = 1 << 20;
/** Largest single request: the kernel caps one call near 2 GiB anyway. */
const MAX_CALL = 1 << 30;

/**
 * Copies `len` bytes from fdIn at offIn to fdOut at offOut. Returns how many bytes were
 * copied: fewer than len only when fdIn ends first.
 */
export function copyRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): number {
  const copy = load();
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
    const n = fs.readSync(fdIn, buf, 0, Math.min(buf.length, len - done), offIn + done);
    if (n === 0) return done;
    let w = 0;
    while (w < n) w += fs.writeSync(fdOut, buf, w, n - w, offOut + done + w);
    done += n;
  }
  return done;
}
