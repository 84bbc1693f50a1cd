// Compressed-inode index: struct z_erofs_map_header, full (8-byte) lcluster indexes and
// the compact 4B/2B packs, written so that the kernel's z_erofs_map_blocks_fo() decodes
// them back into the extents they were built from.

import {
  Z_EROFS_ADVISE_COMPACTED_2B,
  Z_EROFS_FULL_INDEX_ALIGN_SIZE,
  Z_EROFS_FULL_INDEX_SIZE,
  Z_EROFS_LCLUSTER_TYPE_HEAD1,
  Z_EROFS_LCLUSTER_TYPE_NONHEAD,
  Z_EROFS_LCLUSTER_TYPE_PLAIN,
  Z_EROFS_LI_D0_CBLKCNT,
  Z_EROFS_MAP_HEADER_SIZE,
} from './constants.js';

/** Page sizes Linux runs with (4 KiB; 16 and 64 KiB on arm64, ppc64, LoongArch). */
export const LINUX_PAGE_SIZES: readonly number[] = [4096, 16384, 65536];

/**
 * Whether the kernel can decompress a tail-packed pcluster starting at this byte offset,
 * on every page size given. Each decompressor first skips zero padding within
 * min(input size, block size - offset in page): with blocks smaller than the page, a
 * pcluster starting exactly one block into a page leaves it no byte to look at, and the
 * read fails with EFSCORRUPTED.
 */
export function inlinePclusterReadable(start: number, blksz: number, pages: readonly number[] = LINUX_PAGE_SIZES): boolean {
  return pages.every((page) => page <= blksz || start % page !== blksz);
}

/** One decompressed extent of a file and the pcluster holding it. */
export interface Extent {
  /** Logical byte offset in the file. */
  start: number;
  length: number;
  /** Stored uncompressed (a PLAIN lcluster head) rather than compressed (HEAD1). */
  raw: boolean;
  /** First block of the pcluster; for an inline tail, where the next pcluster would go. */
  pblk: number;
  /** pcluster length in blocks (1 for raw and inline extents). */
  pblocks: number;
}

/** One lcluster's index record, as in the full (legacy) layout. */
export interface LclusterRecord {
  type: number;
  /** HEAD/PLAIN: where the extent starts inside this lcluster. */
  clusterofs: number;
  /** HEAD/PLAIN: pcluster block address. */
  blkaddr: number;
  /** NONHEAD: lclusters back to the head, or Z_EROFS_LI_D0_CBLKCNT | pcluster blocks. */
  delta0: number;
  /** NONHEAD: lclusters forward to the next head (or EOF). */
  delta1: number;
}

const lclusterRecord = (type: number, clusterofs: number, blkaddr: number, delta0: number, delta1: number): LclusterRecord => ({
  type,
  clusterofs,
  blkaddr,
  delta0,
  delta1,
});

/**
 * Records for extents that tile [0, size) in order. lcluster size = block size.
 * With big pclusters the first NONHEAD after a head carries the pcluster's block count,
 * which is why a multi-block pcluster must decompress to more than its own size.
 * The extents' pblk count from `firstBlk` (their pclusters as compressed, before placing).
 */
export function buildLclusterRecords(extents: readonly Extent[], blkszbits: number, bigPcluster: boolean, firstBlk = 0): LclusterRecord[] {
  const blksz = 1 << blkszbits;
  const out: LclusterRecord[] = [];
  let clusterofs = 0;
  for (const e of extents) {
    let count = e.length;
    let c = clusterofs;
    let d0 = 0;
    let d1 = (c + count) >> blkszbits;
    const headType = e.raw ? Z_EROFS_LCLUSTER_TYPE_PLAIN : Z_EROFS_LCLUSTER_TYPE_HEAD1;
    if (d1 === 0) {
      // The extent ends inside the lcluster it starts in: only the EOF extent can.
      out.push(lclusterRecord(headType, c, firstBlk + e.pblk, 0, 0));
      clusterofs = 0;
      continue;
    }
    do {
      if (d0 === 0) {
        out.push(lclusterRecord(headType, c, firstBlk + e.pblk, 0, 0));
      } else {
        const delta0 =
          d0 === 1 && bigPcluster ? Z_EROFS_LI_D0_CBLKCNT | e.pblocks : Math.min(d0, Z_EROFS_LI_D0_CBLKCNT - 1);
        out.push(lclusterRecord(Z_EROFS_LCLUSTER_TYPE_NONHEAD, 0, 0, delta0, d1));
      }
      count -= blksz - c;
      c = 0;
      d0++;
      d1--;
    } while (c + count >= blksz);
    clusterofs = c + count;
  }
  // The last lcluster is cut by EOF inside an extent that began earlier: a PLAIN record
  // whose clusterofs is the EOF keeps readers from mapping past the end.
  if (clusterofs !== 0) out.push(lclusterRecord(Z_EROFS_LCLUSTER_TYPE_PLAIN, clusterofs, 0, 0, 0));
  return out;
}

