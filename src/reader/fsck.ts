// Whole-image consistency check: walks the tree, loads every inode, parses every
// xattr area (checking the name bloom filter), decodes every extent of every
// file, directory and symlink (and the packed inode), optionally extracting as
// it goes. Problems are collected with the path and what is wrong.

import { EROFS_FEATURE_COMPAT_XATTR_FILTER } from '../format/constants.js';
import type { Nid } from '../format/types.js';
import { CorruptImageError, ErofsError } from './errors.js';
import { ExtractError, type ExtractOptions, Extractor } from './extract.js';
import type { ErofsImage } from './index.js';
import type { Inode } from './inode.js';
import { SyscallError } from './native.js';
import { filterExcludes } from './xattr.js';
import { showPath, walkTree } from './walk.js';

export interface FsckProblem {
  /** Path inside the image ("/" for the root, "(packed inode)" / "(superblock)" for those). */
  readonly path: string;
  readonly nid?: Nid | undefined;
  readonly message: string;
}

export interface FsckOptions {
  extract?: ExtractOptions;
  /** Called as each problem is found (e.g. to print it at once). */
  onProblem?: (p: FsckProblem) => void;
}

export interface FsckReport {
  /** Corruption found in the image. */
  readonly problems: FsckProblem[];
  /** Extraction failures that are not the image's fault (existing files, permissions). */
  readonly extractErrors: string[];
  /** Things that could not be reproduced but are not errors (e.g. devices as non-root). */
  readonly warnings: string[];
  readonly counts: Record<Inode['kind'], number>;
  /** Sum of i_size of regular files. */
  readonly logicalBytes: number;
  /** Stored bytes of regular files' data (pclusters, blocks, inline tails; fragments excluded). */
  readonly storedBytes: number;
}

const CHECK_CHUNK = 4 << 20;

export function fsckImage(img: ErofsImage, opts: FsckOptions = {}): FsckReport {
  const problems: FsckProblem[] = [];
  const extractErrors: string[] = [];
  const counts: Record<Inode['kind'], number> = { file: 0, dir: 0, symlink: 0, chardev: 0, blockdev: 0, fifo: 0, socket: 0 };
  let logicalBytes = 0;
  let storedBytes = 0;
  const report = (path: string, nid: Nid | undefined, message: string): void => {
    const p = { path, nid, message };
    problems.push(p);
    opts.onProblem?.(p);
  };
  const reportError = (path: string, nid: Nid | undefined, e: ErofsError): void => report(path, e.nid ?? nid, e.reason);

  const sb = img.superblock;
  if (img.imageSize < sb.declaredBytes) {
    report('(superblock)', undefined, `image is truncated: ${sb.raw.blocks} blocks declared (${sb.declaredBytes} bytes), file has ${img.imageSize} bytes`);
  }

  let extractor: Extractor | null = null;
  if (opts.extract) {
    extractor = new Extractor(img, opts.extract);
    extractor.begin();
  }

  const checkedFiles = new Set<number>();
  walkTree(img, {
    onEntry(e) {
      const where = showPath(e.path);
      counts[e.inode.kind]++;
      // A hard-linked inode is checked once.
      if (!checkedFiles.has(e.nid)) {
        checkedFiles.add(e.nid);
        try {
          checkXattrs(img, e.nid);
        } catch (err) {
          if (!(err instanceof ErofsError)) throw err;
          reportError(where, e.nid, err);
        }
        try {
          const stored = checkData(img, e.inode);
          if (e.inode.kind === 'file') {
            logicalBytes += e.inode.size;
            storedBytes += stored;
          }
        } catch (err) {
          if (!(err instanceof ErofsError)) throw err;
          reportError(where, e.nid, err);
          // Do not try to extract what cannot be read.
          return e.inode.kind === 'dir' ? undefined : false;
        }
      }
      if (extractor) {
        try {
          extractor.create(e);
        } catch (err) {
          if (err instanceof ErofsError) reportError(where, e.nid, err);
          else if (err instanceof ExtractError || err instanceof SyscallError || isFsError(err)) {
            extractErrors.push(`${where}: ${(err as Error).message}`);
          } else throw err;
          return false;
        }
      }
      return undefined;
    },
    onError(path, nid, err) {
      reportError(showPath(path), nid, err);
    },
  });

  const packed = safe(() => img.packedNid, (e) => reportError('(superblock)', undefined, e));
  if (packed != null) {
    try {
      const p = img.inode(packed);
      if (p.kind !== 'file') report('(packed inode)', packed, 'the packed inode is not a regular file');
      else checkData(img, p);
    } catch (err) {
      if (!(err instanceof ErofsError)) throw err;
      reportError('(packed inode)', packed, err);
    }
  }

  extractor?.finish();
  return {
    problems,
    extractErrors,
    warnings: extractor?.warnings ?? [],
    counts,
    logicalBytes,
    storedBytes,
  };
}

function safe<T>(fn: () => T, onErr: (e: ErofsError) => void): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof ErofsError)) throw e;
    onErr(e);
    return undefined;
  }
}

function isFsError(e: unknown): boolean {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}

/** Parses the xattrs and checks each name against the inode's bloom filter. */
function checkXattrs(img: ErofsImage, n: Nid): void {
  const d = img.xattrDetails(n);
  const sb = img.superblock;
  if (!(sb.featureCompat & EROFS_FEATURE_COMPAT_XATTR_FILTER) || d.entries.length === 0) return;
  for (const x of d.entries) {
    if (filterExcludes(sb, d.nameFilter, x.name)) {
      throw new CorruptImageError(`xattr ${x.name.toString()} is excluded by the inode's name filter`, { nid: n });
    }
  }
}

/**
 * Decodes every extent of an inode's data; returns the stored bytes it occupies.
 * Plain blocks are only range-checked (done while mapping): there is nothing to decode.
 */
function checkData(img: ErofsImage, ino: Inode): number {
  if (ino.kind === 'symlink') {
    const t = img.readlink(ino.nid);
    if (t.includes(0)) throw new CorruptImageError('symlink target contains a NUL byte', { nid: ino.nid });
    return t.length;
  }
  if (ino.kind !== 'file' && ino.kind !== 'dir') return 0;
  let stored = 0;
  const lsz = img.superblock.blksz;
  for (const e of img.extents(ino.nid)) {
    if (e.kind === 'raw' || e.kind === 'compressed') {
      // Readers map any offset (the kernel maps page by page): every lcluster the extent
      // spans must lead back to the same extent, not only its first byte.
      for (let b = Math.ceil((e.logical + 1) / lsz) * lsz; b < e.logical + e.length; b += lsz) {
        const start = img.extentStart(ino.nid, b);
        if (start !== e.logical) {
          throw new CorruptImageError(`offset ${b} maps to an extent starting at ${start}, not ${e.logical}`, { nid: ino.nid });
        }
      }
      img.decodeExtent(ino.nid, e);
      stored += e.physicalLength;
    } else if (e.kind === 'fragment') {
      // Chunked: a whole-file fragment can be as long as the file.
      for (let pos = e.logical; pos < e.logical + e.length; pos += CHECK_CHUNK) {
        img.read(ino.nid, pos, Math.min(CHECK_CHUNK, e.logical + e.length - pos));
      }
    } else if (e.kind === 'plain') {
      stored += e.physicalLength;
    }
  }
  return stored;
}
