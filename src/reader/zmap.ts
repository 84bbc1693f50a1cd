// Compressed-file index: the map header, full (8-byte) and compact (2B/4B pack)
// lcluster records, and the mapping of a file offset to the extent holding it.
//
// Every lcluster index, delta and block count read from the image is checked
// before use; lookups only ever move strictly backwards (delta[0]) or forwards
// (delta[1]) so a corrupt index cannot loop.

import {
  EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER,
  EROFS_FEATURE_INCOMPAT_FRAGMENTS,
  EROFS_FEATURE_INCOMPAT_ZTAILPACKING,
  EROFS_INODE_COMPRESSED_COMPACT,
  Z_EROFS_ADVISE_BIG_PCLUSTER_1,
  Z_EROFS_ADVISE_BIG_PCLUSTER_2,
  Z_EROFS_ADVISE_COMPACTED_2B,
  Z_EROFS_ADVISE_FRAGMENT_PCLUSTER,
  Z_EROFS_ADVISE_INLINE_PCLUSTER,
  Z_EROFS_ADVISE_INTERLACED_PCLUSTER,
  Z_EROFS_COMPRESSION_MAX,
  Z_EROFS_FULL_INDEX_ALIGN_SIZE,
  Z_EROFS_FULL_INDEX_SIZE,
  Z_EROFS_LCLUSTER_TYPE_HEAD2,
  Z_EROFS_LCLUSTER_TYPE_NONHEAD,
  Z_EROFS_LCLUSTER_TYPE_PLAIN,
  Z_EROFS_LI_D0_CBLKCNT,
  Z_EROFS_LI_PARTIAL_REF,
  Z_EROFS_MAP_HEADER_SIZE,
} from '../format/constants.js';
import { CorruptImageError, UnsupportedFeatureError } from './errors.js';
import type { Extent } from './extent.js';
import type { ImageReader } from './image.js';
import type { Inode } from './inode.js';
import { Z_EROFS_PCLUSTER_MAX_SIZE, type SuperInfo } from './super.js';
import { byteOffset } from '../format/types.js';
import { inlinePclusterReadable } from '../format/zmap.js';

/** Largest decompressed extent accepted (memory bound for hostile images). */
export const MAX_EXTENT_BYTES = 64 * 1024 * 1024;

/** One decoded lcluster record. */
interface Lcluster {
  type: number;
  /** HEAD/PLAIN: where the extent starts inside this lcluster. */
  clusterofs: number;
  /** NONHEAD: distance back to the head (>= 1). */
  delta0: number;
  /** NONHEAD: distance forward to the next head or EOF (>= 1; may undershoot, never overshoots). */
  delta1: number;
  /** NONHEAD carrying the pcluster's block count (big pclusters), else 0. */
  cblkcnt: number;
  /** HEAD/PLAIN: first block of the pcluster. */
  blkaddr: number;
  partialRef: boolean;
  /** Image byte offset just past the index pack holding this record. */
  packEnd: number;
}

const isHead = (t: number): boolean => t !== Z_EROFS_LCLUSTER_TYPE_NONHEAD;

export class ZMap {
  private readonly ctx: { nid: Inode['nid'] };
  /** File is entirely a fragment at this packed-inode offset (the "bit 63" header). */
  readonly wholeFragmentOffset: number | null = null;
  readonly advise: number = 0;
  readonly algorithms: readonly [number, number] = [0, 0];
  readonly compact: boolean;
  private readonly lclusterbits: number = 0;
  private readonly lsz: number = 1;
  private readonly totalIdx: number = 0;
  private readonly indexPos: number = 0;
  private readonly c4bInitial: number = 0;
  private readonly c2b: number = 0;
  private readonly bigHead1: boolean = false;
  private readonly bigHead2: boolean = false;
  private readonly idataSize: number = 0;
  private readonly fragmentOffLow: number = 0;
  private tail: { headLcn: number; packEnd: number } | null | undefined;
  /** Byte length of the index area (header included), for statistics. */
  readonly metadataBytes: number = Z_EROFS_MAP_HEADER_SIZE;

