// Streaming tar reader: ustar, GNU (L/K long names, base-256 numbers) and PAX (extended and
// global headers) members, one entry at a time, never holding file data in memory.

import type { ByteReader } from './bytes.js';
import {
  AREGTYPE,
  BLKTYPE,
  CHRTYPE,
  CONTTYPE,
  DIRTYPE,
  FIFOTYPE,
  GNUTYPE_LONGLINK,
  GNUTYPE_LONGNAME,
  GNUTYPE_SPARSE,
  GNUTYPE_VOLHDR,
  isZeroBlock,
  LNKTYPE,
  parseTarHeader,
  REGTYPE,
  SYMTYPE,
  TAR_BLOCK_SIZE,
  TarFormatError,
  XGLTYPE,
  XHDTYPE,
} from './header.js';
import { applyPaxRecords, copyPax, emptyPax, parsePaxRecords, type PaxAttributes } from './pax.js';

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'directory' | 'fifo';

export interface TarEntry {
  type: TarEntryType;
  /** The member's name as stored (not yet normalised). */
  path: Buffer;
  /** Symlink target or hard-link target. */
  linkpath: Buffer;
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  /** Bytes of data that follow in the stream (0 for headerball members). */
  size: number;
  /** The file's length: the data size, also for headerball members whose data is absent. */
  fileSize: number;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
  /** POSIX ACLs as PAX text, if the archive gave them so. */
  aclAccess: string | null;
  aclDefault: string | null;
  /** Stream offset of the entry's first header (PAX and GNU headers included). */
  headerOffset: number;
  /** Stream offset of the entry's data, always a multiple of 512. */
  dataOffset: number;
}

export class TarError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
  }
}

/** Limits that stop absurd headers before anything is allocated for them. */
const MAX_PAX_BYTES = 8 << 20;
const MAX_LONGNAME_BYTES = 64 << 10;

export interface TarReaderOptions {
  /** --tar=headerball: regular members carry no data in the stream. */
  headerball?: boolean;
  warn?: (message: string) => void;
}

const TYPES: Record<number, TarEntryType> = {
  [REGTYPE]: 'file',
  [AREGTYPE]: 'file',
  [CONTTYPE]: 'file',
  [LNKTYPE]: 'hardlink',
  [SYMTYPE]: 'symlink',
  [CHRTYPE]: 'chardev',
  [BLKTYPE]: 'blockdev',
  [DIRTYPE]: 'directory',
  [FIFOTYPE]: 'fifo',
  // GNU incremental dumpdir: a directory whose data lists its contents.
  [0x44]: 'directory',
};

export class TarReader {
  private global: PaxAttributes = emptyPax();
  /** Data bytes (plus padding) of the current entry not yet consumed. */
  private pending = 0;
  private padding = 0;
  private current: TarEntry | null = null;
  private finished = false;

  constructor(
    private readonly r: ByteReader,
    private readonly opts: TarReaderOptions = {},
  ) {}

  /** Stream offset reached: after the end-of-archive blocks once next() has returned null. */
  get offset(): number {
    return this.r.offset;
  }

  /** The next member, skipping whatever data of the previous one was not read. */
  async next(): Promise<TarEntry | null> {
    if (this.finished) return null;
    await this.skipRest();
    let local = emptyPax();
    let longName: Buffer | null = null;
    let longLink: Buffer | null = null;
    let start = -1;
    let zeroBlocks = 0;
    for (;;) {
      const at = this.r.offset;
      const block = await this.r.read(TAR_BLOCK_SIZE);
      if (block.length === 0) {
        if (start >= 0) throw new TarError('unexpected end of tar stream after an extended header', start);
        if (zeroBlocks === 0) this.opts.warn?.(`tar stream ends at offset ${at} without an end-of-archive marker`);
        this.finished = true;
        return null;
      }
      if (block.length < TAR_BLOCK_SIZE) throw new TarError('truncated tar header', at);
      if (isZeroBlock(block)) {
        if (start >= 0) throw new TarError('empty header block after an extended header', at);
        // Two zero blocks end the archive; GNU tar accepts a single one too.
        if (++zeroBlocks === 2) {
          this.finished = true;
          return null;
        }
        continue;
      }
      if (zeroBlocks > 0) {
        this.opts.warn?.(`ignoring a lone zero block at offset ${at - TAR_BLOCK_SIZE}`);
        zeroBlocks = 0;
      }
      if (start < 0) start = at;
      let h;
      try {
        h = parseTarHeader(block);
      } catch (e) {
        if (e instanceof TarFormatError) throw new TarError(e.message, at);
        throw e;
      }
      const t = h.typeflag;
      if (t === XHDTYPE || t === XGLTYPE || t === GNUTYPE_LONGNAME || t === GNUTYPE_LONGLINK) {
        const limit = t === XHDTYPE || t === XGLTYPE ? MAX_PAX_BYTES : MAX_LONGNAME_BYTES;
        if (h.size > limit) throw new TarError(`extended header of ${h.size} bytes is too large`, at);
        const data = await this.readMeta(h.size, at);
        if (t === GNUTYPE_LONGNAME) longName = cstr(data);
        else if (t === GNUTYPE_LONGLINK) longLink = cstr(data);
        else {
          try {
            applyPaxRecords(t === XGLTYPE ? this.global : local, parsePaxRecords(data), t === XGLTYPE);
          } catch (e) {
            if (e instanceof TarFormatError) throw new TarError(e.message, at);
            throw e;
          }
        }
        // A global header stands alone: it is not part of the next member.
        if (t === XGLTYPE) start = -1;
        continue;
      }
      if (t === GNUTYPE_SPARSE) throw new TarError('GNU sparse files are not supported', at);
      const pax = mergedPax(this.global, local);
      const size = pax.size ?? h.size;
      let type = TYPES[t];
      if (t === GNUTYPE_VOLHDR || type === undefined) {
        if (t !== GNUTYPE_VOLHDR) this.opts.warn?.(`skipping member of unknown type '${String.fromCharCode(t)}' at offset ${at}`);
        await this.skipBytes(size + padOf(size), at);
        local = emptyPax();
        longName = longLink = null;
        start = -1;
        continue;
      }
      // The header's own fields are views into a block the next read reuses: copied.
      const path = pax.path ?? longName ?? Buffer.from(h.name);
      // Old tars mark directories with a trailing slash on a regular-file typeflag.
      if (t === AREGTYPE && path.length > 0 && path[path.length - 1] === 0x2f) type = 'directory';
      // The size field counts data blocks that follow, whatever the type; a headerball
      // leaves out the data of files and hard links.
      const dataSize = this.opts.headerball && (type === 'file' || type === 'hardlink') ? 0 : size;
      const entry: TarEntry = {
        type,
        path,
        linkpath: pax.linkpath ?? longLink ?? (h.linkname.length > 0 ? Buffer.from(h.linkname) : EMPTY),
        mode: h.mode & 0o7777,
        uid: pax.uid ?? h.uid,
        gid: pax.gid ?? h.gid,
        mtime: pax.mtime?.sec ?? h.mtime,
        mtimeNsec: pax.mtime?.nsec ?? 0,
        size: type === 'file' ? dataSize : 0,
        fileSize: type === 'file' ? size : 0,
        devmajor: pax.devmajor ?? h.devmajor,
        devminor: pax.devminor ?? h.devminor,
        xattrs: pax.xattrs,
        aclAccess: pax.aclAccess ?? null,
        aclDefault: pax.aclDefault ?? null,
        headerOffset: start,
        dataOffset: this.r.offset,
      };
      if (size < 0) throw new TarError(`negative size ${size}`, start);
      this.pending = dataSize;
      this.padding = padOf(dataSize);
      this.current = entry;
      return entry;
    }
  }

