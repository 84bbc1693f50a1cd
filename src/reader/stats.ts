// Image-wide statistics for dump.erofs -S: counts by file type, original vs
// stored size of regular files, and power-of-two size histograms.

import { ErofsError } from './errors.js';
import type { ErofsImage } from './index.js';
import type { FileKind } from './inode.js';
import { walkTree } from './walk.js';

export interface SizeBucket {
  /** Inclusive lower bound in bytes. */
  readonly from: number;
  /** Exclusive upper bound in bytes. */
  readonly to: number;
  count: number;
}

export interface ImageStats {
  readonly counts: Record<FileKind, number>;
  /** Distinct inodes reached through the tree. */
  inodes: number;
  compressedFiles: number;
  uncompressedFiles: number;
  chunkedFiles: number;
  /** Sum of i_size over regular files (each hard-linked inode once). */
  originalBytes: number;
  /** Stored data bytes of regular files: blocks, pclusters, inline tails (not fragments). */
  storedBytes: number;
  /** Bytes of regular files kept in the packed inode. */
  fragmentBytes: number;
  readonly originalSizes: SizeBucket[];
  readonly storedSizes: SizeBucket[];
  /** Problems met on the way (the statistics skip what they could not read). */
  readonly errors: string[];
}

function bucket(list: SizeBucket[], size: number): void {
  // Buckets: [0,1K), [1K,2K), [2K,4K), ... doubling.
  let from = 0;
  let to = 1024;
  while (size >= to) {
    from = to;
    to *= 2;
  }
  let b = list.find((x) => x.from === from);
  if (!b) {
    b = { from, to, count: 0 };
    list.push(b);
    list.sort((x, y) => x.from - y.from);
  }
  b.count++;
}

export function collectStats(img: ErofsImage): ImageStats {
  const s: ImageStats = {
    counts: { file: 0, dir: 0, symlink: 0, chardev: 0, blockdev: 0, fifo: 0, socket: 0 },
    inodes: 0,
    compressedFiles: 0,
    uncompressedFiles: 0,
    chunkedFiles: 0,
    originalBytes: 0,
    storedBytes: 0,
    fragmentBytes: 0,
    originalSizes: [],
    storedSizes: [],
    errors: [],
  };
  const seen = new Set<number>();
  walkTree(img, {
    onEntry(e) {
      s.counts[e.inode.kind]++;
      if (seen.has(e.nid)) return;
      seen.add(e.nid);
      s.inodes++;
      if (e.inode.kind !== 'file') return;
      const st = img.stat(e.nid);
      if (st.compressed) s.compressedFiles++;
      else s.uncompressedFiles++;
      if (st.layoutName === 'chunk-based') s.chunkedFiles++;
      let stored = 0;
      try {
        for (const x of img.extents(e.nid)) {
          if (x.kind === 'fragment') s.fragmentBytes += x.length;
          else if (x.kind !== 'hole') stored += x.physicalLength;
        }
      } catch (err) {
        if (!(err instanceof ErofsError)) throw err;
        s.errors.push(`${e.path.toString()}: ${err.reason}`);
      }
      s.originalBytes += st.size;
      s.storedBytes += stored;
      bucket(s.originalSizes, st.size);
      bucket(s.storedSizes, stored);
    },
    onError(path, _nid, err) {
      s.errors.push(`${path.toString()}: ${err.reason}`);
    },
  });
  return s;
}