  constructor(
    private readonly img: ImageReader,
    private readonly sb: SuperInfo,
    private readonly inode: Inode,
  ) {
    this.ctx = { nid: inode.nid };
    this.compact = inode.layout === EROFS_INODE_COMPRESSED_COMPACT;
    const mapPos = Math.ceil(inode.tailPos / 8) * 8;
    const h = img.read(mapPos, Z_EROFS_MAP_HEADER_SIZE, 'compression map header');
    const v = new DataView(h.buffer, h.byteOffset, h.byteLength);

    if (h[7]! & 0x80) {
      // The whole file lives in the packed inode; the low 63 bits are its offset there.
      const off = v.getBigUint64(0, true) & ((1n << 63n) - 1n);
      this.requireFeature(EROFS_FEATURE_INCOMPAT_FRAGMENTS, 'fragment');
      if (off > BigInt(Number.MAX_SAFE_INTEGER)) this.corrupt(`fragment offset ${off} is too large`);
      this.wholeFragmentOffset = Number(off);
      this.advise = Z_EROFS_ADVISE_FRAGMENT_PCLUSTER;
      return;
    }

    this.advise = v.getUint16(4, true);
    const algtype = v.getUint8(6);
    this.algorithms = [algtype & 0xf, algtype >> 4];
    for (const a of this.algorithms) {
      if (a >= Z_EROFS_COMPRESSION_MAX) throw new UnsupportedFeatureError(`unknown compression algorithm ${a}`, this.ctx);
    }
    const clusterbits = v.getUint8(7) & 0xf;
    if (clusterbits !== 0) {
      throw new UnsupportedFeatureError(`logical clusters larger than a block (h_clusterbits ${clusterbits})`, this.ctx);
    }
    this.lclusterbits = sb.blkszbits + clusterbits;
    this.lsz = 2 ** this.lclusterbits;
    this.totalIdx = Math.ceil(inode.size / this.lsz);

    const adv = this.advise;
    this.bigHead1 = (adv & Z_EROFS_ADVISE_BIG_PCLUSTER_1) !== 0;
    this.bigHead2 = (adv & Z_EROFS_ADVISE_BIG_PCLUSTER_2) !== 0;
    if (this.bigHead1 || this.bigHead2) this.requireFeature(EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER, 'big pcluster');
    if (this.compact && this.bigHead1 !== this.bigHead2) {
      this.corrupt('big pcluster flags of compact indexes disagree');
    }
    const inline = (adv & Z_EROFS_ADVISE_INLINE_PCLUSTER) !== 0;
    const fragment = (adv & Z_EROFS_ADVISE_FRAGMENT_PCLUSTER) !== 0;
    if (inline && fragment) this.corrupt('both tail-packing and fragment tails declared');
    if (inline) {
      this.requireFeature(EROFS_FEATURE_INCOMPAT_ZTAILPACKING, 'tail-packing');
      this.idataSize = v.getUint16(2, true);
      if (this.idataSize === 0) this.corrupt('tail-packed pcluster of size 0');
    }
    if (fragment) {
      this.requireFeature(EROFS_FEATURE_INCOMPAT_FRAGMENTS, 'fragment');
      this.fragmentOffLow = v.getUint32(0, true);
    }

    if (!this.compact) {
      this.indexPos = mapPos + Z_EROFS_FULL_INDEX_ALIGN_SIZE;
      this.metadataBytes = Z_EROFS_FULL_INDEX_ALIGN_SIZE + this.totalIdx * Z_EROFS_FULL_INDEX_SIZE;
      this.checkIndexArea(this.indexPos, this.totalIdx * Z_EROFS_FULL_INDEX_SIZE);
    } else {
      const ebase = mapPos + Z_EROFS_MAP_HEADER_SIZE;
      this.indexPos = ebase;
      // 4B packs first, up to 32-byte alignment; then 2B packs of 16; then 4B packs again.
      let initial = ((32 - (ebase % 32)) / 4) & 7;
      let twoB = 0;
      if (initial >= this.totalIdx) {
        initial = 0;
      } else if (adv & Z_EROFS_ADVISE_COMPACTED_2B) {
        if (this.lclusterbits > 12) this.corrupt('2-byte compact indexes need 4 KiB logical clusters');
        twoB = Math.floor((this.totalIdx - initial) / 16) * 16;
      }
      this.c4bInitial = initial;
      this.c2b = twoB;
      const rest = this.totalIdx - initial - twoB;
      const bytes = initial * 4 + twoB * 2 + Math.ceil(rest / 2) * 8;
      this.metadataBytes = Z_EROFS_MAP_HEADER_SIZE + bytes;
      this.checkIndexArea(ebase, bytes);
    }
  }

