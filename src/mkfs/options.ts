// Build options: the typed form of mkfs.erofs's command line, and their validation.

import { randomBytes } from '../builtins.js';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { CompressionSpec } from '../compress/registry.js';
import type { CompressHint } from './zdata.js';
import type { BuildProgress } from './progress.js';
import { parseUuid } from '../format/superblock.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type Logger = (level: LogLevel, message: string) => void;

export interface BuildOptions {
  /** Output image path. Written to a temporary file beside it and renamed on success. */
  image: string;
  /** Source directory; with `tar`, a tar file, or '-' (or '') for standard input. */
  source: string;
  /**
   * --tar: build from a tar stream. 'full' copies file data into the image; 'index' stores
   * only metadata and 512-byte-block indexes into the tar, which becomes extra device 1 (or
   * is appended to the image); 'headerball' reads a stream of headers without file data.
   */
  tar?: TarOptions;
  /** -b: 512, 1024, 2048 or 4096 (default). */
  blockSize?: number;
  /** -U: a UUID string, 'clear' (all zero) or 'random' (default). */
  uuid?: string;
  /** -L: volume label, at most 15 bytes. */
  label?: string;
  /** -E^sbcrc / -Enosbcrc turn the superblock checksum off. */
  sbChecksum?: boolean;
  /** -Eforce-inode-compact / -Eforce-inode-extended. */
  inodeVersion?: 'auto' | 'compact' | 'extended';
  /** -Enoinline_data: regular files never keep their tail inline. */
  inlineData?: boolean;
  /** -x: an xattr (name, value) seen more than this many times is shared; < 0 drops xattrs. */
  xattrTolerance?: number;
  /** -E^xattr-name-filter turns the per-inode bloom filter off. */
  xattrNameFilter?: boolean;
  /** -T: fixed build time (UNIX seconds). */
  timestamp?: number;
  /** --all-time (default with -T): every file gets the -T time; --mkfs-time: only the build time. */
  timestampScope?: 'all' | 'mkfs';
  /** SOURCE_DATE_EPOCH: build time, and newer file times are clamped to it. Overrides -T. */
  sourceDateEpoch?: number;
  /** --ignore-mtime: files whose mtime differs from the build time get the build time. */
  ignoreMtime?: boolean;
  allRoot?: boolean;
  forceUid?: number;
  forceGid?: number;
  uidOffset?: number;
  gidOffset?: number;
  /** --exclude-path: exact paths relative to the source root. */
  excludePaths?: string[];
  /** --exclude-regex: patterns searched in paths relative to the source root. */
  excludeRegexes?: string[];
  /** --root-xattr-isize: minimum inline xattr area of the root directory, in bytes. */
  rootXattrIsize?: number;
  /** --hard-dereference: hard links become separate inodes. */
  hardDereference?: boolean;
  /** -z: compression algorithms; files are compressed with the first. */
  compression?: CompressionSpec[];
  /** -C: largest physical cluster in bytes, a multiple of the block size up to 1 MiB. */
  pclusterSize?: number;
  /** -Eztailpacking: the last compressed extent goes inline after the index. */
  ztailpacking?: boolean;
  /** -Elegacy-compress: full 8-byte lcluster indexes instead of compact ones. */
  legacyCompress?: boolean;
  /** --max-extent-bytes: largest decompressed extent. */
  maxExtentBytes?: number;
  /**
   * --compress-hints: the first rule whose pattern matches a file's path (relative to the
   * source) sets its pcluster size (0: leave it uncompressed) and -z algorithm (an index).
   */
  compressHints?: Array<{ pclusterSize: number; algorithm?: number; pattern: string }>;
  /**
   * --workers: compression threads (default: the number of CPUs; 0 or 1: the main thread).
   * Worker threads start once the tree has more than 1 MiB to compress (64 MiB for plain
   * lz4); below that the main thread compresses alone.
   */
  workers?: number;
  log?: Logger;
  /** Called about every 100 ms while building, and once at the end. */
  onProgress?: (p: BuildProgress) => void;
  /** Aborting removes the temporary file and rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface TarOptions {
  mode: 'full' | 'index' | 'headerball';
  /** --ungzip / --unxz, or 'zstd'; 'auto' (default) tells by the stream's magic bytes. */
  decompress?: 'auto' | 'none' | 'gzip' | 'xz' | 'zstd';
  /** --aufs: `.wh.NAME` becomes an overlayfs whiteout, `.wh..wh..opq` an opaque directory. */
  aufs?: boolean;
  /** --ovlfs-strip=1: leave whiteouts and opaque marks out of the image. */
  ovlfsStrip?: boolean;
  /** Scratch space for file data of --tar=f (default: $TMPDIR, else beside the image). */
  tempDir?: string;
}

