// Layout planner: decides every inode's form (compact/extended, plain/inline), packs
// inodes into metadata blocks and assigns data blocks, before a byte is written.
// Sizes depend only on names, metadata and file lengths, so the whole layout is known
// up front and the writer can stream file data straight to its final place.

import {
  EROFS_INODE_CHUNK_BASED,
  EROFS_INODE_FLAT_INLINE,
  EROFS_INODE_FLAT_PLAIN,
  EROFS_ISLOTSIZE,
  EROFS_NULL_ADDR,
  EROFS_SUPER_OFFSET,
  EROFS_XATTR_IBODY_HEADER_SIZE,
} from '../format/constants.js';
import { dirSize } from '../format/dirent.js';
import { inodeSize } from '../format/inode.js';
import { splitXattrName, xattrEntrySize, type Xattr } from '../format/xattr.js';
import { inlinePclusterReadable } from '../format/zmap.js';
import {
  type BlockAddr,
  type BlockGeometry,
  type ByteOffset,
  type Nid,
  blockAddr,
  byteOffset,
  nid,
} from '../format/types.js';
import { BuildError } from './errors.js';
import type { BuildConfig } from './options.js';
import { childInode, isDir, isReg, isSymlink, sourcePath, type TreeEntry, type TreeInode } from './tree.js';

const NO_IDS: number[] = [];
const NO_XATTRS: Xattr[] = [];
const DOT = '.';
const DOTDOT = '..';
const U16 = 0xffff;
/** erofs_xattr_ibody_header.h_shared_count is a u8. */
const MAX_SHARED_PER_INODE = 255;
const U32 = 0xffffffff;

export interface InodePlan {
  /** Its 32-bit serial (stat's st_ino on 32-bit userspace) is inode.ino. */
  inode: TreeInode;
  extended: boolean;
  /** EROFS_INODE_FLAT_PLAIN, _FLAT_INLINE, _COMPRESSED_FULL or _COMPRESSED_COMPACT. */
  datalayout: number;
  /** Inline xattr area length (0 when the inode has none). */
  xattrSize: number;
  sharedXattrIds: number[];
  inlineXattrs: Xattr[];
  /** Blocks in the data area (full blocks, plus a padded tail block when not inline). */
  dataBlocks: number;
  startBlk: BlockAddr;
  /** Bytes stored right after the inode and its xattrs: the inline tail, or a compressed index. */
  inlineTail: number;
  /**
   * A tail-packed pcluster ending the unit (its length, 0 if none): it must lie within one
   * block, while what comes before it may run over a block boundary.
   */
  inlinePcluster: number;
  /**
   * Data written ahead of layout (compressed builds, chunk indexes, files copied during the
   * walk): i_u as decided then, and where the bytes after the xattrs are in the spool;
   * spoolOffset is -1 otherwise (see setPrewritten). Two numbers rather than an object: a
   * million inodes have a million plans.
   */
  prewrittenU: number;
  spoolOffset: number;
  /** Where the inode goes; its nid follows (planNid). */
  metaOffset: ByteOffset;
}

/** A nid counts 32-byte slots from meta_blkaddr (see Layout.metaBlkaddr). */
export const planNid = (p: InodePlan, layout: Pick<Layout, 'metaBlkaddr' | 'geometry'>): Nid =>
  nid((p.metaOffset - layout.metaBlkaddr * layout.geometry.blksz) / EROFS_ISLOTSIZE);

/**
 * EROFS_NULL_ADDR (no data block) as a plan keeps it: 2^32 - 1 is no small integer, and V8
 * would then box that field in every plan.
 */
export const NO_BLOCK = -1;

/** The plan's data is in place already: i_u is `u`; the bytes after its xattrs are at `spoolOffset` in the spool. */
export function setPrewritten(p: InodePlan, u: number, spoolOffset: number): void {
  p.prewrittenU = u === EROFS_NULL_ADDR ? NO_BLOCK : u;
  p.spoolOffset = spoolOffset;
}

export const isPrewritten = (p: InodePlan): boolean => p.spoolOffset >= 0;

/** The i_u field of a plan that is not a device: its first block, or what was decided with its data. */
export function planU(p: InodePlan): number {
  const u = isPrewritten(p) ? p.prewrittenU : p.startBlk;
  return u === NO_BLOCK ? EROFS_NULL_ADDR : u;
}