  private corrupt(msg: string): never {
    throw new CorruptImageError(msg, this.ctx);
  }

  private requireFeature(bit: number, what: string): void {
    if (!(this.sb.featureIncompat & bit)) this.corrupt(`${what} inode in an image without the ${what} feature`);
  }

  private checkIndexArea(pos: number, len: number): void {
    if (!this.img.contains(pos, len)) {
      this.corrupt(`compression index (${len} bytes for ${this.totalIdx} lclusters) runs past the end of the image`);
    }
  }

  get interlaced(): boolean {
    return (this.advise & Z_EROFS_ADVISE_INTERLACED_PCLUSTER) !== 0;
  }

  get lclusterSize(): number {
    return this.lsz;
  }

  /** Loads lcluster `lcn` (0 <= lcn < totalIdx). */
  private load(lcn: number): Lcluster {
    if (!Number.isSafeInteger(lcn) || lcn < 0 || lcn >= this.totalIdx) {
      this.corrupt(`lcluster ${lcn} is outside the index (${this.totalIdx} lclusters)`);
    }
    return this.compact ? this.loadCompact(lcn) : this.loadFull(lcn);
  }

  private loadFull(lcn: number): Lcluster {
    const pos = this.indexPos + lcn * Z_EROFS_FULL_INDEX_SIZE;
    const r = this.img.read(pos, Z_EROFS_FULL_INDEX_SIZE, 'lcluster index');
    const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
    const advise = v.getUint16(0, true);
    const type = advise & 3;
    const rec: Lcluster = {
      type,
      clusterofs: v.getUint16(2, true),
      delta0: 0,
      delta1: 0,
      cblkcnt: 0,
      blkaddr: 0,
      partialRef: (advise & Z_EROFS_LI_PARTIAL_REF) !== 0,
      packEnd: pos + Z_EROFS_FULL_INDEX_SIZE,
    };
    if (type === Z_EROFS_LCLUSTER_TYPE_NONHEAD) {
      const d0 = v.getUint16(4, true);
      if ((this.bigHead1 || this.bigHead2) && d0 & Z_EROFS_LI_D0_CBLKCNT) {
        rec.cblkcnt = d0 & ~Z_EROFS_LI_D0_CBLKCNT;
        rec.delta0 = 1;
      } else {
        rec.delta0 = d0;
      }
      rec.delta1 = v.getUint16(6, true);
    } else {
      rec.blkaddr = v.getUint32(4, true);
    }
    return rec;
  }

