// Public reader API: open an EROFS image and look up paths, list directories,
// stat inodes, read symlinks, xattrs and file data (any layout, any algorithm).
//
//   const img = openImage('image.erofs');
//   const nid = img.lookup('/etc/hostname');
//   const text = Buffer.from(img.read(nid, 0, img.stat(nid).size)).toString();
//   img.close();

import { EROFS_FEATURE_INCOMPAT_FRAGMENTS, EROFS_INODE_CHUNK_BASED } from '../format/constants.js';
import { type Nid, nid as toNid } from '../format/types.js';
import { ChunkMap, mapFlat } from './data.js';
import { type DecompressorProvider, ExtentDecoder } from './decompress.js';
import { type DirEntry, lookupName, readDirectory } from './dir.js';
import { CorruptImageError, ErofsError, InvalidArgumentError, NotFoundError } from './errors.js';
import type { Extent } from './extent.js';
import { BufferSource, type ByteSource, FileSource, GenerationalCache, ImageReader } from './image.js';
import { type FileKind, type Inode, LAYOUT_NAMES, isCompressedLayout, loadInode } from './inode.js';
import { type SuperInfo, loadSuperblock } from './super.js';
import { type LongPrefix, type XattrEntry, filterExcludes, loadLongPrefixes, readXattrs } from './xattr.js';
import { ZMap } from './zmap.js';
import { getDecompressor } from '../compress/registry.js';

export { CorruptImageError, ErofsError, InvalidArgumentError, NotFoundError, UnsupportedFeatureError } from './errors.js';
export type { DirEntry } from './dir.js';
export { fileTypeKind } from './dir.js';
export type { Extent, ExtentKind } from './extent.js';
export type { FileKind, Inode } from './inode.js';
export { LAYOUT_NAMES } from './inode.js';
export type { SuperInfo, CompressionConfig } from './super.js';
export { ALGORITHM_NAMES, featureNames } from './super.js';
export type { XattrEntry } from './xattr.js';
export type { DecompressorLike, DecompressorProvider } from './decompress.js';
export { BufferSource, FileSource, type ByteSource } from './image.js';
export { fsckImage, type FsckOptions, type FsckProblem, type FsckReport } from './fsck.js';
export { ExtractError, type ExtractOptions } from './extract.js';
export { collectStats, type ImageStats, type SizeBucket } from './stats.js';
export { walkTree, type WalkEntry, type WalkHooks } from './walk.js';
export { MAX_EXTENT_BYTES } from './zmap.js';

/** Directories larger than this (millions of entries) are treated as corrupt. */
export const MAX_DIR_BYTES = 128 * 1024 * 1024;

export interface OpenOptions {
  /** Codec lookup; defaults to src/compress/registry.ts. */
  decompressors?: DecompressorProvider;
  /** Upper bound for the cache of decompressed extents, in bytes (default 32 MiB). */
  extentCacheBytes?: number;
  /**
   * Extra devices in device-table order (a --tar=i image's tar). Without them, their blocks
   * are read where the kernel finds them without -o device=: appended to the image.
   */
  devices?: string[];
}

/** What stat() reports. */
export interface InodeStat {
  readonly nid: Nid;
  /** The 32-bit i_ino serial number stored on disk. */
  readonly ino: number;
  readonly kind: FileKind;
  /** Full st_mode (type and permission bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly size: number;
  readonly mtime: bigint;
  readonly mtimeNsec: number;
  readonly rdev: { readonly major: number; readonly minor: number };
  readonly layout: number;
  readonly layoutName: string;
  readonly compressed: boolean;
  readonly extendedInode: boolean;
  readonly inodeSize: number;
  readonly xattrSize: number;
}

export class ErofsImage {
  readonly superblock: SuperInfo;
  readonly rootNid: Nid;
  private readonly img: ImageReader;
  private readonly devices: ImageReader[] = [];
  private readonly decoder: ExtentDecoder;
  private readonly inodes = new GenerationalCache<number, Inode>(8192);
  private readonly zmaps = new GenerationalCache<number, ZMap>(512);
  private readonly chunkMaps = new GenerationalCache<number, ChunkMap>(512);
  private lastInode: Inode | null = null;
  private readonly extentCache = new Map<string, Uint8Array>();
  private extentCacheBytes = 0;
  private readonly extentCacheLimit: number;
  private prefixes: LongPrefix[] | null = null;
  private packedDepth = 0;

  constructor(source: ByteSource, opts: OpenOptions = {}) {
    this.img = new ImageReader(source);
    try {
      this.superblock = loadSuperblock(this.img);
    } catch (e) {
      this.img.close();
      throw e;
    }
    this.rootNid = this.superblock.rootNid;
    try {
      for (const path of opts.devices ?? []) this.devices.push(new ImageReader(new FileSource(path)));
      if (this.devices.length > 0 && this.devices.length !== this.superblock.devices.length) {
        throw new InvalidArgumentError(`${this.devices.length} device(s) given, the image has ${this.superblock.devices.length}`);
      }
    } catch (e) {
      this.close();
      throw e;
    }
    this.decoder = new ExtentDecoder(this.img, this.superblock, opts.decompressors ?? getDecompressor);
    this.extentCacheLimit = opts.extentCacheBytes ?? 32 * 1024 * 1024;
  }

  /** Image file size in bytes. */
  get imageSize(): number {
    return this.img.size;
  }

