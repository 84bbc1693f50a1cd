import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ByteReader } from '../../src/tar/bytes.js';
import { openTarInput } from '../../src/tar/input.js';

const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

/** A stream handing the bytes over in pieces of `size`. */
async function* pieces(size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/** What pipeNow hands to its sink, joined, and what it returns. */
function pipedNow(r: ByteReader, n: number): { got: number | null; data: Buffer } {
  const seen: Buffer[] = [];
  const got = r.pipeNow(n, (piece) => seen.push(Buffer.from(piece)));
  return { got, data: Buffer.concat(seen) };
}

describe('reading tar bytes without waiting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'erofs-bytes-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('from a stream: only what is buffered, across its pieces, and null for more', async () => {
    const r = new ByteReader(pieces(100)[Symbol.asyncIterator]());
    expect(r.readNow(10)).toBeNull();
    expect(r.pipeNow(10, null)).toBeNull();
    // Waiting brings pieces in; the rest of what they hold is there at once.
    expect((await r.read(250)).equals(bytes.subarray(0, 250))).toBe(true);
    expect(r.readNow(40)!.equals(bytes.subarray(250, 290))).toBe(true);
    expect(pipedNow(r, 10)).toEqual({ got: 10, data: bytes.subarray(290, 300) });
    expect(r.readNow(1)).toBeNull();
    await r.read(1);
    // 99 bytes buffered: 150 is more, to wait for.
    expect(r.readNow(150)).toBeNull();
    expect(r.pipeNow(150, null)).toBeNull();
    expect(await r.pipe(150, () => {})).toBe(150);
    expect(r.offset).toBe(451);
  });

  it('from a stream: what a wait brought beyond the bytes read is handed on at once, in order', async () => {
    const r = new ByteReader(pieces(30)[Symbol.asyncIterator]());
    expect((await r.read(200)).equals(bytes.subarray(0, 200))).toBe(true);
    // read(200) pulled 7 pieces of 30: 10 bytes are left buffered past it.
    expect(pipedNow(r, 10)).toEqual({ got: 10, data: bytes.subarray(200, 210) });
    const more = await r.read(95);
    expect(more.equals(bytes.subarray(210, 305))).toBe(true);
    expect(pipedNow(r, 25)).toEqual({ got: 25, data: bytes.subarray(305, 330) });
  });

  it('from a file read past its 1 MiB slab many times over, every byte in order, leftovers and all', () => {
    // Reads that leave bytes buffered at the slab's end: they move to its start (the slab is
    // kept), and what was read must come out the same.
    const big = Buffer.alloc(3 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) % 256;
    const path = join(dir, 'big');
    writeFileSync(path, big);
    const fd = openSync(path, 'r');
    const compact = vi.spyOn(ByteReader.prototype as unknown as { compact: () => void }, 'compact');
    try {
      const r = new ByteReader({ fd, size: big.length });
      let at = 0;
      for (let k = 0; at < big.length; k++) {
        // Reads a byte short of the 8 KiB a file read brings at least: bytes stay buffered
        // (one more each time), and the slab fills up.
        const n = Math.min(big.length - at, k % 7 === 0 ? 100 : 8191);
        if (k % 7 === 0) {
          const { got, data } = pipedNow(r, n);
          expect(got).toBe(n);
          expect(data.equals(big.subarray(at, at + n))).toBe(true);
        } else expect(r.readNow(n)!.equals(big.subarray(at, at + n))).toBe(true);
        at += n;
      }
      expect(r.offset).toBe(big.length);
      expect(r.readNow(1)!.length).toBe(0);
      expect(compact).toHaveBeenCalled();
    } finally {
      compact.mockRestore();
      closeSync(fd);
    }
  });

  it('from a file: never waits, also across reads and skips, and stops at its end', () => {
    const path = join(dir, 'f');
    writeFileSync(path, bytes);
    const fd = openSync(path, 'r');
    try {
      const r = new ByteReader({ fd, size: bytes.length });
      expect(r.readNow(512)!.equals(bytes.subarray(0, 512))).toBe(true);
      expect(r.pipeNow(300, null)).toBe(300);
      expect(pipedNow(r, 100)).toEqual({ got: 100, data: bytes.subarray(812, 912) });
      expect(r.readNow(500)!.equals(bytes.subarray(912))).toBe(true);
      expect(r.readNow(1)!.length).toBe(0);
      expect(r.pipeNow(10, null)).toBe(0);
    } finally {
      closeSync(fd);
    }
  });

  it('from a pipe read directly: what the pipe holds comes at once; null, with nothing consumed, once a read would wait', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // This end keeps the pipe open for writing, so opening it to read does not wait.
    const writer = openSync(fifo, 'r+');
    writeSync(writer, bytes.subarray(0, 600));
    const input = await openTarInput(fifo, 'none');
    try {
      expect('streamFd' in input.source).toBe(true);
      const r = new ByteReader(input.source);
      expect(r.readNow(100)!.equals(bytes.subarray(0, 100))).toBe(true);
      expect(pipedNow(r, 450)).toEqual({ got: 450, data: bytes.subarray(100, 550) });
      // 50 bytes left in the pipe: more would wait.
      expect(r.readNow(60)).toBeNull();
      expect(r.pipeNow(60, null)).toBeNull();
      expect(r.offset).toBe(550);
      writeSync(writer, bytes.subarray(600, 700));
      expect(r.readNow(60)!.equals(bytes.subarray(550, 610))).toBe(true);
      // At the end of the stream, what there is.
      closeSync(writer);
      expect(pipedNow(r, 200)).toEqual({ got: 90, data: bytes.subarray(610, 700) });
      expect(r.readNow(1)!.length).toBe(0);
    } finally {
      input.close();
    }
  });
});