/** Validated, defaulted options. */
export interface BuildConfig {
  image: string;
  source: string;
  tar: Required<TarOptions> | null;
  blkszbits: number;
  uuid: Uint8Array;
  label: Uint8Array;
  sbChecksum: boolean;
  inodeVersion: 'auto' | 'compact' | 'extended';
  inlineData: boolean;
  xattrTolerance: number;
  xattrNameFilter: boolean;
  /** Superblock epoch: build time in seconds. */
  buildTime: number;
  /** How file mtimes relate to the build time. */
  timeInherit: 'source' | 'fixed' | 'clamp';
  ignoreMtime: boolean;
  fixedUid: number | null;
  fixedGid: number | null;
  uidOffset: number;
  gidOffset: number;
  excludePaths: Set<string>;
  excludeRegexes: RegExp[];
  rootXattrIsize: number;
  hardDereference: boolean;
  compression: CompressionConfig | null;
  workers: number;
  log: Logger;
  signal: AbortSignal | undefined;
}

export interface CompressionConfig {
  specs: CompressionSpec[];
  pclusterBytes: number;
  maxPclusterBytes: number;
  hints: CompressHint[];
  ztailpacking: boolean;
  legacyCompress: boolean;
  maxExtentBytes: number;
}

export class UsageError extends Error {}

/** Largest pcluster the format allows (Z_EROFS_PCLUSTER_MAX_SIZE). */
const PCLUSTER_MAX = 1 << 20;
/** Largest LZ4 pcluster, in blocks, the kernel mounts (its lz4 max_pclusterblks check). */
const LZ4_MAX_PCLUSTER_BLOCKS = 256;

function resolveCompression(o: BuildOptions, blksz: number, log: Logger): CompressionConfig | null {
  // As the reference: options that shape compressed data do nothing in an uncompressed
  // build, so a script that passes them whether or not it compresses still works.
  const compressOnly = (what: string, v: unknown) => {
    if (v !== undefined && v !== false) log('warn', `${what} has no effect without compression (-z): ignored`);
  };
  if (!o.compression || o.compression.length === 0) {
    compressOnly('-C', o.pclusterSize);
    compressOnly('-Eztailpacking', o.ztailpacking);
    compressOnly('--max-extent-bytes', o.maxExtentBytes);
    if (o.compressHints && o.compressHints.length > 0) compressOnly('--compress-hints', true);
    return null;
  }
  const pclusterBytes = o.pclusterSize ?? blksz;
  if (!Number.isInteger(pclusterBytes) || pclusterBytes < blksz || pclusterBytes % blksz !== 0 || pclusterBytes > PCLUSTER_MAX) {
    throw new UsageError(`invalid physical cluster size ${pclusterBytes}: a multiple of the block size (${blksz}) up to ${PCLUSTER_MAX}`);
  }
  const maxExtentBytes = o.maxExtentBytes ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isInteger(maxExtentBytes) || maxExtentBytes < blksz) {
    throw new UsageError(`invalid --max-extent-bytes ${maxExtentBytes}: at least the block size (${blksz})`);
  }
  const hints: CompressHint[] = [];
  for (const h of o.compressHints ?? []) {
    const algorithm = h.algorithm ?? 0;
    if (!Number.isInteger(algorithm) || algorithm < 0 || algorithm >= o.compression.length) {
      throw new UsageError(`compress hint "${h.pattern}": no compression algorithm #${algorithm} in -z`);
    }
    if (!Number.isInteger(h.pclusterSize) || h.pclusterSize < 0 || h.pclusterSize > PCLUSTER_MAX) {
      throw new UsageError(`compress hint "${h.pattern}": invalid physical cluster size ${h.pclusterSize}`);
    }
    if (h.pclusterSize % blksz !== 0) {
      log('warn', `compress hint "${h.pattern}": physical cluster size ${h.pclusterSize} is not a multiple of ${blksz}, hint ignored`);
      continue;
    }
    let pattern: RegExp;
    try {
      pattern = new RegExp(h.pattern);
    } catch (e) {
      throw new UsageError(`compress hint: invalid regex ${h.pattern}: ${(e as Error).message}`);
    }
    hints.push({ pattern, pclusterBytes: h.pclusterSize, algorithm });
  }
  const maxPclusterBytes = Math.max(pclusterBytes, ...hints.map((h) => h.pclusterBytes));
  // Linux refuses to mount an image whose LZ4 configuration allows pclusters of more than
  // 256 blocks ("too large lz4 pclusterblks"): 1 MiB only with 4 KiB blocks.
  if (o.compression.some((c) => c.name === 'lz4' || c.name === 'lz4hc') && maxPclusterBytes / blksz > LZ4_MAX_PCLUSTER_BLOCKS) {
    throw new UsageError(
      `physical cluster size ${maxPclusterBytes} is ${maxPclusterBytes / blksz} blocks: Linux mounts LZ4 images with at most ${LZ4_MAX_PCLUSTER_BLOCKS} (${LZ4_MAX_PCLUSTER_BLOCKS * blksz} bytes with ${blksz}-byte blocks)`,
    );
  }
  return {
    specs: o.compression,
    pclusterBytes,
    maxPclusterBytes,
    hints,
    ztailpacking: o.ztailpacking ?? false,
    legacyCompress: o.legacyCompress ?? false,
    maxExtentBytes,
  };
}

const U32 = 0xffffffff;