  /** nid of the packed (fragments) inode, or null if the image has none. */
  get packedNid(): Nid | null {
    const sb = this.superblock;
    if (!(sb.featureIncompat & EROFS_FEATURE_INCOMPAT_FRAGMENTS) || sb.raw.packedNid === 0n) return null;
    if (sb.raw.packedNid > BigInt(Number.MAX_SAFE_INTEGER)) throw new CorruptImageError(`packed nid ${sb.raw.packedNid} is too large`);
    return toNid(Number(sb.raw.packedNid));
  }

  /** The validated inode `n`. */
  inode(n: Nid | number): Inode {
    if (this.lastInode !== null && this.lastInode.nid === n) return this.lastInode;
    let ino = this.inodes.get(n);
    if (!ino) {
      ino = loadInode(this.img, this.superblock, n as Nid);
      this.inodes.set(n, ino);
    }
    this.lastInode = ino;
    return ino;
  }

  stat(n: Nid | number): InodeStat {
    const i = this.inode(n);
    return {
      nid: i.nid,
      ino: i.disk.ino,
      kind: i.kind,
      mode: i.mode,
      uid: i.uid,
      gid: i.gid,
      nlink: i.nlink,
      size: i.size,
      mtime: i.mtime,
      mtimeNsec: i.mtimeNsec,
      rdev: i.rdev,
      layout: i.layout,
      layoutName: LAYOUT_NAMES[i.layout] ?? String(i.layout),
      compressed: isCompressedLayout(i.layout),
      extendedInode: i.inodeSize === 64,
      inodeSize: i.inodeSize,
      xattrSize: i.xattrSize,
    };
  }

  private requireDir(n: Nid | number): Inode {
    const i = this.inode(n);
    if (i.kind !== 'dir') throw new InvalidArgumentError(`not a directory`, { nid: i.nid });
    return i;
  }

  /** Directory entries in on-disk (sorted) order, including "." and "..". */
  readdir(n: Nid | number): DirEntry[] {
    const dir = this.requireDir(n);
    if (dir.size > MAX_DIR_BYTES) throw new CorruptImageError(`directory of ${dir.size} bytes is implausibly large`, { nid: dir.nid });
    return readDirectory(dir, this.superblock.blksz, (off, len) => this.readInode(dir, off, len));
  }

  /** Looks `name` up in directory `n`; null if absent. */
  lookupIn(n: Nid | number, name: string | Uint8Array): DirEntry | null {
    const dir = this.requireDir(n);
    const key = typeof name === 'string' ? Buffer.from(name) : name;
    return lookupName(dir, this.superblock.blksz, key, (off, len) => this.readInode(dir, off, len));
  }