export interface SharedXattr {
  xattr: Xattr;
  offset: ByteOffset;
}

export interface Layout {
  geometry: BlockGeometry;
  /** In inode order: plans[ino - 1]. */
  plans: InodePlan[];
  /** The same plans by metadata block, the order to write them in. */
  writeOrder: InodePlan[];
  root: InodePlan;
  sharedXattrs: SharedXattr[];
  xattrBlkaddr: BlockAddr;
  /**
   * Where nids count from: 0, or, where the root's nid (16 bits in the superblock) would not
   * fit otherwise, the first metadata block after data written ahead, the superblock's block
   * then holding no inode.
   */
  metaBlkaddr: BlockAddr;
  /** First block after the metadata area; file and directory data start here. */
  dataStart: BlockAddr;
  totalBlocks: number;
  metaBlocks: number;
}

/** A directory's entries with "." and ".." merged in bytewise order. */
export function direntsOf(dir: TreeInode): TreeEntry[] {
  const out: TreeEntry[] = [];
  const dots: TreeEntry[] = [
    { name: DOT, inode: dir },
    { name: DOTDOT, inode: dir.parent ?? dir },
  ];
  let d = 0;
  for (const c of dir.children!) {
    while (d < 2 && dots[d]!.name < c.name) out.push(dots[d++]!);
    out.push({ name: c.name, inode: childInode(c) });
  }
  while (d < 2) out.push(dots[d++]!);
  return out;
}

/** Packs 32-byte-aligned inode units into metadata blocks, best fit first. */
export class MetaAllocator {
  private readonly used: number[] = [];
  /** Where a block's free space ends: the block size, or where a unit running into the next block starts. */
  private readonly limit: number[] = [];
  /** buckets[k]: blocks (relative index) with exactly k free 32-byte slots. */
  private readonly buckets: number[][];
  /** Bit k set: buckets[k] has a block. The best fit is then a bit scan, not a walk through up to 128 buckets. */
  private readonly nonEmpty: Uint32Array;
  private readonly slotsPerBlock: number;

  constructor(
    private readonly g: BlockGeometry,
    /** Absolute block of the allocator's n-th block: metadata need not be contiguous. */
    private readonly absBlock: (rel: number) => number,
  ) {
    this.slotsPerBlock = g.blksz / EROFS_ISLOTSIZE;
    this.buckets = Array.from({ length: this.slotsPerBlock + 1 }, () => []);
    this.nonEmpty = new Uint32Array(Math.ceil((this.slotsPerBlock + 1) / 32));
  }

  get blockCount(): number {
    return this.used.length;
  }

  /** The first non-empty bucket from `slots` free slots up (the best fit), or -1. */
  private firstBucket(slots: number): number {
    let w = slots >>> 5;
    if (w >= this.nonEmpty.length) return -1;
    let bits = this.nonEmpty[w]! & (-1 << (slots & 31));
    while (bits === 0) {
      if (++w === this.nonEmpty.length) return -1;
      bits = this.nonEmpty[w]!;
    }
    // The lowest set bit.
    return w * 32 + 31 - Math.clz32(bits & -bits);
  }

  /** A block of bucket k, taken out of it. */
  private takeFrom(k: number): number {
    const b = this.buckets[k]!.pop()!;
    this.clearIfEmpty(k);
    return b;
  }

  /** Block b out of the bucket it is in, if any: its free space is about to change. */
  private takeOut(b: number): void {
    const k = (this.limit[b]! - this.used[b]!) / EROFS_ISLOTSIZE;
    if (k <= 0) return;
    const bucket = this.buckets[k]!;
    const i = bucket.lastIndexOf(b);
    if (i < 0) return;
    bucket.splice(i, 1);
    this.clearIfEmpty(k);
  }

  /** Keeps nonEmpty's bit k in step with bucket k after a block left it. */
  private clearIfEmpty(k: number): void {
    if (this.buckets[k]!.length === 0) this.nonEmpty[k >>> 5]! &= ~(1 << (k & 31));
  }

  /** Opens a new, empty metadata block; returns its index. */
  private newBlock(): number {
    this.used.push(0);
    this.limit.push(this.g.blksz);
    return this.used.length - 1;
  }