  private loadCompact(lcn: number): Lcluster {
    let amortizedShift: number;
    let regionStart: number;
    let inRegion: number;
    if (lcn < this.c4bInitial) {
      amortizedShift = 2;
      regionStart = this.indexPos;
      inRegion = lcn;
    } else if (lcn < this.c4bInitial + this.c2b) {
      amortizedShift = 1;
      regionStart = this.indexPos + this.c4bInitial * 4;
      inRegion = lcn - this.c4bInitial;
    } else {
      amortizedShift = 2;
      regionStart = this.indexPos + this.c4bInitial * 4 + this.c2b * 2;
      inRegion = lcn - this.c4bInitial - this.c2b;
    }
    const vcnt = amortizedShift === 1 ? 16 : 2;
    const packBytes = vcnt << amortizedShift;
    const packStart = regionStart + Math.floor(inRegion / vcnt) * packBytes;
    const idx = inRegion % vcnt;
    const pack = this.img.read(packStart, packBytes, 'compact lcluster index pack');
    const encodeBits = (packBytes * 8 - 32) / vcnt;
    const lobits = Math.max(this.lclusterbits, 12);
    const lomask = (1 << lobits) - 1;
    const valmask = (1 << encodeBits) - 1;
    // Field i as (type << 16) | lo, without allocating.
    const field = (i: number): number => {
      const bit = i * encodeBits;
      const byte = bit >> 3;
      const word = pack[byte]! | (pack[byte + 1]! << 8) | ((pack[byte + 2] ?? 0) << 16);
      const val = (word >>> (bit & 7)) & valmask;
      return (((val >>> lobits) & 3) << 16) | (val & lomask);
    };
    const typeOf = (f: number): number => f >>> 16;
    const loOf = (f: number): number => f & 0xffff;
    const big = this.bigHead1;
    const isCblk = (f: number): boolean =>
      big && typeOf(f) === Z_EROFS_LCLUSTER_TYPE_NONHEAD && (loOf(f) & Z_EROFS_LI_D0_CBLKCNT) !== 0;

    const me = field(idx);
    const meType = typeOf(me);
    const meLo = loOf(me);
    const rec: Lcluster = {
      type: meType,
      clusterofs: 0,
      delta0: 0,
      delta1: 0,
      cblkcnt: 0,
      blkaddr: 0,
      partialRef: false,
      packEnd: packStart + packBytes,
    };
    if (meType === Z_EROFS_LCLUSTER_TYPE_NONHEAD) {
      if (isCblk(me)) {
        rec.cblkcnt = meLo & ~Z_EROFS_LI_D0_CBLKCNT;
        rec.delta0 = 1;
        rec.delta1 = 1;
      } else if (idx + 1 < vcnt) {
        rec.delta0 = meLo;
        // delta[1] is not stored except in the pack's last field: scan forward.
        rec.delta1 = 1;
        for (let j = idx + 1; j < vcnt; j++) {
          const f = field(j);
          if (typeOf(f) !== Z_EROFS_LCLUSTER_TYPE_NONHEAD) break;
          if (j === vcnt - 1 && !isCblk(f)) {
            rec.delta1 = j - idx + Math.max(loOf(f), 1);
            break;
          }
          rec.delta1 = j - idx + 1;
        }
      } else {
        // The last field stores delta[1]; delta[0] follows from the field before it.
        rec.delta1 = meLo;
        const prev = field(idx - 1);
        if (typeOf(prev) !== Z_EROFS_LCLUSTER_TYPE_NONHEAD) rec.delta0 = 1;
        else if (isCblk(prev)) rec.delta0 = 2;
        else rec.delta0 = loOf(prev) === 0 ? 0 : loOf(prev) + 1;
      }
      return rec;
    }
    rec.clusterofs = meLo;
    // Block addresses are implicit: the pack's base plus the blocks of the pclusters
    // accounted before us in this pack. One-block pclusters count at their head (and the
    // base is one less than the first of them); big pclusters count at their CBLKCNT
    // record, which may sit in this pack even when the head was in the previous one.
    const base = pack[packBytes - 4]! | (pack[packBytes - 3]! << 8) | (pack[packBytes - 2]! << 16) | (pack[packBytes - 1]! << 24);
    let nblk = big ? 0 : 1;
    for (let j = 0; j < idx; j++) {
      const f = field(j);
      const t = typeOf(f);
      if (!big) {
        if (t !== Z_EROFS_LCLUSTER_TYPE_NONHEAD) nblk++;
      } else if (isCblk(f)) {
        nblk += loOf(f) & ~Z_EROFS_LI_D0_CBLKCNT;
      } else if (t !== Z_EROFS_LCLUSTER_TYPE_NONHEAD && !isCblk(field(j + 1))) {
        nblk++;
      }
    }
    rec.blkaddr = (base >>> 0) + nblk;
    return rec;
  }

  /** Follows delta[0] back from `lcn` to the head record governing it. */
  private lookback(lcn: number): { lcn: number; rec: Lcluster } {
    let l = lcn;
    for (;;) {
      const rec = this.load(l);
      if (isHead(rec.type)) return { lcn: l, rec };
      if (rec.delta0 < 1) this.corrupt(`lcluster ${l} has a zero back-distance`);
      if (rec.delta0 > l) this.corrupt(`lcluster ${l} points back before the start of the file`);
      l -= rec.delta0;
    }
  }

