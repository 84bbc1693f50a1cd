import { describe, expect, it } from 'vitest';
import { EROFS_FT_DIR, EROFS_FT_REG_FILE } from '../../src/format/constants.js';
import { decodeDirBlock, dirSize, encodeDirectory, type DirEntry } from '../../src/format/dirent.js';
import { nid } from '../../src/format/types.js';

const entry = (name: string | Buffer, n: number, ft = EROFS_FT_REG_FILE): DirEntry => ({
  name: typeof name === 'string' ? Buffer.from(name) : name,
  nid: nid(n),
  fileType: ft,
});

describe('directory blocks', () => {
  it('stores dirents first, then names back to back, the first nameoff giving the count', () => {
    const data = encodeDirectory([entry('.', 36, EROFS_FT_DIR), entry('..', 36, EROFS_FT_DIR), entry('a', 40)], 4096);
    expect(data.length).toBe(3 * 12 + 1 + 2 + 1);
    const v = new DataView(data.buffer);
    expect(v.getUint16(8, true)).toBe(36);
    expect(Buffer.from(data.subarray(36)).toString()).toBe('...a');
    expect(decodeDirBlock(data, data.length).map((e) => Buffer.from(e.name).toString())).toEqual(['.', '..', 'a']);
  });

  it('never splits a name across blocks and pads full blocks with zeros', () => {
    const names = Array.from({ length: 100 }, (_, i) => entry(`name-${String(i).padStart(3, '0')}-${'x'.repeat(20)}`, 100 + i));
    const data = encodeDirectory(names, 512);
    expect(data.length).toBe(dirSize(names.map((e) => e.name.length), 512));
    const decoded: string[] = [];
    for (let off = 0; off < data.length; off += 512) {
      const used = Math.min(512, data.length - off);
      decoded.push(...decodeDirBlock(data.subarray(off, off + 512), used).map((e) => Buffer.from(e.name).toString()));
    }
    expect(decoded).toEqual(names.map((e) => e.name.toString()));
  });

  it('keeps non-UTF-8 names byte for byte', () => {
    const odd = Buffer.from([0xff, 0xfe, 0x80, 0x41]);
    const data = encodeDirectory([entry(odd, 50)], 4096);
    expect(Buffer.from(decodeDirBlock(data, data.length)[0]!.name)).toEqual(odd);
  });

  it('encodes latin1 string names byte for byte, as the same names given as bytes', () => {
    const odd = Buffer.from([0xff, 0xfe, 0x80, 0x41]);
    const asBytes = encodeDirectory([entry('.', 36, EROFS_FT_DIR), entry(odd, 50)], 4096);
    const asStrings = encodeDirectory(
      [
        { name: '.', nid: nid(36), fileType: EROFS_FT_DIR },
        { name: odd.toString('latin1'), nid: nid(50), fileType: EROFS_FT_REG_FILE },
      ],
      4096,
    );
    expect(asStrings).toEqual(asBytes);
  });

  it('writes a nid above 2^32 as its full 64 bits', () => {
    const big = 2 ** 40 + 5;
    const data = encodeDirectory([entry('a', big)], 4096);
    expect(new DataView(data.buffer).getBigUint64(0, true)).toBe(BigInt(big));
    expect(decodeDirBlock(data, data.length)[0]!.nid).toBe(big);
  });

  it('sizes a directory as full blocks plus the used part of the last one', () => {
    // 12 + 255 = 267 bytes per entry: 15 fit in 4096 (4005 bytes), the 16th starts block 2.
    expect(dirSize(Array(16).fill(255), 4096)).toBe(4096 + 267);
  });
});