function checkId(what: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > U32)) {
    throw new UsageError(`invalid ${what}: ${v} (expected 0..${U32})`);
  }
}

export function resolveOptions(o: BuildOptions): BuildConfig {
  const blockSize = o.blockSize ?? 4096;
  const blkszbits = Math.log2(blockSize);
  if (!Number.isInteger(blkszbits) || blkszbits < 9 || blkszbits > 12) {
    throw new UsageError(`invalid block size ${blockSize}: must be 512, 1024, 2048 or 4096`);
  }

  let uuid: Uint8Array;
  if (o.uuid === undefined || o.uuid === 'random') uuid = Uint8Array.from(randomBytes(16));
  else if (o.uuid === 'clear') uuid = new Uint8Array(16);
  else {
    const parsed = parseUuid(o.uuid);
    if (!parsed) throw new UsageError(`invalid UUID ${o.uuid}`);
    uuid = parsed;
  }

  const label = Buffer.from(o.label ?? '', 'utf8');
  if (label.length > 15) throw new UsageError(`volume label "${o.label}" is longer than 15 bytes`);

  for (const [name, v] of [['-T', o.timestamp], ['SOURCE_DATE_EPOCH', o.sourceDateEpoch]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new UsageError(`invalid ${name} timestamp ${v}`);
  }
  checkId('--force-uid', o.forceUid);
  checkId('--force-gid', o.forceGid);
  checkId('--uid-offset', o.uidOffset);
  checkId('--gid-offset', o.gidOffset);

  // Workers start only once there is enough to compress (see ZFeed), so a small tree
  // costs no thread.
  const workers = o.workers ?? availableParallelism();
  if (!Number.isInteger(workers) || workers < 0 || workers > 1024) throw new UsageError(`invalid --workers ${workers}`);

  const rootXattrIsize = o.rootXattrIsize ?? 0;
  if (!Number.isInteger(rootXattrIsize) || rootXattrIsize < 0 || rootXattrIsize > 0xffff * 4) {
    throw new UsageError(`invalid --root-xattr-isize ${rootXattrIsize}`);
  }

  // SOURCE_DATE_EPOCH wins over -T and clamps rather than fixes file times.
  let buildTime: number;
  let timeInherit: BuildConfig['timeInherit'];
  if (o.sourceDateEpoch !== undefined) {
    buildTime = o.sourceDateEpoch;
    timeInherit = 'clamp';
  } else if (o.timestamp !== undefined) {
    buildTime = o.timestamp;
    timeInherit = o.timestampScope === 'mkfs' ? 'source' : 'fixed';
  } else {
    buildTime = Math.floor(Date.now() / 1000);
    timeInherit = 'source';
  }

  const excludeRegexes = (o.excludeRegexes ?? []).map((r) => {
    try {
      return new RegExp(r);
    } catch (e) {
      throw new UsageError(`invalid --exclude-regex ${r}: ${(e as Error).message}`);
    }
  });

  let tar: BuildConfig['tar'] = null;
  if (o.tar) {
    tar = {
      mode: o.tar.mode,
      decompress: o.tar.decompress ?? 'auto',
      aufs: o.tar.aufs ?? false,
      ovlfsStrip: o.tar.ovlfsStrip ?? false,
      tempDir: o.tar.tempDir ?? (process.env.TMPDIR || dirname(resolve(o.image))),
    };
    if (!['full', 'index', 'headerball'].includes(tar.mode)) throw new UsageError(`invalid --tar mode ${String(tar.mode)}`);
  }
  // Index mode points at the tar's 512-byte records, so its blocks must be 512 bytes.
  const indexBlocks = tar?.mode === 'index';
  const log = o.log ?? (() => {});
  let compression = resolveCompression(o, blockSize, log);
  if (tar && tar.mode !== 'full' && compression) {
    log('warn', `--tar=${tar.mode === 'index' ? 'i' : 'headerball'} stores no file data: -z is ignored`);
    compression = null;
  }

  return {
    image: o.image,
    source: o.source,
    tar,
    blkszbits: indexBlocks ? 9 : blkszbits,
    uuid,
    label,
    sbChecksum: o.sbChecksum ?? true,
    inodeVersion: o.inodeVersion ?? 'auto',
    inlineData: o.inlineData ?? true,
    xattrTolerance: o.xattrTolerance ?? 2,
    xattrNameFilter: o.xattrNameFilter ?? true,
    buildTime,
    timeInherit,
    ignoreMtime: o.ignoreMtime ?? false,
    fixedUid: o.allRoot ? 0 : (o.forceUid ?? null),
    fixedGid: o.allRoot ? 0 : (o.forceGid ?? null),
    uidOffset: o.uidOffset ?? 0,
    gidOffset: o.gidOffset ?? 0,
    excludePaths: new Set((o.excludePaths ?? []).map((p) => p.replace(/^\/+/, '').replace(/\/+$/, ''))),
    excludeRegexes,
    rootXattrIsize,
    hardDereference: o.hardDereference ?? false,
    compression,
    workers,
    log,
    signal: o.signal,
  };
}
