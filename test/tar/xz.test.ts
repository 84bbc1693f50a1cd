// unxz: the streaming .xz decoder for tar input, checked against data compressed by the xz tool
// and fed in awkward chunk sizes.

import { spawnSync } from 'node:child_process';
import { describe, expect, it, vi } from 'vitest';
import { loadLzma, NativeBuffer, NativeLibraryError } from '../../src/compress/native.js';
import { unxz } from '../../src/tar/xz.js';
import { randomBytes, textBytes } from '../compress/helpers.js';

const MiB = 1 << 20;
const CHUNK_SIZES = [1, 7, 64 << 10];

function xz(data: Uint8Array, ...args: string[]): Buffer {
  const r = spawnSync('xz', ['-c', ...args], { input: data, maxBuffer: 1 << 30 });
  expect(r.error, 'the xz tool must be installed (apt-get install xz-utils)').toBeUndefined();
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
  for await (const part of unxz(chunked(data, size))) {
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
const bigXz = xz(big);
const text = Buffer.from(textBytes(300 << 10, 5));
const small = Buffer.from(randomBytes(1000, 9));

const cases: Array<[string, Buffer, Buffer]> = [
  // Each ends exactly where the 1 MiB output buffer fills up.
  [
    'two streams of exactly 1 MiB each',
    big.subarray(0, 2 * MiB),
    Buffer.concat([xz(big.subarray(0, MiB)), xz(big.subarray(MiB, 2 * MiB))]),
  ],
  ['empty file', Buffer.alloc(0), xz(Buffer.alloc(0))],
  ['1 byte', Buffer.from([0x42]), xz(Buffer.from([0x42]))],
  ['5 MiB random + repetitive (a multiple of the 1 MiB output buffer)', big, bigXz],
  ['5 MiB in several blocks (-T2 --block-size)', big, xz(big, '-T2', '--block-size=1MiB')],
  ['two concatenated streams', Buffer.concat([text, small]), Buffer.concat([xz(text), xz(small)])],
  [
    'concatenated streams with stream padding and an empty stream',
    Buffer.concat([small, text]),
    Buffer.concat([xz(small), Buffer.alloc(8), xz(Buffer.alloc(0)), xz(text, '-0', '--check=sha256')]),
  ],
  ['.lzma (alone) format', text, xz(text, '--format=lzma')],
];

describe('unxz', () => {
  for (const [label, plain, packed] of cases) {
    for (const size of CHUNK_SIZES) {
      it(`${label}, fed in ${size}-byte chunks`, async () => {
        expectSame(await decode(packed, size), plain);
      });
    }
  }

  it('yields nothing for an empty file', async () => {
    const parts: Buffer[] = [];
    for await (const p of unxz(chunked(xz(Buffer.alloc(0)), 7))) parts.push(p);
    expect(parts).toEqual([]);
  });

  it('rejects truncated input', async () => {
    for (const cut of [bigXz.length - 1, bigXz.length >> 1, 20, 6]) {
      for (const size of [7, 64 << 10]) {
        await expect(decode(bigXz.subarray(0, cut), size), `cut at ${cut}`).rejects.toThrow(/^xz: truncated input$/);
      }
    }
  });

  it('rejects empty input', async () => {
    await expect(decode(Buffer.alloc(0), 7)).rejects.toThrow(/^xz: empty input/);
  });

  it('rejects corrupted input', async () => {
    const bad = Buffer.from(bigXz);
    bad[bad.length >> 1] ^= 0x55;
    for (const size of [7, 64 << 10]) {
      await expect(decode(bad, size)).rejects.toThrow(/^xz: corrupt input \(lzma_ret 9\)$/);
    }
    // A flipped byte in uncompressible (stored) data is caught by the CRC64 check.
    const one = xz(randomBytes(4096, 3));
    one[one.length >> 1] ^= 0x01;
    await expect(decode(one, 64 << 10)).rejects.toThrow(/^xz: corrupt input \(lzma_ret 9\)$/);
  });

  it('rejects input that is not xz, and garbage after a stream', async () => {
    await expect(decode(Buffer.from('this is not an xz file at all'), 7)).rejects.toThrow(
      /^xz: not an \.xz or \.lzma stream \(lzma_ret 7\)$/,
    );
    await expect(decode(Buffer.concat([xz(small), Buffer.from('trailing junk after the stream')]), 7)).rejects.toThrow(
      /^xz: corrupt input \(lzma_ret 9\)$/,
    );
  });

  it('cleans up when the consumer stops early', async () => {
    const nat = loadLzma();
    const end = vi.spyOn(nat, 'end');
    const free = vi.spyOn(NativeBuffer.prototype, 'free');
    try {
      let sourceClosed = false;
      const gen = unxz(chunked(bigXz, 64 << 10, () => (sourceClosed = true)));
      const first = await gen.next();
      expect(first.done).toBe(false);
      expect(first.value!.equals(big.subarray(0, first.value!.length))).toBe(true);
      expect(await gen.return(undefined)).toEqual({ done: true, value: undefined });
      expect(sourceClosed).toBe(true);
      expect(end).toHaveBeenCalledTimes(1);
      expect(free).toHaveBeenCalledTimes(3); // lzma_stream, input and output buffers
      expect((await gen.next()).done).toBe(true);
      // The same happens on an error, and the decoder still works afterwards.
      await expect(decode(bigXz.subarray(0, 1000), 7)).rejects.toThrow(/^xz: truncated input$/);
      expect(end).toHaveBeenCalledTimes(2);
      expect(free).toHaveBeenCalledTimes(6);
      expectSame(await decode(bigXz, 64 << 10), big);
    } finally {
      end.mockRestore();
      free.mockRestore();
    }
  });

  it('passes a missing liblzma through as the loader error', async () => {
    const missing = new NativeLibraryError('cannot load liblzma; install it (apt-get install liblzma5)');
    vi.resetModules();
    vi.doMock('../../src/compress/native.js', async (orig) => ({
      ...(await orig<typeof import('../../src/compress/native.js')>()),
      loadLzma: () => {
        throw missing;
      },
    }));
    try {
      const { unxz: fresh } = await import('../../src/tar/xz.js');
      await expect(fresh(chunked(bigXz, 7)).next()).rejects.toBe(missing);
    } finally {
      vi.doUnmock('../../src/compress/native.js');
      vi.resetModules();
    }
  });
});
