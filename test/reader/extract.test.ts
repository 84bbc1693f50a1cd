/**
 * Extraction details not covered by the tree comparisons: holes stay holes, ownership and
 * permission preservation can be turned off, and the target may already exist.
 */
import { lstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { S_IFREG } from '../../src/format/constants.js';
import { fsckImage } from '../../src/reader/fsck.js';
import { openImageBuffer } from '../../src/reader/index.js';
import { Crafter, sampleData } from './helpers/craft.js';

const temps: string[] = [];
afterEach(() => {
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});
function out(): string {
  const d = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-extract-'));
  temps.push(d);
  return nodePath.join(d, 'out');
}

describe('extraction', () => {
  it('leaves chunk holes unallocated (sparse files)', () => {
    const c = new Crafter();
    const data = sampleData(64 * 4096, 9);
    const holes = Array.from({ length: 60 }, (_, i) => i + 2);
    const root = c.reserveDir();
    const nid = c.addChunkedFile(data, 12, { holes });
    c.writeDir(root, root, [{ name: 'sparse', nid, mode: S_IFREG | 0o644 }]);
    const dir = out();
    const r = fsckImage(openImageBuffer(c.build(root)), { extract: { dir } });
    expect(r.problems).toEqual([]);
    const f = nodePath.join(dir, 'sparse');
    const want = Buffer.from(data);
    want.fill(0, 2 * 4096, 62 * 4096);
    expect(readFileSync(f).equals(want)).toBe(true);
    // 4 data chunks of 4 KiB are stored; allow for file system overhead but not 256 KiB.
    expect(lstatSync(f).blocks * 512).toBeLessThan(64 * 1024);
  });

  it('applies the umask and keeps the caller as owner when preservation is off', () => {
    const c = new Crafter();
    const root = c.reserveDir();
    const nid = c.addFlatFile(Buffer.from('x'), { mode: S_IFREG | 0o666, uid: 4321, gid: 8765 });
    c.writeDir(root, root, [{ name: 'f', nid, mode: S_IFREG | 0o666 }]);
    const dir = out();
    const old = process.umask(0o027);
    try {
      fsckImage(openImageBuffer(c.build(root)), { extract: { dir, preserveOwner: false, preservePerms: false } });
    } finally {
      process.umask(old);
    }
    const st = lstatSync(nodePath.join(dir, 'f'));
    expect(st.mode & 0o7777).toBe(0o640);
    expect(st.uid).toBe(process.getuid!());
  });

  it('restores owners and exact modes when preservation is on', () => {
    const c = new Crafter();
    const root = c.reserveDir();
    const nid = c.addFlatFile(Buffer.from('x'), { mode: S_IFREG | 0o4751, uid: 4321, gid: 8765 });
    c.writeDir(root, root, [{ name: 'f', nid, mode: S_IFREG | 0o4751 }]);
    const dir = out();
    fsckImage(openImageBuffer(c.build(root)), { extract: { dir, preserveOwner: true, preservePerms: true } });
    const st = lstatSync(nodePath.join(dir, 'f'));
    expect({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }).toEqual({ mode: 0o4751, uid: 4321, gid: 8765 });
  });
});