  /** Streams the current entry's data to sink; throws if the stream ends early. */
  async readData(sink: (piece: Buffer) => void): Promise<void> {
    const e = this.current;
    if (!e || this.pending === 0) return;
    const want = this.pending;
    const got = await this.r.pipe(want, sink);
    this.pending -= got;
    if (got < want) throw this.truncated(e);
  }

  /** The tar comes from a pipe read directly: moveData can splice its data on. */
  get streamFd(): number | null {
    return this.r.streamFd;
  }

  /** The next n bytes of the current entry's data, through ByteReader.pipeMoving. */
  async moveData(
    n: number,
    sink: (piece: Buffer) => void,
    move: (pipeFd: number, length: number) => number | 'empty' | null,
  ): Promise<void> {
    const e = this.current;
    if (!e || n === 0) return;
    if (n > this.pending) throw new Error('internal: moving past the entry data');
    const got = await this.r.pipeMoving(n, sink, move);
    this.pending -= got;
    if (got < n) throw this.truncated(e);
  }

  /** Skips the next n bytes of the current entry's data (read nothing, if the source seeks). */
  async skipData(n: number): Promise<void> {
    const e = this.current;
    if (!e || n === 0) return;
    if (n > this.pending) throw new Error('internal: skipping past the entry data');
    const got = await this.r.pipe(n, null);
    this.pending -= got;
    if (got < n) throw this.truncated(e);
  }

  private async skipRest(): Promise<void> {
    const e = this.current;
    if (!e) return;
    const want = this.pending + this.padding;
    const got = await this.r.pipe(want, null);
    if (got < want) throw this.truncated(e);
    this.pending = this.padding = 0;
    this.current = null;
  }

  private truncated(e: TarEntry): TarError {
    return new TarError(`tar stream truncated inside ${JSON.stringify(e.path.toString())}`, e.headerOffset);
  }

  private async skipBytes(n: number, at: number): Promise<void> {
    if ((await this.r.pipe(n, null)) < n) throw new TarError('tar stream truncated', at);
  }

  private async readMeta(size: number, at: number): Promise<Buffer> {
    // Copied before the padding is skipped: skipping may read into the buffer `data` views.
    const data = Buffer.from(await this.r.read(size));
    if (data.length < size) throw new TarError('tar stream truncated inside an extended header', at);
    await this.skipBytes(padOf(size), at);
    return data;
  }
}

const EMPTY = Buffer.alloc(0);

const padOf = (n: number): number => (TAR_BLOCK_SIZE - (n % TAR_BLOCK_SIZE)) % TAR_BLOCK_SIZE;

function cstr(b: Buffer): Buffer {
  const end = b.indexOf(0);
  return end < 0 ? b : b.subarray(0, end);
}

/** Global attributes with the member's own on top. */
function mergedPax(global: PaxAttributes, local: PaxAttributes): PaxAttributes {
  // Global headers are rare: most members need no copy.
  if (Object.keys(global).length === 1 && global.xattrs.size === 0) return local;
  const out = copyPax(global);
  for (const [k, v] of Object.entries(local) as Array<[keyof PaxAttributes, unknown]>) {
    // null (an emptied record) also overrides: the ustar field applies again.
    if (k !== 'xattrs' && v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  }
  for (const [k, v] of local.xattrs) out.xattrs.set(k, v);
  return out;
}
