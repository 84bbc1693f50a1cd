/**
 * compareTrees(srcRoot, mountedRoot, opts): every difference between a source tree and the
 * tree read back from a mounted image, as human-readable lines (empty when they are equal).
 *
 * Compared per entry (the root directory included): presence of every name, file type,
 * permission bits incl. setuid/setgid/sticky, uid, gid, mtime to the nanosecond, size of
 * files and symlinks, file content (streamed; the first differing byte offset is reported),
 * symlink target bytes, device major:minor, every xattr (incl. system.posix_acl_access and
 * system.posix_acl_default) by name and value, and link counts: entries sharing an inode in
 * the source must share one in the image and vice versa, a non-directory's nlink must be the
 * number of its links inside the tree, a directory's nlink 2 + its subdirectories.
 *
 * Names are handled as bytes throughout, so non-UTF-8 names work. Paths in messages are
 * '/'-rooted relative paths ('/' is the root); bytes that are not printable UTF-8 are shown
 * as \xNN. Message shapes:
 *   /a: missing in image
 *   /a: unexpected in image (file)
 *   /a: type: expected file, got dir
 *   /a: mode: expected 0644, got 0600
 *   /a: uid: expected 1000, got 0            (likewise gid)
 *   /a: mtime: expected 1700000000.123456789, got 1700000000.000000000
 *   /a: size: expected 10, got 11
 *   /a: content differs at byte 4096
 *   /a: symlink target: expected "x", got "y"
 *   /a: rdev: expected 1:3, got 1:5
 *   /a: xattr user.k: expected 0x01, got 0x02 / missing in image / unexpected in image (0x01)
 *   /a: nlink: expected 2, got 1
 *   hard links differ: source {/a, /b}, image {/a} {/b}
 */
import fs, { type BigIntStats } from 'node:fs';
import { lgetxattr, llistxattr, splitdev } from './libc.js';

