/**
 * Declarative source trees for integration tests.
 *
 *   const tree = await makeTree({
 *     'hello.txt': file('hi\n', { mode: 0o600, mtime: { sec: 1_700_000_000, nsec: 123_456_789 } }),
 *     sub: dir({ big: file({ size: 10 << 20, pattern: 'random', seed: 1 }) }, { mode: 0o2775 }),
 *     link: symlink('hello.txt'),
 *     again: hardlink('hello.txt'),
 *   });
 *   try { ... tree.root ... } finally { await tree.cleanup(); }
 *
 * Directory entries are either an object (string names) or an array of [name, spec] pairs
 * (names may then be Buffers holding arbitrary bytes except '/' and NUL).
 *
 * Creation order is deterministic and chosen so that the final on-disk state is exactly the
 * spec: entries are created depth first in declaration order; a directory's owner, mode,
 * xattrs and ACLs are applied after its children exist (so nothing is inherited from a
 * setgid bit or a default ACL); hard links are made after every other entry; finally all
 * mtimes are set, non-directories first, then directories deepest first.
 *
 * Entries without `uid`/`gid`/`mtime` keep what creation gave them (the test process's ids,
 * the current time); `mode` defaults to 0644 (0755 for directories and sockets) whatever the
 * umask. Paths longer than PATH_MAX (4096 bytes including the temp dir) are not supported.
 */
