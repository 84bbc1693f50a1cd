// Superblock loading and validation: magic, checksum, block size, feature bits
// (refusing incompatible features we do not implement, as the kernel does) and
// the compression configuration records that follow the superblock.

import { EROFS_DEVT_SLOT_SIZE } from '../format/chunk.js';
import {
  EROFS_FEATURE_COMPAT_MTIME,
  EROFS_FEATURE_COMPAT_SB_CHKSUM,
  EROFS_FEATURE_COMPAT_XATTR_FILTER,
  EROFS_FEATURE_INCOMPAT_48BIT,
  EROFS_FEATURE_INCOMPAT_CHUNKED_FILE,
  EROFS_FEATURE_INCOMPAT_COMPR_CFGS,
  EROFS_FEATURE_INCOMPAT_DEVICE_TABLE,
  EROFS_FEATURE_INCOMPAT_FRAGMENTS,
  EROFS_FEATURE_INCOMPAT_METABOX,
  EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES,
  EROFS_FEATURE_INCOMPAT_ZERO_PADDING,
  EROFS_FEATURE_INCOMPAT_ZTAILPACKING,
  EROFS_SUPER_BASE_SIZE,
  EROFS_SUPER_OFFSET,
  Z_EROFS_COMPRESSION_DEFLATE,
  Z_EROFS_COMPRESSION_LZ4,
  Z_EROFS_COMPRESSION_LZMA,
  Z_EROFS_COMPRESSION_MAX,
  Z_EROFS_COMPRESSION_ZSTD,
} from '../format/constants.js';
import {
  type Superblock,
  SuperblockError,
  computeSuperblockChecksum,
  decodeSuperblock,
  superblockChecksumLength,
} from '../format/superblock.js';
import type { Nid } from '../format/types.js';
import { CorruptImageError, UnsupportedFeatureError } from './errors.js';
import type { ImageReader } from './image.js';

/** Compat bits with no reader-visible effect beyond what we handle. */
export const COMPAT_NAMES: ReadonlyArray<[number, string]> = [
  [EROFS_FEATURE_COMPAT_SB_CHKSUM, 'sb_csum'],
  [EROFS_FEATURE_COMPAT_MTIME, 'mtime'],
  [EROFS_FEATURE_COMPAT_XATTR_FILTER, 'xattr_filter'],
  [0x08, 'shared_ea_in_metabox'],
  [0x10, 'plain_xattr_pfx'],
  [0x20, 'ishare_xattrs'],
];

export const INCOMPAT_NAMES: ReadonlyArray<[number, string]> = [
  [EROFS_FEATURE_INCOMPAT_ZERO_PADDING, '0padding'],
  [EROFS_FEATURE_INCOMPAT_COMPR_CFGS, 'compr_cfgs/big_pcluster'],
  [EROFS_FEATURE_INCOMPAT_CHUNKED_FILE, 'chunked_file'],
  [EROFS_FEATURE_INCOMPAT_DEVICE_TABLE, 'device_table/compr_head2'],
  [EROFS_FEATURE_INCOMPAT_ZTAILPACKING, 'ztailpacking'],
  [EROFS_FEATURE_INCOMPAT_FRAGMENTS, 'fragments/dedupe'],
  [EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES, 'xattr_prefixes'],
  [EROFS_FEATURE_INCOMPAT_48BIT, '48bit'],
  [EROFS_FEATURE_INCOMPAT_METABOX, 'metabox'],
];

/** Incompatible features this reader implements; anything else is refused. */
export const SUPPORTED_INCOMPAT =
  EROFS_FEATURE_INCOMPAT_ZERO_PADDING |
  EROFS_FEATURE_INCOMPAT_COMPR_CFGS |
  EROFS_FEATURE_INCOMPAT_CHUNKED_FILE |
  EROFS_FEATURE_INCOMPAT_DEVICE_TABLE |
  EROFS_FEATURE_INCOMPAT_ZTAILPACKING |
  EROFS_FEATURE_INCOMPAT_FRAGMENTS |
  EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES;

export const COMPAT_PLAIN_XATTR_PFX = 0x10;

/** The kernel's upper bound on a physical cluster. */
export const Z_EROFS_PCLUSTER_MAX_SIZE = 1024 * 1024;

export const ALGORITHM_NAMES: readonly string[] = ['lz4', 'lzma', 'deflate', 'zstd'];