  /** The head governing file offset `pos` (0 <= pos < size), and an upper bound for its end. */
  private findHead(pos: number): { lcn: number; rec: Lcluster; endLimit: number } {
    const lsz = this.lclusterSize;
    const lcn = Math.floor(pos / lsz);
    const ofs = pos - lcn * lsz;
    const rec = this.load(lcn);
    if (isHead(rec.type)) {
      this.checkClusterofs(lcn, rec);
      if (ofs >= rec.clusterofs) return { lcn, rec, endLimit: this.inode.size };
      if (lcn === 0) this.corrupt('the first lcluster does not start an extent at offset 0');
      const head = this.lookback(lcn - 1);
      this.checkClusterofs(head.lcn, head.rec);
      return { ...head, endLimit: lcn * lsz + rec.clusterofs };
    }
    const head = this.lookback(lcn);
    this.checkClusterofs(head.lcn, head.rec);
    return { ...head, endLimit: this.inode.size };
  }

  private checkClusterofs(lcn: number, rec: Lcluster): void {
    if (rec.clusterofs >= this.lclusterSize) this.corrupt(`lcluster ${lcn} has clusterofs ${rec.clusterofs}`);
    if (rec.type === Z_EROFS_LCLUSTER_TYPE_HEAD2 && !(this.sb.featureIncompat & 0x8)) {
      this.corrupt(`lcluster ${lcn} is HEAD2 without the compr_head2 feature`);
    }
  }

  /** File offset where the extent holding `pos` starts (index lookback only, no end search). */
  extentStart(pos: number): number {
    if (!(pos >= 0 && pos < this.inode.size)) this.corrupt(`offset ${pos} outside the file (${this.inode.size} bytes)`);
    if (this.wholeFragmentOffset !== null) return 0;
    const h = this.findHead(pos);
    return h.lcn * this.lsz + h.rec.clusterofs;
  }

  /** Head lcluster of the extent holding the last byte (the one that may be inline or a fragment). */
  private tailInfo(): { headLcn: number; packEnd: number } | null {
    if (this.tail !== undefined) return this.tail;
    this.tail = null;
    if (this.inode.size > 0 && this.advise & (Z_EROFS_ADVISE_INLINE_PCLUSTER | Z_EROFS_ADVISE_FRAGMENT_PCLUSTER)) {
      const h = this.findHead(this.inode.size - 1);
      // Inline data follows the index pack that holds the last lcluster.
      const last = this.load(Math.floor((this.inode.size - 1) / this.lclusterSize));
      this.tail = { headLcn: h.lcn, packEnd: last.packEnd };
    }
    return this.tail;
  }

  /** Position and size of the tail-packed pcluster. */
  inlineData(): { pos: number; size: number } | null {
    if (!(this.advise & Z_EROFS_ADVISE_INLINE_PCLUSTER)) return null;
    const t = this.tailInfo();
    if (t === null) return null;
    const pos = t.packEnd;
    const blksz = this.sb.blksz;
    if ((pos % blksz) + this.idataSize > blksz) this.corrupt('tail-packed pcluster crosses a block boundary');
    // 4 KiB pages only: with 4 KiB blocks this would flag images that x86 reads right.
    if (!inlinePclusterReadable(pos, blksz, [4096])) this.corrupt('tail-packed pcluster starts one block into a 4 KiB page, where Linux cannot read it');
    if (!this.img.contains(pos, this.idataSize)) this.corrupt('tail-packed pcluster runs past the end of the image');
    return { pos, size: this.idataSize };
  }

  /** Number of physical blocks of the pcluster starting at head `lcn`. */
  private pclusterBlocks(lcn: number, rec: Lcluster): number {
    const big = rec.type === Z_EROFS_LCLUSTER_TYPE_HEAD2 ? this.bigHead2 : this.bigHead1;
    if (lcn + 1 >= this.totalIdx) return 1;
    const next = this.load(lcn + 1);
    if (next.type !== Z_EROFS_LCLUSTER_TYPE_NONHEAD) return 1;
    if (next.cblkcnt > 0) {
      const max = Z_EROFS_PCLUSTER_MAX_SIZE / this.sb.blksz;
      if (next.cblkcnt > max) this.corrupt(`pcluster at lcluster ${lcn} claims ${next.cblkcnt} blocks`);
      return next.cblkcnt;
    }
    if (big) this.corrupt(`big pcluster at lcluster ${lcn} has no block count`);
    return 1;
  }

