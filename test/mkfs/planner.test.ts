import { describe, expect, it } from 'vitest';
import { EROFS_SUPER_BASE_SIZE } from '../../src/format/constants.js';
import { geometry } from '../../src/format/types.js';
import { resolveOptions } from '../../src/mkfs/options.js';
import { inlinePclusterReadable } from '../../src/format/zmap.js';
import { direntsOf, MetaAllocator, placeLayout, planInodes } from '../../src/mkfs/planner.js';
import { asChild, childInode, inodeOrder, newInode, type TreeInode } from '../../src/mkfs/tree.js';

const g = geometry(12);
const B = g.blksz;

function inode(mode: number, name: string, parent: TreeInode | null, size = 0): TreeInode {
  const i = newInode(mode, { uid: 0, gid: 0, mtime: 0, mtimeNsec: 0 }, name, parent);
  i.size = size;
  i.nlink = 1;
  return i;
}

describe('the metadata allocator', () => {
  it('runs a unit over a block boundary so its tail-packed pcluster lies within the next block', () => {
    const alloc = new MetaAllocator(g, (rel) => rel);
    alloc.reserveHead(1152);
    alloc.alloc(B - 1152); // the superblock's block is full
    alloc.alloc(640);
    const prefix = 64;
    const idata = 4041;
    const off = alloc.allocWithInlinePcluster(prefix, idata);
    expect(off % 32).toBe(0);
    const pclusterStart = (off + prefix) % B;
    expect(pclusterStart).toBeGreaterThan(0);
    expect(pclusterStart + idata).toBeLessThanOrEqual(B);
    // What was before the unit in its first block is still there for smaller units.
    const small = alloc.alloc(32 * 30);
    expect(Math.floor(small / B)).toBe(Math.floor(off / B));
    expect(small + 32 * 30).toBeLessThanOrEqual(off);
  });

  it('never starts a tail-packed pcluster one block into a page, where the kernel cannot read it', () => {
    // 1 KiB blocks: a pcluster starting at page offset 1024 leaves the kernel's zero-padding
    // scan no byte (block size minus offset in page). Absolute block = relative + 1.
    const g1k = geometry(10);
    const alloc = new MetaAllocator(g1k, (rel) => rel + 1);
    alloc.reserveHead(128);
    alloc.alloc(1024);
    alloc.alloc(1024);
    // A pcluster of nearly a block can only start one; the next fresh block would put it
    // in block 5, at page offset 1024.
    const off = alloc.allocWithInlinePcluster(1024, 1000);
    const start = off + 1024;
    expect(start % 1024).toBe(0);
    expect(start % 4096).not.toBe(1024);
    expect(inlinePclusterReadable(start, 1024)).toBe(true);
    // The block passed over is still there for smaller units.
    expect(Math.floor(alloc.alloc(32 * 30) / 1024)).toBe(4);
  });

  it('knows where the kernel cannot read a tail-packed pcluster, for every page size', () => {
    expect(inlinePclusterReadable(1024, 1024)).toBe(false);
    expect(inlinePclusterReadable(4096 + 1024, 1024)).toBe(false);
    expect(inlinePclusterReadable(2048, 1024)).toBe(true);
    expect(inlinePclusterReadable(4096, 1024)).toBe(true);
    // 4 KiB blocks read on 16 KiB or 64 KiB pages.
    expect(inlinePclusterReadable(4096, 4096)).toBe(false);
    expect(inlinePclusterReadable(8192, 4096)).toBe(true);
    expect(inlinePclusterReadable(512, 512)).toBe(false);
  });

  it('puts a unit in the block with the least room that takes it, wherever that room is among a block\'s 128 slots', () => {
    const alloc = new MetaAllocator(g, (rel) => rel);
    const block = (off: number): number => Math.floor(off / B);
    // Blocks 0-2 with 1, 40 and 87 free slots: each unit fits no block before it.
    alloc.alloc(127 * 32);
    alloc.alloc(88 * 32);
    alloc.alloc(41 * 32);
    expect(block(alloc.alloc(35 * 32))).toBe(1);
    expect(block(alloc.alloc(41 * 32))).toBe(2);
    expect(block(alloc.alloc(46 * 32))).toBe(2);
    expect(block(alloc.alloc(32))).toBe(0);
    // Block 1 has 5 slots left, the others none: a fresh block.
    expect(block(alloc.alloc(6 * 32))).toBe(3);
    expect(block(alloc.alloc(5 * 32))).toBe(1);
  });

  it('places such a unit in fresh blocks when the last block cannot take it', () => {
    const alloc = new MetaAllocator(g, (rel) => rel);
    alloc.reserveHead(1152);
    const off = alloc.allocWithInlinePcluster(96, 4050);
    const pclusterStart = (off + 96) % B;
    expect(Math.floor(off / B)).toBeGreaterThan(0);
    expect(pclusterStart + 4050).toBeLessThanOrEqual(B);
  });
});

describe('the layout planner', () => {
  it('packs inode units biggest first, so short tails fill what long ones leave', () => {
    const root = inode(0o040755, '/src', null);
    root.parent = root;
    root.nlink = 2;
    // In name order these would take a block more: the first short tail takes the room
    // beside the superblock that no long one can use afterwards.
    for (const [name, size] of [['a', 968], ['b', 1984], ['c', 2976], ['d', 2976]] as const) {
      root.children!.push({ name, inode: inode(0o100644, name, root, size) });
    }
    const cfg = resolveOptions({ image: '/nonexistent/x.img', source: '/src', timestamp: 0 });
    const planned = planInodes(cfg, g, inodeOrder(root));
    const layout = placeLayout(g, planned, { superBytes: EROFS_SUPER_BASE_SIZE, preDataBlocks: 0 });
    expect(layout.plans.slice(1).every((p) => p.inlineTail > 0)).toBe(true);
    expect(layout.metaBlocks).toBe(3);
    // Every unit stays within its block.
    for (const p of layout.plans) {
      const size = 32 + p.xattrSize + p.inlineTail;
      expect(Math.floor(p.metaOffset / B)).toBe(Math.floor((p.metaOffset + size - 1) / B));
    }
  });
});

describe('directory entries', () => {
  it('are the inodes themselves, except a second name for a hard-linked inode', () => {
    const root = inode(0o040755, '/src', null);
    root.parent = root;
    const a = inode(0o040755, 'a', root);
    const b = inode(0o040755, 'b', root);
    const file = inode(0o100644, 'x', a, 10);
    root.children!.push(asChild('a', a), asChild('b', b));
    a.children!.push(asChild('x', file));
    // b/x and b/y name the same inode as a/x: the same name needs no entry object.
    b.children!.push(asChild('x', file), asChild('y', file));
    expect(a.children![0]).toBe(file);
    expect(b.children![0]).toBe(file);
    expect(b.children![1]).toEqual({ name: 'y', inode: file });
    expect(b.children!.map(childInode)).toEqual([file, file]);
    const order = inodeOrder(root);
    expect(order).toEqual([root, a, b, file]);
    expect(direntsOf(b).map((e) => [e.name, e.inode])).toEqual([
      ['.', b],
      ['..', root],
      ['x', file],
      ['y', file],
    ]);
  });
});
