// Random access to the bytes of an image. The image is never loaded whole: a
// file is read with positioned reads, and small (metadata) reads go through a
// bounded block cache. Every read is bounds-checked here, which is what makes a
// hostile offset harmless everywhere else.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { CorruptImageError } from './errors.js';

/** Where image bytes come from. `pread` is only called with in-range arguments. */
export interface ByteSource {
  readonly size: number;
  pread(pos: number, len: number): Uint8Array;
  close(): void;
}

export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | null;

  constructor(path: string) {
    this.fd = openSync(path, 'r');
    try {
      const st = fstatSync(this.fd);
      if (st.isDirectory()) throw new Error(`${path} is a directory`);
      // Block devices report size 0 through fstat; ask the kernel for the end instead.
      this.size = st.isBlockDevice() ? blockDeviceSize(this.fd) : st.size;
    } catch (e) {
      closeSync(this.fd);
      this.fd = null;
      throw e;
    }
  }

  pread(pos: number, len: number): Uint8Array {
    if (this.fd === null) throw new Error('image is closed');
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, out, done, len - done, pos + done);
      if (n === 0) throw new CorruptImageError(`unexpected end of image at byte ${pos + done}`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function blockDeviceSize(fd: number): number {
  // Binary search for the last readable byte; block devices are rare inputs here.
  const one = new Uint8Array(1);
  const readable = (pos: number): boolean => {
    try {
      return readSync(fd, one, 0, 1, pos) === 1;
    } catch {
      return false;
    }
  };
  let lo = 0;
  let hi = 1;
  while (readable(hi - 1) && hi < 2 ** 52) hi *= 2;
  // Invariant: bytes < lo readable, byte hi-1 unreadable.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (readable(mid - 1)) lo = mid;
    else hi = mid;
  }
  return readable(lo) ? lo + 1 : lo;
}

/** An image held in memory (tests, fuzzing, images already in a buffer). */
export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.length;
  }
  pread(pos: number, len: number): Uint8Array {
    // A plain Uint8Array view (not a Buffer), so that .slice() elsewhere copies.
    return new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + pos, len);
  }
  close(): void {}
}

/** Largest single read the reader ever issues; anything bigger is a corrupt length. */
export const MAX_READ = 1 << 30;

/**
 * Bounds-checked reads with a small LRU cache of blocks. Returned arrays may be
 * views into the cache: callers must treat them as read-only.
 */
export class ImageReader {
  private readonly cache: GenerationalCache<number, Uint8Array>;
  private lastBlock = -1;
  private lastData: Uint8Array | null = null;
  private blksz = 4096;
  private blkszbits = 12;

  constructor(
    readonly source: ByteSource,
    cacheBlocks = 1024,
  ) {
    this.cache = new GenerationalCache(cacheBlocks);
  }

  get size(): number {
    return this.source.size;
  }

  /** Switches the cache granularity to the image's block size (after the superblock is read). */
  setBlockBits(bits: number): void {
    this.blkszbits = bits;
    this.blksz = 1 << bits;
    this.cache.clear();
    this.lastBlock = -1;
    this.lastData = null;
  }

  /** Whether [pos, pos+len) lies inside the image. */
  contains(pos: number, len: number): boolean {
    return (
      Number.isSafeInteger(pos) && Number.isSafeInteger(len) && pos >= 0 && len >= 0 && pos + len <= this.source.size
    );
  }

  /** Throws a CorruptImageError naming `what` unless [pos, pos+len) is inside the image. */
  checkRange(pos: number, len: number, what: string): void {
    if (!this.contains(pos, len)) {
      throw new CorruptImageError(
        `${what} (bytes ${pos}..${pos + len}) lies outside the image (${this.source.size} bytes)`,
      );
    }
  }

  read(pos: number, len: number, what: string): Uint8Array {
    this.checkRange(pos, len, what);
    if (len > MAX_READ) throw new CorruptImageError(`${what}: length ${len} is implausibly large`);
    if (len === 0) return new Uint8Array(0);
    const first = Math.floor(pos / this.blksz);
    const last = Math.floor((pos + len - 1) / this.blksz);
    if (first === last) {
      const b = this.block(first);
      const off = pos - first * this.blksz;
      return b.subarray(off, off + len);
    }
    if (last - first > 2) return this.source.pread(pos, len);
    const out = new Uint8Array(len);
    let done = 0;
    for (let blk = first; blk <= last; blk++) {
      const b = this.block(blk);
      const start = blk === first ? pos - first * this.blksz : 0;
      const n = Math.min(b.length - start, len - done);
      out.set(b.subarray(start, start + n), done);
      done += n;
    }
    return out;
  }

  /** Reads without the cache (bulk file data), still bounds-checked. */
  readUncached(pos: number, len: number, what: string): Uint8Array {
    this.checkRange(pos, len, what);
    if (len > MAX_READ) throw new CorruptImageError(`${what}: length ${len} is implausibly large`);
    return this.source.pread(pos, len);
  }

  private block(blk: number): Uint8Array {
    if (blk === this.lastBlock && this.lastData !== null) return this.lastData;
    let data = this.cache.get(blk);
    if (data === undefined) {
      const start = blk * this.blksz;
      data = this.source.pread(start, Math.min(this.blksz, this.source.size - start));
      this.cache.set(blk, data);
    }
    this.lastBlock = blk;
    this.lastData = data;
    return data;
  }

  get blockBits(): number {
    return this.blkszbits;
  }

  close(): void {
    this.cache.clear();
    this.lastData = null;
    this.source.close();
  }
}

/**
 * An approximate LRU with O(1) cheap operations: entries live in a young and an old
 * generation; a hit in the old one promotes the entry; when the young generation fills
 * up it becomes the old one (dropping the previous old one). Holds at most `limit` entries.
 */
export class GenerationalCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly half: number;

  constructor(limit: number) {
    this.half = Math.max(1, Math.floor(limit / 2));
  }

  get(k: K): V | undefined {
    const v = this.young.get(k);
    if (v !== undefined) return v;
    const o = this.old.get(k);
    if (o !== undefined) this.set(k, o);
    return o;
  }

  set(k: K, v: V): void {
    if (this.young.size >= this.half && !this.young.has(k)) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(k, v);
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}
