// A pull reader over a stream of Buffers, a blocking pipe read directly, or a regular file
// whose skipped ranges are never read at all: exact-length reads, skips and pass-through
// copies, with the offset kept for error messages and tar index offsets.

import { readSync } from 'node:fs';

/** A regular file read by position: what is skipped costs nothing. */
export interface SeekableFile {
  fd: number;
  size: number;
}

/**
 * A pipe (or other stream) in blocking mode, read with plain read(2) calls into the slab:
 * up to a pipe's buffer at a time, where the stream API hands over 64 KiB chunks, each a
 * fresh Buffer and a trip through the event loop.
 */
export interface BlockingStream {
  streamFd: number;
  /** Bytes already read from it (to look at the magic), which come first. */
  head: Buffer;
  /**
   * Resolves once a read would not block. A read(2) that waits would hold the event loop,
   * and with it the signal handlers that remove the unfinished image, for as long as the
   * producer is silent.
   */
  readable(): Promise<void>;
  /** Whether a read would not block now (data, the end or an error is there). */
  readyNow(): boolean;
}

/** Reads sized to what is asked: headers take a few KiB, data skipped is never read. */
const FILE_READ_MIN = 8 << 10;
const FILE_READ_MAX = 1 << 20;
/**
 * A pipe is read at least this much at a time (what it has, if less): nothing of it is
 * skipped, and headers read 8 KiB at a time cost a Debian root through a pipe 4,500 reads
 * and as many polls (1,100 at 64 KiB). The data of a big file past it is spliced on (see
 * pipeMoving).
 */
const PIPE_READ_MIN = 64 << 10;
const SLAB_SIZE = 1 << 20;

export class ByteReader {
  private chunks: Buffer[] = [];
  /** Read position inside chunks[0]. */
  private head = 0;
  private buffered = 0;
  private ended = false;
  /** Bytes consumed so far. */
  offset = 0;

  /** Seekable sources: the file position of the first byte not yet buffered. */
  private filePos = 0;
  private slab = Buffer.alloc(0);
  private slabUsed = 0;

  constructor(private readonly source: AsyncIterator<Buffer> | SeekableFile | BlockingStream) {
    if ('streamFd' in source && source.head.length > 0) {
      this.chunks.push(source.head);
      this.buffered = source.head.length;
    }
  }

  /** The underlying file when the source is seekable. */
  get file(): SeekableFile | null {
    return 'fd' in this.source ? this.source : null;
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    if ('fd' in this.source) return this.pullFile();
    if ('streamFd' in this.source) {
      await this.source.readable();
      return this.readInto(this.source.streamFd, FILE_READ_MAX, null);
    }
    const r = await this.source.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    if (r.value.length > 0) {
      this.chunks.push(r.value);
      this.buffered += r.value.length;
    }
    return true;
  }

  /** pull() from a seekable source, which never waits. */
  private pullFile(): boolean {
    if (this.ended) return false;
    const file = this.source as SeekableFile;
    return this.readInto(file.fd, file.size - this.filePos, this.filePos);
  }

  /** One read(2) of up to `limit` bytes (at `pos`, or the stream's position) into the slab. */
  private readInto(fd: number, limit: number, pos: number | null): boolean {
    const want = Math.min(Math.max(pos === null ? PIPE_READ_MIN : FILE_READ_MIN, Math.min(this.wanted, FILE_READ_MAX)), limit);
    if (want <= 0) {
      this.ended = true;
      return false;
    }
    // Reads are carved from one slab, reused from its start whenever nothing buffered
    // points into it: fresh memory for every read costs more than the read (page faults).
    // What read() returns is therefore only valid until the next read.
    if (this.buffered === 0) this.slabUsed = 0;
    else if (this.slab.length - this.slabUsed < want) this.compact(want);
    if (this.slab.length - this.slabUsed < want) {
      this.slab = Buffer.allocUnsafe(Math.max(SLAB_SIZE, want));
      this.slabUsed = 0;
    }
    const n = readSync(fd, this.slab, this.slabUsed, want, pos);
    if (n === 0) {
      this.ended = true;
      return false;
    }
    this.filePos += n;
    this.chunks.push(this.slab.subarray(this.slabUsed, this.slabUsed + n));
    this.slabUsed += n;
    this.buffered += n;
    return true;
  }

  /**
   * Moves the buffered bytes to the slab's start, where they are the slab's last bytes read
   * (as they are but for a stream's first bytes) and `want` more fit after them: the slab is
   * kept. A fresh one for each slab's worth read left megabytes of garbage behind (a Debian
   * root through a pipe at 64 KiB reads: 7 MB more peak RSS).
   */
  private compact(want: number): void {
    if (this.buffered + want > this.slab.length) return;
    for (const c of this.chunks) if (c.buffer !== this.slab.buffer) return;
    this.slab.copyWithin(0, this.slabUsed - this.buffered, this.slabUsed);
    this.chunks = [this.slab.subarray(0, this.buffered)];
    this.head = 0;
    this.slabUsed = this.buffered;
  }

  /** Bytes the current read() still lacks: one file read can then bring them all. */
  private wanted = 0;

  /**
   * read(n) without waiting where it needs not wait: the bytes are buffered, or the source is
   * a file. Null when a stream must be waited for (then read(n)). An await costs the caller
   * a suspension, thousands of them for a tar of a root tree.
   */
  readNow(n: number): Buffer | null {
    if (this.buffered < n && !this.fillNow(n)) return null;
    return this.take(n);
  }

