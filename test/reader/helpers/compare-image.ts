/**
 * compareImageWithSource(img, srcRoot): every difference between a source tree and what the
 * reader library reports for an image built from it, as lines like compareTrees' ("/a: mode:
 * expected 0644, got 0600"). Compared per entry, the root included: presence of every name,
 * file type, permission bits, uid, gid, mtime to the nanosecond, size, content (read through
 * the library in uneven pieces), symlink target, device numbers, xattrs by name and value,
 * and hard links (entries sharing a source inode share a nid, and only those).
 */
import fs, { type BigIntStats } from 'node:fs';
import { readXattrs, showBytes, showTime, typeName } from '../../helpers/compare.js';
import { splitdev } from '../../helpers/libc.js';
import type { Nid } from '../../../src/format/types.js';
import type { ErofsImage } from '../../../src/reader/index.js';

const KIND_TO_TYPE: Record<string, string> = {
  file: 'file',
  dir: 'dir',
  symlink: 'symlink',
  chardev: 'chardev',
  blockdev: 'blockdev',
  fifo: 'fifo',
  socket: 'socket',
};

export interface ImageCompareOptions {
  /** Expected image mtime for a source mtime (ns); default identical. */
  expectMtime?: (srcNs: bigint) => bigint;
}

export function compareImageWithSource(img: ErofsImage, srcRoot: string, opts: ImageCompareOptions = {}): string[] {
  const diffs: string[] = [];
  const srcGroups = new Map<string, string[]>();
  const nidGroups = new Map<number, string[]>();
  const visit = (srcPath: Buffer, rel: Buffer, nid: Nid): void => {
    const shown = `/${showBytes(rel)}`;
    const st: BigIntStats = fs.lstatSync(srcPath, { bigint: true });
    const s = img.stat(nid);
    const want = typeName(st);
    if (KIND_TO_TYPE[s.kind] !== want) {
      diffs.push(`${shown}: type: expected ${want}, got ${s.kind}`);
      return;
    }
    if (!st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      srcGroups.set(key, [...(srcGroups.get(key) ?? []), shown]);
      nidGroups.set(nid, [...(nidGroups.get(nid) ?? []), shown]);
    }
    const mode = Number(st.mode) & 0o7777;
    if ((s.mode & 0o7777) !== mode) diffs.push(`${shown}: mode: expected 0${mode.toString(8)}, got 0${(s.mode & 0o7777).toString(8)}`);
    if (s.uid !== Number(st.uid)) diffs.push(`${shown}: uid: expected ${st.uid}, got ${s.uid}`);
    if (s.gid !== Number(st.gid)) diffs.push(`${shown}: gid: expected ${st.gid}, got ${s.gid}`);
    const wantNs = opts.expectMtime ? opts.expectMtime(st.mtimeNs) : st.mtimeNs;
    const gotNs = s.mtime * 1_000_000_000n + BigInt(s.mtimeNsec);
    if (gotNs !== wantNs) diffs.push(`${shown}: mtime: expected ${showTime(wantNs)}, got ${showTime(gotNs)}`);
    const srcX = readXattrs(srcPath);
    const imgX = new Map(img.listXattrs(nid).map((x) => [x.name.toString('latin1'), x.value]));
    for (const [k, v] of srcX) {
      const got = imgX.get(k);
      if (!got) diffs.push(`${shown}: xattr ${k}: missing in image`);
      else if (!got.equals(v)) diffs.push(`${shown}: xattr ${k}: value differs`);
    }
    for (const k of imgX.keys()) if (!srcX.has(k)) diffs.push(`${shown}: xattr ${k}: unexpected in image`);

    if (st.isFile()) {
      if (s.size !== Number(st.size)) {
        diffs.push(`${shown}: size: expected ${st.size}, got ${s.size}`);
        return;
      }
      const want = fs.readFileSync(srcPath);
      // Uneven pieces so that reads start and end inside extents.
      let off = 0;
      let piece = 777;
      while (off < want.length) {
        const got = Buffer.from(img.read(nid, off, piece));
        const exp = want.subarray(off, off + piece);
        if (!got.equals(exp)) {
          diffs.push(`${shown}: content differs in bytes ${off}..${off + piece}`);
          break;
        }
        off += piece;
        piece = piece * 3 + 1;
      }
    } else if (st.isSymbolicLink()) {
      const want = fs.readlinkSync(srcPath, { encoding: 'buffer' });
      const got = img.readlink(nid);
      if (!got.equals(want)) diffs.push(`${shown}: symlink target: expected "${showBytes(want)}", got "${showBytes(got)}"`);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const d = splitdev(st.rdev);
      if (d.major !== s.rdev.major || d.minor !== s.rdev.minor) {
        diffs.push(`${shown}: rdev: expected ${d.major}:${d.minor}, got ${s.rdev.major}:${s.rdev.minor}`);
      }
    } else if (st.isDirectory()) {
      const srcNames = fs.readdirSync(srcPath, { encoding: 'buffer' }).sort(Buffer.compare);
      const entries = img.readdir(nid).filter((e) => !(e.name.equals(Buffer.from('.')) || e.name.equals(Buffer.from('..'))));
      const imgNames = new Set(entries.map((e) => e.name.toString('latin1')));
      for (const e of entries) {
        if (!srcNames.some((n) => n.equals(e.name))) diffs.push(`/${showBytes(Buffer.concat([rel, rel.length ? Buffer.from('/') : Buffer.alloc(0), e.name]))}: unexpected in image`);
      }
      for (const name of srcNames) {
        const childRel = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
        if (!imgNames.has(name.toString('latin1'))) {
          diffs.push(`/${showBytes(childRel)}: missing in image`);
          continue;
        }
        const e = img.lookupIn(nid, name);
        if (!e) {
          diffs.push(`/${showBytes(childRel)}: listed but not found by lookup`);
          continue;
        }
        visit(Buffer.concat([srcPath, Buffer.from('/'), name]), childRel, e.nid);
      }
    }
  };
  visit(Buffer.from(srcRoot), Buffer.alloc(0), img.rootNid);
  const norm = (groups: Map<unknown, string[]>): string[] => [...groups.values()].map((g) => g.sort().join(' ')).sort();
  const a = norm(srcGroups);
  const b = norm(nidGroups);
  if (a.join('\n') !== b.join('\n')) diffs.push(`hard links differ: source ${a.filter((x) => x.includes(' ')).join(', ')}; image ${b.filter((x) => x.includes(' ')).join(', ')}`);
  return diffs;
}
