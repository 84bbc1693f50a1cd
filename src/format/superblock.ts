// struct erofs_super_block: 128 bytes at EROFS_SUPER_OFFSET.

import {
  EROFS_FEATURE_COMPAT_SB_CHKSUM,
  EROFS_MAX_BLOCK_BITS,
  EROFS_MIN_BLOCK_BITS,
  EROFS_SUPER_BASE_SIZE,
  EROFS_SUPER_MAGIC_V1,
  EROFS_SUPER_OFFSET,
} from './constants.js';
import { crc32cRaw } from './crc32c.js';
import { type BlockAddr, type Nid, blockAddr, nid } from './types.js';

export interface Superblock {
  checksum: number;
  featureCompat: number;
  blkszbits: number;
  sbExtslots: number;
  rootNid: Nid;
  inos: bigint;
  /** Base seconds for compact-inode mtimes (the build time). */
  epoch: bigint;
  fixedNsec: number;
  blocks: number;
  metaBlkaddr: BlockAddr;
  xattrBlkaddr: BlockAddr;
  uuid: Uint8Array;
  volumeName: Uint8Array;
  featureIncompat: number;
  /** available_compr_algs with COMPR_CFGS, else lz4_max_distance. */
  u1: number;
  extraDevices: number;
  devtSlotoff: number;
  dirblkbits: number;
  xattrPrefixCount: number;
  xattrPrefixStart: number;
  packedNid: bigint;
  xattrFilterReserved: number;
}

export function superblockDefaults(blkszbits: number): Superblock {
  return {
    checksum: 0,
    featureCompat: 0,
    blkszbits,
    sbExtslots: 0,
    rootNid: nid(0),
    inos: 0n,
    epoch: 0n,
    fixedNsec: 0,
    blocks: 0,
    metaBlkaddr: blockAddr(0),
    xattrBlkaddr: blockAddr(0),
    uuid: new Uint8Array(16),
    volumeName: new Uint8Array(16),
    featureIncompat: 0,
    u1: 0,
    extraDevices: 0,
    devtSlotoff: 0,
    dirblkbits: 0,
    xattrPrefixCount: 0,
    xattrPrefixStart: 0,
    packedNid: 0n,
    xattrFilterReserved: 0,
  };
}

export function encodeSuperblock(sb: Superblock): Uint8Array {
  const b = new Uint8Array(EROFS_SUPER_BASE_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, EROFS_SUPER_MAGIC_V1, true);
  v.setUint32(4, sb.checksum, true);
  v.setUint32(8, sb.featureCompat, true);
  v.setUint8(12, sb.blkszbits);
  v.setUint8(13, sb.sbExtslots);
  v.setUint16(14, sb.rootNid, true);
  v.setBigUint64(16, sb.inos, true);
  v.setBigUint64(24, sb.epoch, true);
  v.setUint32(32, sb.fixedNsec, true);
  v.setUint32(36, sb.blocks, true);
  v.setUint32(40, sb.metaBlkaddr, true);
  v.setUint32(44, sb.xattrBlkaddr, true);
  b.set(sb.uuid.subarray(0, 16), 48);
  b.set(sb.volumeName.subarray(0, 16), 64);
  v.setUint32(80, sb.featureIncompat, true);
  v.setUint16(84, sb.u1, true);
  v.setUint16(86, sb.extraDevices, true);
  v.setUint16(88, sb.devtSlotoff, true);
  v.setUint8(90, sb.dirblkbits);
  v.setUint8(91, sb.xattrPrefixCount);
  v.setUint32(92, sb.xattrPrefixStart, true);
  v.setBigUint64(96, sb.packedNid, true);
  v.setUint8(104, sb.xattrFilterReserved);
  return b;
}

export class SuperblockError extends Error {}

/** Decodes and validates the superblock from the bytes at EROFS_SUPER_OFFSET. */
export function decodeSuperblock(bytes: Uint8Array): Superblock {
  if (bytes.length < EROFS_SUPER_BASE_SIZE) throw new SuperblockError('superblock truncated');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== EROFS_SUPER_MAGIC_V1) throw new SuperblockError('bad magic: not an EROFS image');
  const blkszbits = v.getUint8(12);
  if (blkszbits < EROFS_MIN_BLOCK_BITS || blkszbits > EROFS_MAX_BLOCK_BITS) {
    throw new SuperblockError(`unsupported block size 2^${blkszbits}`);
  }
  return {
    checksum: v.getUint32(4, true),
    featureCompat: v.getUint32(8, true),
    blkszbits,
    sbExtslots: v.getUint8(13),
    rootNid: nid(v.getUint16(14, true)),
    inos: v.getBigUint64(16, true),
    epoch: v.getBigUint64(24, true),
    fixedNsec: v.getUint32(32, true),
    blocks: v.getUint32(36, true),
    metaBlkaddr: blockAddr(v.getUint32(40, true)),
    xattrBlkaddr: blockAddr(v.getUint32(44, true)),
    uuid: bytes.slice(48, 64),
    volumeName: bytes.slice(64, 80),
    featureIncompat: v.getUint32(80, true),
    u1: v.getUint16(84, true),
    extraDevices: v.getUint16(86, true),
    devtSlotoff: v.getUint16(88, true),
    dirblkbits: v.getUint8(90),
    xattrPrefixCount: v.getUint8(91),
    xattrPrefixStart: v.getUint32(92, true),
    packedNid: v.getBigUint64(96, true),
    xattrFilterReserved: v.getUint8(104),
  };
}

/**
 * The checksum covers the rest of the block holding the superblock, from
 * EROFS_SUPER_OFFSET on (blksz bytes when blksz <= 1024), with the checksum
 * field taken as zero. Seed ~0, no final inversion, as the kernel computes it.
 */
export function superblockChecksumLength(blksz: number): number {
  return blksz > EROFS_SUPER_OFFSET ? blksz - EROFS_SUPER_OFFSET : blksz;
}

export function computeSuperblockChecksum(region: Uint8Array): number {
  // A copy (Buffer.prototype.slice would return a view and zero the caller's checksum field).
  const copy = new Uint8Array(region);
  copy.fill(0, 4, 8);
  return crc32cRaw(0xffffffff, copy);
}

/** Writes the checksum into `region` (which starts at the superblock) in place. */
export function sealSuperblock(region: Uint8Array): void {
  const v = new DataView(region.buffer, region.byteOffset, region.byteLength);
  if ((v.getUint32(8, true) & EROFS_FEATURE_COMPAT_SB_CHKSUM) === 0) return;
  v.setUint32(4, computeSuperblockChecksum(region), true);
}

/** Parses a UUID string (with or without dashes) into 16 bytes. */
export function parseUuid(text: string): Uint8Array | null {
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return null;
  if (text.includes('-') && !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(text)) {
    return null;
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export function formatUuid(u: Uint8Array): string {
  const h = Buffer.from(u).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Compression configuration records (COMPR_CFGS), stored right after the superblock:
 * per algorithm in ascending id order, 4-byte aligned, a le16 length then the payload.
 */
export function encodeComprCfgs(records: ReadonlyArray<{ algorithm: number; payload: Uint8Array }>): Uint8Array {
  const sorted = [...records].sort((a, b) => a.algorithm - b.algorithm);
  let size = 0;
  for (const r of sorted) size = Math.ceil(size / 4) * 4 + 2 + r.payload.length;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  let p = 0;
  for (const r of sorted) {
    p = Math.ceil(p / 4) * 4;
    v.setUint16(p, r.payload.length, true);
    out.set(r.payload, p + 2);
    p += 2 + r.payload.length;
  }
  return out;
}