  private release(b: number): void {
    const free = (this.limit[b]! - this.used[b]!) / EROFS_ISLOTSIZE;
    if (free > 0) {
      this.buckets[free]!.push(b);
      this.nonEmpty[free >>> 5]! |= 1 << (free & 31);
    }
  }

  private offsetOf(b: number): ByteOffset {
    return byteOffset(this.absBlock(b) * this.g.blksz + this.used[b]!);
  }

  /** Marks the start of the first block (superblock area) as used. */
  reserveHead(bytes: number): void {
    const b = this.newBlock();
    this.used[b] = alignUp(bytes, EROFS_ISLOTSIZE);
    this.release(b);
  }

  /** A unit that must not cross a block boundary when it fits in one block. */
  alloc(size: number): ByteOffset {
    const slots = Math.ceil(size / EROFS_ISLOTSIZE);
    if (slots > this.slotsPerBlock) return this.allocSpanning(size);
    const k = this.firstBucket(slots);
    const b = k < 0 ? this.newBlock() : this.takeFrom(k);
    const off = this.offsetOf(b);
    this.used[b]! += slots * EROFS_ISLOTSIZE;
    this.release(b);
    return off;
  }

  /**
   * A unit that may cross block boundaries (no inline data: an inode, its xattrs, maybe
   * aligned chunk indexes): best fit in one block, else appended at the end of the area,
   * running into the next block, as the reference's allocator does.
   */
  allocStraddling(size: number): ByteOffset {
    const slots = Math.ceil(size / EROFS_ISLOTSIZE);
    if (this.firstBucket(slots) >= 0) return this.alloc(size);
    const last = this.used.length - 1;
    // The superblock's block is not followed by the next metadata block when data sits between.
    if (last <= 0 || this.used[last] === this.g.blksz || this.absBlock(last) !== this.absBlock(last - 1) + 1) return this.alloc(size);
    this.takeOut(last);
    const off = this.offsetOf(last);
    let rest = this.used[last]! + slots * EROFS_ISLOTSIZE;
    let b = last;
    while (rest > this.g.blksz) {
      this.used[b] = this.g.blksz;
      rest -= this.g.blksz;
      b = this.newBlock();
    }
    this.used[b] = rest;
    this.release(b);
    return off;
  }

  /**
   * A unit of more than a block ending in a tail-packed pcluster of `idata` bytes, which
   * must lie within one block: the rest runs over a block boundary so that the pcluster
   * fits after it. Appended to the last block where that works, else placed in fresh ones.
   */
  allocWithInlinePcluster(prefix: number, idata: number): ByteOffset {
    const B = this.g.blksz;
    const last = this.used.length - 1;
    // Block 0 (the superblock's) may be followed by data, not by the next metadata block.
    let x = last >= 1 ? this.firstFitWithInlinePcluster(prefix, idata, last, this.used[last]!) : -1;
    let b = last;
    if (x >= 0) this.takeOut(last);
    else {
      // A fresh block; where the pcluster could only start a block the kernel cannot read
      // it from, the next one (two blocks in a row never both are): the skipped block
      // stays free for smaller units.
      for (let tries = 0; x < 0; tries++) {
        if (tries === 3) throw new Error(`internal: no place for a ${idata}-byte inline pcluster after ${prefix} bytes`);
        if (tries > 0) this.release(b);
        b = this.newBlock();
        x = this.firstFitWithInlinePcluster(prefix, idata, b, 0);
      }
    }
    const off = byteOffset(this.absBlock(b) * B + x);
    // What is before the unit in its first block stays free for smaller units.
    const first = b;
    this.limit[first] = x;
    let rest = x + prefix + idata - B;
    b = this.newBlock();
    while (rest > B) {
      this.used[b] = B;
      rest -= B;
      b = this.newBlock();
    }
    this.used[b] = alignUp(rest, EROFS_ISLOTSIZE);
    this.release(first);
    this.release(b);
    return off;
  }

