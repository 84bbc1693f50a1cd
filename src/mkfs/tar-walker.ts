// Tar walker: turns a tar stream into the same TreeInode graph the directory walker builds.
// Members may come in any order, repeat (the later one wins) or leave parents implied; every
// name is resolved inside the image root, so no member can reach outside it.

import { getgid, getuid } from 'node:process';
import { EROFS_NAME_LEN, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFBLK } from '../format/constants.js';
import { encodeDev, MAX_DEV_MAJOR, MAX_DEV_MINOR } from '../format/inode.js';
import { compareXattrs, splitXattrName, type Xattr } from '../format/xattr.js';
import { aclTextToXattr } from '../tar/acl.js';
import { ByteReader, type SeekableFile } from '../tar/bytes.js';
import { openTarInput, type TarInput, TarInputError } from '../tar/input.js';
import { type TarEntry, TarError, TarReader } from '../tar/reader.js';
import { BuildError, tarEndedEarly } from './errors.js';
import type { BuildConfig } from './options.js';
import { eventLoopTurn } from './event-loop.js';
import { asChild, childInode, newInode, type TreeEntry, type TreeInode } from './tree.js';
import { applyMetadataPolicy, isExcluded } from './walker.js';
import type { ImageWriter, Spool } from './writer.js';
import type { RangeCopier } from './range-copier.js';
import { isZero } from './file-copy.js';
import { plannedInlineTail } from './planner.js';
import { type BlockGeometry, byteOffset } from '../format/types.js';

/** Uncompressed --tar=f: file blocks are written to the image while the tar is read. */
export interface DirectData {
  writer: ImageWriter;
  g: BlockGeometry;
  /** Next free block after the superblock's: file data comes first, metadata after it. */
  nextBlk: number;
  /** Tails that go inline after their inode wait here until the inode is placed. */
  tails: Spool;
  /** Copies big members' blocks from a tar file. */
  ranges: RangeCopier;
}

export interface TarWalkResult {
  root: TreeInode;
  /** Stream offset after the end-of-archive marker: the tar's length as a device. */
  tarBytes: number;
}

const AUFS_WH_PREFIX = '.wh.';
const AUFS_WH_DIROPQ = '.wh..wh..opq';
const OVL_OPAQUE = Buffer.from('trusted.overlay.opaque');
const OVL_ORIGIN = Buffer.from('trusted.overlay.origin');
const NO_XATTRS: Xattr[] = [];

const MODE_OF: Record<Exclude<TarEntry['type'], 'hardlink'>, number> = {
  file: S_IFREG,
  directory: S_IFDIR,
  symlink: S_IFLNK,
  chardev: S_IFCHR,
  blockdev: S_IFBLK,
  fifo: S_IFIFO,
};

/** Per-directory name index, only while the tree is being built. */
type Names = Map<string, TreeEntry>;

/**
 * Reads the whole stream. In --tar=f, file data goes straight to its blocks in the image
 * (`direct`, uncompressed) or to `spool` until it is compressed; in index mode it stays in
 * the tar and inodes record where; a headerball has none.
 */
export async function walkTar(
  cfg: BuildConfig,
  spool: Spool | null,
  direct: DirectData | null,
  /** Told the number of members read so far, after each. */
  scanned?: (members: number) => void,
): Promise<TarWalkResult> {
  const shownSource = cfg.source === '' || cfg.source === '-' ? '<stdin>' : cfg.source;
  const warn = (m: string) => cfg.log('warn', `${shownSource}: ${m}`);
  let input: TarInput;
  try {
    input = await openTarInput(cfg.source, cfg.tar!.decompress);
  } catch (e) {
    if (e instanceof TarInputError) throw new BuildError(e.message);
    throw e;
  }
  try {
    // The index points into the tar as stored, which is then attached as a device: offsets
    // into a decompressed stream would name the wrong bytes of the compressed file.
    if (cfg.tar!.mode === 'index' && input.compression !== 'none') {
      throw new BuildError(`${shownSource}: --tar=i needs an uncompressed tar (this one is ${input.compression}-compressed): the image points into the tar, which is attached as its device; decompress it first`);
    }
    return await walkMembers(cfg, input, spool, direct, shownSource, warn, scanned);
  } finally {
    // Big members may be being copied from the tar still: it stays open until they are.
    if (direct?.ranges.inUse) direct.ranges.releaseAfterClose(() => input.close());
    else input.close();
  }
}

