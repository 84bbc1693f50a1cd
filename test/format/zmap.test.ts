import { describe, expect, it } from 'vitest';
import {
  Z_EROFS_ADVISE_COMPACTED_2B,
  Z_EROFS_LCLUSTER_TYPE_HEAD1,
  Z_EROFS_LCLUSTER_TYPE_NONHEAD,
  Z_EROFS_LCLUSTER_TYPE_PLAIN,
  Z_EROFS_LI_D0_CBLKCNT,
} from '../../src/format/constants.js';
import {
  buildLclusterRecords,
  compactIndexSize,
  compactSplit,
  decodeMapHeader,
  encodeCompactIndexes,
  encodeFullIndexes,
  encodeMapHeader,
  type Extent,
} from '../../src/format/zmap.js';

const HEAD1 = Z_EROFS_LCLUSTER_TYPE_HEAD1;
const NONHEAD = Z_EROFS_LCLUSTER_TYPE_NONHEAD;
const PLAIN = Z_EROFS_LCLUSTER_TYPE_PLAIN;

describe('lcluster records', () => {
  // The reference's 20000-byte lz4hc file: two compressed extents of one block each.
  const extents: Extent[] = [
    { start: 0, length: 15_698, raw: false, pblk: 10, pblocks: 1 },
    { start: 15_698, length: 4302, raw: false, pblk: 11, pblocks: 1 },
  ];

  it('match the reference: HEAD1, NONHEAD d1=2, NONHEAD d0=2, HEAD1 at 3410, EOF PLAIN at 3616', () => {
    const r = buildLclusterRecords(extents, 12, false);
    expect(r.map((x) => x.type)).toEqual([HEAD1, NONHEAD, NONHEAD, HEAD1, PLAIN]);
    expect(r[1]).toMatchObject({ delta0: 1, delta1: 2 });
    expect(r[2]).toMatchObject({ delta0: 2, delta1: 1 });
    expect(r[3]).toMatchObject({ clusterofs: 3410, blkaddr: 11 });
    expect(r[4]).toMatchObject({ clusterofs: 20_000 % 4096 });
  });

  it('store the pcluster block count in the first NONHEAD with big pclusters', () => {
    const big: Extent[] = [{ start: 0, length: 40_000, raw: false, pblk: 3, pblocks: 4 }];
    const r = buildLclusterRecords(big, 12, true);
    expect(r).toHaveLength(Math.ceil(40_000 / 4096));
    expect(r[1]!.delta0).toBe(Z_EROFS_LI_D0_CBLKCNT | 4);
    expect(r[2]!.delta0).toBe(2);
  });

  it('address pclusters from the block the file\'s data was placed at', () => {
    const ext: Extent[] = [
      { start: 0, length: 5000, raw: false, pblk: 0, pblocks: 1 },
      { start: 5000, length: 3000, raw: true, pblk: 1, pblocks: 1 },
    ];
    const placed = buildLclusterRecords(ext, 12, false, 100);
    expect(placed).toEqual(buildLclusterRecords(ext.map((e) => ({ ...e, pblk: e.pblk + 100 })), 12, false));
    expect(placed.filter((r) => r.type !== NONHEAD).map((r) => r.blkaddr)).toEqual([100, 101]);
  });

  it('add no EOF record when the last extent ends on an lcluster boundary', () => {
    const r = buildLclusterRecords([{ start: 0, length: 8192, raw: true, pblk: 1, pblocks: 1 }], 12, false);
    expect(r.map((x) => x.type)).toEqual([PLAIN, NONHEAD]);
  });
});

describe('index layouts', () => {
  it('aligns 2B packs to 32 bytes with leading 4B packs', () => {
    // Compact inode without xattrs: the index starts at 40 bytes into the inode.
    expect(compactSplit(100, 40, true)).toEqual({ initial4b: 6, twoB: 80, end4b: 14 });
    expect(compactSplit(3, 40, true)).toEqual({ initial4b: 0, twoB: 0, end4b: 3 });
    expect(compactIndexSize(100, 40, true)).toBe(8 + 6 * 4 + 80 * 2 + 7 * 8);
  });

  it('writes full indexes after a 16-byte header area', () => {
    const header = { idataSize: 0, advise: 0, algorithmType: 0, clusterBits: 0 };
    const recs = buildLclusterRecords([{ start: 0, length: 9000, raw: false, pblk: 7, pblocks: 1 }], 12, false);
    const b = encodeFullIndexes(header, recs);
    const v = new DataView(b.buffer);
    expect(b.length).toBe(16 + 3 * 8);
    expect(v.getUint16(16, true)).toBe(HEAD1);
    expect(v.getUint32(20, true)).toBe(7);
    expect(v.getUint16(24, true)).toBe(NONHEAD);
    expect(v.getUint16(32, true)).toBe(PLAIN);
    expect(v.getUint16(34, true)).toBe(9000 % 4096);
  });

  it('gives each compact pack a base address one below its first head without big pclusters', () => {
    const header = { idataSize: 0, advise: Z_EROFS_ADVISE_COMPACTED_2B, algorithmType: 0, clusterBits: 0 };
    const ext: Extent[] = [0, 1, 2, 3].map((i) => ({ start: i * 4096, length: 4096, raw: true, pblk: 20 + i, pblocks: 1 }));
    const recs = buildLclusterRecords(ext, 12, false);
    const b = encodeCompactIndexes(header, recs, 40, false);
    const v = new DataView(b.buffer);
    // Two 4B packs: base le32 at the end of each 8-byte pack.
    expect(v.getUint32(8 + 4, true)).toBe(19);
    expect(v.getUint32(16 + 4, true)).toBe(21);
  });

  it('round-trips the map header', () => {
    const h = { idataSize: 1387, advise: 0x9, algorithmType: 1, clusterBits: 0 };
    expect(decodeMapHeader(encodeMapHeader(h))).toEqual({ ...h, fragmentOffset: 1387 << 16 });
  });
});
