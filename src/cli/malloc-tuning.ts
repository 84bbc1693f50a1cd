// glibc malloc settings for the CLI process (a library must not change its host's). Buffers
// pass between threads here: a worker allocates a pcluster batch and the main thread frees it
// after writing, and large buffers come and go all through a build. glibc's default raises
// its mmap threshold after each large free, so later large buffers come from per-thread
// arenas, where they stay as fragmented, resident free space: 20-30 MB of peak RSS on a
// Debian root with two workers. A fixed threshold keeps large buffers mapped and returned at
// once, and a lower trim threshold gives the tops of the heaps back sooner.

import { loadKoffi } from '../ffi.js';

/** mallopt() parameters, from glibc's malloc.h. */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

const MMAP_THRESHOLD_BYTES = 64 << 10;
const TRIM_THRESHOLD_BYTES = 128 << 10;

/** Applies the settings where the C library is glibc; does nothing elsewhere. */
export function tuneMalloc(): void {
  if (process.platform !== 'linux') return;
  // MALLOC_* variables set by the user win: glibc has read them already.
  if (Object.keys(process.env).some((k) => k.startsWith('MALLOC_'))) return;
  let mallopt: (param: number, value: number) => number;
  try {
    mallopt = loadKoffi().load('libc.so.6').func('int mallopt(int param, int value)') as typeof mallopt;
  } catch {
    return; // not glibc (musl has no libc.so.6)
  }
  mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
  mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
}