async function walkMembers(
  cfg: BuildConfig,
  input: TarInput,
  spool: Spool | null,
  direct: DirectData | null,
  shownSource: string,
  warn: (m: string) => void,
  scanned: ((members: number) => void) | undefined,
): Promise<TarWalkResult> {
  const tar = cfg.tar!;
  const bytes = new ByteReader(input.source);
  const reader = new TarReader(bytes, { headerball: tar.mode === 'headerball', warn });
  const names = new Map<TreeInode, Names>();
  const whiteoutDirs = new Set<TreeInode>();

  const rootIds = applyMetadataPolicy(cfg, '/', {
    uid: getuid?.() ?? 0,
    gid: getgid?.() ?? 0,
    mtime: cfg.buildTime,
    mtimeNsec: 0,
  });
  const root = newInode(S_IFDIR | 0o777, rootIds, '', null);
  root.parent = root;
  names.set(root, new Map());

  const mkdirImplied = (parent: TreeInode, name: string): TreeEntry => {
    // An implied parent looks like its own parent until (if ever) its member arrives.
    const mode = S_IFDIR | 0o755 | (parent.mode & 0o022);
    const inode = newInode(mode, parent, name, parent);
    names.set(inode, new Map());
    const entry: TreeEntry = { name: inode.name, inode };
    names.get(parent)!.set(name, entry);
    return entry;
  };

  /** The directory holding `parts[0..n)`, creating missing ones; null if a part is not a directory. */
  const parentOf = (parts: string[], create: boolean): TreeInode | null => {
    let dir = root;
    for (let i = 0; i < parts.length - 1; i++) {
      let e = names.get(dir)!.get(parts[i]!);
      if (!e) {
        if (!create) return null;
        e = mkdirImplied(dir, parts[i]!);
      }
      if (!e.inode.children) return null;
      dir = e.inode;
    }
    return dir;
  };

  const excluding = cfg.excludePaths.size > 0 || cfg.excludeRegexes.length > 0;
  let entry: TarEntry | null;
  let members = 0;
  try {
    for (;;) {
      const next = reader.next();
      entry = next instanceof Promise ? await next : next;
      if (!entry) break;
      // A tar file is read without waiting for anything: signal handlers and the caller's
      // abort get a turn of the event loop now and then, and more often while big members
      // are being copied (the next copy starts only at a turn).
      if (++members % PAUSE_EVERY_MEMBERS === 0 || (direct?.ranges.busy && members % PAUSE_EVERY_MEMBERS_COPYING === 0)) await eventLoopTurn(cfg.signal);
      else cfg.signal?.throwIfAborted();
      scanned?.(members);
      const at = entry.headerOffset;
      // The name is decoded only for a message.
      const path = entry.path;
      const fail = (m: string): never => {
        throw new BuildError(`${shownSource}: ${JSON.stringify(path.toString())} at offset ${at}: ${m}`);
      };
      const parts = splitPath(entry.path, fail);
      if (excluding && excludedPath(cfg, parts)) {
        cfg.log('debug', `excluding ${parts.join('/')}`);
        continue;
      }
      const ids = applyMetadataPolicy(cfg, path, entry);
      const xattrs = cfg.xattrTolerance < 0 ? NO_XATTRS : tarXattrs(entry, warn, fail);

      if (parts.length === 0) {
        // "./" sets the root's own attributes.
        if (entry.type !== 'directory') fail('the root must be a directory');
        Object.assign(root, ids, { mode: S_IFDIR | entry.mode, xattrs });
        continue;
      }
      let name = parts[parts.length - 1]!;
      const parent = parentOf(parts, true);
      if (!parent) fail('a parent is not a directory');
      const dirNames = names.get(parent!)!;

      let whiteout = false;
      if (tar.aufs) {
        if (name === AUFS_WH_DIROPQ) {
          // The directory hides everything below it in lower layers.
          parent!.xattrs = withXattr(parent!.xattrs, OVL_OPAQUE, Buffer.from('y'));
          continue;
        }
        if (name.startsWith(AUFS_WH_PREFIX)) {
          name = name.slice(AUFS_WH_PREFIX.length);
          whiteout = true;
          if (name === '' || name === '.' || name === '..') fail('invalid whiteout name');
        }
      }
      const existing = dirNames.get(name);

      if (entry.type === 'hardlink' && !whiteout) {
        const targetParts = splitPath(entry.linkpath, fail);
        const targetDir = targetParts.length > 0 ? parentOf(targetParts, false) : null;
        const target = targetDir && names.get(targetDir)!.get(targetParts[targetParts.length - 1]!);
        if (!target) fail(`hard link target ${JSON.stringify(entry.linkpath.toString())} does not exist (yet)`);
        if (target!.inode.children) fail('hard link to a directory');
        if (target === existing) continue;
        if (existing) existing.inode = target!.inode;
        else dirNames.set(name, { name, inode: target!.inode });
        continue;
      }

      if (whiteout) {
        // An overlayfs whiteout: a character device 0:0 with no permission bits.
        const inode = newInode(S_IFCHR, ids, name, parent!);
        whiteoutDirs.add(parent!);
        if (existing) existing.inode = inode;
        else dirNames.set(name, { name: inode.name, inode });
        continue;
      }

      const type = entry.type as Exclude<TarEntry['type'], 'hardlink'>;
      if (existing && existing.inode.children && type === 'directory') {
        // A directory listed again (or after its contents): new attributes, same contents.
        Object.assign(existing.inode, ids, { mode: S_IFDIR | entry.mode, xattrs });
        continue;
      }
      const inode = newInode(MODE_OF[type] | entry.mode, ids, name, parent!);
      inode.xattrs = xattrs;
      switch (type) {
        case 'directory':
          inode.children = [];
          names.set(inode, new Map());
          break;
        case 'symlink':
          if (entry.linkpath.length === 0) fail('empty symlink target');
          inode.symlink = Buffer.from(entry.linkpath);
          inode.size = inode.symlink.length;
          break;
        case 'chardev':
        case 'blockdev':
          // i_rdev holds Linux's 32-bit dev_t: more bits would be cut off, another device read back.
          if (entry.devmajor > MAX_DEV_MAJOR || entry.devminor > MAX_DEV_MINOR) {
            fail(`device number ${entry.devmajor}:${entry.devminor} does not fit an EROFS inode (major up to ${MAX_DEV_MAJOR}, minor up to ${MAX_DEV_MINOR})`);
          }
          inode.rdev = encodeDev(entry.devmajor, entry.devminor);
          break;
        case 'file':
          inode.size = entry.fileSize;
          if (tar.mode === 'index') {
            inode.dataOffset = entry.dataOffset;
          } else if (tar.mode === 'full' && entry.size > 0) {
            let written: void | Promise<void>;
            if (direct) written = writeDirect(cfg, direct, reader, bytes.file, entry, inode, shownSource);
            else {
              inode.dataOffset = spool!.length;
              written = reader.readData((piece) => spool!.append(piece));
            }
            if (written) await written;
          }
          break;
      }
      if (existing) existing.inode = inode;
      else dirNames.set(name, { name: inode.name, inode });
    }
  } catch (e) {
    if (e instanceof TarError) throw new BuildError(`${shownSource}: ${e.message}`);
    if (isZlibError(e)) throw new BuildError(`${shownSource}: gzip: ${(e as Error).message}`);
    if (e instanceof Error && /^(xz|zstd): /.test(e.message)) throw new BuildError(`${shownSource}: ${e.message}`);
    throw e;
  }

  finishTree(root, names, whiteoutDirs, tar.ovlfsStrip);
  return { root, tarBytes: reader.offset };
}

