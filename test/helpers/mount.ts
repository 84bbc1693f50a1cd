/**
 * Mounting EROFS images in tests, and Debian's fsck.erofs.
 *
 *   describeIfMount('images of plain trees', () => {
 *     it('round-trips', async () => {
 *       await withMount(img, async (mnt) => expect(await compareTrees(tree.root, mnt)).toEqual([]));
 *     });
 *   });
 *
 * Mounting needs root (CAP_SYS_ADMIN) and a kernel with EROFS; without them the mount tests
 * are skipped with a warning on stderr naming the reason. Set EROFS_REQUIRE_ALL=1 to make
 * that an error instead (for CI machines that must run them).
 */
import { skipUnless } from './require.js';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'vitest';

const run = promisify(execFile);

export interface MountOptions {
  /** Extra mount options besides 'ro', e.g. ['noacl'] or ['user_xattr']. */
  options?: string[];
}

function hasErofs(): boolean {
  try {
    return /\berofs\b/.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

function hasCapSysAdmin(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? ((BigInt(`0x${m[1]}`) >> 21n) & 1n) === 1n : false;
  } catch {
    return false;
  }
}

let cachedReason: string | null | undefined;

/**
 * null when EROFS images can be mounted here; otherwise why not (not Linux, not root, no
 * CAP_SYS_ADMIN, no erofs in /proc/filesystems even after modprobe, no mount command).
 */
export function canMount(): string | null {
  if (cachedReason !== undefined) return cachedReason;
  cachedReason = (() => {
    if (process.platform !== 'linux') return `not Linux (${process.platform})`;
    if (process.getuid?.() !== 0) return `not running as root (uid ${process.getuid?.()})`;
    if (!hasCapSysAdmin()) return 'no CAP_SYS_ADMIN (unprivileged container?)';
    if (!hasErofs()) {
      try {
        execFileSync('modprobe', ['erofs'], { stdio: 'ignore' });
      } catch {
        /* reported below */
      }
      if (!hasErofs()) return 'kernel has no erofs (not in /proc/filesystems, modprobe erofs failed)';
    }
    try {
      execFileSync('mount', ['--version'], { stdio: 'ignore' });
    } catch {
      return 'no mount command';
    }
    return null;
  })();
  return cachedReason;
}

function skipLoudly(kind: string, name: string): boolean {
  const reason = canMount();
  if (reason === null) return false;
  return skipUnless(false, `EROFS mounts (${kind} "${name}": ${reason})`);
}

/** `describe` that is skipped, with a warning, when images cannot be mounted. */
export function describeIfMount(name: string, fn: () => void): void {
  describe.skipIf(skipLoudly('suite', name))(name, fn);
}

/** `it` that is skipped, with a warning, when images cannot be mounted. */
export function itIfMount(name: string, fn: () => Promise<void> | void, timeout?: number): void {
  it.skipIf(skipLoudly('test', name))(name, fn, timeout);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function kernelLogTail(): Promise<string> {
  try {
    const { stdout } = await run('dmesg', [], { maxBuffer: 64 << 20 });
    const lines = stdout.split('\n').filter((l) => /erofs/i.test(l));
    return lines.slice(-8).join('\n');
  } catch {
    return '';
  }
}

async function unmount(dir: string): Promise<void> {
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await run('umount', [dir]);
      return;
    } catch (e) {
      last = e;
      await sleep(100 * (attempt + 1));
    }
  }
  try {
    await run('umount', ['-l', dir]);
  } catch (e) {
    throw new Error(`cannot unmount ${dir}: ${(last as Error).message}; umount -l: ${(e as Error).message}`);
  }
}

/**
 * Mounts `image` read-only (`mount -t erofs -o ro[,options] IMAGE DIR`) on a fresh temp dir,
 * runs `fn(dir)`, and always unmounts (retrying, then lazily) and removes the dir, whether
 * `fn` succeeded or not. Returns what `fn` returns. A failed mount throws with mount's
 * message and the kernel's recent erofs log lines.
 */
export async function withMount<T>(image: string, fn: (mountpoint: string) => Promise<T> | T, opts: MountOptions = {}): Promise<T> {
  const dir = await fsp.mkdtemp(nodePath.join(os.tmpdir(), 'erofs-mnt-'));
  try {
    await run('mount', ['-t', 'erofs', '-o', ['ro', ...(opts.options ?? [])].join(','), image, dir]);
  } catch (e) {
    await fsp.rmdir(dir).catch(() => undefined);
    const err = e as { stderr?: string; message: string };
    const log = await kernelLogTail();
    throw new Error(`mount -t erofs ${image} failed: ${(err.stderr || err.message).trim()}${log ? `\nkernel log:\n${log}` : ''}`);
  }
  let failed = false;
  try {
    return await fn(dir);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    try {
      await unmount(dir);
      await fsp.rmdir(dir);
    } catch (e) {
      // Do not mask the test's own failure; otherwise a stuck mount is an error.
      if (!failed) throw e;
      console.warn(`withMount cleanup: ${(e as Error).message}`);
    }
  }
}

export interface FsckResult {
  /** fsck.erofs exited 0 (also true when fsck.erofs is not installed, see `available`). */
  ok: boolean;
  /** stdout and stderr of fsck.erofs. */
  output: string;
  /** false when no fsck.erofs was found (a warning is printed). */
  available: boolean;
}

export function findFsck(): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin'];
  for (const d of dirs) {
    if (d && existsSync(nodePath.join(d, 'fsck.erofs'))) return nodePath.join(d, 'fsck.erofs');
  }
  return null;
}

/**
 * Runs the system's fsck.erofs on `image`, by default with --extract (no target) so every
 * file's data is decoded and checked too. Debian's erofs-utils 1.5 only knows LZ4/LZ4HC
 * compression and the features of its time: images using newer ones fail its check.
 */
export async function runFsck(image: string, opts: { extract?: boolean } = {}): Promise<FsckResult> {
  const fsck = findFsck();
  if (!fsck) {
    console.warn(`*** fsck.erofs not found: ${image} NOT checked ***`);
    return { ok: true, output: '', available: false };
  }
  const args = [...(opts.extract === false ? [] : ['--extract']), image];
  try {
    const { stdout, stderr } = await run(fsck, args, { maxBuffer: 64 << 20 });
    return { ok: true, output: stdout + stderr, available: true };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${err.stdout ?? ''}${err.stderr ?? ''}` || err.message, available: true };
  }
}
