/**
 * A small, test-only EROFS image assembler for the features Debian's mkfs.erofs 1.5 cannot
 * produce: LZMA/DEFLATE/ZSTD pclusters, HEAD2 lclusters, fragments in a packed inode,
 * partial-reference (dedupe) pclusters, INTERLACED raw pclusters, tail-packed pclusters
 * of any algorithm, big pclusters with full indexes, chunk indexes with holes, long xattr
 * prefixes and shared xattrs.
 *
 * It writes full (8-byte) lcluster indexes only, and places every inode in a metadata area
 * of its own (blocks 2..), shared xattrs and a plain long-prefix table in block 1, data
 * after the metadata area. Crafted images are checked against the kernel (mount) in the
 * tests, so they are known to follow the real format.
 */
import {
  EROFS_FEATURE_COMPAT_MTIME,
  EROFS_FEATURE_COMPAT_SB_CHKSUM,
  EROFS_FEATURE_COMPAT_XATTR_FILTER,
  EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER,
  EROFS_FEATURE_INCOMPAT_CHUNKED_FILE,
  EROFS_FEATURE_INCOMPAT_COMPR_CFGS,
  EROFS_FEATURE_INCOMPAT_COMPR_HEAD2,
  EROFS_FEATURE_INCOMPAT_FRAGMENTS,
  EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES,
  EROFS_FEATURE_INCOMPAT_ZERO_PADDING,
  EROFS_FEATURE_INCOMPAT_ZTAILPACKING,
  EROFS_FT_DIR,
  EROFS_INODE_CHUNK_BASED,
  EROFS_INODE_COMPRESSED_FULL,
  EROFS_INODE_FLAT_INLINE,
  EROFS_INODE_FLAT_PLAIN,
  EROFS_NULL_ADDR,
  EROFS_SUPER_OFFSET,
  S_IFDIR,
  S_IFREG,
  Z_EROFS_ADVISE_BIG_PCLUSTER_1,
  Z_EROFS_ADVISE_BIG_PCLUSTER_2,
  Z_EROFS_ADVISE_FRAGMENT_PCLUSTER,
  Z_EROFS_ADVISE_INLINE_PCLUSTER,
  Z_EROFS_ADVISE_INTERLACED_PCLUSTER,
  Z_EROFS_LCLUSTER_TYPE_HEAD1,
  Z_EROFS_LCLUSTER_TYPE_HEAD2,
  Z_EROFS_LCLUSTER_TYPE_NONHEAD,
  Z_EROFS_LCLUSTER_TYPE_PLAIN,
} from '../../../src/format/constants.js';
import { type DirEntry, encodeDirectory } from '../../../src/format/dirent.js';
import { encodeInode, fileTypeOf, xattrIcount } from '../../../src/format/inode.js';
import { encodeSuperblock, sealSuperblock, superblockChecksumLength, superblockDefaults } from '../../../src/format/superblock.js';
import { type Nid, blockAddr, nid as toNid } from '../../../src/format/types.js';
import { encodeXattrEntry, encodeXattrIbody, xattrNameFilter } from '../../../src/format/xattr.js';
import { createCompressor } from '../../../src/compress/registry.js';
import type { AlgorithmName } from '../../../src/compress/compressor.js';

const META_START_BLOCK = 2;

export type XattrSpec = { index: number; suffix: string | Buffer; value: string | Buffer };

export interface InodeAttrs {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: bigint;
  mtimeNsec?: number;
  nlink?: number;
  xattrs?: XattrSpec[];
  /** ids of shared xattrs (from addSharedXattr). */
  shared?: number[];
}

/** One extent of a compressed file, as planned before writing. */
export interface PlanExtent {
  start: number;
  length: number;
  type: number;
  store: 'blocks' | 'inline' | 'fragment';
  /** blocks: the whole (padded) pcluster; inline: the exact bytes. */
  payload?: Uint8Array;
  blocks: number;
  /** Preset block address (e.g. to reference another file's pcluster). */
  blkaddr?: number;
  partial?: boolean;
  /** fragment: offset in the packed inode. */
  fragmentOffset?: number;
}