export interface CompareOptions {
  /**
   * The mtime (ns since epoch) the image should hold, given the source's; 'any' skips the
   * check. Default: identical to the source.
   */
  expectMtime?: (srcMtimeNs: bigint, relPath: string) => bigint | 'any';
  /** The uid the image should hold (a constant or from the source uid). Default: the source's. */
  expectUid?: number | ((srcUid: number, relPath: string) => number);
  /** The gid the image should hold (a constant or from the source gid). Default: the source's. */
  expectGid?: number | ((srcGid: number, relPath: string) => number);
  /** Skip mode/uid/gid/mtime/xattrs of the root directory (its contents are still compared). */
  ignoreRootAttrs?: boolean;
  /** true: compare no xattrs at all; a function: skip the xattrs it returns true for. */
  ignoreXattrs?: boolean | ((name: string, relPath: string) => boolean);
  /**
   * Source entries (with everything below them) the image must NOT contain, e.g. for
   * --exclude-path/--exclude-regex tests. They are dropped from the expected tree (also from
   * expected link counts); an image entry at such a path is reported as unexpected.
   * `relPath` is '/'-separated without a leading slash ('' is the root), decoded as UTF-8;
   * `relBytes` holds the exact bytes.
   */
  exclude?: (relPath: string, relBytes: Buffer) => boolean;
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** A byte string for display: printable UTF-8 as is, anything else as \xNN. */
export function showBytes(b: Buffer): string {
  const s = b.toString('utf8');
  if (Buffer.from(s, 'utf8').equals(b)) {
    // eslint-disable-next-line no-control-regex
    return s.replace(/[\x00-\x1f\x7f\\]/g, (c) => (c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
  }
  let out = '';
  for (const byte of b) {
    out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : byte === 0x5c ? '\\\\' : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

function showPath(rel: Buffer): string {
  return `/${showBytes(rel)}`;
}

function showValue(v: Buffer): string {
  if (v.length <= 48) return `0x${v.toString('hex')}`;
  return `0x${v.subarray(0, 32).toString('hex')}... (${v.length} bytes)`;
}

function showTarget(t: Buffer): string {
  const s = showBytes(t);
  return s.length <= 80 ? `"${s}"` : `"${s.slice(0, 60)}..." (${t.length} bytes)`;
}

/** ns since the epoch as SEC.NSEC with 0 <= NSEC < 1e9, as in struct timespec (-1.5 s is -2.500000000). */
export function showTime(t: bigint): string {
  let sec = t / 1_000_000_000n;
  let nsec = t % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return `${sec}.${nsec.toString().padStart(9, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// File types

const S_IFMT = 0o170000n;
const TYPE_NAMES: Record<string, string> = {
  [0o100000]: 'file',
  [0o040000]: 'dir',
  [0o120000]: 'symlink',
  [0o020000]: 'chardev',
  [0o060000]: 'blockdev',
  [0o010000]: 'fifo',
  [0o140000]: 'socket',
};

export function typeName(st: BigIntStats): string {
  return TYPE_NAMES[String(Number(st.mode & S_IFMT))] ?? `type 0${(st.mode & S_IFMT).toString(8)}`;
}

// ---------------------------------------------------------------------------------------------
// Reading

const SLASH = Buffer.from('/');

function join(a: Buffer, b: Buffer): Buffer {
  return a.length === 0 ? b : Buffer.concat([a, SLASH, b]);
}

function abs(root: Buffer, rel: Buffer): Buffer {
  return rel.length === 0 ? root : Buffer.concat([root, SLASH, rel]);
}

function listDir(path: Buffer): Buffer[] {
  return fs.readdirSync(path, { encoding: 'buffer' }).sort(Buffer.compare);
}

function lstat(path: Buffer): BigIntStats {
  return fs.lstatSync(path, { bigint: true });
}

/** All xattrs of `path` (not following symlinks), keyed by name (latin1, i.e. exact bytes). */
export function readXattrs(path: string | Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of llistxattr(path)) {
    try {
      out.set(name.toString('latin1'), lgetxattr(path, name));
    } catch (e) {
      // Listed but gone by the time we read it: treat as absent.
      if ((e as NodeJS.ErrnoException).code !== 'ENODATA') throw e;
    }
  }
  return out;
}

const CHUNK = 1 << 20;
let bufA: Buffer | undefined;
let bufB: Buffer | undefined;

/** Offset of the first differing byte of two files of equal size, or -1 if identical. */
function firstDifference(a: Buffer, b: Buffer, size: bigint): number {
  // Files are read in step, a chunk at a time: huge files are never held in memory.
  bufA ??= Buffer.allocUnsafe(CHUNK);
  bufB ??= Buffer.allocUnsafe(CHUNK);
  const fa = fs.openSync(a, 'r');
  try {
    const fb = fs.openSync(b, 'r');
    try {
      let pos = 0;
      const total = Number(size);
      for (;;) {
        const ra = readFull(fa, bufA, pos);
        const rb = readFull(fb, bufB, pos);
        const n = Math.min(ra, rb);
        if (!bufA.subarray(0, n).equals(bufB.subarray(0, n))) {
          for (let i = 0; i < n; i++) if (bufA[i] !== bufB[i]) return pos + i;
        }
        if (ra !== rb) return pos + n; // one file ended early (changed size while reading?)
        if (ra === 0) return pos < total ? pos : -1;
        pos += ra;
      }
    } finally {
      fs.closeSync(fb);
    }
  } finally {
    fs.closeSync(fa);
  }
}

function readFull(fd: number, buf: Buffer, pos: number): number {
  let n = 0;
  while (n < buf.length) {
    const got = fs.readSync(fd, buf, n, buf.length - n, pos + n);
    if (got === 0) break;
    n += got;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// compareTrees

interface Side {
  root: Buffer;
  /** inode key -> relative paths (hex of bytes) of the non-directories sharing it */
  groups: Map<string, Buffer[]>;
  /** rel (hex) -> inode key */
  inodeOf: Map<string, string>;
  nlinkOf: Map<string, bigint>;
}

function newSide(root: string): Side {
  return { root: Buffer.from(root, 'utf8'), groups: new Map(), inodeOf: new Map(), nlinkOf: new Map() };
}

function record(side: Side, rel: Buffer, st: BigIntStats): void {
  const key = `${st.dev}:${st.ino}`;
  let g = side.groups.get(key);
  if (!g) side.groups.set(key, (g = []));
  g.push(rel);
  side.inodeOf.set(rel.toString('hex'), key);
  side.nlinkOf.set(key, st.nlink);
}

export async function compareTrees(srcRoot: string, mountedRoot: string, opts: CompareOptions = {}): Promise<string[]> {
  const diffs: string[] = [];
  const src = newSide(srcRoot);
  const img = newSide(mountedRoot);
  /** non-directories present on both sides with the same type, in walk order */
  const common: Buffer[] = [];

  const excluded = (rel: Buffer) => rel.length > 0 && opts.exclude?.(rel.toString('utf8'), rel) === true;

  const compareXattrs = (rel: Buffer, relStr: string, at: string) => {
    if (opts.ignoreXattrs === true) return;
    const skip = typeof opts.ignoreXattrs === 'function' ? opts.ignoreXattrs : undefined;
    let want: Map<string, Buffer>;
    try {
      want = readXattrs(abs(src.root, rel));
    } catch (e) {
      if (!['ENOTSUP', 'EOPNOTSUPP'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
      want = new Map();
    }
    let got: Map<string, Buffer>;
    try {
      got = readXattrs(abs(img.root, rel));
    } catch (e) {
      diffs.push(`${at}: xattrs: cannot read from image (${(e as Error).message})`);
      return;
    }
    const names = [...new Set([...want.keys(), ...got.keys()])].sort();
    for (const name of names) {
      if (skip?.(name, relStr)) continue;
      const w = want.get(name);
      const g = got.get(name);
      const shown = showBytes(Buffer.from(name, 'latin1'));
      if (w && !g) diffs.push(`${at}: xattr ${shown}: missing in image`);
      else if (!w && g) diffs.push(`${at}: xattr ${shown}: unexpected in image (${showValue(g)})`);
      else if (w && g && !w.equals(g)) diffs.push(`${at}: xattr ${shown}: expected ${showValue(w)}, got ${showValue(g)}`);
    }
  };

  const compareEntry = (rel: Buffer, s: BigIntStats, m: BigIntStats): void => {
    const at = showPath(rel);
    const relStr = rel.toString('utf8');
    const type = typeName(s);
    if (type !== typeName(m)) {
      diffs.push(`${at}: type: expected ${type}, got ${typeName(m)}`);
      return;
    }
    const isRoot = rel.length === 0;
    if (!(isRoot && opts.ignoreRootAttrs)) {
      const sm = Number(s.mode & 0o7777n);
      const mm = Number(m.mode & 0o7777n);
      if (sm !== mm) diffs.push(`${at}: mode: expected 0${sm.toString(8).padStart(3, '0')}, got 0${mm.toString(8).padStart(3, '0')}`);

      const wantUid = typeof opts.expectUid === 'function' ? opts.expectUid(Number(s.uid), relStr) : opts.expectUid ?? Number(s.uid);
      if (BigInt(wantUid) !== m.uid) diffs.push(`${at}: uid: expected ${wantUid}, got ${m.uid}`);
      const wantGid = typeof opts.expectGid === 'function' ? opts.expectGid(Number(s.gid), relStr) : opts.expectGid ?? Number(s.gid);
      if (BigInt(wantGid) !== m.gid) diffs.push(`${at}: gid: expected ${wantGid}, got ${m.gid}`);

      const wantMtime = opts.expectMtime ? opts.expectMtime(s.mtimeNs, relStr) : s.mtimeNs;
      if (wantMtime !== 'any' && wantMtime !== m.mtimeNs) {
        diffs.push(`${at}: mtime: expected ${showTime(wantMtime)}, got ${showTime(m.mtimeNs)}`);
      }
      compareXattrs(rel, relStr, at);
    }

    switch (type) {
      case 'file':
        if (s.size !== m.size) {
          diffs.push(`${at}: size: expected ${s.size}, got ${m.size}`);
        } else {
          const off = firstDifference(abs(src.root, rel), abs(img.root, rel), s.size);
          if (off >= 0) diffs.push(`${at}: content differs at byte ${off}`);
        }
        break;
      case 'symlink': {
        const st = fs.readlinkSync(abs(src.root, rel), { encoding: 'buffer' });
        const mt = fs.readlinkSync(abs(img.root, rel), { encoding: 'buffer' });
        if (!st.equals(mt)) diffs.push(`${at}: symlink target: expected ${showTarget(st)}, got ${showTarget(mt)}`);
        else if (s.size !== m.size) diffs.push(`${at}: size: expected ${s.size}, got ${m.size}`);
        break;
      }
      case 'chardev':
      case 'blockdev': {
        const sd = splitdev(s.rdev);
        const md = splitdev(m.rdev);
        if (sd.major !== md.major || sd.minor !== md.minor) {
          diffs.push(`${at}: rdev: expected ${sd.major}:${sd.minor}, got ${md.major}:${md.minor}`);
        }
        break;
      }
      case 'dir':
        compareDir(rel, m);
        return;
    }
    record(src, rel, s);
    record(img, rel, m);
    common.push(rel);
  };

  const compareDir = (rel: Buffer, m: BigIntStats): void => {
    const srcNames = listDir(abs(src.root, rel));
    const imgNames = listDir(abs(img.root, rel));
    const wanted = srcNames.filter((n) => !excluded(join(rel, n)));
    const all = [...wanted, ...imgNames].sort(Buffer.compare).filter((n, i, arr) => i === 0 || !arr[i - 1]!.equals(n));
    const inSrc = new Set(wanted.map((n) => n.toString('hex')));
    const inImg = new Set(imgNames.map((n) => n.toString('hex')));
    let subdirs = 0n;
    for (const name of all) {
      const childRel = join(rel, name);
      const key = name.toString('hex');
      if (!inImg.has(key)) {
        diffs.push(`${showPath(childRel)}: missing in image`);
        // still counts for the expected link counts
        const s = lstat(abs(src.root, childRel));
        if (typeName(s) === 'dir') subdirs++;
        continue;
      }
      const mst = lstat(abs(img.root, childRel));
      if (!inSrc.has(key)) {
        diffs.push(`${showPath(childRel)}: unexpected in image (${typeName(mst)})`);
        continue;
      }
      const sst = lstat(abs(src.root, childRel));
      if (typeName(sst) === 'dir') subdirs++;
      compareEntry(childRel, sst, mst);
    }
    if (m.nlink !== 2n + subdirs) diffs.push(`${showPath(rel)}: nlink: expected ${2n + subdirs}, got ${m.nlink}`);
  };

  // Synchronous I/O throughout: several times faster than fs.promises for many small files.
  compareEntry(Buffer.alloc(0), lstat(src.root), lstat(img.root));

  // Hard links: the same partition of paths into inodes on both sides, and nlink = group size.
  // Source and image inodes connected by a shared path form a component; it is consistent
  // iff it holds exactly one inode of each side (then both hold the same set of paths).
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let r = k;
    while (parent.has(r) && parent.get(r) !== r) r = parent.get(r)!;
    parent.set(k, r);
    return r;
  };
  const union = (a: string, b: string) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(rb, ra);
  };
  for (const rel of common) {
    const h = rel.toString('hex');
    union(`s${src.inodeOf.get(h)!}`, `i${img.inodeOf.get(h)!}`);
  }
  const components = new Map<string, { srcKeys: Set<string>; imgKeys: Set<string>; first: Buffer }>();
  for (const rel of common) {
    const h = rel.toString('hex');
    const sk = src.inodeOf.get(h)!;
    const ik = img.inodeOf.get(h)!;
    const root = find(`s${sk}`);
    let c = components.get(root);
    if (!c) components.set(root, (c = { srcKeys: new Set(), imgKeys: new Set(), first: rel }));
    c.srcKeys.add(sk);
    c.imgKeys.add(ik);
  }
  const showGroups = (side: Side, keys: Set<string>) =>
    [...keys]
      .map((k) => [...side.groups.get(k)!].sort(Buffer.compare))
      .sort((a, b) => Buffer.compare(a[0]!, b[0]!))
      .map((g) => `{${g.map(showPath).join(', ')}}`)
      .join(' ');
  for (const c of components.values()) {
    if (c.srcKeys.size !== 1 || c.imgKeys.size !== 1) {
      diffs.push(`hard links differ: source ${showGroups(src, c.srcKeys)}, image ${showGroups(img, c.imgKeys)}`);
      continue;
    }
    // Links from outside the tree (or excluded) do not count: the image holds just these.
    const [sk] = c.srcKeys;
    const [ik] = c.imgKeys;
    const want = BigInt(src.groups.get(sk!)!.length);
    const got = img.nlinkOf.get(ik!)!;
    if (got !== want) diffs.push(`${showPath(c.first)}: nlink: expected ${want}, got ${got}`);
  }
  return diffs;
}
