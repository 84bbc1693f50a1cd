// The unit every data layout is translated into: a logical byte range of a file
// and where its bytes come from.

import type { ByteOffset } from '../format/types.js';

/**
 * - plain:      stored uncompressed at `physical` (image byte offset), byte for byte.
 * - hole:       reads as zeros (chunk-based holes).
 * - raw:        a compressed-layout pcluster stored uncompressed (PLAIN lcluster).
 * - compressed: a pcluster to decompress with `algorithm`.
 * - fragment:   bytes live in the packed inode, starting at `fragmentOffset` of its data.
 */
export type ExtentKind = 'plain' | 'hole' | 'raw' | 'compressed' | 'fragment';

export interface Extent {
  /** File offset of the first byte. */
  readonly logical: number;
  /** Number of file bytes the extent provides. */
  readonly length: number;
  readonly kind: ExtentKind;
  /** Image byte offset of the stored data (0 for holes and fragments). */
  readonly physical: ByteOffset;
  /** Stored bytes (the pcluster size for raw/compressed; 0 for holes and fragments). */
  readonly physicalLength: number;
  /** Fragments: offset of the extent's first byte within the packed inode's data. */
  readonly fragmentOffset?: number;
  /** Z_EROFS_COMPRESSION_* for compressed extents. */
  readonly algorithm?: number;
  /** The pcluster decodes to more than `length` bytes; only the first `length` are used. */
  readonly partial?: boolean;
  /** Stored inline after the inode (tail packing / flat inline tail). */
  readonly inline?: boolean;
  /** Raw pcluster stored rotated by the extent's in-block offset (INTERLACED_PCLUSTER). */
  readonly interlaced?: boolean;
  /** Chunk-based files: which device holds the chunk (0 = this image). */
  readonly device?: number;
}
