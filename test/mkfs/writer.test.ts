import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { byteOffset } from '../../src/format/types.js';
import { FdAppender, FdWriter, ImageWriter, Spool } from '../../src/mkfs/writer.js';
import { scratchDir } from '../helpers/build.js';

describe('the image writer', () => {
  const out = scratchDir('erofs-writer-');
  afterAll(() => out.cleanup());

  it('metadata written through the block cache lands exactly where it was written, also after eviction', () => {
    const blksz = 512;
    const blocks = 3000; // more than the cache holds, so blocks are evicted and read back
    const expected = Buffer.alloc(blocks * blksz);
    const w = ImageWriter.create(`${out.dir}/meta.img`);
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    // Units of 32..224 bytes in random blocks, some crossing into the next block.
    for (let i = 0; i < 40_000; i++) {
      const len = 32 * (1 + rand(7));
      const off = rand(blocks * 16 - 8) * 32;
      const unit = Buffer.alloc(len, (i % 251) + 1);
      unit.copy(expected, off);
      w.writeMeta(byteOffset(off), unit, blksz);
    }
    // Ordinary writes elsewhere keep working around the cache.
    const data = Buffer.alloc(4096, 0xee);
    w.writeAt(byteOffset(blocks * blksz), data);
    w.flushMeta();
    w.setSize(blocks * blksz + data.length);
    w.commit();
    const img = readFileSync(`${out.dir}/meta.img`);
    expect(img.subarray(0, blocks * blksz).equals(expected)).toBe(true);
    expect(img.subarray(blocks * blksz).equals(data)).toBe(true);
  });

  it('units filled in place in their cached block land where they belong, run after run in one block and back in evicted ones', () => {
    const blksz = 512;
    const blocks = 300; // more than the cache holds
    const expected = Buffer.alloc(blocks * blksz);
    const w = ImageWriter.create(`${out.dir}/units.img`);
    let i = 0;
    const put = (off: number, len: number) => {
      const fill = (i++ % 251) + 1;
      expected.fill(fill, off, off + len);
      const block = w.metaBlockOf(byteOffset(off), len, blksz);
      if (block) block.fill(fill, off % blksz, (off % blksz) + len);
      else w.writeMeta(byteOffset(off), Buffer.alloc(len, fill), blksz);
    };
    // Runs of units in one block (the last block used again and again), crossing into the
    // next now and then; then the same blocks again from the start, long since evicted.
    for (let pass = 0; pass < 2; pass++) {
      for (let blk = 0; blk < blocks - 1; blk++) {
        for (let k = 0; k < 7; k++) put(blk * blksz + k * 64 + pass * 32, 32);
        if (blk % 5 === 0) put(blk * blksz + 496, 48);
      }
    }
    w.flushMeta();
    w.setSize(blocks * blksz);
    w.commit();
    expect(readFileSync(`${out.dir}/units.img`).equals(expected)).toBe(true);
  });

  it("file data merges across the rest of its own last block, written as zeros, and only there", () => {
    const path = `${out.dir}/owned.bin`;
    // Old bytes everywhere show which ranges a write covered.
    writeFileSync(path, Buffer.alloc(4 * 4096, 0xff));
    const fd = openSync(path, 'r+');
    const w = new FdWriter(fd, path);
    w.writeAt(byteOffset(0), Buffer.alloc(100, 1), 4096); // owns [100, 4096)
    w.writeAt(byteOffset(4096), Buffer.alloc(200, 2), 4096); // merges across it
    w.writeAt(byteOffset(3 * 4096), Buffer.alloc(300, 3)); // a block further on: no fill
    w.writeAt(byteOffset(4 * 4096 - 10), Buffer.alloc(10, 4)); // after an unowned end: no fill
    w.flush();
    closeSync(fd);
    const got = readFileSync(path);
    expect(got.subarray(0, 100).every((b) => b === 1)).toBe(true);
    expect(got.subarray(100, 4096).every((b) => b === 0)).toBe(true);
    expect(got.subarray(4096, 4296).every((b) => b === 2)).toBe(true);
    expect(got.subarray(4296, 3 * 4096).every((b) => b === 0xff)).toBe(true);
    expect(got.subarray(3 * 4096, 3 * 4096 + 300).every((b) => b === 3)).toBe(true);
    expect(got.subarray(3 * 4096 + 300, 4 * 4096 - 10).every((b) => b === 0xff)).toBe(true);
    expect(got.subarray(4 * 4096 - 10).every((b) => b === 4)).toBe(true);
  });

  it('reads back bytes still waiting in its merge buffer without writing them out first, and the newest bytes otherwise', () => {
    const w = ImageWriter.create(`${out.dir}/readback.img`);
    try {
      w.writeAt(byteOffset(8192), Buffer.alloc(4096, 0x11));
      w.writeAt(byteOffset(12_288), Buffer.alloc(100, 0x22));
      expect(w.readAt(byteOffset(12_288 - 4), 8).equals(Buffer.from([0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22]))).toBe(true);
      // Nothing was written out for that read.
      expect(readFileSync(w.tempPath).length).toBe(0);
      // A range running past the buffer is read from the file, after writing it out.
      expect(w.readAt(byteOffset(12_388 - 2), 4).equals(Buffer.from([0x22, 0x22, 0, 0]))).toBe(true);
      expect(readFileSync(w.tempPath).length).toBe(12_388);
    } finally {
      w.abort();
    }
  });

  it('a spool too big to be read whole reads back what was appended, in order or not', () => {
    const spool = Spool.inDir(out.dir, 'big');
    try {
      const parts: Array<{ at: number; bytes: Buffer }> = [];
      // 18 MB: past the size read whole.
      for (let i = 0; i < 60; i++) {
        const bytes = Buffer.alloc(300_000 + i, i + 1);
        parts.push({ at: spool.append(bytes), bytes });
      }
      const order = parts.map((_, i) => (i * 17) % parts.length);
      for (const i of [...order, ...order.reverse()]) expect(spool.read(parts[i]!.at, parts[i]!.bytes.length).equals(parts[i]!.bytes)).toBe(true);
      // Small reads in order, across the read-ahead window's edge.
      for (let at = parts[3]!.at - 100; at < parts[3]!.at + 600_000; at += 999) {
        expect(spool.read(at, 50).equals(Buffer.concat([parts[2]!.bytes, parts[3]!.bytes, parts[4]!.bytes]).subarray(at - parts[2]!.at, at - parts[2]!.at + 50))).toBe(true);
      }
    } finally {
      spool.dispose();
    }
  });

  it('the spool reads back what was appended, in order or not, also across its read-ahead window', () => {
    const spool = Spool.inDir(out.dir, 'test');
    try {
      const parts: Array<{ at: number; bytes: Buffer }> = [];
      for (let i = 0; i < 5000; i++) {
        const bytes = Buffer.alloc(1 + ((i * 37) % 300), i % 256);
        parts.push({ at: spool.append(bytes), bytes });
      }
      // A long part past the read-ahead size, then more appends after reads began.
      const long = Buffer.alloc(600_000, 7);
      parts.push({ at: spool.append(long), bytes: long });
      for (const p of parts.slice(0, 2000)) expect(spool.read(p.at, p.bytes.length).equals(p.bytes)).toBe(true);
      const late = Buffer.from('appended after reading');
      parts.push({ at: spool.append(late), bytes: late });
      for (const p of [...parts].reverse()) expect(spool.read(p.at, p.bytes.length).equals(p.bytes)).toBe(true);
    } finally {
      spool.dispose();
    }
  });

  it('an appender taken back to an offset appends over what followed it, whether written out or still buffered', () => {
    const path = `${out.dir}/rewound`;
    writeFileSync(path, '');
    const fd = openSync(path, 'r+');
    try {
      const a = new FdAppender(fd, path, 1024);
      a.append(Buffer.alloc(100, 1));
      a.append(Buffer.alloc(3000, 2)); // past the buffer: written out at once
      a.rewind(100);
      a.append(Buffer.alloc(10, 3));
      a.append(Buffer.alloc(50, 4)); // buffered
      a.rewind(105);
      a.append(Buffer.alloc(5, 5));
      expect(a.length).toBe(110);
      a.flush();
      const expected = Buffer.concat([Buffer.alloc(100, 1), Buffer.alloc(5, 3), Buffer.alloc(5, 5)]);
      expect(readFileSync(path).subarray(0, 110).equals(expected)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });
});