export interface CompressOptions {
  /** One algorithm, or [head1, head2] used for alternate extents. */
  alg: AlgorithmName | [AlgorithmName, AlgorithmName];
  /** Pcluster size in blocks (big pclusters when > 1). */
  pclusterBlocks?: number;
  /** Store the last extent inline after the index (compressed or raw). */
  ztail?: boolean;
  /** Put the last `fragmentTail` bytes into the packed inode. */
  fragmentTail?: number;
  /** Store raw extents rotated (INTERLACED_PCLUSTER). */
  interlaced?: boolean;
  /** Store every extent raw (to exercise PLAIN lclusters). */
  forceRaw?: boolean;
}

export class Crafter {
  readonly blksz: number;
  featureCompat = EROFS_FEATURE_COMPAT_SB_CHKSUM | EROFS_FEATURE_COMPAT_MTIME;
  featureIncompat = 0;
  epoch = 1_700_000_000n;
  private readonly meta: Uint8Array;
  private metaCursor = 0;
  private readonly aux: Uint8Array;
  private auxCursor = 0;
  private readonly dataBlocks: Uint8Array[] = [];
  private readonly cfg = new Map<number, Uint8Array>();
  private readonly packed: number[] = [];
  private packedData: Buffer[] = [];
  private packedSize = 0;
  prefixes: { base: number; infix: string }[] = [];
  prefixesInPacked = false;
  inodeCount = 0;
  packedNid: Nid | null = null;

  constructor(
    readonly blkszbits = 12,
    private readonly metaBlocks = 16,
  ) {
    this.blksz = 1 << blkszbits;
    this.meta = new Uint8Array(metaBlocks * this.blksz);
    this.aux = new Uint8Array(this.blksz);
  }

  get dataStartBlock(): number {
    return META_START_BLOCK + this.metaBlocks;
  }

  // ---------------------------------------------------------------- allocation

  /** Appends whole blocks of data; returns the first block address. */
  allocData(bytes: Uint8Array): number {
    const n = Math.ceil(bytes.length / this.blksz);
    const addr = this.dataStartBlock + this.dataBlocks.length;
    for (let i = 0; i < n; i++) {
      const b = new Uint8Array(this.blksz);
      b.set(bytes.subarray(i * this.blksz, (i + 1) * this.blksz));
      this.dataBlocks.push(b);
    }
    return addr;
  }

  /** Reserves `size` bytes of metadata (32-aligned, never crossing a block); returns the nid. */
  reserveInode(size: number, crossBlocks = false): Nid {
    if (size > this.blksz && !crossBlocks) throw new Error(`inode of ${size} bytes does not fit a block`);
    let pos = Math.ceil(this.metaCursor / 32) * 32;
    if (!crossBlocks && (pos % this.blksz) + size > this.blksz) pos = Math.ceil(pos / this.blksz) * this.blksz;
    if (pos + size > this.meta.length) throw new Error('metadata area full');
    this.metaCursor = pos + size;
    this.inodeCount++;
    return toNid((META_START_BLOCK * this.blksz + pos) / 32);
  }

  writeInode(n: Nid, bytes: Uint8Array): void {
    this.meta.set(bytes, n * 32 - META_START_BLOCK * this.blksz);
  }

  /** Adds an entry to the shared xattr area; returns its id. */
  addSharedXattr(x: XattrSpec): number {
    const e = encodeXattrEntry({ index: x.index, suffix: Buffer.from(x.suffix) }, Buffer.from(x.value));
    const id = (this.blksz + this.auxCursor) / 4;
    this.sharedKeys.set(id, { index: x.index, suffix: Buffer.from(x.suffix) });
    this.aux.set(e, this.auxCursor);
    this.auxCursor += e.length;
    return id;
  }

  /** Appends bytes to the packed inode; returns their offset. */
  addFragment(bytes: Uint8Array): number {
    const off = this.packedSize;
    this.packedData.push(Buffer.from(bytes));
    this.packedSize += bytes.length;
    return off;
  }

  enableAlgorithm(alg: AlgorithmName, maxPclusterBytes = this.blksz): number {
    const c = createCompressor(alg, { maxPclusterBytes });
    const existing = this.cfg.get(c.algorithm);
    const rec = c.configRecord(maxPclusterBytes, this.blksz);
    if (!existing || new DataView(rec.buffer).getUint16(2, true) > new DataView(existing.buffer).getUint16(2, true)) {
      this.cfg.set(c.algorithm, rec);
    }
    this.featureIncompat |= EROFS_FEATURE_INCOMPAT_ZERO_PADDING | EROFS_FEATURE_INCOMPAT_COMPR_CFGS;
    return c.algorithm;
  }

