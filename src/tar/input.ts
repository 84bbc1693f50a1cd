// Opens a tar source (a file, or standard input) as a stream of Buffers, decompressing gzip,
// xz or zstd on the way, chosen by flag or by the stream's magic bytes.

import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';

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

/** Raw bytes of a file descriptor, read in 1 MiB chunks. */
async function* readFd(fd: number, closeAtEnd: boolean): AsyncGenerator<Buffer> {
  const stream = fs.createReadStream('', { fd, highWaterMark: CHUNK, autoClose: closeAtEnd });
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } finally {
    if (closeAtEnd) stream.destroy();
  }
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

function throughZlib(src: AsyncIterable<Buffer>, z: zlib.Gunzip): AsyncIterable<Buffer> {
  const input = Readable.from(src, { objectMode: false });
  input.on('error', (e) => z.destroy(e));
  z.on('error', () => input.destroy());
  input.pipe(z);
  return z;
}

export class TarInputError extends Error {}

/**
 * The tar bytes of `source` ('-' or '' for standard input), decompressed as asked. A missing
 * native library for xz or zstd surfaces as that library's error, naming what to install.
 */
export async function openTarInput(source: string, decompress: TarDecompress): Promise<AsyncIterator<Buffer>> {
  let raw: AsyncIterator<Buffer>;
  if (source === '-' || source === '') {
    raw = readFd(0, false)[Symbol.asyncIterator]();
  } else {
    let fd: number;
    try {
      fd = fs.openSync(source, 'r');
    } catch (e) {
      throw new TarInputError(`${source}: cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (fs.fstatSync(fd).isDirectory()) {
      fs.closeSync(fd);
      throw new TarInputError(`${source}: is a directory, not a tar file`);
    }
    raw = readFd(fd, true)[Symbol.asyncIterator]();
  }
  const first = await raw.next();
  const head = first.done ? Buffer.alloc(0) : first.value;
  const kind = decompress === 'auto' ? sniffCompression(head) : decompress;
  const bytes = prepend(head, raw);
  switch (kind) {
    case 'none':
      return bytes;
    case 'gzip':
      return throughZlib(bytes, zlib.createGunzip({ chunkSize: CHUNK }))[Symbol.asyncIterator]();
    case 'xz': {
      const { unxz } = await import('./xz.js');
      return unxz(bytes);
    }
    case 'zstd': {
      const { unzstd } = await import('./zstd.js');
      return unzstd(bytes);
    }
  }
}