import { createCipheriv, createHash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { encodeAcl } from './acl.js';
import { bindUnixSocket, lsetxattr, makedev, mknod, setMtimeNs } from './libc.js';

export type Name = string | Buffer;

/** Nanoseconds since the epoch (may be negative), or seconds plus nanoseconds. */
export type Timestamp = bigint | { sec: number | bigint; nsec?: number };

export type XattrSpec = Record<string, string | Buffer> | ReadonlyArray<readonly [Name, string | Buffer]>;

export interface Attrs {
  /** Permission bits including 0o4000 setuid, 0o2000 setgid, 0o1000 sticky. */
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Timestamp;
  /** Extended attributes by full name ('user.x', 'trusted.x', 'security.x'); string values are UTF-8. */
  xattrs?: XattrSpec;
  /**
   * POSIX ACLs in setfacl text form, e.g. 'u::rwx,u:1000:r-x,g::r-x,m::rwx,o::---'.
   * Missing u::/g::/o:: entries come from `mode`; a missing mask is computed as setfacl does.
   * The access ACL determines the rwx bits of the final mode (group bits = mask if present).
   * `default` is only valid on directories.
   */
  acl?: { access?: string; default?: string };
}

/** Deterministic generated content, so large files need not be held in the test source. */
export interface GeneratedContent {
  size: number;
  /**
   * zero:   explicit zero bytes (fully allocated)
   * hole:   a sparse file of `size` zero bytes (ftruncate only)
   * random: incompressible pseudo-random bytes from `seed`
   * text:   compressible pseudo-random lines of words from `seed`
   */
  pattern: 'zero' | 'hole' | 'random' | 'text';
  seed?: number | string;
}

export type FileContent = string | Buffer | GeneratedContent;

export interface FileSpec extends Attrs {
  type: 'file';
  content?: FileContent;
}
export type DirEntries = { [name: string]: EntrySpec } | ReadonlyArray<readonly [Name, EntrySpec]>;
export interface DirSpec extends Attrs {
  type: 'dir';
  entries?: DirEntries;
}
/** Symlinks have no mode of their own (always 0777) and Linux refuses user.* xattrs on them. */
export interface SymlinkSpec extends Omit<Attrs, 'mode' | 'acl'> {
  type: 'symlink';
  target: Name;
}
/** A hard link to an entry declared elsewhere in the tree ('/'-separated path from the root). */
export interface HardlinkSpec {
  type: 'hardlink';
  target: Name;
}
export interface DeviceSpec extends Attrs {
  type: 'chardev' | 'blockdev';
  major: number;
  minor: number;
}
export interface FifoSpec extends Attrs {
  type: 'fifo';
}
export interface SocketSpec extends Attrs {
  type: 'socket';
}
export type EntrySpec = FileSpec | DirSpec | SymlinkSpec | HardlinkSpec | DeviceSpec | FifoSpec | SocketSpec;

/** The root directory, either with its own attributes or just its entries. */
export type TreeSpec = DirSpec | DirEntries;

// ---------------------------------------------------------------------------------------------
// Spec builders

export function file(content: FileContent = '', attrs: Attrs = {}): FileSpec {
  return { ...attrs, type: 'file', content };
}
export function dir(entries: DirEntries = {}, attrs: Attrs = {}): DirSpec {
  return { ...attrs, type: 'dir', entries };
}
export function symlink(target: Name, attrs: Omit<SymlinkSpec, 'type' | 'target'> = {}): SymlinkSpec {
  return { ...attrs, type: 'symlink', target };
}
export function hardlink(target: Name): HardlinkSpec {
  return { type: 'hardlink', target };
}
export function chardev(major: number, minor: number, attrs: Attrs = {}): DeviceSpec {
  return { ...attrs, type: 'chardev', major, minor };
}
export function blockdev(major: number, minor: number, attrs: Attrs = {}): DeviceSpec {
  return { ...attrs, type: 'blockdev', major, minor };
}
export function fifo(attrs: Attrs = {}): FifoSpec {
  return { ...attrs, type: 'fifo' };
}
export function socket(attrs: Attrs = {}): SocketSpec {
  return { ...attrs, type: 'socket' };
}

/** Nanoseconds since the epoch from seconds + nanoseconds. */
export function ns(sec: number | bigint, nsec = 0): bigint {
  return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
}

/**
 * A directory of `n` entries. By default regular files named f0000…, each holding its index;
 * `make(i)` may return any [name, spec] instead.
 */
export function wideDir(n: number, make?: (i: number) => readonly [Name, EntrySpec], attrs: Attrs = {}): DirSpec {
  const width = String(Math.max(0, n - 1)).length;
  const entries: Array<readonly [Name, EntrySpec]> = [];
  for (let i = 0; i < n; i++) {
    entries.push(make ? make(i) : [`f${String(i).padStart(width, '0')}`, file(`${i}\n`)]);
  }
  return dir(entries, attrs);
}

/**
 * `depth` directories nested in one another (named `name`, default 'd'), the innermost holding
 * `leaf` (default: one file 'leaf'). `makeTree(deepDir(3))` gives root/d/d/d/leaf.
 */
export function deepDir(depth: number, leaf: DirEntries = { leaf: file('bottom\n') }, name: Name = 'd'): DirSpec {
  let inner: DirSpec = dir(leaf);
  for (let i = 0; i < depth; i++) inner = dir([[name, inner]]);
  return inner;
}

// ---------------------------------------------------------------------------------------------
// Generated content

const CHUNK = 1 << 20;

function seedBytes(seed: number | string | undefined): Buffer {
  return createHash('sha256')
    .update(`erofs-test-content:${seed ?? 0}`)
    .digest();
}

const WORDS = (
  'the quick brown fox jumps over lazy dog erofs image block inode xattr directory file ' +
  'compress cluster extent superblock mount read only linux kernel data tail packing chunk'
).split(' ');

/** The bytes of generated content, in chunks of at most `chunkSize` (deterministic). */
export function* contentChunks(gen: GeneratedContent, chunkSize = CHUNK): Generator<Buffer> {
  if (!Number.isSafeInteger(gen.size) || gen.size < 0) throw new Error(`bad size ${gen.size}`);
  let left = gen.size;
  switch (gen.pattern) {
    case 'zero':
    case 'hole': {
      const zeros = Buffer.alloc(Math.min(chunkSize, left));
      while (left > 0) {
        const n = Math.min(left, chunkSize);
        yield n === zeros.length ? zeros : zeros.subarray(0, n);
        left -= n;
      }
      return;
    }
    case 'random': {
      const cipher = createCipheriv('aes-128-ctr', seedBytes(gen.seed).subarray(0, 16), Buffer.alloc(16));
      const zeros = Buffer.alloc(Math.min(chunkSize, left));
      while (left > 0) {
        const n = Math.min(left, chunkSize);
        yield cipher.update(zeros.subarray(0, n));
        left -= n;
      }
      return;
    }
    case 'text': {
      // mulberry32 seeded from the seed's hash.
      let state = seedBytes(gen.seed).readUInt32LE(0);
      const next = () => {
        state = (state + 0x6d2b79f5) | 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
      let line = 0;
      let pending: Buffer[] = [];
      let pendingLen = 0;
      while (left > 0) {
        const words: string[] = [];
        const count = 4 + Math.floor(next() * 10);
        for (let i = 0; i < count; i++) words.push(WORDS[Math.floor(next() * WORDS.length)]!);
        const b = Buffer.from(`${String(line++).padStart(8, '0')} ${words.join(' ')}\n`);
        const take = b.subarray(0, Math.min(b.length, left));
        pending.push(take);
        pendingLen += take.length;
        left -= take.length;
        if (pendingLen >= chunkSize || left === 0) {
          let all = Buffer.concat(pending);
          while (all.length >= chunkSize) {
            yield all.subarray(0, chunkSize);
            all = all.subarray(chunkSize);
          }
          if (left === 0 && all.length > 0) {
            yield all;
            all = Buffer.alloc(0);
          }
          pending = all.length > 0 ? [all] : [];
          pendingLen = all.length;
        }
      }
      return;
    }
    default:
      throw new Error(`unknown content pattern ${(gen as { pattern: string }).pattern}`);
  }
}

/** All bytes of (small) content, e.g. to state what a file in an image should hold. */
export function contentBuffer(content: FileContent): Buffer {
  if (typeof content === 'string') return Buffer.from(content, 'utf8');
  if (Buffer.isBuffer(content)) return content;
  return Buffer.concat([...contentChunks(content)]);
}

function writeContent(path: Buffer, content: FileContent): void {
  const fd = fs.openSync(path, 'w');
  try {
    if (typeof content === 'string' || Buffer.isBuffer(content)) {
      fs.writeFileSync(fd, content);
    } else if (content.pattern === 'hole') {
      fs.ftruncateSync(fd, content.size);
    } else {
      for (const chunk of contentChunks(content)) {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// makeTree

export interface Tree {
  /** The temp directory holding everything (removed by cleanup()). */
  dir: string;
  /** The root of the tree described by the spec. */
  root: string;
  /** Absolute path of an entry from its '/'-separated path relative to the root. */
  path(rel: string): string;
  path(rel: Buffer): Buffer;
  cleanup(): Promise<void>;
}

const SLASH = 0x2f;

function nameBytes(name: Name): Buffer {
  return typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
}

function showName(b: Buffer): string {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : `<0x${b.toString('hex')}>`;
}

function joinPath(parent: Buffer, name: Buffer): Buffer {
  return Buffer.concat([parent, Buffer.from('/'), name]);
}

function entriesOf(entries: DirEntries | undefined): Array<readonly [Buffer, EntrySpec]> {
  if (!entries) return [];
  const list: ReadonlyArray<readonly [Name, EntrySpec]> = Array.isArray(entries)
    ? (entries as ReadonlyArray<readonly [Name, EntrySpec]>)
    : Object.entries(entries as Record<string, EntrySpec>);
  const seen = new Set<string>();
  return list.map(([name, spec]) => {
    const b = nameBytes(name);
    if (b.length === 0 || b.length > 255 || b.includes(0) || b.includes(SLASH) || b.equals(Buffer.from('.')) || b.equals(Buffer.from('..'))) {
      throw new Error(`invalid entry name ${showName(b)}`);
    }
    const key = b.toString('hex');
    if (seen.has(key)) throw new Error(`duplicate entry name ${showName(b)}`);
    seen.add(key);
    return [b, spec] as const;
  });
}

function isDirSpec(spec: TreeSpec): spec is DirSpec {
  return !Array.isArray(spec) && typeof (spec as { type?: unknown }).type === 'string';
}

function toNs(t: Timestamp): bigint {
  if (typeof t === 'bigint') return t;
  return BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec ?? 0);
}

function xattrList(x: XattrSpec | undefined): Array<[Buffer, Buffer]> {
  if (!x) return [];
  const list: ReadonlyArray<readonly [Name, string | Buffer]> = Array.isArray(x)
    ? (x as ReadonlyArray<readonly [Name, string | Buffer]>)
    : Object.entries(x as Record<string, string | Buffer>);
  return list.map(([n, v]) => [nameBytes(n), typeof v === 'string' ? Buffer.from(v, 'utf8') : v]);
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

interface Pending {
  path: Buffer;
  mtime: bigint;
  depth: number;
}

/**
 * Builds the tree described by `spec` in a fresh temp directory under `parentDir`
 * (default os.tmpdir()). On error the partial tree is removed.
 */
export async function makeTree(spec: TreeSpec, parentDir: string = os.tmpdir()): Promise<Tree> {
  const tmp = await fsp.mkdtemp(nodePath.join(parentDir, 'erofs-tree-'));
  const root = nodePath.join(tmp, 'root');
  const rootBuf = Buffer.from(root, 'utf8');
  const fileMtimes: Pending[] = [];
  const dirMtimes: Pending[] = [];
  const links: Array<{ path: Buffer; target: Buffer }> = [];
  let scratch = 0;

  const applyAttrs = (path: Buffer, spec: Exclude<EntrySpec, HardlinkSpec>, defMode: number) => {
    const isLink = spec.type === 'symlink';
    if (spec.uid !== undefined || spec.gid !== undefined) {
      // -1 keeps the current id; chown before chmod since chown clears setuid/setgid.
      fs.lchownSync(path, spec.uid ?? -1, spec.gid ?? -1);
    }
    if (!isLink) {
      const mode = (spec as Attrs).mode ?? defMode;
      if (mode & ~0o7777) throw new Error(`mode ${mode.toString(8)} has bits beyond 07777`);
      fs.chmodSync(path, mode);
    }
    for (const [name, value] of xattrList(spec.xattrs)) lsetxattr(path, name, value);
    const acl = (spec as Attrs).acl;
    if (acl) {
      const mode = (spec as Attrs).mode ?? defMode;
      if (acl.access !== undefined) lsetxattr(path, 'system.posix_acl_access', encodeAcl(acl.access, mode));
      if (acl.default !== undefined) {
        if (spec.type !== 'dir') throw new Error('a default ACL needs a directory');
        lsetxattr(path, 'system.posix_acl_default', encodeAcl(acl.default, mode));
      }
    }
  };

  const create = (path: Buffer, rel: Buffer, spec: EntrySpec, depth: number): void => {
    const where = rel.length ? showName(rel) : '/';
    try {
      switch (spec.type) {
        case 'dir': {
          if (depth > 0) fs.mkdirSync(path);
          for (const [name, child] of entriesOf(spec.entries)) {
            create(joinPath(path, name), rel.length ? joinPath(rel, name) : name, child, depth + 1);
          }
          applyAttrs(path, spec, 0o755);
          if (spec.mtime !== undefined) dirMtimes.push({ path, mtime: toNs(spec.mtime), depth });
          return;
        }
        case 'hardlink':
          links.push({ path, target: nameBytes(spec.target) });
          return;
        case 'file':
          writeContent(path, spec.content ?? '');
          break;
        case 'symlink': {
          const target = nameBytes(spec.target);
          if (target.length === 0 || target.includes(0)) throw new Error('symlink target must be non-empty and NUL-free');
          fs.symlinkSync(target, path);
          break;
        }
        case 'chardev':
        case 'blockdev':
          mknod(path, (spec.type === 'chardev' ? S_IFCHR : S_IFBLK) | 0o600, makedev(spec.major, spec.minor));
          break;
        case 'fifo':
          mknod(path, S_IFIFO | 0o600);
          break;
        case 'socket': {
          // sun_path is short: bind next to the tree, then move the socket file into place.
          const tmpSock = nodePath.join(tmp, `s${scratch++}`);
          bindUnixSocket(tmpSock);
          fs.renameSync(tmpSock, path);
          break;
        }
        default:
          throw new Error(`unknown entry type ${(spec as { type: unknown }).type}`);
      }
      applyAttrs(path, spec, spec.type === 'socket' ? 0o755 : 0o644);
      if (spec.mtime !== undefined) fileMtimes.push({ path, mtime: toNs(spec.mtime), depth });
    } catch (e) {
      const err = e as Error;
      if (!err.message.startsWith('[makeTree')) err.message = `[makeTree ${where}] ${err.message}`;
      throw err;
    }
  };

  try {
    fs.mkdirSync(root);
    const rootSpec: DirSpec = isDirSpec(spec) ? spec : dir(spec);
    if (rootSpec.type !== 'dir') throw new Error('the root of a tree must be a directory');
    create(rootBuf, Buffer.alloc(0), rootSpec, 0);
    for (const { path, target } of links) {
      const parts = target.toString('latin1').split('/').filter((p) => p !== '');
      const targetPath = Buffer.concat([rootBuf, ...parts.map((p) => Buffer.concat([Buffer.from('/'), Buffer.from(p, 'latin1')]))]);
      try {
        fs.linkSync(targetPath, path);
      } catch (e) {
        (e as Error).message = `[makeTree hardlink to ${showName(target)}] ${(e as Error).message}`;
        throw e;
      }
    }
    for (const p of fileMtimes) setMtimeNs(p.path, p.mtime);
    dirMtimes.sort((a, b) => b.depth - a.depth);
    for (const p of dirMtimes) setMtimeNs(p.path, p.mtime);
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }

  function path(rel: string): string;
  function path(rel: Buffer): Buffer;
  function path(rel: Name): Name {
    if (typeof rel === 'string') return rel === '' ? root : `${root}/${rel.replace(/^\/+/, '')}`;
    let r = rel;
    while (r.length && r[0] === SLASH) r = r.subarray(1);
    return r.length ? joinPath(rootBuf, r) : rootBuf;
  }

  return {
    dir: tmp,
    root,
    path,
    cleanup: () => fsp.rm(tmp, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------------------------------------
// A tree using every feature, for round-trip tests

/**
 * One of everything makeTree can make: file sizes around block boundaries, generated
 * content, setuid/setgid/sticky modes, large uids/gids, nanosecond/pre-epoch/post-2038 mtimes,
 * user/trusted/security xattrs (binary values, also on a symlink and a directory), access and
 * default ACLs, symlinks (relative, absolute, dangling, 4095 bytes), hard links (also across
 * directories), char/block devices with large major/minor, a FIFO, a socket, UTF-8,
 * non-UTF-8 and 255-byte names (or `maxNameLen`), a directory spanning several blocks and a
 * deep chain.
 * Needs root (devices, chown, trusted.* xattrs).
 */
export function fullFeatureSpec(opts: { maxNameLen?: number } = {}): DirSpec {
  const t = (sec: number, nsec: number) => ({ sec, nsec });
  return dir(
    [
      ['empty', file('', { mtime: t(1_600_000_000, 0) })],
      ['hello.txt', file('hello, erofs\n', { uid: 1000, gid: 1000, mtime: t(1_700_000_000, 123_456_789) })],
      ['one-block', file({ size: 4096, pattern: 'text', seed: 'one-block' }, { mtime: t(1_700_000_001, 1) })],
      ['block-and-tail', file({ size: 4096 + 100, pattern: 'random', seed: 'tail' }, { mtime: t(1_700_000_002, 999_999_999) })],
      ['random.bin', file({ size: (1 << 20) + 123, pattern: 'random', seed: 1 }, { mode: 0o600 })],
      ['text.txt', file({ size: 200_000, pattern: 'text', seed: 2 }, { mode: 0o444 })],
      ['zeros', file({ size: 70_000, pattern: 'zero' })],
      ['sparse', file({ size: 3 << 20, pattern: 'hole' })],
      ['setuid', file('#!/bin/sh\n', { mode: 0o4755 })],
      ['setgid', file('#!/bin/sh\n', { mode: 0o2711, gid: 50 })],
      ['big-ids', file('ids\n', { uid: 100_000, gid: 4_000_000_000, mtime: t(1_234_567_890, 500) })],
      ['pre-epoch', file('old\n', { mtime: t(-86_400, 250_000_000) })],
      ['after-2038', file('new\n', { mtime: t(4_102_444_800, 42) })],
      [
        'xattrs',
        file('with xattrs\n', {
          xattrs: {
            'user.empty': Buffer.alloc(0),
            'user.text': 'some text',
            'user.binary': Buffer.from([0, 1, 2, 0xff, 0xfe, 0]),
            'trusted.overlay.opaque': 'y',
            'security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex'),
            'user.long-value': Buffer.alloc(300, 0xab),
          },
        }),
      ],
      ['acl-file', file('acl\n', { mode: 0o640, acl: { access: 'u::rw-,u:1000:r--,g::r--,g:100:rw-,m::rw-,o::---' } })],
      [
        'acl-dir',
        dir(
          { inside: file('x') },
          { acl: { access: 'u::rwx,u:1001:rwx,g::r-x,m::rwx,o::r-x', default: 'u::rwx,g::r-x,g:100:rwx,o::---' } },
        ),
      ],
      ['sticky', dir({}, { mode: 0o1777 })],
      [
        'setgid-dir',
        dir({ child: file('c', { gid: 100 }) }, { mode: 0o2775, gid: 100, xattrs: { 'user.dir': 'yes' }, mtime: t(1_500_000_000, 7) }),
      ],
      ['link', symlink('hello.txt', { mtime: t(1_700_000_003, 3) })],
      ['abs-link', symlink('/etc/passwd', { uid: 1000, gid: 1000 })],
      ['dangling', symlink('does/not/exist')],
      ['long-link', symlink(`${'long/'.repeat(818)}end.x`)],
      ['link-xattrs', symlink('hello.txt', { xattrs: { 'trusted.t': Buffer.from([1]), 'security.s': 'sec' } })],
      ['hard-a', file('shared inode\n', { mode: 0o664, mtime: t(1_650_000_000, 11) })],
      ['hard-b', hardlink('hard-a')],
      ['null', chardev(1, 3, { mode: 0o666 })],
      ['big-chardev', chardev(300, 70_000)],
      ['sda1', blockdev(8, 1, { mode: 0o660, gid: 6 })],
      ['big-blockdev', blockdev(259, 1 << 19)],
      ['fifo', fifo({ mode: 0o600, mtime: t(1_700_000_004, 4) })],
      ['socket', socket({ mtime: t(1_700_000_005, 5) })],
      ['héllo wörld ✓', file('utf-8 name\n')],
      [Buffer.from([0x6c, 0x61, 0x74, 0x69, 0x6e, 0x31, 0x2d, 0xe9, 0xff, 0x80]), file('not utf-8\n')],
      ['n'.repeat(opts.maxNameLen ?? 255), file('longest name\n')],
      ['wide', wideDir(300, (i) => [`entry-with-a-longish-name-${String(i).padStart(4, '0')}`, file(`${i}\n`)])],
      ['deep', deepDir(12)],
      [
        'sub',
        dir(
          {
            nested: dir({ 'hard-c': hardlink('hard-a'), file: file('nested\n', { mtime: t(1_700_000_006, 6) }) }, { mtime: t(1_700_000_007, 7) }),
          },
          { mode: 0o750, uid: 1000, gid: 1000, mtime: t(1_700_000_008, 8) },
        ),
      ],
    ],
    { mode: 0o755, xattrs: { 'user.root': 'root xattr' }, mtime: t(1_700_000_009, 9) },
  );
}