  /**
   * Resolves an absolute or root-relative path without following symlinks
   * (like lstat). "." and ".." are looked up as the directory stores them.
   */
  lookup(path: string | Uint8Array): Nid {
    const bytes = typeof path === 'string' ? Buffer.from(path) : Buffer.from(path);
    let cur = this.rootNid;
    const parts: Buffer[] = [];
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i === bytes.length || bytes[i] === 0x2f) {
        if (i > start) parts.push(bytes.subarray(start, i));
        start = i + 1;
      }
    }
    const shown = typeof path === 'string' ? path : Buffer.from(path).toString();
    for (const part of parts) {
      if (part.length === 1 && part[0] === 0x2e) continue;
      if (this.inode(cur).kind !== 'dir') throw new NotFoundError(`${shown}: a path component is not a directory`);
      const e = this.lookupIn(cur, part);
      if (e === null) throw new NotFoundError(`${shown}: no such file or directory`);
      cur = e.nid;
    }
    return cur;
  }

  /** Symlink target bytes. */
  readlink(n: Nid | number): Buffer {
    const i = this.inode(n);
    if (i.kind !== 'symlink') throw new InvalidArgumentError('not a symbolic link', { nid: i.nid });
    if (i.size === 0 || i.size > 4095) throw new CorruptImageError(`symlink target of ${i.size} bytes`, { nid: i.nid });
    return Buffer.from(this.readInode(i, 0, i.size));
  }

  private longPrefixes(): LongPrefix[] {
    this.prefixes ??= loadLongPrefixes(this.img, this.superblock, (off, len) => this.readPacked(off, len));
    return this.prefixes;
  }

  /**
   * All xattrs of an inode (shared first, then inline, as stored).
   * `filter` keeps only names starting with it (e.g. "user.").
   */
  listXattrs(n: Nid | number, filter?: string | Uint8Array): XattrEntry[] {
    const i = this.inode(n);
    const all = readXattrs(this.img, this.superblock, i, () => this.longPrefixes()).entries;
    if (filter === undefined) return all;
    const f = typeof filter === 'string' ? Buffer.from(filter) : Buffer.from(filter);
    return all.filter((x) => x.name.subarray(0, f.length).equals(f));
  }

  /** Value of one xattr, or null. Uses the inode's name bloom filter to skip the scan. */
  getXattr(n: Nid | number, name: string | Uint8Array): Buffer | null {
    const i = this.inode(n);
    const key = typeof name === 'string' ? Buffer.from(name) : Buffer.from(name);
    const body = readXattrs(this.img, this.superblock, i, () => this.longPrefixes());
    if (filterExcludes(this.superblock, body.nameFilter, key)) return null;
    return body.entries.find((x) => x.name.equals(key))?.value ?? null;
  }

  /** Raw xattr area details (for fsck's filter check and dump). */
  xattrDetails(n: Nid | number): ReturnType<typeof readXattrs> {
    return readXattrs(this.img, this.superblock, this.inode(n), () => this.longPrefixes());
  }

  private zmap(i: Inode): ZMap {
    let m = this.zmaps.get(i.nid);
    if (!m) {
      m = new ZMap(this.img, this.superblock, i);
      this.zmaps.set(i.nid, m);
    }
    return m;
  }

  private chunkMap(i: Inode): ChunkMap {
    let m = this.chunkMaps.get(i.nid);
    if (!m) {
      m = new ChunkMap(this.img, this.superblock, i, this.devices);
      this.chunkMaps.set(i.nid, m);
    }
    return m;
  }

  private mapInode(i: Inode, pos: number): Extent {
    if (isCompressedLayout(i.layout)) return this.zmap(i).map(pos);
    if (i.layout === EROFS_INODE_CHUNK_BASED) return this.chunkMap(i).map(pos);
    return mapFlat(this.img, this.superblock, i, pos);
  }

  /** The extent holding byte `pos` of inode `n`. */
  mapExtent(n: Nid | number, pos: number): Extent {
    return this.mapInode(this.inode(n), pos);
  }

  /**
   * File offset where the extent holding `pos` starts, found by index lookback alone
   * (cheaper than mapExtent; fsck uses it to check every lcluster of an extent).
   */
  extentStart(n: Nid | number, pos: number): number {
    const i = this.inode(n);
    if (isCompressedLayout(i.layout)) return this.zmap(i).extentStart(pos);
    return this.mapInode(i, pos).logical;
  }

  /**
   * The decoded bytes of a raw or compressed extent of inode `n` (as returned by
   * extents()/mapExtent()), bypassing the extent cache.
   */
  decodeExtent(n: Nid | number, e: Extent): Uint8Array {
    if (e.kind !== 'raw' && e.kind !== 'compressed') throw new InvalidArgumentError(`cannot decode a ${e.kind} extent`);
    return this.decoder.decode(e, this.inode(n).nid);
  }

  /** Every extent of inode `n`, in file order. */
  *extents(n: Nid | number): Generator<Extent> {
    const i = this.inode(n);
    if (!hasData(i)) return;
    let pos = 0;
    while (pos < i.size) {
      const e = this.mapInode(i, pos);
      const end = e.logical + e.length;
      if (!(e.logical <= pos && end > pos)) {
        throw new CorruptImageError(`extent map does not cover offset ${pos}`, { nid: i.nid });
      }
      yield e;
      pos = end;
    }
  }

  /** Bytes of the compression index / chunk map of inode `n` (0 for flat layouts). */
  indexBytes(n: Nid | number): number {
    const i = this.inode(n);
    if (isCompressedLayout(i.layout)) return this.zmap(i).metadataBytes;
    if (i.layout === EROFS_INODE_CHUNK_BASED) return this.chunkMap(i).metadataBytes;
    return 0;
  }

  /**
   * Reads up to `length` bytes at `offset` of inode `n`; short only at end of file.
   * Only the pclusters overlapping the range are decompressed.
   */
  read(n: Nid | number, offset: number, length: number): Uint8Array {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`invalid range ${offset}+${length}`);
    }
    return this.readInode(this.inode(n), offset, length);
  }

  /** The whole content of inode `n`. */
  readAll(n: Nid | number): Uint8Array {
    const i = this.inode(n);
    return this.readInode(i, 0, i.size);
  }

  private readInode(i: Inode, offset: number, length: number): Uint8Array {
    if (!hasData(i)) return new Uint8Array(0);
    const len = Math.max(0, Math.min(length, i.size - offset));
    const out = new Uint8Array(len);
    let pos = offset;
    const end = offset + len;
    while (pos < end) {
      const e = this.mapInode(i, pos);
      const eEnd = e.logical + e.length;
      if (!(e.logical <= pos && eEnd > pos)) {
        throw new CorruptImageError(`extent map does not cover offset ${pos}`, { nid: i.nid });
      }
      const n = Math.min(eEnd, end) - pos;
      const within = pos - e.logical;
      const dst = pos - offset;
      switch (e.kind) {
        case 'hole':
          break;
        case 'plain':
          out.set((e.device ? this.devices[e.device - 1]! : this.img).readUncached(e.physical + within, n, 'file data'), dst);
          break;
        case 'fragment':
          out.set(this.readPacked((e.fragmentOffset ?? 0) + within, n), dst);
          break;
        case 'raw':
        case 'compressed':
          out.set(this.decodedExtent(i, e).subarray(within, within + n), dst);
          break;
      }
      pos += n;
    }
    return out;
  }

  private decodedExtent(i: Inode, e: Extent): Uint8Array {
    const key = `${i.nid}:${e.logical}`;
    const hit = this.extentCache.get(key);
    if (hit && hit.length === e.length) {
      this.extentCache.delete(key);
      this.extentCache.set(key, hit);
      return hit;
    }
    const data = this.decoder.decode(e, i.nid);
    if (data.length <= this.extentCacheLimit / 4) {
      this.extentCache.set(key, data);
      this.extentCacheBytes += data.length;
      while (this.extentCacheBytes > this.extentCacheLimit) {
        const [k, v] = this.extentCache.entries().next().value as [string, Uint8Array];
        this.extentCache.delete(k);
        this.extentCacheBytes -= v.length;
      }
    }
    return data;
  }

  /** Reads bytes of the packed inode (fragments, long xattr prefixes). */
  readPacked(off: number, len: number): Uint8Array {
    const pn = this.packedNid;
    if (pn === null) throw new CorruptImageError('a fragment is referenced but the image has no packed inode');
    if (this.packedDepth > 0) throw new CorruptImageError('the packed inode refers to a fragment of itself', { nid: pn });
    const p = this.inode(pn);
    if (p.kind !== 'file') throw new CorruptImageError('the packed inode is not a regular file', { nid: pn });
    if (!(off >= 0 && len >= 0 && off + len <= p.size)) {
      throw new CorruptImageError(`fragment ${off}+${len} lies outside the packed inode (${p.size} bytes)`, { nid: pn });
    }
    this.packedDepth++;
    try {
      return this.readInode(p, off, len);
    } finally {
      this.packedDepth--;
    }
  }

  close(): void {
    this.img.close();
    for (const d of this.devices) d.close();
  }
}

function hasData(i: Inode): boolean {
  return i.kind === 'file' || i.kind === 'dir' || i.kind === 'symlink';
}

/** Opens an image file for random access (the file is not read into memory). */
export function openImage(path: string, opts?: OpenOptions): ErofsImage {
  return new ErofsImage(new FileSource(path), opts);
}

/** Opens an image held in memory. */
export function openImageBuffer(bytes: Uint8Array, opts?: OpenOptions): ErofsImage {
  return new ErofsImage(new BufferSource(bytes), opts);
}

/** True for errors that describe the image (as opposed to I/O or programming errors). */
export function isImageError(e: unknown): e is ErofsError {
  return e instanceof ErofsError;
}