  // ---------------------------------------------------------------- inode bodies

  private readonly sharedKeys = new Map<number, { index: number; suffix: Buffer }>();

  /** The bloom filter hashes long-prefixed names as (base index, infix + suffix). */
  private filterKey(k: { index: number; suffix: Buffer }): { index: number; suffix: Buffer } {
    if (!(k.index & 0x80)) return k;
    const p = this.prefixes[k.index & 0x7f]!;
    return { index: p.base, suffix: Buffer.concat([Buffer.from(p.infix), k.suffix]) };
  }

  private xattrBody(a: InodeAttrs): Uint8Array {
    const xs = a.xattrs ?? [];
    const shared = a.shared ?? [];
    if (xs.length === 0 && shared.length === 0) return new Uint8Array(0);
    const keys = xs.map((x) => ({ index: x.index, suffix: Buffer.from(x.suffix) }));
    this.featureCompat |= EROFS_FEATURE_COMPAT_XATTR_FILTER;
    const filterKeys = [...keys, ...shared.map((id) => this.sharedKeys.get(id)!)].map((k) => this.filterKey(k));
    return encodeXattrIbody({
      nameFilter: xattrNameFilter(filterKeys),
      sharedIds: shared,
      entries: xs.map((x, i) => encodeXattrEntry(keys[i]!, Buffer.from(x.value))),
      padding: 0,
    });
  }

  private inodeHeader(a: InodeAttrs, layout: number, size: number, u: number, xattrBytes: number, defMode: number): Uint8Array {
    return encodeInode({
      extended: true,
      datalayout: layout,
      formatFlags: 0,
      xattrIcount: xattrIcount(xattrBytes),
      mode: a.mode ?? defMode,
      nlink: a.nlink ?? 1,
      size: BigInt(size),
      u,
      ino: this.inodeCount,
      uid: a.uid ?? 0,
      gid: a.gid ?? 0,
      mtime: a.mtime ?? this.epoch,
      mtimeNsec: a.mtimeNsec ?? 0,
    });
  }

  /** A regular file stored flat: FLAT_INLINE when the tail fits after the inode, else FLAT_PLAIN. */
  addFlatFile(data: Uint8Array, a: InodeAttrs = {}, defMode = S_IFREG | 0o644): Nid {
    const xb = this.xattrBody(a);
    const full = Math.floor(data.length / this.blksz) * this.blksz;
    const tail = data.length - full;
    const inlineOk = tail > 0 && 64 + xb.length + tail <= this.blksz;
    const layout = inlineOk ? EROFS_INODE_FLAT_INLINE : EROFS_INODE_FLAT_PLAIN;
    const blockBytes = inlineOk ? full : data.length;
    const start = blockBytes > 0 ? this.allocData(data.subarray(0, blockBytes)) : inlineOk ? EROFS_NULL_ADDR : 0;
    const n = this.reserveInode(64 + xb.length + (inlineOk ? tail : 0));
    const parts = [this.inodeHeader(a, layout, data.length, start, xb.length, defMode), xb];
    if (inlineOk) parts.push(data.subarray(full));
    this.writeInode(n, Buffer.concat(parts));
    return n;
  }

  /** A directory; `entries` excludes "." and "..". Reserve `self` first with reserveDir(). */
  writeDir(self: Nid, parent: Nid, entries: { name: string | Buffer; nid: Nid; mode: number }[], a: InodeAttrs = {}): void {
    const all: DirEntry[] = [
      { name: Buffer.from('.'), nid: self, fileType: EROFS_FT_DIR },
      { name: Buffer.from('..'), nid: parent, fileType: EROFS_FT_DIR },
      ...entries.map((e) => ({ name: Buffer.from(e.name), nid: e.nid, fileType: fileTypeOf(e.mode) })),
    ].sort((x, y) => Buffer.compare(x.name, y.name));
    const data = encodeDirectory(all, this.blksz);
    const xb = this.xattrBody(a);
    // Directory data goes to blocks (FLAT_PLAIN) so that the reserved inode size is fixed.
    const start = this.allocData(data);
    const bytes = Buffer.concat([this.inodeHeader(a, EROFS_INODE_FLAT_PLAIN, data.length, start, xb.length, S_IFDIR | 0o755), xb]);
    if (bytes.length > 64 + 256) throw new Error('directory xattrs too large for the reserved slot');
    this.writeInode(self, bytes);
  }