  /**
   * The first slot-aligned offset from `from` in block `blk` at which a unit's pcluster
   * would lie within one block, or -1. Like the reference, a pcluster starting a block is
   * avoided: only taken where nothing else fits, and only where the kernel can read it
   * (see inlinePclusterReadable).
   */
  private firstFitWithInlinePcluster(prefix: number, idata: number, blk: number, from: number): number {
    const B = this.g.blksz;
    let fallback = -1;
    for (let x = alignUp(from, EROFS_ISLOTSIZE); x < B; x += EROFS_ISLOTSIZE) {
      const end = (x + prefix) % B;
      if (end + idata > B) continue;
      if (end > 0) return x;
      const start = this.absBlock(blk + (x + prefix) / B) * B;
      if (fallback < 0 && inlinePclusterReadable(start, B)) fallback = x;
    }
    return fallback;
  }

  /** A unit larger than a block: starts on a fresh block and runs on. */
  private allocSpanning(size: number): ByteOffset {
    const first = this.newBlock();
    const off = this.offsetOf(first);
    let rest = size - this.g.blksz;
    this.used[first] = this.g.blksz;
    while (rest > 0) {
      const b = this.newBlock();
      this.used[b] = alignUp(Math.min(rest, this.g.blksz), EROFS_ISLOTSIZE);
      rest -= this.g.blksz;
      if (rest <= 0) this.release(b);
    }
    return off;
  }

