// Distinct numeric kinds. A block address, a nid and a byte offset are all numbers on
// disk, but mixing them up is the classic EROFS layout bug, so the type system keeps
// them apart. Values stay below 2^53, which covers every non-48bit image.

declare const brand: unique symbol;
type Branded<T, B extends string> = T & { readonly [brand]: B };

/** Block number within the image (byte offset = addr << blkszbits). */
export type BlockAddr = Branded<number, 'BlockAddr'>;
/** Inode number: index of a 32-byte slot counted from meta_blkaddr. */
export type Nid = Branded<number, 'Nid'>;
/** Absolute byte position within the image file. */
export type ByteOffset = Branded<number, 'ByteOffset'>;

/** 2^32, for 64-bit fields as two 32-bit halves: a constant, as V8's interpreter computes `2 ** 32` at every evaluation. */
export const TWO32 = 2 ** 32;

export const blockAddr = (n: number): BlockAddr => n as BlockAddr;
export const nid = (n: number): Nid => n as Nid;
export const byteOffset = (n: number): ByteOffset => n as ByteOffset;

/** Block size facts derived once from blkszbits. */
export interface BlockGeometry {
  readonly blkszbits: number;
  readonly blksz: number;
}

export function geometry(blkszbits: number): BlockGeometry {
  return { blkszbits, blksz: 1 << blkszbits };
}

export function blockToOffset(g: BlockGeometry, addr: BlockAddr): ByteOffset {
  return byteOffset(addr * g.blksz);
}

export function offsetToBlock(g: BlockGeometry, off: ByteOffset): BlockAddr {
  return blockAddr(Math.floor(off / g.blksz));
}

/** Byte offset of an inode slot, given meta_blkaddr (0 for images this tool writes). */
export function nidToOffset(g: BlockGeometry, metaBlkaddr: BlockAddr, n: Nid): ByteOffset {
  return byteOffset(metaBlkaddr * g.blksz + n * 32);
}