  reserveDir(): Nid {
    return this.reserveInode(64 + 256);
  }

  /** Chunk-based file. `chunks[i] === null` is a hole. */
  addChunkedFile(data: Uint8Array, chunkBits: number, opts: { indexes?: boolean; holes?: number[] } = {}, a: InodeAttrs = {}): Nid {
    this.featureIncompat |= EROFS_FEATURE_INCOMPAT_CHUNKED_FILE;
    const cs = 2 ** chunkBits;
    const count = Math.ceil(data.length / cs);
    const unit = opts.indexes ? 8 : 4;
    const entries = new Uint8Array(count * unit);
    const v = new DataView(entries.buffer);
    for (let i = 0; i < count; i++) {
      const hole = opts.holes?.includes(i) ?? false;
      const blk = hole ? EROFS_NULL_ADDR : this.allocData(data.subarray(i * cs, Math.min((i + 1) * cs, data.length)));
      if (opts.indexes) {
        v.setUint16(i * 8, hole ? 0xffff : 0, true);
        v.setUint16(i * 8 + 2, 0, true);
        v.setUint32(i * 8 + 4, blk, true);
      } else {
        v.setUint32(i * 4, blk, true);
      }
    }
    const xb = this.xattrBody(a);
    const format = (chunkBits - this.blkszbits) | (opts.indexes ? 0x20 : 0);
    const head = Buffer.concat([this.inodeHeader(a, EROFS_INODE_CHUNK_BASED, data.length, format, xb.length, S_IFREG | 0o644), xb]);
    const pad = (unit - (head.length % unit)) % unit;
    const n = this.reserveInode(head.length + pad + entries.length);
    this.writeInode(n, Buffer.concat([head, Buffer.alloc(pad), entries]));
    return n;
  }

  // ---------------------------------------------------------------- compressed files

  /** Splits `data` into extents the way mkfs does (destsize pclusters, raw fallback). */
  planExtents(data: Uint8Array, o: CompressOptions): PlanExtent[] {
    const algs: AlgorithmName[] = Array.isArray(o.alg) ? o.alg : [o.alg];
    const pcBlocks = o.pclusterBlocks ?? 1;
    const comps = algs.map((a) => createCompressor(a, { maxPclusterBytes: pcBlocks * this.blksz }));
    algs.forEach((a) => this.enableAlgorithm(a, pcBlocks * this.blksz));
    const bs = this.blksz;
    const fragLen = o.fragmentTail ?? 0;
    const limit = data.length - fragLen;
    const out: PlanExtent[] = [];
    let p = 0;
    let k = 0;
    while (p < limit) {
      const rem = data.subarray(p, limit);
      const which = k % comps.length;
      const r = o.forceRaw ? null : comps[which]!.compressDestSize(rem, pcBlocks * bs);
      const usable = r !== null && (r.consumed >= bs || r.consumed === rem.length) && Math.ceil(r.data.length / bs) * bs < r.consumed;
      if (usable) {
        const blocks = Math.ceil(r!.data.length / bs);
        const pc = new Uint8Array(blocks * bs);
        pc.set(r!.data, pc.length - r!.data.length);
        out.push({
          start: p,
          length: r!.consumed,
          type: which === 0 ? Z_EROFS_LCLUSTER_TYPE_HEAD1 : Z_EROFS_LCLUSTER_TYPE_HEAD2,
          store: 'blocks',
          payload: pc,
          blocks,
        });
        (out[out.length - 1] as PlanExtent & { compressed?: Uint8Array }).compressed = r!.data;
        p += r!.consumed;
      } else {
        const len = Math.min(bs, rem.length);
        const pc = new Uint8Array(bs);
        const piece = rem.subarray(0, len);
        if (o.interlaced) {
          const rot = p % bs;
          for (let i = 0; i < len; i++) pc[(rot + i) % bs] = piece[i]!;
        } else {
          pc.set(piece);
        }
        out.push({ start: p, length: len, type: Z_EROFS_LCLUSTER_TYPE_PLAIN, store: 'blocks', payload: pc, blocks: 1 });
        (out[out.length - 1] as PlanExtent & { rawBytes?: Uint8Array }).rawBytes = piece;
        p += len;
      }
      k++;
    }
    if (fragLen > 0) {
      // A head may not share an lcluster with the previous one: fold short extents into the fragment.
      let fstart = limit;
      while (out.length > 0 && Math.floor(out[out.length - 1]!.start / bs) === Math.floor(fstart / bs) && fstart < data.length) {
        fstart = out.pop()!.start;
      }
      const off = this.addFragment(data.subarray(fstart));
      out.push({ start: fstart, length: data.length - fstart, type: Z_EROFS_LCLUSTER_TYPE_HEAD1, store: 'fragment', blocks: 0, fragmentOffset: off });
      this.featureIncompat |= EROFS_FEATURE_INCOMPAT_FRAGMENTS;
    } else if (o.ztail && out.length > 0) {
      const last = out[out.length - 1] as PlanExtent & { compressed?: Uint8Array; rawBytes?: Uint8Array };
      const bytes = last.compressed ?? last.rawBytes!;
      if (bytes.length < bs) {
        last.store = 'inline';
        last.payload = bytes;
        last.blocks = 0;
        this.featureIncompat |= EROFS_FEATURE_INCOMPAT_ZTAILPACKING;
      }
    }
    for (let i = 1; i < out.length; i++) {
      if (Math.floor(out[i]!.start / bs) === Math.floor(out[i - 1]!.start / bs)) throw new Error('two heads in one lcluster');
    }
    return out;
  }

