// Node built-in modules that cost milliseconds to load and that many runs never use, loaded
// on first use: node:crypto alone takes about 10 ms, a fortieth of an uncompressed build.

import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const zlib = (): typeof import('node:zlib') => require('node:zlib') as typeof import('node:zlib');

export const stream = (): typeof import('node:stream') => require('node:stream') as typeof import('node:stream');

export const workerThreads = (): typeof import('node:worker_threads') =>
  require('node:worker_threads') as typeof import('node:worker_threads');

/** The real node:child_process (the command bundles resolve the name to lazy-child-process.ts). */
export const childProcess = (): typeof import('node:child_process') =>
  require('node:child_process') as typeof import('node:child_process');

/** n random bytes (image UUIDs, scratch file names): from /dev/urandom, else node:crypto. */
export function randomBytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  try {
    const fd = openSync('/dev/urandom', 'r');
    try {
      for (let got = 0; got < n; ) {
        const k = readSync(fd, out, got, n - got, null);
        if (k <= 0) throw new Error('/dev/urandom ended');
        got += k;
      }
      return out;
    } finally {
      closeSync(fd);
    }
  } catch {
    return (require('node:crypto') as typeof import('node:crypto')).randomBytes(n);
  }
}
