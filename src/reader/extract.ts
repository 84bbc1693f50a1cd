// Writing an image's tree out to a directory: files (sparse where the image has
// holes), directories, symlinks, device nodes, FIFOs, sockets, hard links, and
// then xattrs, owners, modes and nanosecond mtimes.
//
// Nothing is ever written outside the target: names come validated from the
// directory reader (no '/', no NUL, not "." or ".."), every directory we descend
// into was created by us or checked with lstat to be a real directory (never a
// symlink), and files are created with O_EXCL | O_NOFOLLOW.

import { chmodSync, closeSync, constants as fsConstants, ftruncateSync, lchownSync, linkSync, lstatSync, mkdirSync, openSync, realpathSync, statSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import * as nodePath from 'node:path';
import { S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK } from '../format/constants.js';
import type { Nid } from '../format/types.js';
import type { ErofsImage } from './index.js';
import type { Inode } from './inode.js';
import { SyscallError, lsetxattr, makedev, mknod, setTimes } from './native.js';
import type { WalkEntry } from './walk.js';

export interface ExtractOptions {
  /** Target directory (created if missing). */
  dir: string;
  /** Allow extracting onto "/". */
  force?: boolean;
  /** Replace existing non-directory entries. */
  overwrite?: boolean;
  /** Set owners from the image (default: when running as root). */
  preserveOwner?: boolean;
  /** Set permission bits exactly (default: when root; otherwise the umask applies). */
  preservePerms?: boolean;
  /** Restore xattrs (default true). */
  xattrs?: boolean;
}

/** A problem that stops one entry from being extracted; the image itself may be fine. */
export class ExtractError extends Error {}

const DATA_CHUNK = 1 << 20;
const O_NOFOLLOW = fsConstants.O_NOFOLLOW;

export class Extractor {
  private readonly root: Buffer;
  private readonly preserveOwner: boolean;
  private readonly preservePerms: boolean;
  private readonly umask: number;
  /** First extracted path of every non-directory inode, for hard links. */
  private readonly linked = new Map<number, Buffer>();
  /** Directories whose attributes are applied after their contents (deepest first). */
  private readonly pendingDirs: Array<{ path: Buffer; inode: Inode }> = [];
  readonly warnings: string[] = [];

  constructor(
    private readonly img: ErofsImage,
    private readonly opts: ExtractOptions,
  ) {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    this.preserveOwner = opts.preserveOwner ?? isRoot;
    this.preservePerms = opts.preservePerms ?? isRoot;
    this.umask = process.umask();
    this.root = Buffer.from(nodePath.resolve(opts.dir));
  }

  /** Prepares the target directory; throws ExtractError if it cannot be used. */
  begin(): void {
    try {
      mkdirSync(this.root, { recursive: true });
      const real = realpathSync(this.root);
      if (real.toString() === '/' && !this.opts.force) throw new ExtractError('refusing to extract to "/" without --force');
      if (!statSync(this.root).isDirectory()) throw new ExtractError(`${this.root.toString()} is not a directory`);
    } catch (e) {
      if (e instanceof ExtractError) throw e;
      throw new ExtractError(`cannot use ${this.root.toString()} as extraction target: ${(e as Error).message}`);
    }
  }

  private target(e: WalkEntry): Buffer {
    // e.path is absolute inside the image ("/" for the root, "/a/b" otherwise).
    return e.path.length === 1 ? this.root : Buffer.concat([this.root, e.path]);
  }

  /** Creates the entry (file data included). Returns false if a directory could not be made. */
  create(e: WalkEntry): boolean {
    const path = this.target(e);
    const ino = e.inode;
    if (ino.kind === 'dir') {
      if (e.depth > 0) this.makeDir(path);
      this.pendingDirs.push({ path, inode: ino });
      return true;
    }
    const first = this.linked.get(e.nid);
    if (first !== undefined) {
      this.replaceable(path, () => linkSync(first, path));
      return true;
    }
    switch (ino.kind) {
      case 'file':
        this.writeFile(path, e.nid, ino);
        break;
      case 'symlink': {
        const target = this.img.readlink(e.nid);
        this.replaceable(path, () => symlinkSync(target, path));
        break;
      }
      case 'chardev':
      case 'blockdev':
      case 'fifo':
      case 'socket': {
        const type = { chardev: S_IFCHR, blockdev: S_IFBLK, fifo: S_IFIFO, socket: S_IFSOCK }[ino.kind];
        const dev = ino.kind === 'chardev' || ino.kind === 'blockdev' ? makedev(ino.rdev.major, ino.rdev.minor) : 0n;
        try {
          this.replaceable(path, () => mknod(path, type | 0o600, dev));
        } catch (err) {
          if (err instanceof SyscallError && err.code === 'EPERM') {
            this.warnings.push(`${e.path.toString()}: cannot create ${ino.kind} (not permitted); skipped`);
            return true;
          }
          throw err;
        }
        break;
      }
    }
    this.linked.set(e.nid, path);
    this.applyAttributes(path, ino, e.nid);
    return true;
  }

  /** Runs `make`; on EEXIST removes the old non-directory entry if --overwrite allows it. */
  private replaceable(path: Buffer, make: () => void): void {
    try {
      make();
      return;
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
    }
    const st = lstatSync(path);
    if (!this.opts.overwrite) throw new ExtractError(`${path.toString()} already exists (use --overwrite)`);
    if (st.isDirectory()) throw new ExtractError(`${path.toString()} is an existing directory`);
    unlinkSync(path);
    make();
  }

  private makeDir(path: Buffer): void {
    try {
      mkdirSync(path, 0o700);
      return;
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
    }
    // Only ever descend into a real directory, never through a symlink.
    const st = lstatSync(path);
    if (st.isDirectory()) return;
    if (!this.opts.overwrite) throw new ExtractError(`${path.toString()} exists and is not a directory (use --overwrite)`);
    unlinkSync(path);
    mkdirSync(path, 0o700);
  }

  private writeFile(path: Buffer, n: Nid, ino: Inode): void {
    const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | O_NOFOLLOW;
    let fd = -1;
    this.replaceable(path, () => {
      fd = openSync(path, flags, 0o600);
    });
    try {
      const write = (data: Uint8Array, pos: number): void => {
        let done = 0;
        while (done < data.length) done += writeSync(fd, data, done, data.length - done, pos + done);
      };
      for (const ext of this.img.extents(n)) {
        if (ext.kind === 'hole') continue;
        if (ext.kind === 'raw' || ext.kind === 'compressed') {
          write(this.img.decodeExtent(n, ext), ext.logical);
          continue;
        }
        const end = ext.logical + ext.length;
        for (let pos = ext.logical; pos < end; pos += DATA_CHUNK) write(this.img.read(n, pos, Math.min(DATA_CHUNK, end - pos)), pos);
      }
      // Trailing holes: set the final size without writing zeros.
      ftruncateSync(fd, ino.size);
    } finally {
      closeSync(fd);
    }
  }

  /** Called once a directory's contents are done; attributes are applied at the end. */
  finish(): void {
    // Deepest first, so that restoring a read-only mode or an mtime is never undone by
    // creating something inside afterwards.
    for (let i = this.pendingDirs.length - 1; i >= 0; i--) {
      const d = this.pendingDirs[i]!;
      this.applyAttributes(d.path, d.inode, d.inode.nid);
    }
    this.pendingDirs.length = 0;
  }

  private applyAttributes(path: Buffer, ino: Inode, n: Nid): void {
    const where = path.toString();
    // Order matters: chown drops security.capability and the setuid/setgid bits, so it
    // comes first; the mode comes after the xattrs (an ACL xattr rewrites the group bits);
    // the times come last.
    if (this.preserveOwner) {
      try {
        lchownSync(path, ino.uid, ino.gid);
      } catch (err) {
        this.warnings.push(`${where}: cannot set owner ${ino.uid}:${ino.gid}: ${(err as Error).message}`);
      }
    }
    if (this.opts.xattrs !== false) {
      for (const x of this.img.listXattrs(n)) {
        try {
          lsetxattr(path, x.name, x.value);
        } catch (err) {
          this.warnings.push(`${where}: cannot set xattr ${x.name.toString()}: ${(err as Error).message}`);
        }
      }
    }
    if (ino.kind !== 'symlink') {
      const perms = ino.mode & 0o7777;
      chmodSync(path, this.preservePerms ? perms : perms & ~this.umask);
    }
    try {
      setTimes(path, ino.mtime, ino.mtimeNsec < 1e9 ? ino.mtimeNsec : 0);
    } catch (err) {
      this.warnings.push(`${where}: cannot set mtime: ${(err as Error).message}`);
    }
  }
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