  /** Writes a COMPRESSED_FULL inode for `size` bytes described by `plan`. */
  addCompressedFile(size: number, plan: PlanExtent[], o: Partial<CompressOptions> & { algs?: [number, number] }, a: InodeAttrs = {}): Nid {
    const bs = this.blksz;
    const big = (o.pclusterBlocks ?? 1) > 1;
    if (big) this.featureIncompat |= EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER;
    let blocksUsed = 0;
    for (const e of plan) {
      if (e.store !== 'blocks') continue;
      if (e.blkaddr === undefined) {
        e.blkaddr = this.allocData(e.payload!);
        blocksUsed += e.blocks;
      }
    }
    const totalIdx = Math.ceil(size / bs);
    const headLcn = plan.map((e) => Math.floor(e.start / bs));
    const recs = new Uint8Array(totalIdx * 8);
    const v = new DataView(recs.buffer);
    // Like mkfs: if the last extent ends inside an lcluster no head covers, an extra PLAIN
    // record there marks EOF (the kernel otherwise maps the extent up to the lcluster end).
    const lastLcn = totalIdx - 1;
    const eofTerminator = size % bs !== 0 && !headLcn.includes(lastLcn) && plan[plan.length - 1]?.store !== 'inline';
    let ei = 0;
    for (let lcn = 0; lcn < totalIdx; lcn++) {
      if (eofTerminator && lcn === lastLcn) {
        v.setUint16(lcn * 8, Z_EROFS_LCLUSTER_TYPE_PLAIN, true);
        v.setUint16(lcn * 8 + 2, size % bs, true);
        v.setUint32(lcn * 8 + 4, 0, true);
        continue;
      }
      while (ei + 1 < plan.length && plan[ei + 1]!.start <= lcn * bs) ei++;
      const hi = headLcn.indexOf(lcn);
      if (hi >= 0) {
        const e = plan[hi]!;
        v.setUint16(lcn * 8, e.type | (e.partial ? 0x8000 : 0), true);
        v.setUint16(lcn * 8 + 2, e.start - lcn * bs, true);
        v.setUint32(lcn * 8 + 4, e.store === 'blocks' ? e.blkaddr! : 0, true);
        continue;
      }
      const e = plan[ei]!;
      const h = headLcn[ei]!;
      let d0 = lcn - h;
      if (big && d0 === 1) d0 = 0x800 | e.blocks;
      else d0 = Math.min(d0, 0x7ff);
      const next = ei + 1 < plan.length ? headLcn[ei + 1]! : eofTerminator ? lastLcn : totalIdx;
      v.setUint16(lcn * 8, Z_EROFS_LCLUSTER_TYPE_NONHEAD, true);
      v.setUint16(lcn * 8 + 2, 0, true);
      v.setUint16(lcn * 8 + 4, d0, true);
      v.setUint16(lcn * 8 + 6, Math.min(next - lcn, 0x7ff), true);
    }
    const last = plan[plan.length - 1];
    let advise = 0;
    let word0 = 0;
    let idata: Uint8Array = new Uint8Array(0);
    if (big) advise |= Z_EROFS_ADVISE_BIG_PCLUSTER_1 | Z_EROFS_ADVISE_BIG_PCLUSTER_2;
    if (o.interlaced) advise |= Z_EROFS_ADVISE_INTERLACED_PCLUSTER;
    if (last?.store === 'inline') {
      advise |= Z_EROFS_ADVISE_INLINE_PCLUSTER;
      idata = last.payload!;
      word0 = idata.length << 16;
    } else if (last?.store === 'fragment') {
      advise |= Z_EROFS_ADVISE_FRAGMENT_PCLUSTER;
      word0 = last.fragmentOffset!;
    }
    const algs = o.algs ?? this.planAlgorithms(o.alg);
    if (algs[1] !== algs[0] && plan.some((e) => e.type === Z_EROFS_LCLUSTER_TYPE_HEAD2)) {
      this.featureIncompat |= EROFS_FEATURE_INCOMPAT_COMPR_HEAD2;
    }
    const header = new Uint8Array(16);
    const hv = new DataView(header.buffer);
    hv.setUint32(0, word0, true);
    hv.setUint16(4, advise, true);
    hv.setUint8(6, algs[0] | (algs[1] << 4));
    hv.setUint8(7, 0);
    const xb = this.xattrBody(a);
    const head = Buffer.concat([this.inodeHeader(a, EROFS_INODE_COMPRESSED_FULL, size, blocksUsed, xb.length, S_IFREG | 0o644), xb]);
    const pad = (8 - (head.length % 8)) % 8;
    const body = Buffer.concat([head, Buffer.alloc(pad), header, recs, idata]);
    // Full indexes may cross blocks; only an inline pcluster must stay within one.
    const n = this.reserveInode(body.length, idata.length === 0);
    this.writeInode(n, body);
    return n;
  }