/** The walk of a tar file gives the event loop a turn after this many members. */
const PAUSE_EVERY_MEMBERS = 512;
/** ...and after this many while big members are being copied, so the next copies start. */
const PAUSE_EVERY_MEMBERS_COPYING = 16;

/** Below this, a file's bytes are cheaper to read along with the headers than to copy apart. */
const KERNEL_COPY_MIN = 64 << 10;

/**
 * Copies a file's data from the tar into its final blocks (its inline tail to the spool);
 * at once, with no promise, where no read has to wait (see TarReader.next).
 */
function writeDirect(
  cfg: BuildConfig,
  direct: DirectData,
  reader: TarReader,
  file: SeekableFile | null,
  entry: TarEntry,
  inode: TreeInode,
  shownSource: string,
): void | Promise<void> {
  const { blksz } = direct.g;
  const inline = plannedInlineTail(cfg, direct.g, inode);
  const blockBytes = inline ? inode.size - (inode.size % blksz) : inode.size;
  const startBlk = direct.nextBlk;
  const base = startBlk * blksz;
  let pos = 0;
  inode.dataOffset = inline ? direct.tails.length : -1;
  // The image file is new: runs of zeros are left as holes, never written. The rest of a
  // file's last block is its own padding, so the next file's write can merge across it.
  const toBlocks = (piece: Buffer): void => {
    if (!isZero(piece)) direct.writer.writeAt(byteOffset(base + pos), piece, blksz);
    pos += piece.length;
  };
  const rest = (): void | Promise<void> => {
    const finish = (): void => {
      direct.nextBlk += Math.ceil(blockBytes / blksz);
      inode.dataBlk = startBlk;
    };
    const read = reader.readData((piece) => {
      const n = Math.max(0, Math.min(piece.length, blockBytes - pos));
      if (n > 0) toBlocks(piece.subarray(0, n));
      if (n < piece.length) {
        direct.tails.append(piece.subarray(n));
        pos += piece.length - n;
      }
    });
    if (read) return read.then(finish);
    finish();
  };
  if (file && blockBytes >= KERNEL_COPY_MIN) {
    // A plain tar file: big files are copied in the kernel, on libuv's thread pool while
    // the walk goes on, and never read here.
    direct.ranges.copy({ fd: file.fd, at: entry.dataOffset, dst: base, length: blockBytes, endedAt: () => tarEndedEarly(shownSource) });
    pos = blockBytes;
    const skipped = reader.skipData(blockBytes);
    return skipped ? skipped.then(rest) : rest();
  }
  if (reader.streamFd !== null && blockBytes >= KERNEL_COPY_MIN) {
    // A plain tar on a pipe: what of a big file is not read yet moves to its blocks in the
    // kernel (splice), saving a copy through this process's memory.
    return reader
      .moveData(blockBytes, toBlocks, (pipeFd, length) => {
        const moved = direct.writer.spliceFrom(pipeFd, byteOffset(base + pos), length);
        if (typeof moved === 'number') pos += moved;
        return moved;
      })
      .then(rest);
  }
  return rest();
}