export interface MapHeader {
  /** Bytes of the inline (tail-packed) pcluster, 0 if none. */
  idataSize: number;
  advise: number;
  /** h_algorithmtype: low nibble for HEAD1, high nibble for HEAD2. */
  algorithmType: number;
  /** lclusterbits - blkszbits. */
  clusterBits: number;
}

export function encodeMapHeader(h: MapHeader): Uint8Array {
  const b = new Uint8Array(Z_EROFS_MAP_HEADER_SIZE);
  const v = new DataView(b.buffer);
  v.setUint16(2, h.idataSize, true);
  v.setUint16(4, h.advise, true);
  v.setUint8(6, h.algorithmType);
  v.setUint8(7, h.clusterBits);
  return b;
}

export function decodeMapHeader(b: Uint8Array): MapHeader & { fragmentOffset: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    fragmentOffset: v.getUint32(0, true),
    idataSize: v.getUint16(2, true),
    advise: v.getUint16(4, true),
    algorithmType: v.getUint8(6),
    clusterBits: v.getUint8(7),
  };
}

/** Full layout: 16-byte header area (map header + 8 reserved), then 8 bytes per lcluster. */
export function fullIndexSize(lclusters: number): number {
  return Z_EROFS_FULL_INDEX_ALIGN_SIZE + lclusters * Z_EROFS_FULL_INDEX_SIZE;
}

export function encodeFullIndexes(header: MapHeader, records: readonly LclusterRecord[]): Uint8Array {
  const out = new Uint8Array(fullIndexSize(records.length));
  out.set(encodeMapHeader(header), 0);
  const v = new DataView(out.buffer);
  records.forEach((r, i) => {
    const p = Z_EROFS_FULL_INDEX_ALIGN_SIZE + i * Z_EROFS_FULL_INDEX_SIZE;
    v.setUint16(p, r.type, true);
    if (r.type === Z_EROFS_LCLUSTER_TYPE_NONHEAD) {
      v.setUint16(p + 4, r.delta0, true);
      v.setUint16(p + 6, r.delta1, true);
    } else {
      v.setUint16(p + 2, r.clusterofs, true);
      v.setUint32(p + 4, r.blkaddr, true);
    }
  });
  return out;
}

/** How the compact index area of `lclusters` records splits into 4B and 2B packs. */
export interface CompactSplit {
  initial4b: number;
  twoB: number;
  end4b: number;
}

/**
 * `mpos` is where the index area starts, relative to the (32-byte aligned) inode:
 * round_up(inode + xattrs, 8) + 8. Leading 4B packs bring the 2B packs to 32-byte alignment.
 */
export function compactSplit(lclusters: number, mpos: number, use2b: boolean): CompactSplit {
  if (!use2b) return { initial4b: 0, twoB: 0, end4b: lclusters };
  const initial4b = ((32 - (mpos % 32)) / 4) & 7;
  if (initial4b >= lclusters) return { initial4b: 0, twoB: 0, end4b: lclusters };
  const twoB = Math.floor((lclusters - initial4b) / 16) * 16;
  return { initial4b, twoB, end4b: lclusters - initial4b - twoB };
}

/** Bytes of the map header plus compact indexes. */
export function compactIndexSize(lclusters: number, mpos: number, use2b: boolean): number {
  const s = compactSplit(lclusters, mpos, use2b);
  return Z_EROFS_MAP_HEADER_SIZE + s.initial4b * 4 + s.twoB * 2 + Math.ceil(s.end4b / 2) * 8;
}

