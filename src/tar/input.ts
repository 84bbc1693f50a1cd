// Opens a tar source (a file, or standard input) as a stream of Buffers, decompressing gzip,
// xz or zstd on the way, chosen by flag or by the stream's magic bytes.

import { type Stats, closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import type * as Zlib from 'node:zlib';
import { stream, zlib } from '../builtins.js';
import { loadKoffi } from '../ffi.js';
import type { BlockingStream, SeekableFile } from './bytes.js';

export type TarDecompress = 'auto' | 'none' | 'gzip' | 'xz' | 'zstd';

const CHUNK = 1 << 20;

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

export function sniffCompression(head: Buffer): Exclude<TarDecompress, 'auto'> {
  const starts = (m: Buffer) => head.length >= m.length && head.subarray(0, m.length).equals(m);
  if (starts(GZIP_MAGIC)) return 'gzip';
  if (starts(XZ_MAGIC)) return 'xz';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/** Raw bytes of a file descriptor (which stays open), read in 1 MiB chunks. */
async function* readFd(fd: number): AsyncGenerator<Buffer> {
  const stream = createReadStream('', { fd, highWaterMark: CHUNK, autoClose: false });
  for await (const chunk of stream) yield chunk as Buffer;
}

/** The first chunk, then the rest: lets the magic bytes be looked at without losing them. */
async function* prepend(first: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first.length > 0) yield first;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value;
  }
}

function throughZlib(src: AsyncIterable<Buffer>, z: Zlib.Gunzip): AsyncIterable<Buffer> {
  const input = stream().Readable.from(src, { objectMode: false });
  input.on('error', (e) => z.destroy(e));
  z.on('error', () => input.destroy());
  input.pipe(z);
  return z;
}

export class TarInputError extends Error {}

const F_SETPIPE_SZ = 1031;
const PIPE_BYTES = 1 << 20;

type Fcntl = (fd: number, cmd: number, ...args: unknown[]) => number;
let fcntlFn: Fcntl | null | undefined;

/** libc's fcntl, or null off Linux (or without koffi's libc). */
function fcntl(): Fcntl | null {
  if (fcntlFn !== undefined) return fcntlFn;
  fcntlFn = null;
  if (process.platform === 'linux') {
    try {
      fcntlFn = loadKoffi().load('libc.so.6').func('int fcntl(int fd, int cmd, ...)') as Fcntl;
    } catch {
      // Not Linux's libc: callers keep the defaults.
    }
  }
  return fcntlFn;
}

/**
 * A 1 MiB pipe buffer instead of 64 KiB lets the producer run ahead while a file is written,
 * instead of the two taking turns. Best effort: the default size works too.
 */
function growPipe(fd: number): void {
  fcntl()?.(fd, F_SETPIPE_SZ, 'int', PIPE_BYTES);
}

/** fcntl's flag, the same on every Linux architecture Node runs on. */
const O_NONBLOCK = 0o4000;
const F_GETFL = 3;

/** Whether read(2) on fd waits for data: false where O_NONBLOCK is set, or unknown. */
function blocksOnRead(fd: number): boolean {
  const f = fcntl();
  if (!f) return false;
  const flags = f(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) === 0;
}

type Poll = ((fds: Buffer, nfds: number, timeout: number) => number) & {
  async: (fds: Buffer, nfds: number, timeout: number, cb: (err: unknown, n: number) => void) => void;
};
const POLLIN = 0x1;
const POLL_WAIT_MS = 100;

/**
 * readable() resolves once fd has data or its end (or an error) to read: at once if it has,
 * else after poll(2) waits on libuv's thread pool, so the event loop (and signals) go on
 * meanwhile. readyNow() tells without waiting.
 */
function readableWaiter(fd: number): Pick<BlockingStream, 'readable' | 'readyNow'> {
  const poll = loadKoffi().load('libc.so.6').func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)') as Poll;
  // struct pollfd: int fd, short events, short revents.
  const fds = Buffer.alloc(8);
  fds.writeInt32LE(fd, 0);
  fds.writeInt16LE(POLLIN, 4);
  const wait = (ms: number) => new Promise<number>((resolve) => poll.async(fds, 1, ms, (err, n) => resolve(err ? -1 : n)));
  const readyNow = (): boolean => poll(fds, 1, 0) !== 0;
  return {
    readyNow,
    readable: async () => {
      if (readyNow()) return;
      // In short waits: exiting joins the thread pool, so a poll(2) without end would keep a
      // signalled process alive until the producer speaks.
      while ((await wait(POLL_WAIT_MS)) === 0);
    },
  };
}

