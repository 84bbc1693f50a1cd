import { describe, expect, it } from 'vitest';
import {
  chunkBitsFor,
  chunkFormat,
  encodeChunkIndexes,
  encodeDeviceSlot,
  encodeHoleBlockMap,
  EROFS_DEVT_SLOT_SIZE,
} from '../../src/format/chunk.js';

describe('chunk-based inodes', () => {
  it('picks the smallest chunk holding the whole file, within the 5-bit format field', () => {
    expect(chunkBitsFor(1, 9)).toBe(9);
    expect(chunkBitsFor(512, 9)).toBe(9);
    expect(chunkBitsFor(513, 9)).toBe(10);
    expect(chunkBitsFor(5000, 9)).toBe(13);
    expect(chunkBitsFor(2 ** 45, 9)).toBe(9 + 31);
  });

  it('encodes the format: chunk bits above the block size, and the indexes flag', () => {
    expect(chunkFormat(13, 9, true)).toBe(0x24);
    expect(chunkFormat(12, 12, false)).toBe(0);
  });

  it('writes 8-byte indexes: startblk_hi, device_id, startblk_lo, advancing a chunk each', () => {
    const b = encodeChunkIndexes(2, 16, 2 ** 32 + 3, 1);
    const v = new DataView(b.buffer);
    expect(b.length).toBe(16);
    expect([v.getUint16(0, true), v.getUint16(2, true), v.getUint32(4, true)]).toEqual([1, 1, 3]);
    expect([v.getUint16(8, true), v.getUint16(10, true), v.getUint32(12, true)]).toEqual([1, 1, 19]);
  });

  it('writes a block map of holes', () => {
    expect([...encodeHoleBlockMap(2)]).toEqual(new Array(8).fill(0xff));
  });

  it('writes a device slot: tag, blocks and mapped block address with their high parts', () => {
    const s = encodeDeviceSlot({ tag: new Uint8Array([1, 2]), blocks: 2 ** 32 + 7, mappedBlkaddr: 40 });
    const v = new DataView(s.buffer);
    expect(s.length).toBe(EROFS_DEVT_SLOT_SIZE);
    expect([s[0], s[1], s[2]]).toEqual([1, 2, 0]);
    expect([v.getUint32(64, true), v.getUint32(68, true), v.getUint32(72, true), v.getUint16(76, true)]).toEqual([7, 40, 1, 0]);
  });
});