  /**
   * Lays out shared xattr entries back to back from the current end of the last block;
   * an entry that fits in a block is never split across two.
   */
  allocSequence(sizes: readonly number[]): ByteOffset[] {
    if (sizes.length === 0) return [];
    let b = this.used.length - 1;
    // Take the last block out of its bucket: we append to it directly.
    this.takeOut(b);
    const out: ByteOffset[] = [];
    for (const size of sizes) {
      // Only blocks after the superblock's are known to be contiguous, so a long entry
      // may run on from one of them but never from the superblock's block.
      if (this.used[b]! + size > this.g.blksz && (size <= this.g.blksz || b === 0)) {
        b = this.newBlock();
      }
      out.push(this.offsetOf(b));
      let rest = this.used[b]! + size;
      while (rest > this.g.blksz) {
        this.used[b] = this.g.blksz;
        rest -= this.g.blksz;
        b = this.newBlock();
      }
      this.used[b] = rest;
    }
    this.used[b] = alignUp(this.used[b]!, EROFS_ISLOTSIZE);
    this.release(b);
    return out;
  }
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

function xattrKeyString(x: Xattr): string {
  return `${Buffer.from(x.name).toString('latin1')}\0${Buffer.from(x.value).toString('latin1')}`;
}

/** Pairs seen more than `tolerance` times (each hard link counts) become shared, sorted. */
function chooseSharedXattrs(order: readonly TreeInode[], tolerance: number): Xattr[] {
  if (tolerance < 0) return [];
  const counts = new Map<string, { x: Xattr; n: number }>();
  for (const inode of order) {
    for (const x of inode.xattrs) {
      const k = xattrKeyString(x);
      const c = counts.get(k);
      if (c) c.n += inode.nlink;
      else counts.set(k, { x, n: inode.nlink });
    }
  }
  const shared = [...counts.values()].filter((c) => c.n > tolerance).map((c) => c.x);
  return shared.sort((a, b) => Buffer.compare(Buffer.from(xattrKeyString(a), 'latin1'), Buffer.from(xattrKeyString(b), 'latin1')));
}

const entrySize = (x: Xattr): number => xattrEntrySize(splitXattrName(x.name)!.suffix.length, x.value.length);

export function dataSizeOf(inode: TreeInode, blksz: number): number {
  if (isDir(inode)) return dirSize(direntsOf(inode).map((e) => e.name.length), blksz);
  if (isReg(inode) || isSymlink(inode)) return inode.size;
  return 0;
}

/** What the extended inode form is needed for: fields a compact inode cannot hold. */
const needsExtended = (inode: TreeInode): boolean => inode.size > U32 || inode.uid > U16 || inode.gid > U16 || inode.nlink > U16;

/** Compact inodes carry no time of their own: they take the build time. */
const ignoresMtime = (cfg: BuildConfig): boolean => cfg.ignoreMtime || cfg.inodeVersion === 'compact';
const timeDiffers = (cfg: BuildConfig, inode: TreeInode): boolean => inode.mtime !== cfg.buildTime || inode.mtimeNsec !== 0;

/** The reference's choice: extended when forced, when a field needs it, or to keep an mtime. */
export function isExtended(cfg: BuildConfig, inode: TreeInode): boolean {
  return cfg.inodeVersion === 'extended' || needsExtended(inode) || (timeDiffers(cfg, inode) && !ignoresMtime(cfg));
}

/**
 * Whether planInodes will put a regular file's tail inline, for an inode whose link count
 * may still grow (a tar walk writes file data before the tree is complete).
 */
export function plannedInlineTail(cfg: BuildConfig, g: BlockGeometry, inode: TreeInode): boolean {
  const tail = inode.size % g.blksz;
  if (tail === 0 || !cfg.inlineData) return false;
  const xattrSize = inode.xattrs.length === 0 ? 0 : EROFS_XATTR_IBODY_HEADER_SIZE + inode.xattrs.reduce((n, x) => n + entrySize(x), 0);
  return inodeSize(isExtended(cfg, inode)) + xattrSize + tail <= g.blksz;
}

function chooseExtended(cfg: BuildConfig, inode: TreeInode, path: () => string): boolean {
  const extended = isExtended(cfg, inode);
  if (!extended && timeDiffers(cfg, inode)) {
    inode.mtime = cfg.buildTime;
    inode.mtimeNsec = 0;
  }
  if (extended && cfg.inodeVersion === 'compact') throw new BuildError(`${path()}: cannot be in compact form`);
  return extended;
}

/** The block holding the superblock; blocks before it stay zero ("room for boot sectors"). */
export const superBlockAddr = (g: BlockGeometry): number => Math.floor(EROFS_SUPER_OFFSET / g.blksz);

export interface InodePlans {
  plans: InodePlan[];
  shared: Xattr[];
}

/** Decides every inode's form: extended or compact, xattrs inline or shared, flat data layout. */
export function planInodes(cfg: BuildConfig, g: BlockGeometry, order: readonly TreeInode[]): InodePlans {
  // As the reference: tar input is read once, so its xattrs all stay inline.
  const shared = cfg.tar ? [] : chooseSharedXattrs(order, cfg.xattrTolerance);
  const sharedIndex = new Map<string, number>();
  shared.forEach((x, i) => sharedIndex.set(xattrKeyString(x), i));

  const plans: InodePlan[] = [];
  const pathOf = (inode: TreeInode): string => sourcePath(inode).toString();

  for (let i = 0; i < order.length; i++) {
    const inode = order[i]!;
    const size = dataSizeOf(inode, g.blksz);
    if (isDir(inode)) inode.size = size;

    // Most inodes have no xattrs: share one empty array rather than allocate two per inode.
    const sharedXattrIds: number[] = inode.xattrs.length === 0 ? NO_IDS : [];
    const inlineXattrs: Xattr[] = inode.xattrs.length === 0 ? NO_XATTRS : [];
    let entryBytes = 0;
    for (const x of inode.xattrs) {
      // h_shared_count is a byte: past 255, shared xattrs are stored inline as well, as the
      // reference does.
      const s = sharedXattrIds.length < MAX_SHARED_PER_INODE ? sharedIndex.get(xattrKeyString(x)) : undefined;
      if (s !== undefined) sharedXattrIds.push(s);
      else {
        inlineXattrs.push(x);
        entryBytes += entrySize(x);
      }
    }
    let xattrSize =
      inode.xattrs.length === 0 ? 0 : EROFS_XATTR_IBODY_HEADER_SIZE + sharedXattrIds.length * 4 + entryBytes;
    if (i === 0 && cfg.rootXattrIsize > xattrSize) {
      // Linux refuses an xattr area that is its header alone ("xattr_isize 12 ... is not
      // supported yet"): the least it reads is the header and one 4-byte slot.
      xattrSize = Math.max(EROFS_XATTR_IBODY_HEADER_SIZE + 4, alignUp(cfg.rootXattrIsize, 4));
    }
    if (xattrSize > EROFS_XATTR_IBODY_HEADER_SIZE + U16 * 4) throw new BuildError(`${pathOf(inode)}: xattrs too large`);

    const extended = chooseExtended(cfg, inode, () => pathOf(inode));
    const base = inodeSize(extended) + xattrSize;
    const tail = size % g.blksz;
    const inlineAllowed = tail > 0 && (cfg.inlineData || !isReg(inode)) && base + tail <= g.blksz;
    const plan: InodePlan = {
      inode,
      extended,
      datalayout: inlineAllowed ? EROFS_INODE_FLAT_INLINE : EROFS_INODE_FLAT_PLAIN,
      xattrSize,
      sharedXattrIds,
      inlineXattrs,
      dataBlocks: Math.floor(size / g.blksz) + (tail > 0 && !inlineAllowed ? 1 : 0),
      startBlk: blockAddr(0),
      inlineTail: inlineAllowed ? tail : 0,
      inlinePcluster: 0,
      prewrittenU: 0,
      spoolOffset: -1,
      metaOffset: byteOffset(0),
    };
    plans.push(plan);
  }
  return { plans, shared };
}

export interface PlacementOptions {
  /** Bytes used from EROFS_SUPER_OFFSET on: the superblock and compression configs. */
  superBytes: number;
  /** Blocks right after the superblock block already holding (compressed) file data. */
  preDataBlocks: number;
}

/**
 * Packs inode units into metadata blocks (the rest of the superblock block, then blocks
 * after any pre-written data) and assigns data blocks to everything not yet written.
 */
export function placeLayout(g: BlockGeometry, planned: InodePlans, opts: PlacementOptions): Layout {
  const { plans, shared } = planned;
  const superBlock = superBlockAddr(g);
  const metaStart = superBlock + 1 + opts.preDataBlocks;
  /** Metadata block `rel` of the allocator: the superblock's, then those after pre-written data. */
  const metaBlock = (rel: number): number => (rel === 0 ? superBlock : metaStart + rel - 1);
  const alloc = new MetaAllocator(g, metaBlock);

  const unitSize = (p: InodePlan): number => inodeSize(p.extended) + p.xattrSize + p.inlineTail;
  const place = (p: InodePlan): void => {
    const size = unitSize(p);
    // Chunk indexes are aligned entries, so such a unit may run into the next block (the
    // reference packs tar index inodes so); everything else stays within one block.
    const straddle = p.datalayout === EROFS_INODE_CHUNK_BASED;
    if (straddle) p.metaOffset = alloc.allocStraddling(size);
    else if (p.inlinePcluster > 0 && size > g.blksz) p.metaOffset = alloc.allocWithInlinePcluster(size - p.inlinePcluster, p.inlinePcluster);
    else p.metaOffset = alloc.alloc(size);
  };
  // The root goes first so that its nid fits the superblock's 16-bit field.
  const root = plans[0]!;
  const headBytes = alignUp(EROFS_SUPER_OFFSET + opts.superBytes - superBlock * g.blksz, EROFS_ISLOTSIZE);
  const room = g.blksz - headBytes;
  // Past pre-written data the root's nid would not fit the superblock's 16 bits: it stays in
  // the superblock's block, its directory data out of line if that makes it fit. A root
  // whose xattrs alone do not fit starts the metadata after the data, where nids then count
  // from, the superblock's block holding no inode (the reference moves meta_blkaddr so too).
  const pastNids = (metaStart * g.blksz) / EROFS_ISLOTSIZE > U16;
  let relocated = false;
  if (pastNids && unitSize(root) > room) {
    if (unitSize(root) - root.inlineTail > room) relocated = true;
    else {
      root.datalayout = EROFS_INODE_FLAT_PLAIN;
      root.dataBlocks += 1;
      root.inlineTail = 0;
    }
  }
  alloc.reserveHead(relocated ? g.blksz : headBytes);
  const metaBlkaddr = blockAddr(relocated ? metaStart : 0);
  place(root);
  if (planNid(root, { metaBlkaddr, geometry: g }) > U16) throw new Error('internal: the root inode has a nid past 16 bits');
  const sharedOffsets = alloc.allocSequence(shared.map(entrySize));
  // Biggest units first (equal ones in inode order): packs metadata blocks tighter than
  // placing them in inode order, which can strand the tail of a block no later unit fits.
  const bySlots: InodePlan[][] = [];
  for (let i = 1; i < plans.length; i++) {
    const p = plans[i]!;
    const slots = Math.ceil(unitSize(p) / EROFS_ISLOTSIZE);
    (bySlots[slots] ??= []).push(p);
  }
  for (let k = bySlots.length - 1; k >= 0; k--) for (const p of bySlots[k] ?? []) place(p);

  const xattrBlkaddr = blockAddr(sharedOffsets.length > 0 ? Math.floor(sharedOffsets[0]! / g.blksz) : 0);
  for (const p of plans) {
    if (p.sharedXattrIds.length > 0) p.sharedXattrIds = p.sharedXattrIds.map((s) => (sharedOffsets[s]! - xattrBlkaddr * g.blksz) / 4);
  }

  // Units went wherever they fit best, so inode order jumps between metadata blocks: the
  // writer goes block by block instead (its cache then holds each block once), and data
  // blocks follow the same order so that data is written sequentially too.
  const writeOrder = byMetaBlock(plans, g, (blk) => (blk === superBlock ? 0 : blk - metaStart + 1), alloc.blockCount);
  const dataStart = metaStart + alloc.blockCount - 1;
  let next = dataStart;
  for (const p of writeOrder) {
    if (isPrewritten(p)) continue;
    if (p.dataBlocks > 0) {
      p.startBlk = blockAddr(next);
      next += p.dataBlocks;
    } else if (p.datalayout === EROFS_INODE_FLAT_INLINE) {
      p.startBlk = blockAddr(NO_BLOCK);
    }
  }
  if (next > U32) throw new BuildError('image too large: more than 2^32 blocks');
  if (next === dataStart) endWithUnitBody(plans, g, unitSize, metaBlock(alloc.blockCount - 1));

  return {
    geometry: g,
    plans,
    writeOrder,
    root: plans[0]!,
    sharedXattrs: shared.map((xattr, i) => ({ xattr, offset: sharedOffsets[i]! })),
    xattrBlkaddr,
    metaBlkaddr,
    dataStart: blockAddr(dataStart),
    totalBlocks: next,
    metaBlocks: alloc.blockCount,
  };
}

/**
 * Debian 12's fsck.erofs (1.5) reads an xattr header after every inode, even one without
 * xattrs: an image whose last bytes are such a bare inode fails it (a read past the end).
 * Where the image ends with a metadata block whose last unit is bare, the units that run
 * without gaps to its end are laid out again, the last one with bytes after its inode (xattrs
 * or inline data) moved to the end. Units move by whole slots within the block: nothing in
 * them depends on more than their offset modulo 32, but an inline pcluster, which must not
 * start just anywhere in a page, does; its unit and those before it stay.
 */
function endWithUnitBody(plans: readonly InodePlan[], g: BlockGeometry, unitSize: (p: InodePlan) => number, block: number): void {
  const start = block * g.blksz;
  const end = start + g.blksz;
  const units = plans.filter((p) => p.metaOffset >= start && p.metaOffset < end).sort((a, b) => a.metaOffset - b.metaOffset);
  const span = (p: InodePlan): number => alignUp(unitSize(p), EROFS_ISLOTSIZE);
  const hasBody = (p: InodePlan): boolean => p.xattrSize > 0 || p.inlineTail > 0;
  const last = units.at(-1);
  if (!last || hasBody(last) || last.metaOffset + span(last) !== end) return;
  let first = units.length - 1;
  while (first > 0 && units[first - 1]!.metaOffset + span(units[first - 1]!) === units[first]!.metaOffset && units[first - 1]!.inlinePcluster === 0) first--;
  let k = units.length - 1;
  while (k >= first && !hasBody(units[k]!)) k--;
  if (k < first) return;
  const moved = units[k]!;
  let at: number = moved.metaOffset;
  for (let i = k + 1; i < units.length; i++) {
    units[i]!.metaOffset = byteOffset(at);
    at += span(units[i]!);
  }
  moved.metaOffset = byteOffset(at);
}

/** Plans grouped by the metadata block their unit starts in (a counting sort: no comparisons). */
function byMetaBlock(plans: readonly InodePlan[], g: BlockGeometry, relBlock: (blk: number) => number, blocks: number): InodePlan[] {
  const key = (p: InodePlan): number => relBlock(Math.floor(p.metaOffset / g.blksz));
  const starts = new Uint32Array(blocks + 1);
  for (const p of plans) starts[key(p) + 1]!++;
  for (let b = 1; b <= blocks; b++) starts[b]! += starts[b - 1]!;
  const out = new Array<InodePlan>(plans.length);
  for (const p of plans) out[starts[key(p)]!++] = p;
  return out;
}
