// Directory walker: lstat()s the source tree into a TreeInode graph (metadata only).

import { readdirSync, readlinkSync } from 'node:fs';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../format/constants.js';
import { encodeDev } from '../format/inode.js';
import { compareXattrs, splitXattrName, type Xattr } from '../format/xattr.js';
import { BuildError, describeFsError } from './errors.js';
import type { BuildConfig } from './options.js';
import { asChild, childInode, newInode, type TreeChild, type TreeInode } from './tree.js';
import { readXattrs, XattrReadError } from './xattr-source.js';
import { lstatSource, type SourceStat } from './stat.js';
import { writeLatin1 } from '../latin1.js';

const SLASH = 0x2f;
/** Shared by every inode without xattrs, the usual case: one array, not one per inode. */
const NO_XATTRS: Xattr[] = [];
const U32 = 0xffffffff;
const SUPPORTED_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK]);

/** Applies --force-uid/gid, --all-root, the id offsets and the timestamp policy. */
export function applyMetadataPolicy(
  cfg: BuildConfig,
  /** For messages only (decoded when one is needed). */
  path: string | Buffer,
  st: { uid: number; gid: number; mtime: number; mtimeNsec: number },
): Pick<TreeInode, 'uid' | 'gid' | 'mtime' | 'mtimeNsec'> {
  const uid = (cfg.fixedUid ?? st.uid) + cfg.uidOffset;
  const gid = (cfg.fixedGid ?? st.gid) + cfg.gidOffset;
  if (uid > U32) throw new BuildError(`${path.toString()}: uid overflow (${uid})`);
  if (gid > U32) throw new BuildError(`${path.toString()}: gid overflow (${gid})`);
  let { mtime, mtimeNsec } = st;
  if (cfg.timeInherit === 'fixed' || (cfg.timeInherit === 'clamp' && mtime >= cfg.buildTime)) {
    mtime = cfg.buildTime;
    mtimeNsec = 0;
  }
  return { uid, gid, mtime, mtimeNsec };
}

export interface WalkResult {
  root: TreeInode;
  inodeCount: number;
}

/**
 * A directory path and a latin1 name joined byte for byte (names may not be UTF-8), with a
 * NUL after them: lstat and the xattr calls take it as it is, one copy for all of them.
 */
function joinTerminated(dir: Buffer, name: string): Buffer {
  const out = Buffer.allocUnsafe(dir.length + name.length + 2);
  dir.copy(out, 0);
  out[dir.length] = SLASH;
  writeLatin1(out, name, dir.length + 1);
  out[out.length - 1] = 0;
  return out;
}

/**
 * The walk pauses after this many entries, giving back the entries found so far: a tree of
 * a million files takes seconds to walk, and meanwhile signals, progress and the threads'
 * messages need the event loop.
 */
const PAUSE_EVERY_ENTRIES = 512;
/** ...and after this many while big files are being copied, so the next copies start. */
const PAUSE_EVERY_ENTRIES_COPYING = 16;

/** How far a walk has got, updated as it goes: what is left of it can be estimated. */
export class WalkProgress {
  dirsWalked = 0;
  /** Names in the directories walked (or being walked). */
  namesSeen = 0;
  /** Directories found and not walked yet. */
  dirsPending = 0;
  /** Names of the directory being walked not looked at yet. */
  namesLeftHere = 0;

  /** Entries still to come, taking every directory not walked yet to be as big as the average so far. */
  entriesLeft(): number {
    return this.namesLeftHere + (this.dirsWalked === 0 ? 0 : (this.dirsPending * this.namesSeen) / this.dirsWalked);
  }
}

/**
 * Walks the source tree in inode order (directory by directory, depth first, names sorted),
 * pausing every PAUSE_EVERY_ENTRIES entries, and more often while `copying()` says so.
 * `onSettledFile` sees each regular file whose inode is final as soon as it is found: not
 * hard-linked and without xattrs, so no later entry can change its form.
 */