const LOBITS = 12; // max(lclusterbits, ilog2(Z_EROFS_LI_D0_CBLKCNT) + 1) for lclusters <= 4 KiB

/**
 * pcluster blocks the kernel counts before entry `i` of a pack (z_erofs_load_compact_lcluster):
 * the pack's base address plus this gives the head's block address.
 */
function blocksBefore(types: Uint8Array, los: Uint16Array, i: number, big: boolean): number {
  let nblk = big ? 0 : 1;
  let j = i;
  while (j > 0) {
    j--;
    if (types[j] === Z_EROFS_LCLUSTER_TYPE_NONHEAD) {
      if (big) {
        if (los[j]! & Z_EROFS_LI_D0_CBLKCNT) {
          j--;
          nblk += los[j + 1]! & ~Z_EROFS_LI_D0_CBLKCNT;
        } else {
          j -= los[j]! - 2;
        }
        continue;
      }
      j -= los[j]!;
    }
    if (big || j >= 0) nblk++;
  }
  return nblk;
}

/** A pack's entries (at most 16), reused: packs are encoded one at a time. */
const packTypes = new Uint8Array(16);
const packLos = new Uint16Array(16);

function encodePack(out: DataView, at: number, recs: readonly LclusterRecord[], from: number, vcnt: number, bytes: number, big: boolean, fallbackBase: number): number {
  const encodebits = ((vcnt * bytes - 4) * 8) / vcnt;
  const mask = (1 << encodebits) - 1;
  let firstHead = -1;
  for (let i = 0; i < vcnt; i++) {
    const r = recs[from + i];
    let type: number = Z_EROFS_LCLUSTER_TYPE_PLAIN;
    let lo = 0; // padding entry of an odd final 4B pack
    if (r) {
      type = r.type;
      if (type !== Z_EROFS_LCLUSTER_TYPE_NONHEAD) {
        lo = r.clusterofs;
        if (firstHead < 0) firstHead = i;
      } else if (r.delta0 & Z_EROFS_LI_D0_CBLKCNT) lo = r.delta0;
      else if (i === vcnt - 1) lo = Math.min(r.delta1, Z_EROFS_LI_D0_CBLKCNT - 1); // last field holds delta[1]
      else lo = r.delta0;
    }
    packTypes[i] = type;
    packLos[i] = lo;
    // Fields are packed LSB first; one spans at most three bytes (16 bits, 7 bits in).
    const bitpos = i * encodebits;
    const byte = at + (bitpos >> 3);
    const v = (((type << LOBITS) | lo) & mask) << (bitpos & 7);
    out.setUint8(byte, out.getUint8(byte) | (v & 0xff));
    if (v > 0xff) out.setUint8(byte + 1, out.getUint8(byte + 1) | ((v >>> 8) & 0xff));
    if (v > 0xffff) out.setUint8(byte + 2, out.getUint8(byte + 2) | (v >>> 16));
  }
  const base = firstHead < 0 ? fallbackBase : recs[from + firstHead]!.blkaddr - blocksBefore(packTypes, packLos, firstHead, big);
  out.setUint32(at + vcnt * bytes - 4, base >>> 0, true);
  return base;
}

/** Map header + compact indexes (COMPRESSED_COMPACT); records from buildLclusterRecords. */
export function encodeCompactIndexes(header: MapHeader, records: readonly LclusterRecord[], mpos: number, big: boolean): Uint8Array {
  const use2b = (header.advise & Z_EROFS_ADVISE_COMPACTED_2B) !== 0;
  const out = new Uint8Array(compactIndexSize(records.length, mpos, use2b));
  out.set(encodeMapHeader(header), 0);
  const v = new DataView(out.buffer);
  const s = compactSplit(records.length, mpos, use2b);
  let p = Z_EROFS_MAP_HEADER_SIZE;
  let r = 0;
  let base = 0;
  const pack = (vcnt: number, bytes: number): void => {
    base = encodePack(v, p, records, r, vcnt, bytes, big, base);
    p += vcnt * bytes;
    r += vcnt;
  };
  for (let i = 0; i < s.initial4b; i += 2) pack(2, 4);
  for (let i = 0; i < s.twoB; i += 16) pack(16, 2);
  for (let i = 0; i < s.end4b; i += 2) pack(2, 4);
  return out;
}