  /** The extent holding file offset `pos` (0 <= pos < size). */
  map(pos: number): Extent {
    const size = this.inode.size;
    if (!(pos >= 0 && pos < size)) this.corrupt(`offset ${pos} outside the file (${size} bytes)`);
    if (this.wholeFragmentOffset !== null) {
      return { logical: 0, length: size, kind: 'fragment', physical: byteOffset(0), physicalLength: 0, fragmentOffset: this.wholeFragmentOffset };
    }
    const lsz = this.lclusterSize;
    const head = this.findHead(pos);
    const start = head.lcn * lsz + head.rec.clusterofs;
    // Walk forward along delta[1] to the next head (or EOF) to find where the extent ends.
    let end = Math.min(size, head.endLimit);
    // Without a head after it, the kernel lets the last extent run to the end of its
    // lcluster (past i_size) unless the file is tail-packed; remember that for raw extents.
    let openEnded = end === size;
    for (let l = head.lcn + 1; l < this.totalIdx && l * lsz < end; ) {
      const rec = this.load(l);
      if (isHead(rec.type)) {
        this.checkClusterofs(l, rec);
        if (l * lsz + rec.clusterofs <= end) openEnded = false;
        end = Math.min(end, l * lsz + rec.clusterofs);
        break;
      }
      if (rec.delta1 < 1) this.corrupt(`lcluster ${l} has a zero forward distance`);
      l += rec.delta1;
    }
    if (end <= pos) this.corrupt(`inconsistent lcluster deltas around offset ${pos}`);
    const length = end - start;
    const kernelLength =
      openEnded && !(this.advise & Z_EROFS_ADVISE_INLINE_PCLUSTER) ? Math.ceil(size / lsz) * lsz - start : length;

    const tail = this.tailInfo();
    const isTail = tail !== null && tail.headLcn === head.lcn;
    if (isTail && this.advise & Z_EROFS_ADVISE_FRAGMENT_PCLUSTER) {
      // Full indexes keep the high 32 bits of the fragment offset in the tail head's blkaddr.
      const off = this.compact ? this.fragmentOffLow : head.rec.blkaddr * 2 ** 32 + this.fragmentOffLow;
      return { logical: start, length, kind: 'fragment', physical: byteOffset(0), physicalLength: 0, fragmentOffset: off };
    }
    if (length > MAX_EXTENT_BYTES) this.corrupt(`extent at offset ${start} is ${length} bytes long`);

    const raw = head.rec.type === Z_EROFS_LCLUSTER_TYPE_PLAIN;
    const algorithm = head.rec.type === Z_EROFS_LCLUSTER_TYPE_HEAD2 ? this.algorithms[1] : this.algorithms[0];
    const common = {
      logical: start,
      length,
      kind: raw ? ('raw' as const) : ('compressed' as const),
      ...(raw ? { interlaced: this.interlaced } : { algorithm }),
      ...(head.rec.partialRef ? { partial: true } : {}),
    };
    if (isTail && this.advise & Z_EROFS_ADVISE_INLINE_PCLUSTER) {
      const idata = this.inlineData()!;
      return { ...common, physical: byteOffset(idata.pos), physicalLength: idata.size, inline: true };
    }
    const blocks = this.pclusterBlocks(head.lcn, head.rec);
    const physical = head.rec.blkaddr * this.sb.blksz;
    const plen = blocks * this.sb.blksz;
    if (raw && kernelLength > plen) {
      this.corrupt(
        `uncompressed extent at offset ${start} runs to the end of its lcluster (${kernelLength} bytes), ` +
          `past its ${plen}-byte pcluster: the EOF lcluster record is missing`,
      );
    }
    if (!this.img.contains(physical, plen)) {
      this.corrupt(`pcluster of the extent at offset ${start} (block ${head.rec.blkaddr}, ${blocks} blocks) is outside the image`);
    }
    return { ...common, physical: byteOffset(physical), physicalLength: plen };
  }
}