/** Excluding a directory excludes what is below it, as in a directory walk. */
function excludedPath(cfg: BuildConfig, parts: readonly string[]): boolean {
  let rel = '';
  for (const p of parts) {
    rel = rel === '' ? p : `${rel}/${p}`;
    if (isExcluded(cfg, rel)) return true;
  }
  return false;
}


/**
 * A member name as path components inside the root: empty and "." parts dropped, ".." going
 * up but never above the root, so absolute and climbing names stay inside the image.
 */
export function splitPath(path: Buffer, fail: (m: string) => never): string[] {
  if (path.includes(0)) fail('NUL byte in name');
  const parts: string[] = [];
  for (const p of path.toString('latin1').split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else if (p.length > EROFS_NAME_LEN) fail(`name component longer than ${EROFS_NAME_LEN} bytes`);
    else parts.push(p);
  }
  return parts;
}

const ACL_TEXT: ReadonlyArray<['aclAccess' | 'aclDefault', string]> = [
  ['aclAccess', 'system.posix_acl_access'],
  ['aclDefault', 'system.posix_acl_default'],
];

function tarXattrs(entry: TarEntry, warn: (m: string) => void, fail: (m: string) => never): Xattr[] {
  // ACLs as text (bsdtar writes them only so) become the xattrs GNU tar would also have written.
  let xattrs = entry.xattrs;
  for (const [field, name] of ACL_TEXT) {
    const text = entry[field];
    if (text === null || xattrs.has(name) || (field === 'aclDefault' && entry.type !== 'directory')) continue;
    const value = aclTextToXattr(text);
    if (!value) {
      warn(`${JSON.stringify(entry.path.toString())}: ACL ${JSON.stringify(text)} cannot be stored (needs numeric ids and the owner, group and other entries), skipped`);
      continue;
    }
    if (xattrs === entry.xattrs) xattrs = new Map(xattrs);
    xattrs.set(name, value);
  }
  if (xattrs.size === 0) return NO_XATTRS;
  const out: Xattr[] = [];
  for (const [key, value] of xattrs) {
    const name = Buffer.from(key, 'latin1');
    // The kernel has no handler for other namespaces: such xattrs could never be read back.
    if (!splitXattrName(name)) {
      warn(`${JSON.stringify(entry.path.toString())}: xattr ${key} has no EROFS prefix, skipped`);
      continue;
    }
    if (value.length > 0xffff) fail(`xattr ${key} value too large`);
    out.push({ name, value });
  }
  return out.length === 0 ? NO_XATTRS : out.sort(compareXattrs);
}