export interface CompressionConfig {
  /** Bit n set = algorithm n may appear in the image. */
  availableAlgorithms: number;
  lz4MaxDistance: number;
  /** From the LZ4 record; 1 when there is none. */
  lz4MaxPclusterBlocks: number;
  lzmaDictSize?: number;
  deflateWindowBits?: number;
  zstdWindowLog?: number;
}

export interface SuperInfo {
  readonly raw: Superblock;
  readonly blkszbits: number;
  readonly blksz: number;
  /** 128 + 16 * sb_extslots. */
  readonly sbSize: number;
  readonly rootNid: Nid;
  readonly featureCompat: number;
  readonly featureIncompat: number;
  readonly compression: CompressionConfig;
  /** Whether the stored checksum was present (and therefore verified). */
  readonly checksumVerified: boolean;
  /** Image size the superblock declares (blocks * blksz). */
  readonly declaredBytes: number;
  /** Extra devices from the device table (device id k is devices[k - 1]). */
  readonly devices: ReadonlyArray<{ blocks: number; mappedBlkaddr: number }>;
}

export function featureNames(compat: number, incompat: number): string[] {
  const names: string[] = [];
  for (const [bit, name] of COMPAT_NAMES) if (compat & bit) names.push(name);
  for (const [bit, name] of INCOMPAT_NAMES) if (incompat & bit) names.push(name);
  return names;
}

export function loadSuperblock(img: ImageReader): SuperInfo {
  if (img.size < EROFS_SUPER_OFFSET + EROFS_SUPER_BASE_SIZE) {
    throw new CorruptImageError(`image too small (${img.size} bytes) to hold a superblock`);
  }
  let raw: Superblock;
  try {
    raw = decodeSuperblock(img.read(EROFS_SUPER_OFFSET, EROFS_SUPER_BASE_SIZE, 'superblock'));
  } catch (e) {
    if (e instanceof SuperblockError) throw new CorruptImageError(e.message);
    throw e;
  }
  const blkszbits = raw.blkszbits;
  const blksz = 1 << blkszbits;
  img.setBlockBits(blkszbits);

  const sbSize = EROFS_SUPER_BASE_SIZE + raw.sbExtslots * 16;
  // The extension slots must stay inside the block holding the superblock.
  if (sbSize > Math.max(blksz, 2 * EROFS_SUPER_OFFSET) - EROFS_SUPER_OFFSET) {
    throw new CorruptImageError(`invalid sb_extslots ${raw.sbExtslots}`);
  }

  let checksumVerified = false;
  if (raw.featureCompat & EROFS_FEATURE_COMPAT_SB_CHKSUM) {
    const len = superblockChecksumLength(blksz);
    const region = img.read(EROFS_SUPER_OFFSET, len, 'superblock checksum region');
    const want = computeSuperblockChecksum(region);
    if (want !== raw.checksum) {
      throw new CorruptImageError(
        `superblock checksum mismatch: stored 0x${raw.checksum.toString(16)}, computed 0x${want.toString(16)}`,
      );
    }
    checksumVerified = true;
  }

  const unknown = raw.featureIncompat & ~SUPPORTED_INCOMPAT;
  if (unknown !== 0) {
    const named = INCOMPAT_NAMES.filter(([bit]) => unknown & bit).map(([, n]) => n);
    const rest = unknown & ~INCOMPAT_NAMES.reduce((m, [bit]) => m | bit, 0);
    if (rest) named.push(`0x${rest.toString(16)}`);
    throw new UnsupportedFeatureError(`unsupported incompatible features: ${named.join(', ')}`);
  }
  if (raw.dirblkbits !== 0) throw new UnsupportedFeatureError(`unsupported dirblkbits ${raw.dirblkbits}`);

  const compression = loadCompressionConfig(img, raw, sbSize);
  const devices = loadDeviceTable(img, raw);

  return {
    raw,
    blkszbits,
    blksz,
    sbSize,
    rootNid: raw.rootNid,
    featureCompat: raw.featureCompat,
    featureIncompat: raw.featureIncompat,
    compression,
    checksumVerified,
    declaredBytes: raw.blocks * blksz,
    devices,
  };
}