/** Up to 8 bytes from a blocking stream, fewer only at its end: enough for any magic. */
function readHead(fd: number): Buffer {
  const head = Buffer.alloc(8);
  let got = 0;
  while (got < head.length) {
    const n = readSync(fd, head, got, head.length - got, null);
    if (n === 0) break;
    got += n;
  }
  return head.subarray(0, got);
}

/**
 * The tar bytes: a seekable file when the source is an uncompressed regular file, a
 * blocking stream read directly when it is an uncompressed pipe in blocking mode.
 */
export interface TarInput {
  source: AsyncIterator<Buffer> | SeekableFile | BlockingStream;
  /** What the tar was compressed with, if anything. */
  compression: Exclude<TarDecompress, 'auto'>;
  close(): void;
}

function decoded(bytes: AsyncIterator<Buffer>, kind: Exclude<TarDecompress, 'auto'>): Promise<AsyncIterator<Buffer>> | AsyncIterator<Buffer> {
  switch (kind) {
    case 'none':
      return bytes;
    case 'gzip':
      return throughZlib({ [Symbol.asyncIterator]: () => bytes }, zlib().createGunzip({ chunkSize: CHUNK }))[Symbol.asyncIterator]();
    case 'xz':
      return import('./xz.js').then(({ unxz }) => unxz({ [Symbol.asyncIterator]: () => bytes }));
    case 'zstd':
      return import('./zstd.js').then(({ unzstd }) => unzstd({ [Symbol.asyncIterator]: () => bytes }));
  }
}

/**
 * The tar bytes of `source` ('-' or '' for standard input), decompressed as asked. A missing
 * native library for xz or zstd surfaces as that library's error, naming what to install.
 */
export async function openTarInput(source: string, decompress: TarDecompress): Promise<TarInput> {
  if (source === '-' || source === '') {
    const st = fstatSync(0);
    if (st.isFile()) return openFile(0, st, decompress, () => {});
    if (st.isFIFO()) {
      growPipe(0);
      // Pipes may be non-blocking (shared with the writer): libuv's stream handles those.
      if (blocksOnRead(0)) return openBlockingStream(0, decompress, () => {});
    }
    const raw = (process.stdin as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const first = await raw.next();
    const head = first.done ? Buffer.alloc(0) : first.value;
    const kind = decompress === 'auto' ? sniffCompression(head) : decompress;
    return { source: await decoded(prepend(head, raw), kind), compression: kind, close: () => process.stdin.destroy() };
  }
  let fd: number;
  try {
    fd = openSync(source, 'r');
  } catch (e) {
    throw new TarInputError(`${source}: cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const close = () => closeSync(fd);
  const st = fstatSync(fd);
  if (st.isDirectory()) {
    close();
    throw new TarInputError(`${source}: is a directory, not a tar file`);
  }
  return openFile(fd, st, decompress, close);
}

/** A descriptor already open: a regular file is read by position, anything else as a stream. */
async function openFile(fd: number, st: Stats, decompress: TarDecompress, close: () => void): Promise<TarInput> {
  let kind = decompress === 'auto' ? 'none' : decompress;
  if (st.isFile()) {
    if (decompress === 'auto') {
      const head = Buffer.alloc(8);
      kind = sniffCompression(head.subarray(0, readSync(fd, head, 0, head.length, 0)));
    }
    if (kind === 'none') return { source: { fd, size: st.size }, compression: kind, close };
    return { source: await decoded(readFd(fd)[Symbol.asyncIterator](), kind), compression: kind, close };
  }
  // A pipe or device: sniff from the stream itself.
  if (st.isFIFO() && blocksOnRead(fd)) return openBlockingStream(fd, decompress, close);
  const raw = readFd(fd)[Symbol.asyncIterator]();
  const first = await raw.next();
  const head = first.done ? Buffer.alloc(0) : first.value;
  if (decompress === 'auto') kind = sniffCompression(head);
  return { source: await decoded(prepend(head, raw), kind), compression: kind, close };
}

/** A pipe in blocking mode: read directly when uncompressed, else through a decompressor. */
async function openBlockingStream(fd: number, decompress: TarDecompress, close: () => void): Promise<TarInput> {
  const waiter = readableWaiter(fd);
  let head: Buffer;
  try {
    await waiter.readable();
    head = readHead(fd);
  } catch (e) {
    throw new TarInputError(`cannot read the tar stream: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const kind = decompress === 'auto' ? sniffCompression(head) : decompress;
  if (kind === 'none') return { source: { streamFd: fd, head, ...waiter }, compression: kind, close };
  const rest = fd === 0 ? (process.stdin as AsyncIterable<Buffer>)[Symbol.asyncIterator]() : readFd(fd)[Symbol.asyncIterator]();
  return { source: await decoded(prepend(head, rest), kind), compression: kind, close: fd === 0 ? () => process.stdin.destroy() : close };
}
