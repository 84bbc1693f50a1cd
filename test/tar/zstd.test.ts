// unzstd: the streaming zstd decoder for tar input, checked against data compressed by the zstd
// tool and fed in awkward chunk sizes.

import { spawnSync } from 'node:child_process';
import { describe, expect, it, vi } from 'vitest';
import { loadZstd, NativeBuffer, NativeLibraryError } from '../../src/compress/native.js';
import { unzstd } from '../../src/tar/zstd.js';
import { randomBytes, textBytes } from '../compress/helpers.js';

const MiB = 1 << 20;
const CHUNK_SIZES = [1, 7, 64 << 10];

function zstd(data: Uint8Array, ...args: string[]): Buffer {
  const r = spawnSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 1 << 30 });
  expect(r.error, 'the zstd tool must be installed (apt-get install zstd)').toBeUndefined();
  expect(r.status, r.stderr?.toString()).toBe(0);
  return r.stdout;
}

/** 5 MiB of 64 KiB blocks: random, text, a repeat of the first block (a far match), zeros. */
function bigData(): Buffer {
  const block = 64 << 10;
  const out = Buffer.alloc(5 * MiB);
  const first = randomBytes(block, 1);
  for (let i = 0; i * block < out.length; i++) {
    const kind = i % 4;
    if (kind === 0) out.set(i === 0 ? first : randomBytes(block, i + 1), i * block);
    else if (kind === 1) out.set(textBytes(block, i), i * block);
    else if (kind === 2) out.set(first, i * block);
  }
  return out;
}

async function* chunked(data: Uint8Array, size: number, onClose?: () => void): AsyncGenerator<Buffer> {
  try {
    for (let i = 0; i < data.length; i += size) yield Buffer.from(data.subarray(i, i + size));
  } finally {
    onClose?.();
  }
}

async function decode(data: Uint8Array, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of unzstd(chunked(data, size))) {
    expect(part.length).toBeGreaterThan(0);
    expect(part.length).toBeLessThanOrEqual(MiB);
    parts.push(part); // kept until the end: each must be its own copy, not a view of a reused buffer
  }
  return Buffer.concat(parts);
}

function expectSame(actual: Buffer, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  expect(actual.equals(expected)).toBe(true);
}

const big = bigData();
const bigZst = zstd(big);
const text = Buffer.from(textBytes(300 << 10, 5));
const small = Buffer.from(randomBytes(1000, 9));

/** A skippable frame (magic 0x184D2A5?, le32 size, payload): decoders pass over it. */
function skippable(payload: string): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(0x184d2a53, 0);
  b.writeUInt32LE(payload.length, 4);
  return Buffer.concat([b, Buffer.from(payload)]);
}

const cases: Array<[string, Buffer, Buffer]> = [
  // Each ends exactly where the 1 MiB output buffer fills up.
  [
    'two frames of exactly 1 MiB each',
    big.subarray(0, 2 * MiB),
    Buffer.concat([zstd(big.subarray(0, MiB)), zstd(big.subarray(MiB, 2 * MiB))]),
  ],
  ['empty file', Buffer.alloc(0), zstd(Buffer.alloc(0))],
  ['1 byte', Buffer.from([0x42]), zstd(Buffer.from([0x42]))],
  ['5 MiB random + repetitive (a multiple of the 1 MiB output buffer)', big, bigZst],
  ['5 MiB compressed in parallel jobs (-T2 -B1MiB)', big, zstd(big, '-T2', '-B1048576')],
  ['two concatenated frames', Buffer.concat([text, small]), Buffer.concat([zstd(text), zstd(small)])],
  [
    'frames without checksum, an empty frame and a skippable frame',
    Buffer.concat([small, text]),
    Buffer.concat([
      zstd(small, '--no-check'),
      skippable('ignored'),
      zstd(Buffer.alloc(0)),
      zstd(text, '-1', '--no-check'),
    ]),
  ],
  // Read from a pipe, the frame keeps its 2 GiB window: past libzstd's default 128 MiB limit.
  ['a 2 GiB window (--long=31)', text, zstd(text, '--long=31')],
];

