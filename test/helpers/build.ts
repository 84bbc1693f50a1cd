/**
 * Builds images for tests, through the library or the CLI, and checks them the way a user
 * would: mount with the kernel, compare every entry with the source, run fsck.erofs.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { buildImage, type BuildOptions, type BuildResult } from '../../src/index.js';
import { fsckImage, openImage } from '../../src/reader/index.js';
import { type CompareOptions, compareTrees } from './compare.js';
import { runFsck, withMount } from './mount.js';

const run = promisify(execFile);

export const CLI = fileURLToPath(new URL('../../bin/mkfs.erofs.js', import.meta.url));

/** A scratch directory removed by the returned cleanup. */
export function scratchDir(prefix = 'erofs-img-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function build(source: string, image: string, opts: Partial<BuildOptions> = {}): Promise<BuildResult> {
  return buildImage({ uuid: 'clear', ...opts, image, source });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (dist/), as users do. */
export async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, SOURCE_DATE_EPOCH: undefined, ...env },
      maxBuffer: 16 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/**
 * Mounts the image, expects no difference from `source`, and expects fsck.erofs to pass.
 * Debian's fsck.erofs 1.5 only reads images whose block size is the page size (4096).
 */
export async function expectImageMatches(
  image: string,
  source: string,
  opts: CompareOptions & { blockSize?: number; fsck?: boolean } = {},
): Promise<void> {
  const diffs = await withMount(image, (mnt) => compareTrees(source, mnt, opts));
  expect(diffs).toEqual([]);
  // Second oracle: this project's reader checks every index and decompresses every file.
  const img = openImage(image);
  try {
    expect(fsckImage(img).problems).toEqual([]);
  } finally {
    img.close();
  }
  if ((opts.blockSize ?? 4096) !== 4096 || opts.fsck === false) return;
  const fsck = await runFsck(image);
  expect(fsck.output).toBe(fsck.ok ? fsck.output : '(fsck passed)');
  expect(fsck.ok).toBe(true);
}