export function* walkSource(
  cfg: BuildConfig,
  onSettledFile?: (inode: TreeInode, path: Buffer) => void,
  copying?: () => boolean,
  progress = new WalkProgress(),
): Generator<number, WalkResult, void> {
  const rootPath = Buffer.from(cfg.source);
  const hardlinks = new Map<string, TreeInode>();
  let inodeCount = 0;
  /** Names looked at, excluded ones too: the pauses come at a steady pace. */
  let looked = 0;
  const excluding = cfg.excludePaths.size > 0 || cfg.excludeRegexes.length > 0;

  /** `cpath` is `path` with a NUL after it, when the caller has one. */
  const makeInode = (path: Buffer, name: string, st: SourceStat, parent: TreeInode | null, cpath = path): TreeInode => {
    const mode = st.mode;
    const type = mode & S_IFMT;
    const ids = applyMetadataPolicy(cfg, path, { uid: st.uid, gid: st.gid, mtime: st.mtimeSec, mtimeNsec: st.mtimeNsec });
    const inode = newInode(mode, ids, name, parent);
    if (cfg.xattrTolerance >= 0) inode.xattrs = readSourceXattrs(cfg, path, cpath);
    switch (type) {
      case S_IFREG:
        inode.size = st.size;
        break;
      case S_IFLNK:
        try {
          inode.symlink = readlinkSync(path, { encoding: 'buffer' });
        } catch (e) {
          throw new BuildError(`${path.toString()}: cannot read symlink: ${describeFsError(e)}`);
        }
        inode.size = inode.symlink.length;
        break;
      case S_IFCHR:
      case S_IFBLK:
        inode.rdev = encodeDev(st.rdevMajor, st.rdevMinor);
        break;
    }
    inodeCount++;
    return inode;
  };

  let rootStat: SourceStat;
  try {
    rootStat = lstatSource(rootPath);
  } catch (e) {
    throw new BuildError(`${cfg.source}: ${describeFsError(e)}`);
  }
  if ((rootStat.mode & S_IFMT) !== S_IFDIR) throw new BuildError(`${cfg.source}: not a directory`);
  const root = makeInode(rootPath, rootPath.toString('latin1'), rootStat, null);
  root.parent = root;

  const stack: Array<{ inode: TreeInode; path: Buffer; rel: string }> = [{ inode: root, path: rootPath, rel: '' }];
  while (stack.length > 0) {
    const { inode: dir, path, rel } = stack.pop()!;
    let names: string[];
    try {
      // latin1 keeps every byte of a name, and sorts bytewise.
      names = readdirSync(path, { encoding: 'latin1' });
    } catch (e) {
      throw new BuildError(`${path.toString()}: cannot read directory: ${describeFsError(e)}`);
    }
    names.sort();
    progress.dirsWalked++;
    progress.namesSeen += names.length;
    progress.dirsPending = stack.length;
    progress.namesLeftHere = names.length;
    const entries: TreeChild[] = [];
    const subdirs: Array<{ inode: TreeInode; path: Buffer; rel: string }> = [];
    for (const name of names) {
      progress.namesLeftHere--;
      if (++looked % PAUSE_EVERY_ENTRIES === 0 || (looked % PAUSE_EVERY_ENTRIES_COPYING === 0 && copying?.())) yield inodeCount;
      let childRel = '';
      if (excluding) {
        const utf8 = Buffer.from(name, 'latin1').toString();
        childRel = rel === '' ? utf8 : `${rel}/${utf8}`;
        if (isExcluded(cfg, childRel)) {
          cfg.log('debug', `excluding ${childRel}`);
          continue;
        }
      }
      const childZ = joinTerminated(path, name);
      const childPath = childZ.subarray(0, -1);
      let st: SourceStat;
      try {
        st = lstatSource(childZ);
      } catch (e) {
        throw new BuildError(`${childPath.toString()}: ${describeFsError(e)}`);
      }
      const type = st.mode & S_IFMT;
      if (!SUPPORTED_TYPES.has(type)) {
        cfg.log('warn', `${childPath.toString()}: unsupported file type, skipped`);
        continue;
      }
      let child: TreeInode | undefined;
      const linked = type !== S_IFDIR && !cfg.hardDereference && st.nlink > 1;
      if (linked) child = hardlinks.get(st.key);
      if (!child) {
        child = makeInode(childPath, name, st, dir, childZ);
        if (linked) hardlinks.set(st.key, child);
      }
      child.nlink++;
      entries.push(asChild(name, child));
      if (type === S_IFDIR) {
        subdirs.push({ inode: child, path: childPath, rel: childRel });
        progress.dirsPending++;
      }
      else if (type === S_IFREG && !linked && child.xattrs.length === 0) onSettledFile?.(child, childPath);
    }
    dir.children = entries;
    // The first subdirectory is walked next, as inodeOrder numbers them.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
  countDirLinks(root);
  return { root, inodeCount };
}

function countDirLinks(root: TreeInode): void {
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let subdirs = 0;
    for (const c of dir.children!) {
      const inode = childInode(c);
      if (inode.children) {
        subdirs++;
        stack.push(inode);
      }
    }
    dir.nlink = 2 + subdirs;
  }
}

export function isExcluded(cfg: BuildConfig, rel: string): boolean {
  if (cfg.excludePaths.has(rel)) return true;
  for (const r of cfg.excludeRegexes) if (r.test(rel)) return true;
  return false;
}

function readSourceXattrs(cfg: BuildConfig, path: Buffer, cpath: Buffer): Xattr[] {
  let all: Xattr[];
  try {
    all = readXattrs(cpath);
  } catch (e) {
    if (e instanceof XattrReadError) throw new BuildError(`${path.toString()}: ${e.message}`);
    throw e;
  }
  const kept: Xattr[] = [];
  for (const x of all) {
    // The kernel has no handler for other namespaces: such xattrs could never be read back.
    if (!splitXattrName(x.name)) {
      cfg.log('warn', `${path.toString()}: xattr ${Buffer.from(x.name).toString()} has no EROFS prefix, skipped`);
      continue;
    }
    if (x.value.length > 0xffff) throw new BuildError(`${path.toString()}: xattr value too large`);
    kept.push(x);
  }
  return kept.length === 0 ? NO_XATTRS : kept.sort(compareXattrs);
}
