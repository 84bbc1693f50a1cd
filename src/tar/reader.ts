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
  /** Whether a global header came: only then are the global attributes merged in. */
  private globalSeen = false;
  /** Data bytes (plus padding) of the current entry not yet consumed. */
  private pending = 0;
  private padding = 0;
  private current: TarEntry | null = null;
  /** The members as steps, one generator for the whole stream (see members()). */
  private readonly steps: Generator<Promise<unknown> | TarEntry, null, unknown>;

  constructor(
    private readonly r: ByteReader,
    private readonly opts: TarReaderOptions = {},
  ) {
    this.steps = this.members();
  }

  /** Stream offset reached: after the end-of-archive blocks once next() has returned null. */
  get offset(): number {
    return this.r.offset;
  }

  /**
   * The next member, skipping whatever data of the previous one was not read. It comes at
   * once where no read has to wait (a tar file, or bytes buffered): a promise for each of
   * thousands of members costs more than the parsing.
   */
  next(): TarEntry | null | Promise<TarEntry | null> {
    const step = this.steps.next();
    if (step.done) return null;
    return step.value instanceof Promise ? this.finishWaiting(step.value) : step.value;
  }

  /** Drives members() on to the next entry, each read it yields awaited. */
  private async finishWaiting(first: Promise<unknown>): Promise<TarEntry | null> {
    let step = this.steps.next(await first);
    while (!step.done && step.value instanceof Promise) step = this.steps.next(await step.value);
    return step.done ? null : (step.value as TarEntry);
  }

  /**
   * The members, each yielded as it is parsed; each read that must wait is yielded too (a
   * promise), its result sent back. Resumed, it first skips what the caller left of the
   * member's data. One generator for the stream: one per member cost more than the parsing.
   */
  private *members(): Generator<Promise<unknown> | TarEntry, null, unknown> {
    let local = emptyPax();
    let longName: Buffer | null = null;
    let longLink: Buffer | null = null;
    let start = -1;
    let zeroBlocks = 0;
    for (;;) {
      if (this.current) {
        const want = this.pending + this.padding;
        this.endEntry(this.r.pipeNow(want, null) ?? ((yield this.r.pipe(want, null)) as number), want);
        local = emptyPax();
        longName = longLink = null;
        start = -1;
        zeroBlocks = 0;
      }
      const at = this.r.offset;
      const block = this.r.readNow(TAR_BLOCK_SIZE) ?? ((yield this.r.read(TAR_BLOCK_SIZE)) as Buffer);
      if (block.length === 0) {
        if (start >= 0) throw new TarError('unexpected end of tar stream after an extended header', start);
        if (zeroBlocks === 0) this.opts.warn?.(`tar stream ends at offset ${at} without an end-of-archive marker`);
        return null;
      }
      if (block.length < TAR_BLOCK_SIZE) throw new TarError('truncated tar header', at);
      if (isZeroBlock(block)) {
        if (start >= 0) throw new TarError('empty header block after an extended header', at);
        // Two zero blocks end the archive; GNU tar accepts a single one too.
        if (++zeroBlocks === 2) return null;
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
        const data = this.r.readNow(h.size) ?? ((yield this.r.read(h.size)) as Buffer);
        if (data.length < h.size) throw new TarError('tar stream truncated inside an extended header', at);
        // Taken in before the padding is skipped, which may read into the buffer `data` views.
        if (t === GNUTYPE_LONGNAME) longName = Buffer.from(cstr(data));
        else if (t === GNUTYPE_LONGLINK) longLink = Buffer.from(cstr(data));
        else {
          try {
            applyPaxRecords(t === XGLTYPE ? this.global : local, parsePaxRecords(data), t === XGLTYPE);
            if (t === XGLTYPE) this.globalSeen = true;
          } catch (e) {
            if (e instanceof TarFormatError) throw new TarError(e.message, at);
            throw e;
          }
        }
        const pad = padOf(h.size);
        if ((this.r.pipeNow(pad, null) ?? ((yield this.r.pipe(pad, null)) as number)) < pad) throw new TarError('tar stream truncated', at);
        // A global header stands alone: it is not part of the next member.
        if (t === XGLTYPE) start = -1;
        continue;
      }
      if (t === GNUTYPE_SPARSE) throw new TarError('GNU sparse files are not supported', at);
      const pax = this.globalSeen ? mergedPax(this.global, local) : local;
      const size = pax.size ?? h.size;
      let type = TYPES[t];
      if (t === GNUTYPE_VOLHDR || type === undefined) {
        if (t !== GNUTYPE_VOLHDR) this.opts.warn?.(`skipping member of unknown type '${String.fromCharCode(t)}' at offset ${at}`);
        const skip = size + padOf(size);
        if ((this.r.pipeNow(skip, null) ?? ((yield this.r.pipe(skip, null)) as number)) < skip) throw new TarError('tar stream truncated', at);
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
      yield entry;
    }
  }

  /**
   * Streams the current entry's data to sink; throws if the stream ends early. Done at once
   * (no promise) where no read has to wait, as next().
   */
  readData(sink: (piece: Buffer) => void): void | Promise<void> {
    const e = this.current;
    if (!e || this.pending === 0) return;
    return this.pass(e, this.pending, sink);
  }

  /** The next n data bytes of entry e to sink (or skipped); a promise only where a read waits. */
  private pass(e: TarEntry, n: number, sink: ((piece: Buffer) => void) | null): void | Promise<void> {
    const got = this.r.pipeNow(n, sink);
    if (got === null) return this.r.pipe(n, sink).then((k) => this.consumed(e, k, n));
    this.consumed(e, got, n);
  }

  /** `got` of the `want` data bytes asked for went by. */
  private consumed(e: TarEntry, got: number, want: number): void {
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
    this.consumed(e, await this.r.pipeMoving(n, sink, move), n);
  }

  /**
   * Skips the next n bytes of the current entry's data (read nothing, if the source seeks);
   * at once where no read has to wait, as next().
   */
  skipData(n: number): void | Promise<void> {
    const e = this.current;
    if (!e || n === 0) return;
    if (n > this.pending) throw new Error('internal: skipping past the entry data');
    return this.pass(e, n, null);
  }

  /** The current entry's data and padding skipped: `got` of the `want` bytes there were. */
  private endEntry(got: number, want: number): void {
    if (got < want) throw this.truncated(this.current!);
    this.pending = this.padding = 0;
    this.current = null;
  }

  private truncated(e: TarEntry): TarError {
    return new TarError(`tar stream truncated inside ${JSON.stringify(e.path.toString())}`, e.headerOffset);
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
