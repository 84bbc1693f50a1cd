import { describe, expect, it } from 'vitest';
import { EROFS_INODE_FLAT_INLINE } from '../../src/format/constants.js';
import { decodeDev, decodeInode, encodeDev, encodeInode, writeInode, type DiskInode } from '../../src/format/inode.js';

const base: DiskInode = {
  extended: false, datalayout: EROFS_INODE_FLAT_INLINE, formatFlags: 0, xattrIcount: 0, mode: 0o100644,
  nlink: 1, size: 10n, u: 0xffffffff, ino: 5, uid: 1, gid: 2, mtime: 0n, mtimeNsec: 0,
};

describe('inodes', () => {
  it('encodes a compact inode in 32 bytes with the layout in i_format bits 1-3', () => {
    const b = encodeInode(base);
    expect(b.length).toBe(32);
    expect(new DataView(b.buffer).getUint16(0, true)).toBe(EROFS_INODE_FLAT_INLINE << 1);
    expect(decodeInode(b)).toEqual(base);
  });
  it('encodes an extended inode in 64 bytes with 32-bit ids and nanoseconds', () => {
    const ext = { ...base, extended: true, uid: 4000000000, gid: 100000, size: 5n << 32n, mtime: 1700000000n, mtimeNsec: 123456789, nlink: 70000 };
    const b = encodeInode(ext);
    expect(b.length).toBe(64);
    expect(decodeInode(b)).toEqual(ext);
  });
  it('writes an inode in place at an offset, touching only its own bytes', () => {
    const ext = { ...base, extended: true, size: 1n << 40n, mtime: 1700000000n, mtimeNsec: 7 };
    const block = new Uint8Array(4096).fill(0xaa);
    const region = block.subarray(1024, 1024 + 128);
    region.fill(0);
    writeInode(region, 32, ext);
    expect(region.subarray(32, 96)).toEqual(encodeInode(ext));
    expect(region.subarray(0, 32).every((b) => b === 0)).toBe(true);
    expect(region.subarray(96).every((b) => b === 0)).toBe(true);
    expect(block.subarray(0, 1024).every((b) => b === 0xaa)).toBe(true);
    expect(block.subarray(1152).every((b) => b === 0xaa)).toBe(true);
  });
  it('encodes device numbers as new_encode_dev', () => {
    expect(encodeDev(8, 1)).toBe(0x801);
    expect(encodeDev(300, 70000)).toBe((70000 & 0xff) | (300 << 8) | ((70000 & ~0xff) << 12));
    expect(decodeDev(encodeDev(4095, 1048575))).toEqual({ major: 4095, minor: 1048575 });
  });
});