function withXattr(list: Xattr[], name: Buffer, value: Buffer): Xattr[] {
  return [...list.filter((x) => !name.equals(x.name)), { name, value }].sort(compareXattrs);
}

const isWhiteout = (i: TreeInode): boolean => (i.mode & S_IFMT) === S_IFCHR && i.rdev === 0;

/**
 * Sorted children, link counts, and the overlayfs marks: a directory holding whiteouts gets
 * an empty trusted.overlay.origin so overlayfs never lists it directly (and shows whiteouts
 * as devices), unless --ovlfs-strip drops whiteouts and opaque marks altogether.
 */
function finishTree(root: TreeInode, names: Map<TreeInode, Names>, whiteoutDirs: Set<TreeInode>, strip: boolean): void {
  const stack = [root];
  const reached = new Set<TreeInode>();
  while (stack.length > 0) {
    const dir = stack.pop()!;
    reached.add(dir);
    let entries = [...names.get(dir)!.values()];
    if (strip) {
      entries = entries.filter((e) => !isWhiteout(e.inode));
      dir.xattrs = dir.xattrs.filter((x) => !OVL_OPAQUE.equals(x.name));
      if (dir.xattrs.length === 0) dir.xattrs = NO_XATTRS;
    } else if (whiteoutDirs.has(dir) && entries.some((e) => isWhiteout(e.inode))) {
      dir.xattrs = withXattr(dir.xattrs, OVL_ORIGIN, Buffer.alloc(0));
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    dir.children = entries.map((e) => asChild(e.name, e.inode));
    for (const e of entries) if (e.inode.children) stack.push(e.inode);
  }
  for (const dir of reached) {
    let subdirs = 0;
    for (const c of dir.children!) {
      const inode = childInode(c);
      if (inode.children) {
        subdirs++;
        inode.parent = dir;
      } else inode.nlink = 0;
    }
    dir.nlink = 2 + subdirs;
  }
  for (const dir of reached) {
    for (const c of dir.children!) {
      const inode = childInode(c);
      if (!inode.children) inode.nlink++;
    }
  }
}

function isZlibError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