  /**
   * Reads into the buffer up to n bytes (or the end) without waiting: from a file always;
   * from a pipe read directly as long as it has bytes (producers mostly keep ahead, so most
   * reads of a pipe need no promise either). False, with nothing consumed, once a read
   * would wait, and for other streams.
   */
  private fillNow(n: number): boolean {
    const s = this.source;
    if (!('fd' in s) && !('streamFd' in s)) return false;
    let ready = true;
    while (this.buffered < n && !this.ended) {
      if ('streamFd' in s && !s.readyNow()) {
        ready = false;
        break;
      }
      this.wanted = n - this.buffered;
      if ('fd' in s) this.pullFile();
      else this.readInto(s.streamFd, FILE_READ_MAX, null);
    }
    this.wanted = 0;
    return ready;
  }

  /** Exactly n bytes, or fewer only at the end of the stream; valid until the next read or pipe. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n) {
      this.wanted = n - this.buffered;
      if (!(await this.pull())) break;
    }
    this.wanted = 0;
    return this.take(n);
  }

  /** The next n buffered bytes (fewer only if fewer are buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(Math.min(n, this.buffered));
    let got = 0;
    while (got < out.length) {
      const c = this.chunks[0]!;
      const take = Math.min(c.length - this.head, out.length - got);
      c.copy(out, got, this.head, this.head + take);
      got += take;
      this.advance(take);
    }
    return out;
  }

  /**
   * Hands the next n bytes to sink in pieces (views valid only during the call). Returns how
   * many bytes there were: fewer than n only at the end of the stream.
   */
  async pipe(n: number, sink: ((piece: Buffer) => void) | null): Promise<number> {
    if ('fd' in this.source) return this.pipeFile(n, sink);
    let left = n;
    while (left > 0) {
      this.wanted = left;
      if (this.buffered === 0 && !(await this.pull())) break;
      left -= this.pipeBuffered(left, sink);
    }
    this.wanted = 0;
    return n - left;
  }

  /** pipe(n, sink) without waiting where it needs not wait (see readNow); null when it must. */
  pipeNow(n: number, sink: ((piece: Buffer) => void) | null): number | null {
    if ('fd' in this.source) return this.pipeFile(n, sink);
    // A blocking stream's bytes are buffered first, a slab's worth at most.
    if (n > this.buffered && (n > SLAB_SIZE || !this.fillNow(n))) return null;
    n = Math.min(n, this.buffered);
    for (let left = n; left > 0; ) left -= this.pipeBuffered(left, sink);
    return n;
  }

  /** Up to n buffered bytes, from the first chunk, to sink; returns how many. */
  private pipeBuffered(n: number, sink: ((piece: Buffer) => void) | null): number {
    const c = this.chunks[0];
    if (!c) return 0;
    const take = Math.min(c.length - this.head, n);
    sink?.(c.subarray(this.head, this.head + take));
    this.advance(take);
    return take;
  }

  /** pipe() from a seekable source. */
  private pipeFile(n: number, sink: ((piece: Buffer) => void) | null): number {
    let left = n;
    const file = this.source as SeekableFile;
    if (!sink && left > this.buffered) {
      // Skip by moving the file position past what is not buffered yet.
      const beyond = Math.min(left - this.buffered, file.size - this.filePos);
      left -= this.buffered;
      this.offset += this.buffered;
      this.chunks = [];
      this.head = 0;
      this.buffered = 0;
      this.filePos += beyond;
      this.offset += beyond;
      return n - (left - beyond);
    }
    while (left > 0) {
      this.wanted = left;
      if (this.buffered === 0 && !this.pullFile()) break;
      left -= this.pipeBuffered(left, sink);
    }
    this.wanted = 0;
    return n - left;
  }

  /** The pipe read directly, when the source is one: its bytes can move on in the kernel. */
  get streamFd(): number | null {
    return 'streamFd' in this.source ? this.source.streamFd : null;
  }

  /**
   * Like pipe(n, sink), but from a pipe read directly what is not buffered yet goes through
   * `move` (pipe, bytes still wanted), which returns the bytes it moved on in the kernel,
   * 'empty' while the pipe has none, or null to go on reading. Returns how many bytes there
   * were: fewer than n only at the end of the stream.
   */
  async pipeMoving(
    n: number,
    sink: (piece: Buffer) => void,
    move: (pipeFd: number, length: number) => number | 'empty' | null,
  ): Promise<number> {
    let left = n - (await this.pipe(Math.min(n, this.buffered), sink));
    const source = this.source;
    while ('streamFd' in source && left > 0 && !this.ended) {
      const moved = move(source.streamFd, left);
      if (moved === null) break;
      if (moved === 'empty') {
        await source.readable();
        continue;
      }
      if (moved === 0) {
        this.ended = true;
        break;
      }
      left -= moved;
      this.offset += moved;
    }
    if (left > 0) left -= await this.pipe(left, sink);
    return n - left;
  }

  private advance(n: number): void {
    this.head += n;
    this.buffered -= n;
    this.offset += n;
    while (this.chunks.length > 0 && this.head >= this.chunks[0]!.length) {
      this.head -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }
}
