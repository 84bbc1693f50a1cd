// buildImage(): walker -> planner -> writer. The programmatic API under the CLI.

import { type Stats, lstatSync, realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';
import {
  EROFS_FEATURE_COMPAT_MTIME,
  EROFS_FEATURE_COMPAT_SB_CHKSUM,
  EROFS_FEATURE_COMPAT_XATTR_FILTER,
  EROFS_FEATURE_INCOMPAT_CHUNKED_FILE,
  EROFS_FEATURE_INCOMPAT_COMPR_CFGS,
  EROFS_FEATURE_INCOMPAT_DEVICE_TABLE,
  EROFS_FEATURE_INCOMPAT_ZERO_PADDING,
  EROFS_FEATURE_INCOMPAT_ZTAILPACKING,
  EROFS_INODE_FLAT_INLINE,
  EROFS_NULL_ADDR,
  EROFS_SUPER_BASE_SIZE,
  EROFS_SUPER_OFFSET,
  Z_EROFS_COMPRESSION_LZ4,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
} from '../format/constants.js';
import { encodeDirectory } from '../format/dirent.js';
import { type DiskInode, fileTypeOf, inodeSize, writeInode, xattrIcount } from '../format/inode.js';
import {
  encodeComprCfgs,
  encodeSuperblock,
  formatUuid,
  sealSuperblock,
  superblockChecksumLength,
  superblockDefaults,
} from '../format/superblock.js';
import { type BlockGeometry, byteOffset, geometry } from '../format/types.js';
import {
  encodeXattrEntry,
  encodeXattrIbody,
  splitXattrName,
  xattrNameFilter,
  type Xattr,
} from '../format/xattr.js';
import { BuildError, describeFsError } from './errors.js';
import { type BuildConfig, type BuildOptions, type CompressionConfig, resolveOptions, UsageError } from './options.js';
import {
  direntsOf,
  type InodePlan,
  isExtended,
  isPrewritten,
  type Layout,
  placeLayout,
  plannedInlineTail,
  planInodes,
  planNid,
  planU,
  setPrewritten,
  superBlockAddr,
} from './planner.js';
import { type CompressionSetup, writeCompressedFiles, type ZdataStats, ZFeed, zJob, zParams } from './zdata.js';
import { ProgressCounter } from './progress.js';
import { ZPool } from './zpool.js';
import {
  type Compressor,
  CompressionOptionError,
  createCompressor,
  NativeLibraryError,
} from '../compress/index.js';
import { inodeOrder, isDir, isReg, sourcePath, type TreeInode } from './tree.js';
import { WalkProgress, walkSource } from './walker.js';
import { type DirectData, walkTar } from './tar-walker.js';
import { planChunkedFiles } from './chunks.js';
import { EROFS_DEVT_SLOT_SIZE, encodeDeviceSlot } from '../format/chunk.js';
import { ImageWriter, Spool } from './writer.js';
import { FileCopier } from './copier.js';
import { COPY_HERE_BELOW, RangeCopier } from './range-copier.js';
import { copyFileData } from './file-copy.js';
import { eventLoopTurn } from './event-loop.js';

export interface BuildResult {
  imagePath: string;
  uuid: string;
  blockSize: number;
  inodes: number;
  inodesByType: Record<InodeKind, number>;
  blocks: number;
  metadataBlocks: number;
  imageBytes: number;
  /** Regular-file bytes read from the source. */
  sourceBytes: number;
  /** With -z: what compression did (files left uncompressed are not counted). */
  compression: ZdataStats | null;
  /** Milliseconds per phase. */
  timings: { walk: number; plan: number; data: number; metadata: number };
}

export type InodeKind = 'file' | 'directory' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

const KIND_OF: Record<number, InodeKind> = {
  [S_IFREG]: 'file',
  [S_IFDIR]: 'directory',
  [S_IFLNK]: 'symlink',
  [S_IFCHR]: 'chardev',
  [S_IFBLK]: 'blockdev',
  [S_IFIFO]: 'fifo',
  [S_IFSOCK]: 'socket',
};

const READ_CHUNK = 1 << 20;
/** Hand control back to the event loop this often, so signals and aborts are seen. */
const YIELD_EVERY_BYTES = 32 << 20;
const YIELD_EVERY_INODES = 512;

export async function buildImage(options: BuildOptions): Promise<BuildResult> {
  const resolved = resolveOptions(options);
  const cfg = resolved.tar ? resolved : { ...resolved, source: followSourceLink(resolved.source) };
  checkPaths(cfg);
  const g = geometry(cfg.blkszbits);
  let t = Date.now();
  const lap = (): number => {
    const now = Date.now();
    const ms = now - t;
    t = now;
    return ms;
  };
  // --tar=f: file data waits in a scratch file until the tree is complete.
  const tarData = cfg.tar?.mode === 'full' ? Spool.inDir(cfg.tar.tempDir, 'erofs-tar') : null;
  try {
    return await buildFromTree(cfg, options, g, tarData, lap);
  } finally {
    tarData?.dispose();
  }
}

async function buildFromTree(
  cfg: BuildConfig,
  options: BuildOptions,
  g: BlockGeometry,
  tarData: Spool | null,
  lap: () => number,
): Promise<BuildResult> {
  const writer = ImageWriter.create(cfg.image);
  let spool: Spool | null = null;
  let feed: ZFeed | null = null;
  let copier: FileCopier | null = null;
  /** The compression pool's end, begun once its last result is placed. */
  let closingPool: Promise<void> | null = null;
  /** The workers' flat copies of files compression lost on (see ZPool.copyFlat). */
  let flatCopies: Promise<void> | null = null;
  // Copies made on libuv's thread pool: big files of uncompressed builds, and output the
  // compression workers spilled to their scratch files (short runs of it copied here: the
  // workers have the other cores).
  const ranges = new RangeCopier(writer, { copyHereBelow: cfg.compression ? COPY_HERE_BELOW : 0 });
  try {
    const zsetup = cfg.compression ? compressionSetup(cfg, cfg.compression, g) : null;
    // Workers start (threads, modules, libraries) while the tree is walked, once it has
    // found enough to compress. The main thread is one of the compressing threads; output
    // that cannot be placed yet waits in scratch files beside the image past a few megabytes.
    const makePool =
      zsetup && cfg.workers > 1
        ? () => new ZPool(cfg.workers - 1, zParams(zsetup.setup, g), zsetup.setup.compressors, (what) => Spool.beside(writer, what))
        : null;
    // Uncompressed --tar=f: file blocks go straight to the image, ahead of the metadata.
    const direct: DirectData | null =
      tarData && !cfg.compression ? { writer, g, nextBlk: superBlockAddr(g) + 1, tails: tarData, ranges } : null;
    let root: TreeInode;
    let tarBytes = 0;
    const progress = new ProgressCounter(options.onProgress);
    feed = zsetup ? new ZFeed(makePool, zsetup.setup, g) : null;
    if (cfg.tar) ({ root, tarBytes } = await walkTar(cfg, tarData, direct, (n) => progress.scanned(n)));
    else {
      // While the walk goes on, big files are copied on libuv's thread pool and the rest
      // read by the walk (or, in a tree of thousands of files, by a thread of their own);
      // with -z the walk reads the small files compression leaves as they are, and the
      // others are compressed.
      spool = Spool.beside(writer);
      const walked = new WalkProgress();
      copier = new FileCopier(cfg, g, writer, spool, zsetup ? null : ranges, { entriesLeft: () => walked.entriesLeft() });
      const c = copier;
      const f = feed;
      const onFile =
        zsetup && f
          ? (inode: TreeInode, path: Buffer): void => {
              if (allTailUncompressed(cfg, g, zsetup.setup, inode)) c.add(inode, path);
              else if (makePool) f.offer(inode, isExtended(cfg, inode));
            }
          : (inode: TreeInode, path: Buffer): void => c.add(inode, path);
      feed?.hold();
      try {
        const walk = walkSource(cfg, onFile, () => ranges.busy, walked);
        for (let step = walk.next(); ; step = walk.next()) {
          if (step.done) {
            root = step.value.root;
            break;
          }
          progress.scanned(step.value);
          await yieldToEventLoop(cfg);
        }
      } finally {
        feed?.release();
      }
    }
    const dataFd = tarData && !direct ? tarData.readableFd() : null;
    if (zsetup) zsetup.setup.dataFd = dataFd;
    const order = inodeOrder(root);
    const walkMs = lap();
    const planned = planInodes(cfg, g, order);
    if (direct || copier) placeDirectData(planned.plans, g);
    const planMs = lap();
    // Index mode: the tar itself is extra device 1; its slot follows the superblock.
    const device = cfg.tar?.mode === 'index' ? { blocks: Math.ceil(tarBytes / g.blksz) } : null;
    const inodesByType = Object.fromEntries(Object.values(KIND_OF).map((k) => [k, 0])) as Record<InodeKind, number>;
    let sourceBytes = 0;
    for (const i of order) {
      inodesByType[KIND_OF[i.mode & S_IFMT]!]++;
      if (isReg(i)) sourceBytes += i.size;
    }
    progress.walked(order.length, sourceBytes);
    let zstats: ZdataStats | null = null;
    let dataMs = 0;
    const io: IoState = { buf: Buffer.allocUnsafe(READ_CHUNK), sinceYield: 0, dataFd, copier };

    let preDataBlocks = direct ? direct.nextBlk - (superBlockAddr(g) + 1) : (copier?.blocks ?? 0);
    let inlinePclusters = 0;
    let chunkedFiles = 0;
    if (cfg.tar && cfg.tar.mode !== 'full') {
      spool = Spool.beside(writer);
      chunkedFiles = planChunkedFiles(planned.plans, g, cfg.tar.mode, spool);
    }
    if (zsetup && feed) {
      progress.phase = 'compressing';
      spool ??= Spool.beside(writer);
      const z = await writeCompressedFiles(
        zsetup.setup,
        g,
        planned.plans,
        writer,
        spool,
        (p, untouched) => streamFile(cfg, g, p, writer, io, untouched),
        () => yieldToEventLoop(cfg, io),
        feed,
        progress,
        ranges,
      );
      // Compressed data starts where the copier would have put blocks: it must have given none.
      if (copier && copier.blocks > 0) throw new Error('internal: the file copier took blocks in a compressed build');
      preDataBlocks = z.preDataBlocks;
      inlinePclusters = z.stats.inlinePclusters;
      zstats = z.stats;
      // Compression is over: the workers, idle now, copy the files it lost on into place
      // while the metadata is written, then end (their memory and, once nothing is copied
      // from them, their scratch files go; a thread's teardown takes 10-15 ms, on its own core).
      await ranges.finish();
      const f = feed;
      flatCopies = f.pool && z.flat.length > 0 ? f.pool.copyFlat(z.flat, writer.descriptor, cfg.image) : null;
      // They are awaited before the image is committed, so a failure is not left unhandled
      // meanwhile; the pool ends once they are over, whatever came of them.
      const copied = flatCopies?.catch(() => {});
      closingPool = (async () => {
        await copied;
        await f.close();
      })();
      progress.phase = 'writing';
      dataMs = lap();
    }
    const layout = placeLayout(g, planned, {
      superBytes: EROFS_SUPER_BASE_SIZE + (zsetup?.cfgs.length ?? 0) + (device ? EROFS_DEVT_SLOT_SIZE : 0),
      preDataBlocks,
    });
    // Files may still be being copied: the metadata is written meanwhile.
    copier?.settleTails();
    await writeImage(cfg, layout, writer, direct ? direct.tails : spool, io, zsetup ? { ...zsetup, inlinePclusters } : null, progress, {
      device,
      chunkedFiles,
    });
    if (copier) {
      progress.file(await copier.finish());
      await copier.close();
    }
    await ranges.finish();
    await ranges.close();
    await flatCopies;
    await closingPool;
    writer.commit();
    options.onProgress?.(progress.snapshot());
    cfg.log('info', `${cfg.image}: ${layout.plans.length} inodes, ${layout.totalBlocks} blocks`);
    return {
      imagePath: cfg.image,
      uuid: formatUuid(cfg.uuid),
      blockSize: g.blksz,
      inodes: layout.plans.length,
      inodesByType,
      blocks: layout.totalBlocks,
      metadataBlocks: layout.metaBlocks,
      imageBytes: layout.totalBlocks * g.blksz,
      sourceBytes,
      compression: zstats,
      timings: { walk: walkMs, plan: planMs, data: dataMs, metadata: lap() },
    };
  } catch (e) {
    // The copy thread, the copies in flight and the workers' flat copies write through the
    // image's and the spool's descriptors: they end first.
    await copier?.close();
    await ranges.close();
    if (flatCopies) {
      feed?.halt();
      await flatCopies.catch(() => {});
    }
    writer.abort();
    throw e;
  } finally {
    spool?.dispose();
    await closingPool;
    await feed?.close();
  }
}

/**
 * A file compression leaves flat (too small to save a block) and whose data is all inline
 * tail: it takes no block, so the walk can read it while compressed data is still being
 * placed.
 */
function allTailUncompressed(cfg: BuildConfig, g: BlockGeometry, setup: CompressionSetup, inode: TreeInode): boolean {
  return (
    inode.size < g.blksz &&
    plannedInlineTail(cfg, g, inode) &&
    zJob(setup, g, { inode, extended: isExtended(cfg, inode), xattrSize: 0 }) === null
  );
}

/**
 * Gives the files written during the walk (of a tar or of a directory) their
 * blocks: i_u is where they start, and an inline tail comes from the tails spool. The walk
 * chose inline or not by the planner's own rule; only a link count past 65535 (a larger
 * inode) could change that afterwards, which only a tar can do to a file already written.
 */
function placeDirectData(plans: readonly InodePlan[], g: BlockGeometry): void {
  for (const p of plans) {
    const inode = p.inode;
    if (inode.dataBlk < 0) continue;
    const inline = p.datalayout === EROFS_INODE_FLAT_INLINE;
    if (inline !== inode.dataOffset >= 0) {
      throw new BuildError(`${sourcePath(inode).toString()}: more than 65535 hard links to a file with a short tail is not supported for tar input`);
    }
    const blocks = inline ? Math.floor(inode.size / g.blksz) : Math.ceil(inode.size / g.blksz);
    // A file that is all tail has no block: i_u is then EROFS_NULL_ADDR, as placeLayout does.
    const u = blocks > 0 || !inline ? inode.dataBlk : EROFS_NULL_ADDR;
    setPrewritten(p, u, inline ? inode.dataOffset : 0);
    p.dataBlocks = 0;
  }
}

/** A source directory given through a symlink is walked at the link's target, as the reference does. */
function followSourceLink(source: string): string {
  try {
    return lstatSync(source).isSymbolicLink() ? realpathSync(source) : source;
  } catch {
    // Missing or unreadable: the walk reports it.
    return source;
  }
}

function checkPaths(cfg: BuildConfig): void {
  if (cfg.tar) {
    checkTarPaths(cfg);
    return;
  }
  let src: string;
  try {
    src = realpathSync(cfg.source);
  } catch (e) {
    throw new BuildError(`${cfg.source}: ${describeFsError(e)}`);
  }
  if (!statSync(src).isDirectory()) throw new BuildError(`${cfg.source}: not a directory`);
  const imageDir = path.dirname(path.resolve(cfg.image));
  let realImageDir: string;
  try {
    realImageDir = realpathSync(imageDir);
  } catch (e) {
    throw new BuildError(`${cfg.image}: cannot create image in ${imageDir}: ${describeFsError(e)}`);
  }
  if (realImageDir === src || realImageDir.startsWith(src.endsWith('/') ? src : `${src}/`)) {
    throw new BuildError(`${cfg.image}: the image must not be inside the source directory ${cfg.source}`);
  }
  checkImagePath(cfg.image);
}

const FILES_ONLY = 'images are written to regular files only (build into a file, then copy it)';
const NOT_A_FILE: ReadonlyArray<[(st: Stats) => boolean, string]> = [
  [(st) => st.isDirectory(), 'is a directory'],
  [(st) => st.isBlockDevice(), `is a block device; ${FILES_ONLY}`],
  [(st) => st.isCharacterDevice(), `is a character device; ${FILES_ONLY}`],
  [(st) => st.isFIFO(), `is a FIFO; ${FILES_ONLY}`],
  [(st) => st.isSocket(), `is a socket; ${FILES_ONLY}`],
];

/**
 * An existing image path (or what a symlink there points to) must be a regular file: the
 * finished image takes its place, and would take a device node's or a FIFO's instead of
 * being written into it.
 */
function checkImagePath(image: string): void {
  let st: Stats;
  try {
    st = statSync(image);
  } catch {
    return;
  }
  for (const [is, what] of NOT_A_FILE) if (is(st)) throw new BuildError(`${image}: ${what}`);
}

function checkTarPaths(cfg: BuildConfig): void {
  checkImagePath(cfg.image);
  if (cfg.source === '' || cfg.source === '-') return;
  try {
    // Reading the tar while its own path is renamed over would lose the source.
    if (realpathSync(cfg.source) === realpathSync(cfg.image)) throw new BuildError(`${cfg.image}: the image must not be the source tar`);
  } catch (e) {
    if (e instanceof BuildError) throw e;
  }
}

interface ZSetup {
  setup: CompressionSetup;
  /** Compression configuration records behind the superblock (empty without COMPR_CFGS). */
  cfgs: Uint8Array;
  /** available_compr_algs: a bit per algorithm id. */
  algorithms: number;
}

/** The compressors and the superblock records that describe them, as the reference sets them. */
function compressionSetup(cfg: BuildConfig, z: CompressionConfig, g: BlockGeometry): ZSetup {
  let compressors: Compressor[];
  try {
    compressors = z.specs.map((spec) =>
      createCompressor(spec.name, { level: spec.level, dictSize: spec.dictSize, maxPclusterBytes: z.maxPclusterBytes }),
    );
  } catch (e) {
    if (e instanceof CompressionOptionError) throw new UsageError(e.message);
    if (e instanceof NativeLibraryError) throw new BuildError(e.message);
    throw e;
  }
  // COMPR_CFGS and BIG_PCLUSTER share a bit: any non-LZ4 algorithm or pcluster over a block.
  const cfgsNeeded = compressors.some((c) => c.algorithm !== Z_EROFS_COMPRESSION_LZ4) || z.maxPclusterBytes > g.blksz;
  const records = new Map<number, Uint8Array>();
  for (const c of compressors) if (!records.has(c.algorithm)) records.set(c.algorithm, c.configRecord(z.maxPclusterBytes, g.blksz));
  const cfgs = cfgsNeeded
    ? encodeComprCfgs([...records].map(([algorithm, payload]) => ({ algorithm, payload })))
    : new Uint8Array(0);
  return {
    setup: {
      compressors,
      specs: z.specs,
      pclusterBytes: z.pclusterBytes,
      maxPclusterBytes: z.maxPclusterBytes,
      hints: z.hints,
      // Tar trees have an empty root name: paths are already relative.
      sourcePrefix: cfg.tar ? 0 : Buffer.byteLength(cfg.source),
      dataFd: null,
      ztailpacking: z.ztailpacking,
      legacyCompress: z.legacyCompress,
      maxExtentBytes: z.maxExtentBytes,
      bigPcluster: cfgsNeeded,
    },
    cfgs,
    algorithms: [...records.keys()].reduce((bits, a) => bits | (1 << a), 0),
  };
}

async function writeImage(
  cfg: BuildConfig,
  layout: Layout,
  w: ImageWriter,
  spool: Spool | null,
  io: IoState,
  z: (ZSetup & { inlinePclusters: number }) | null,
  progress: ProgressCounter,
  extra: { device: { blocks: number } | null; chunkedFiles: number },
): Promise<void> {
  const g = layout.geometry;
  w.setSize(layout.totalBlocks * g.blksz);

  for (const s of layout.sharedXattrs) w.writeMeta(s.offset, encodeXattr(s.xattr), g.blksz);

  let filterUsed = false;
  for (let i = 0; i < layout.writeOrder.length; i++) {
    const p = layout.writeOrder[i]!;
    const data = isPrewritten(p) ? spool!.read(p.spoolOffset, p.inlineTail) : writeData(cfg, layout, p, w, io);
    const tail = data instanceof Promise ? await data : data;
    const ibody = encodeInodeXattrs(cfg, p);
    if (ibody && cfg.xattrNameFilter) filterUsed = true;
    writeInodeUnit(cfg, p, ibody, tail, w);
    if (isReg(p.inode) && !isPrewritten(p)) progress.file(p.inode.size);
    progress.inode();
    if (i % YIELD_EVERY_INODES === 0) await yieldToEventLoop(cfg, io);
  }

  w.flushMeta();
  const sb = superblockDefaults(g.blkszbits);
  sb.featureCompat =
    EROFS_FEATURE_COMPAT_MTIME |
    (cfg.sbChecksum ? EROFS_FEATURE_COMPAT_SB_CHKSUM : 0) |
    (filterUsed ? EROFS_FEATURE_COMPAT_XATTR_FILTER : 0);
  sb.rootNid = planNid(layout.root, layout);
  sb.metaBlkaddr = layout.metaBlkaddr;
  sb.inos = BigInt(layout.plans.length);
  sb.epoch = BigInt(cfg.buildTime);
  sb.blocks = layout.totalBlocks;
  sb.xattrBlkaddr = layout.xattrBlkaddr;
  sb.uuid = cfg.uuid;
  sb.volumeName.set(cfg.label);
  // Kernels that know DEVICE_TABLE (5.16) all know chunk-based inodes (5.15): the reference
  // sets CHUNKED_FILE only where no device table implies it.
  if (extra.chunkedFiles > 0 && !extra.device) sb.featureIncompat |= EROFS_FEATURE_INCOMPAT_CHUNKED_FILE;
  if (extra.device) {
    // The device's blocks follow the image's in the flat address space, so the tar appended
    // to the image mounts without -o device=.
    const slotOffset = EROFS_SUPER_OFFSET + EROFS_SUPER_BASE_SIZE + (z?.cfgs.length ?? 0);
    sb.featureIncompat |= EROFS_FEATURE_INCOMPAT_DEVICE_TABLE;
    sb.extraDevices = 1;
    sb.devtSlotoff = slotOffset / EROFS_DEVT_SLOT_SIZE;
    w.writeAt(
      byteOffset(slotOffset),
      encodeDeviceSlot({ tag: new Uint8Array(64), blocks: extra.device.blocks, mappedBlkaddr: layout.totalBlocks }),
    );
  }
  if (z) {
    sb.featureIncompat |=
      EROFS_FEATURE_INCOMPAT_ZERO_PADDING |
      (z.cfgs.length > 0 ? EROFS_FEATURE_INCOMPAT_COMPR_CFGS : 0) |
      (z.inlinePclusters > 0 ? EROFS_FEATURE_INCOMPAT_ZTAILPACKING : 0);
    // With COMPR_CFGS u1 is the algorithm bitmap, else LZ4's maximum match distance.
    sb.u1 = z.cfgs.length > 0 ? z.algorithms : 0xffff;
    w.writeAt(byteOffset(EROFS_SUPER_OFFSET + EROFS_SUPER_BASE_SIZE), z.cfgs);
  }
  w.writeAt(byteOffset(EROFS_SUPER_OFFSET), encodeSuperblock(sb));
  if (cfg.sbChecksum) {
    // The checksum covers the whole rest of the superblock's block, inodes included.
    const region = w.readAt(byteOffset(EROFS_SUPER_OFFSET), superblockChecksumLength(g.blksz));
    sealSuperblock(region);
    w.writeAt(byteOffset(EROFS_SUPER_OFFSET + 4), region.subarray(4, 8));
  }
  w.flush();
}

function encodeXattr(x: Xattr): Uint8Array {
  return encodeXattrEntry(splitXattrName(x.name)!, x.value);
}

function encodeInodeXattrs(cfg: BuildConfig, p: InodePlan): Uint8Array | null {
  if (p.xattrSize === 0) return null;
  const entries = p.inlineXattrs.map(encodeXattr);
  const natural = 12 + p.sharedXattrIds.length * 4 + entries.reduce((s, e) => s + e.length, 0);
  return encodeXattrIbody({
    nameFilter: cfg.xattrNameFilter ? xattrNameFilter(p.inode.xattrs.map((x) => splitXattrName(x.name)!)) : 0,
    sharedIds: p.sharedXattrIds,
    entries,
    padding: p.xattrSize - natural,
  });
}

function writeInodeUnit(
  cfg: BuildConfig,
  p: InodePlan,
  ibody: Uint8Array | null,
  tail: Uint8Array | null,
  w: ImageWriter,
): void {
  const inode = p.inode;
  const type = inode.mode & S_IFMT;
  const isize = inodeSize(p.extended);
  const length = isize + p.xattrSize + p.inlineTail;
  const blksz = 1 << cfg.blkszbits;
  // Most units lie within one block: filled where the block is cached, no unit buffer.
  const block = w.metaBlockOf(p.metaOffset, length, blksz);
  const unit = block ?? Buffer.alloc(length);
  const at = block ? p.metaOffset % blksz : 0;
  // One inode record for every unit: thousands of objects less for the collector.
  const d = unitInode;
  d.extended = p.extended;
  d.datalayout = p.datalayout;
  d.xattrIcount = xattrIcount(p.xattrSize);
  d.mode = inode.mode & 0xffff;
  d.nlink = inode.nlink;
  d.size = BigInt(inode.size);
  d.u = type === S_IFCHR || type === S_IFBLK ? inode.rdev : planU(p);
  d.ino = inode.ino;
  d.uid = inode.uid;
  d.gid = inode.gid;
  d.mtime = p.extended ? BigInt.asUintN(64, BigInt(inode.mtime)) : BigInt(inode.mtime - cfg.buildTime);
  d.mtimeNsec = inode.mtimeNsec;
  writeInode(unit, at, d);
  if (ibody) unit.set(ibody, at + isize);
  if (p.inlineTail > 0) unit.set(tail!.length === p.inlineTail ? tail! : tail!.subarray(0, p.inlineTail), at + isize + p.xattrSize);
  if (!block) w.writeMeta(p.metaOffset, unit, blksz);
}

const unitInode: DiskInode = {
  extended: false,
  datalayout: 0,
  formatFlags: 0,
  xattrIcount: 0,
  mode: 0,
  nlink: 0,
  size: 0n,
  u: 0,
  ino: 0,
  uid: 0,
  gid: 0,
  mtime: 0n,
  mtimeNsec: 0,
};

/** Lets signal handlers and AbortSignals run during long synchronous stretches. */
async function yieldToEventLoop(cfg: BuildConfig, io?: IoState): Promise<void> {
  if (io) io.sinceYield = 0;
  await eventLoopTurn(cfg.signal);
}

interface IoState {
  buf: Buffer;
  sinceYield: number;
  /** The tar data spool, where inodes with a dataOffset keep their bytes. */
  dataFd: number | null;
  /** Copies big source files on the thread pool, in uncompressed builds from a directory. */
  copier: FileCopier | null;
}

/**
 * Writes an inode's data blocks and returns the bytes that go inline after it.
 * Directory data is encoded now that every nid is known; file data is streamed. Only a
 * file's comes as a promise: one for each of thousands of directories and symlinks cost
 * more than their encoding.
 */
function writeData(
  cfg: BuildConfig,
  layout: Layout,
  p: InodePlan,
  w: ImageWriter,
  io: IoState,
): Uint8Array | null | Promise<Uint8Array | null> {
  const g = layout.geometry;
  const inode = p.inode;
  let content: Uint8Array | null = null;
  if (isDir(inode)) {
    content = encodeDirectory(
      direntsOf(inode).map((e) => ({
        name: e.name,
        nid: planNid(layout.plans[e.inode.ino - 1]!, layout),
        fileType: fileTypeOf(e.inode.mode),
      })),
      g.blksz,
    );
  } else if (inode.symlink) {
    content = inode.symlink;
  } else if (isReg(inode) && inode.size > 0) {
    // Hard-linked files and files with xattrs, placed after the metadata.
    const pooled = io.dataFd === null ? io.copier?.copyAhead(sourcePath(inode), inode.size, p.inlineTail, p.startBlk * g.blksz) : undefined;
    return pooled === undefined ? streamFile(cfg, g, p, w, io, true) : pooled;
  }
  if (!content) return null;
  const inlineStart = content.length - p.inlineTail;
  if (inlineStart > 0) w.writeAt(byteOffset(p.startBlk * g.blksz), content.subarray(0, inlineStart));
  return p.inlineTail > 0 ? content.subarray(inlineStart) : null;
}

async function streamFile(
  cfg: BuildConfig,
  g: BlockGeometry,
  p: InodePlan,
  w: ImageWriter,
  io: IoState,
  /** The destination still reads as zeros, so all-zero chunks need not be written. */
  untouched: boolean,
): Promise<Uint8Array | null> {
  const inode = p.inode;
  const spool = inode.dataOffset >= 0 && io.dataFd !== null ? { fd: io.dataFd, offset: inode.dataOffset } : null;
  const steps = copyFileData(
    { path: sourcePath(inode), size: inode.size, inlineTail: p.inlineTail, dst: byteOffset(p.startBlk * g.blksz), spool, untouched },
    w,
    io.buf,
  );
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    io.sinceYield += step.value;
    if (io.sinceYield >= YIELD_EVERY_BYTES) await yieldToEventLoop(cfg, io);
  }
}