describe('unzstd', () => {
  for (const [label, plain, packed] of cases) {
    for (const size of CHUNK_SIZES) {
      it(`${label}, fed in ${size}-byte chunks`, async () => {
        expectSame(await decode(packed, size), plain);
      });
    }
  }

  it('the --long=31 case really needs the raised window limit', () => {
    const r = spawnSync('zstd', ['-d', '-c'], { input: zstd(text, '--long=31') });
    expect(r.status).not.toBe(0);
    expect(r.stderr.toString()).toMatch(/Window size larger than maximum/);
  });

  it('yields nothing for an empty file', async () => {
    const parts: Buffer[] = [];
    for await (const p of unzstd(chunked(zstd(Buffer.alloc(0)), 7))) parts.push(p);
    expect(parts).toEqual([]);
  });

  it('rejects truncated input', async () => {
    for (const cut of [bigZst.length - 1, bigZst.length >> 1, 20, 3]) {
      for (const size of [7, 64 << 10]) {
        await expect(decode(bigZst.subarray(0, cut), size), `cut at ${cut}`).rejects.toThrow(/^zstd: truncated input$/);
      }
    }
  });

  it('rejects empty input', async () => {
    await expect(decode(Buffer.alloc(0), 7)).rejects.toThrow(/^zstd: empty input/);
  });

  it('rejects corrupted input', async () => {
    const bad = Buffer.from(bigZst);
    bad[bad.length >> 1] ^= 0x55;
    for (const size of [7, 64 << 10]) {
      await expect(decode(bad, size)).rejects.toThrow(
        /^zstd: (Data corruption detected|Restored data doesn't match checksum)$/,
      );
    }
    // A flipped byte in uncompressible (raw) data is caught by the frame checksum.
    const one = zstd(randomBytes(4096, 3));
    one[one.length >> 1] ^= 0x01;
    await expect(decode(one, 64 << 10)).rejects.toThrow(/^zstd: Restored data doesn't match checksum$/);
  });

  it('rejects input that is not zstd, and garbage after a frame', async () => {
    await expect(decode(Buffer.from('this is not a zstd file at all'), 7)).rejects.toThrow(
      /^zstd: Unknown frame descriptor$/,
    );
    await expect(decode(Buffer.concat([zstd(small), Buffer.from('trailing junk after the frame')]), 7)).rejects.toThrow(
      /^zstd: Unknown frame descriptor$/,
    );
  });

  it('cleans up when the consumer stops early', async () => {
    const nat = loadZstd();
    const freeStream = vi.spyOn(nat, 'freeDStream');
    const free = vi.spyOn(NativeBuffer.prototype, 'free');
    try {
      let sourceClosed = false;
      const gen = unzstd(chunked(bigZst, 64 << 10, () => (sourceClosed = true)));
      const first = await gen.next();
      expect(first.done).toBe(false);
      expect(first.value!.equals(big.subarray(0, first.value!.length))).toBe(true);
      expect(await gen.return(undefined)).toEqual({ done: true, value: undefined });
      expect(sourceClosed).toBe(true);
      expect(freeStream).toHaveBeenCalledTimes(1);
      expect(free).toHaveBeenCalledTimes(4); // input and output data, ZSTD_inBuffer, ZSTD_outBuffer
      expect((await gen.next()).done).toBe(true);
      // The same happens on an error, and the decoder still works afterwards.
      await expect(decode(bigZst.subarray(0, 1000), 7)).rejects.toThrow(/^zstd: truncated input$/);
      expect(freeStream).toHaveBeenCalledTimes(2);
      expect(free).toHaveBeenCalledTimes(8);
      expectSame(await decode(bigZst, 64 << 10), big);
    } finally {
      freeStream.mockRestore();
      free.mockRestore();
    }
  });

  it('passes a missing libzstd through as the loader error', async () => {
    const missing = new NativeLibraryError('cannot load libzstd; install it (apt-get install libzstd1)');
    vi.resetModules();
    vi.doMock('../../src/compress/native.js', async (orig) => ({
      ...(await orig<typeof import('../../src/compress/native.js')>()),
      loadZstd: () => {
        throw missing;
      },
    }));
    try {
      const { unzstd: fresh } = await import('../../src/tar/zstd.js');
      await expect(fresh(chunked(bigZst, 7)).next()).rejects.toBe(missing);
    } finally {
      vi.doUnmock('../../src/compress/native.js');
      vi.resetModules();
    }
  });
});