  private planAlgorithms(alg: CompressOptions['alg'] | undefined): [number, number] {
    if (alg === undefined) return [0, 0];
    const ids = (Array.isArray(alg) ? alg : [alg]).map((x) => createCompressor(x).algorithm);
    return [ids[0]!, ids[1] ?? ids[0]!];
  }

  /** Plans and writes a compressed file in one go. */
  addCompressed(data: Uint8Array, o: CompressOptions, a: InodeAttrs = {}): { nid: Nid; plan: PlanExtent[] } {
    const plan = this.planExtents(data, o);
    return { nid: this.addCompressedFile(data.length, plan, o, a), plan };
  }

  /** A file whose whole content is a fragment (the "bit 63" map header). */
  addWholeFragmentFile(data: Uint8Array, a: InodeAttrs = {}): Nid {
    this.featureIncompat |= EROFS_FEATURE_INCOMPAT_FRAGMENTS;
    const off = this.addFragment(data);
    const xb = this.xattrBody(a);
    const head = Buffer.concat([this.inodeHeader(a, EROFS_INODE_COMPRESSED_FULL, data.length, 0, xb.length, S_IFREG | 0o644), xb]);
    const pad = (8 - (head.length % 8)) % 8;
    const h = new Uint8Array(8);
    new DataView(h.buffer).setBigUint64(0, (1n << 63n) | BigInt(off), true);
    const n = this.reserveInode(head.length + pad + 8);
    this.writeInode(n, Buffer.concat([head, Buffer.alloc(pad), h]));
    return n;
  }