/** struct erofs_deviceslot entries: blocks and where they sit in the flat address space. */
function loadDeviceTable(img: ImageReader, raw: Superblock): SuperInfo['devices'] {
  if (!(raw.featureIncompat & EROFS_FEATURE_INCOMPAT_DEVICE_TABLE) || raw.extraDevices === 0) return [];
  const slots = img.read(raw.devtSlotoff * EROFS_DEVT_SLOT_SIZE, raw.extraDevices * EROFS_DEVT_SLOT_SIZE, 'device table');
  const v = new DataView(slots.buffer, slots.byteOffset, slots.byteLength);
  const out: Array<{ blocks: number; mappedBlkaddr: number }> = [];
  for (let i = 0; i < raw.extraDevices; i++) {
    const at = i * EROFS_DEVT_SLOT_SIZE;
    out.push({
      blocks: v.getUint32(at + 64, true) + v.getUint32(at + 72, true) * 2 ** 32,
      mappedBlkaddr: v.getUint32(at + 68, true) + v.getUint16(at + 76, true) * 2 ** 32,
    });
  }
  return out;
}

function loadCompressionConfig(img: ImageReader, raw: Superblock, sbSize: number): CompressionConfig {
  if (!(raw.featureIncompat & EROFS_FEATURE_INCOMPAT_COMPR_CFGS)) {
    // Without records only LZ4 with one-block pclusters can be used.
    return {
      availableAlgorithms: 1 << Z_EROFS_COMPRESSION_LZ4,
      lz4MaxDistance: raw.u1,
      lz4MaxPclusterBlocks: 1,
    };
  }
  const algs = raw.u1;
  if (algs >>> Z_EROFS_COMPRESSION_MAX !== 0) {
    throw new UnsupportedFeatureError(`unknown compression algorithms in bitmap 0x${algs.toString(16)}`);
  }
  const cfg: CompressionConfig = { availableAlgorithms: algs, lz4MaxDistance: 0xffff, lz4MaxPclusterBlocks: 1 };
  let pos = EROFS_SUPER_OFFSET + sbSize;
  for (let alg = 0; alg < Z_EROFS_COMPRESSION_MAX; alg++) {
    if (!(algs & (1 << alg))) continue;
    pos = (pos + 3) & ~3;
    const hdr = img.read(pos, 2, `${ALGORITHM_NAMES[alg]} configuration record`);
    const stored = hdr[0]! | (hdr[1]! << 8);
    const len = stored === 0 ? 65536 : stored;
    const payload = img.read(pos + 2, len, `${ALGORITHM_NAMES[alg]} configuration record`);
    pos += 2 + len;
    const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const name = ALGORITHM_NAMES[alg]!;
    switch (alg) {
      case Z_EROFS_COMPRESSION_LZ4:
        if (len < 4) throw new CorruptImageError(`invalid ${name} configuration (${len} bytes)`);
        cfg.lz4MaxDistance = v.getUint16(0, true);
        cfg.lz4MaxPclusterBlocks = Math.max(1, v.getUint16(2, true));
        break;
      case Z_EROFS_COMPRESSION_LZMA: {
        if (len < 6) throw new CorruptImageError(`invalid ${name} configuration (${len} bytes)`);
        const dict = v.getUint32(0, true);
        const format = v.getUint16(4, true);
        if (format !== 0) throw new UnsupportedFeatureError(`unsupported MicroLZMA format ${format}`);
        if (dict < 4096 || dict > 8 * 1024 * 1024) throw new CorruptImageError(`invalid LZMA dictionary size ${dict}`);
        cfg.lzmaDictSize = dict;
        break;
      }
      case Z_EROFS_COMPRESSION_DEFLATE: {
        if (len < 1) throw new CorruptImageError(`invalid ${name} configuration (${len} bytes)`);
        const wbits = v.getUint8(0);
        if (wbits > 15) throw new CorruptImageError(`invalid DEFLATE window bits ${wbits}`);
        cfg.deflateWindowBits = wbits;
        break;
      }
      case Z_EROFS_COMPRESSION_ZSTD: {
        if (len < 2) throw new CorruptImageError(`invalid ${name} configuration (${len} bytes)`);
        const format = v.getUint8(0);
        const wlog = v.getUint8(1);
        if (format !== 0) throw new UnsupportedFeatureError(`unsupported zstd format ${format}`);
        if (wlog > 10) throw new CorruptImageError(`invalid zstd window log ${wlog}`);
        cfg.zstdWindowLog = wlog;
        break;
      }
    }
  }
  return cfg;
}
