// koffi (FFI to libc and the compression libraries), loaded on first use. Its package entry
// point also loads its install-time tooling (https, zlib, crypto): about 9 ms of every start
// of the CLI. The prebuilt module that entry point would pick is loaded straight instead,
// and the entry point only where that fails (another platform's layout, musl, a newer koffi).

import { createRequire } from 'node:module';

export type Koffi = typeof import('koffi');

let cached: Koffi | Error | undefined;

/**
 * The bytes as the C library wants a name: with a NUL after them. Bytes that end with one
 * already are passed as they are (no path or xattr name has a NUL inside), saving a copy.
 */
export function cString(bytes: Buffer): Buffer {
  return bytes.length > 0 && bytes[bytes.length - 1] === 0 ? bytes : Buffer.concat([bytes, NUL]);
}

const NUL = Buffer.alloc(1);

/** The koffi module; throws where it cannot be loaded. */
export function loadKoffi(): Koffi {
  if (cached === undefined) {
    const require = createRequire(import.meta.url);
    try {
      cached = prebuilt(require) ?? (require('koffi') as Koffi);
      keepAsyncPools(cached);
    } catch (e) {
      cached = e as Error;
    }
  }
  if (cached instanceof Error) throw cached;
  return cached;
}

/**
 * Memory pools (a call stack and heap each) koffi keeps for calls made on libuv's thread
 * pool. Past them it maps a fresh pool for every call and unmaps it after: about 20 µs of
 * the main thread per call in a micro-benchmark, against 5 µs. The range copier keeps four
 * calls in flight and issues the next from a finished call's callback, before koffi has
 * taken that call's pool back: twice that covers it.
 */
export const KOFFI_ASYNC_POOLS = 8;

function keepAsyncPools(koffi: Koffi): void {
  const config = koffi.config();
  if ((config.resident_async_pools ?? 0) >= KOFFI_ASYNC_POOLS) return;
  try {
    koffi.config({ ...config, resident_async_pools: KOFFI_ASYNC_POOLS });
  } catch {
    // koffi takes no settings once a library is loaded (a host that used it first, as a
    // library's host may): calls then only cost more.
  }
}

/** The native module koffi ships for this machine, if it is there and of the same version. */
function prebuilt(require: NodeJS.Require): Koffi | null {
  if (!['x64', 'arm64', 'ia32'].includes(process.arch)) return null;
  try {
    const version = (require('koffi/package.json') as { version: string }).version;
    const native = require(`koffi/build/koffi/${process.platform}_${process.arch}/koffi.node`) as Koffi & { version?: string };
    return native.version === version ? native : null;
  } catch {
    return null;
  }
}