  /** Writes the packed inode from the collected fragments (flat, or compressed with `o`). */
  finishPacked(o?: CompressOptions): Nid | null {
    if (this.packedSize === 0 && !(this.prefixesInPacked && this.prefixes.length > 0)) return null;
    if (this.prefixesInPacked && this.prefixes.length > 0) {
      // The long-prefix table lives at a 4-aligned offset of the packed inode.
      const pad = (4 - (this.packedSize % 4)) % 4;
      this.addFragment(new Uint8Array(pad));
      this.prefixStart = this.packedSize / 4;
      this.addFragment(this.prefixTable());
    }
    const data = Buffer.concat(this.packedData);
    this.packedNid = o ? this.addCompressed(data, o, { mtime: this.epoch }).nid : this.addFlatFile(data, {});
    return this.packedNid;
  }

  private prefixStart = 0;

  private prefixTable(): Buffer {
    const parts: Buffer[] = [];
    for (const p of this.prefixes) {
      const rec = Buffer.concat([Buffer.from([p.base]), Buffer.from(p.infix)]);
      const len = Buffer.alloc(2);
      len.writeUInt16LE(rec.length);
      const whole = Buffer.concat([len, rec]);
      parts.push(Buffer.concat([whole, Buffer.alloc((4 - (whole.length % 4)) % 4)]));
    }
    return Buffer.concat(parts);
  }

  // ---------------------------------------------------------------- image

  build(rootNid: Nid): Buffer {
    const bs = this.blksz;
    const sb = superblockDefaults(this.blkszbits);
    if (this.prefixes.length > 0) {
      this.featureIncompat |= EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES;
      if (!this.prefixesInPacked) {
        this.featureCompat |= 0x10;
        this.prefixStart = (bs + this.auxCursor) / 4;
        const t = this.prefixTable();
        this.aux.set(t, this.auxCursor);
        this.auxCursor += t.length;
      }
    }
    const totalBlocks = this.dataStartBlock + this.dataBlocks.length;
    sb.featureCompat = this.featureCompat;
    sb.featureIncompat = this.featureIncompat;
    sb.rootNid = rootNid;
    sb.inos = BigInt(this.inodeCount);
    sb.epoch = this.epoch;
    sb.blocks = totalBlocks;
    sb.metaBlkaddr = blockAddr(0);
    sb.xattrBlkaddr = blockAddr(0);
    sb.xattrPrefixCount = this.prefixes.length;
    sb.xattrPrefixStart = this.prefixStart;
    sb.packedNid = BigInt(this.packedNid ?? 0);
    let algs = 0;
    for (const k of this.cfg.keys()) algs |= 1 << k;
    sb.u1 = this.featureIncompat & EROFS_FEATURE_INCOMPAT_COMPR_CFGS ? algs : 0;
    const img = Buffer.alloc(totalBlocks * bs);
    img.set(encodeSuperblock(sb), EROFS_SUPER_OFFSET);
    let pos = EROFS_SUPER_OFFSET + 128;
    for (const k of [...this.cfg.keys()].sort()) {
      pos = (pos + 3) & ~3;
      const rec = this.cfg.get(k)!;
      img.writeUInt16LE(rec.length, pos);
      img.set(rec, pos + 2);
      pos += 2 + rec.length;
    }
    img.set(this.aux, bs);
    img.set(this.meta, META_START_BLOCK * bs);
    this.dataBlocks.forEach((b, i) => img.set(b, (this.dataStartBlock + i) * bs));
    sealSuperblock(img.subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + superblockChecksumLength(bs)));
    return img;
  }
}

/** Compressible text with some incompressible stretches. */
export function sampleData(size: number, seed = 1, randomFraction = 0.15): Buffer {
  let s = seed >>> 0 || 1;
  const rnd = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
  const words = Array.from({ length: 300 }, (_, i) => `w${i.toString(36)}${'abcdefghij'.slice(0, 1 + (i % 9))}`);
  const out = Buffer.alloc(size);
  let p = 0;
  while (p < size) {
    if (rnd() < randomFraction) {
      const n = Math.min(size - p, 500 + Math.floor(rnd() * 6000));
      for (let i = 0; i < n; i++) out[p + i] = Math.floor(rnd() * 256);
      p += n;
    } else {
      const n = Math.min(size - p, 2000 + Math.floor(rnd() * 20000));
      let q = 0;
      while (q < n) {
        const w = words[Math.floor(rnd() * words.length)]!;
        for (let i = 0; i < w.length && q < n; i++) out[p + q++] = w.charCodeAt(i);
        if (q < n) out[p + q++] = 0x20;
      }
      p += n;
    }
  }
  return out;
}
