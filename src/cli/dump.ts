// dump.erofs command line: superblock summary (-s), statistics (-S), one inode
// (--path / --nid) with its extents (-e) or directory listing (--ls).
//
// Exit status: 0 = success; 1 = the image (or the requested inode) is unusable; 2 = usage error.

import { exitQuietlyOnClosedStdout } from './stdio.js';
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { formatUuid } from '../format/superblock.js';
import { ErofsError } from '../reader/errors.js';
import { type ErofsImage, type Extent, type InodeStat, ALGORITHM_NAMES, featureNames, fileTypeKind, openImage } from '../reader/index.js';
import { collectStats } from '../reader/stats.js';
import { walkTree } from '../reader/walk.js';
import { type Nid, nid as toNid } from '../format/types.js';

const PROG = 'dump.erofs';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

interface DumpOptions {
  s?: boolean;
  S?: boolean;
  e?: boolean;
  ls?: boolean;
  path?: string;
  nid?: string;
  device?: string[];
}

class UsageError extends Error {}

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

function field(label: string, value: string | number | bigint): void {
  out(`${`${label}:`.padEnd(46)}${value}`);
}

function formatTime(sec: bigint, nsec: number): string {
  const ms = Number(sec) * 1000;
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return `${sec}.${String(nsec).padStart(9, '0')}`;
  const iso = d.toISOString().replace('T', ' ').slice(0, 19);
  return `${iso}.${String(nsec).padStart(9, '0')} UTC`;
}

function showSuperblock(img: ErofsImage): void {
  const sb = img.superblock;
  const r = sb.raw;
  field('Filesystem magic number', '0xE0F5E1E2');
  field('Filesystem blocksize', sb.blksz);
  field('Filesystem blocks', r.blocks);
  field('Filesystem inode metadata start block', r.metaBlkaddr);
  field('Filesystem shared xattr metadata start block', r.xattrBlkaddr);
  field('Filesystem root nid', sb.rootNid);
  if (img.packedNid !== null) field('Filesystem packed nid', img.packedNid);
  field('Filesystem inode count', r.inos);
  field('Filesystem created', formatTime(r.epoch, r.fixedNsec));
  field('Filesystem features', featureNames(sb.featureCompat, sb.featureIncompat).join(' '));
  const algs = ALGORITHM_NAMES.filter((_, i) => sb.compression.availableAlgorithms & (1 << i));
  if (sb.featureIncompat & 0x3) field('Filesystem compression algorithms', algs.join(' '));
  if (r.xattrPrefixCount) field('Filesystem long xattr prefixes', r.xattrPrefixCount);
  field('Filesystem UUID', formatUuid(r.uuid));
  const label = Buffer.from(r.volumeName).toString('latin1').replace(/\0.*$/s, '');
  if (label) field('Filesystem volume name', label);
  field('Filesystem image size', `${img.imageSize} bytes`);
}

function humanSize(n: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v}${units[i]}`;
}

function showStats(img: ErofsImage): void {
  const s = collectStats(img);
  const c = s.counts;
  field('Filesystem total file count', Object.values(c).reduce((a, b) => a + b, 0));
  field('Filesystem regular file count', c.file);
  field('Filesystem directory count', c.dir);
  field('Filesystem symlink file count', c.symlink);
  field('Filesystem character device count', c.chardev);
  field('Filesystem block device count', c.blockdev);
  field('Filesystem FIFO file count', c.fifo);
  field('Filesystem SOCK file count', c.socket);
  field('Filesystem compressed files', s.compressedFiles);
  field('Filesystem uncompressed files', s.uncompressedFiles);
  field('Filesystem total original file size', `${s.originalBytes} bytes`);
  field('Filesystem total file size on disk', `${s.storedBytes} bytes`);
  if (s.fragmentBytes) field('Filesystem bytes in fragments', `${s.fragmentBytes} bytes`);
  const ratio = s.originalBytes > 0 ? ((100 * s.storedBytes) / s.originalBytes).toFixed(2) : '0.00';
  field('Filesystem compress rate', `${ratio}%`);
  for (const [title, list] of [
    ['Original file size distribution', s.originalSizes],
    ['On-disk file size distribution', s.storedSizes],
  ] as const) {
    out(`\n${title}:`);
    out('  range          count');
    for (const b of list) out(`  ${`${humanSize(b.from)}..${humanSize(b.to)}`.padEnd(14)} ${b.count}`);
  }
  for (const e of s.errors) process.stderr.write(`${PROG}: ${e}\n`);
}

function modeString(mode: number): string {
  const types: Record<number, string> = { 0o140000: 's', 0o120000: 'l', 0o100000: '-', 0o060000: 'b', 0o040000: 'd', 0o020000: 'c', 0o010000: 'p' };
  const t = types[mode & 0o170000] ?? '?';
  const rwx = (bits: number, special: number, ch: string): string =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return (
    t +
    rwx((mode >> 6) & 7, mode & 0o4000, 's') +
    rwx((mode >> 3) & 7, mode & 0o2000, 's') +
    rwx(mode & 7, mode & 0o1000, 't')
  );
}

/** First path of `target` found by walking the tree (for --nid). */
function findPath(img: ErofsImage, target: Nid): string | null {
  if (target === img.rootNid) return '/';
  let found: string | null = null;
  walkTree(img, {
    onEntry(e) {
      if (found !== null) return false;
      if (e.nid === target) found = e.path.toString();
      return undefined;
    },
    onError() {},
  });
  return found;
}

const KIND_NAMES: Record<InodeStat['kind'], string> = {
  file: 'regular file',
  dir: 'directory',
  symlink: 'symlink',
  chardev: 'character device',
  blockdev: 'block device',
  fifo: 'fifo',
  socket: 'socket',
};

function showInode(img: ErofsImage, n: Nid, path: string | null): void {
  const st = img.stat(n);
  let onDisk = 0;
  let extentCount = 0;
  for (const e of img.extents(n)) {
    extentCount++;
    if (e.kind !== 'hole' && e.kind !== 'fragment') onDisk += e.physicalLength;
  }
  out(`File : ${path ?? '(unknown path)'}`);
  out(`Size: ${st.size}  On-disk size: ${onDisk}  ${KIND_NAMES[st.kind]}`);
  const ratio = st.compressed && st.size > 0 ? `   Compression ratio: ${((100 * onDisk) / st.size).toFixed(2)}%` : '';
  out(`NID: ${n}   Links: ${st.nlink}   Layout: ${st.layout} (${st.layoutName})${ratio}`);
  out(`Inode size: ${st.inodeSize}   Extents: ${extentCount}   Xattr size: ${st.xattrSize}   Index size: ${img.indexBytes(n)}`);
  out(`Uid: ${st.uid}   Gid: ${st.gid}   Access: ${(st.mode & 0o7777).toString(8).padStart(4, '0')}/${modeString(st.mode)}`);
  if (st.kind === 'chardev' || st.kind === 'blockdev') out(`Device: ${st.rdev.major}:${st.rdev.minor}`);
  if (st.kind === 'symlink') out(`Target: ${img.readlink(n).toString()}`);
  out(`Timestamp: ${formatTime(st.mtime, st.mtimeNsec)}`);
  const xattrs = img.listXattrs(n);
  if (xattrs.length > 0) {
    out('Xattrs:');
    for (const x of xattrs) out(`  ${x.name.toString()}${x.shared ? ' (shared)' : ''} = ${JSON.stringify(x.value.toString('latin1'))}`);
  }
}

function extentKind(e: Extent): string {
  if (e.kind === 'compressed') return `${ALGORITHM_NAMES[e.algorithm ?? 0] ?? e.algorithm}${e.inline ? ',inline' : ''}${e.partial ? ',partial' : ''}`;
  if (e.kind === 'raw') return `raw${e.inline ? ',inline' : ''}${e.interlaced ? ',interlaced' : ''}`;
  if (e.kind === 'plain') return e.inline ? 'inline' : 'plain';
  return e.kind;
}

function showExtents(img: ErofsImage, n: Nid, path: string | null): void {
  out(' Ext:   logical offset   |  length :     physical offset    |  length | type');
  let i = 0;
  for (const e of img.extents(n)) {
    const w = (v: number, width: number): string => String(v).padStart(width);
    const phys =
      e.kind === 'hole'
        ? `${'-'.padStart(10)}..${'-'.padStart(10)}`
        : e.kind === 'fragment'
          ? `${w(e.fragmentOffset ?? 0, 10)}..${w((e.fragmentOffset ?? 0) + e.length, 10)}`
          : `${w(e.physical, 10)}..${w(e.physical + e.physicalLength, 10)}`;
    const plen = e.kind === 'fragment' ? e.length : e.physicalLength;
    out(`${w(i, 4)}: ${w(e.logical, 8)}..${w(e.logical + e.length, 8)} | ${w(e.length, 7)} : ${phys} | ${w(plen, 7)} | ${extentKind(e)}${e.kind === 'fragment' ? ' (offset in packed inode)' : ''}`);
    i++;
  }
  out(`${path ?? `nid ${n}`}: ${i} extents found`);
}

function showListing(img: ErofsImage, n: Nid): void {
  out(`${'NID'.padStart(12)} ${'TYPE'.padEnd(9)} FILENAME`);
  for (const e of img.readdir(n)) out(`${String(e.nid).padStart(12)} ${fileTypeKind(e.fileType).padEnd(9)} ${e.name.toString()}`);
}

function parse(argv: readonly string[]): { image: string; o: DumpOptions } {
  const program = new Command(PROG)
    .description('Dump the layout of EROFS image IMAGE')
    .usage('[options] IMAGE')
    .argument('<IMAGE>')
    .version(`${PROG} (erofs-ts) ${packageVersion()}`, '-V, --version')
    .option('-s', 'show information about the superblock')
    .option('-S', 'show statistics of the image')
    .option('-e', 'show the extents of the inode (needs --path or --nid)')
    .option('--ls', 'list the directory (needs --path or --nid)')
    .option('--path <path>', 'show the inode at PATH')
    .option('--nid <nid>', 'show the inode with this nid')
    .option('--device <path>', 'extra device, in device-table order (repeatable; e.g. the tar of a --tar=i image)', (v: string, prev: string[]) => [...prev, v], []);
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.parse(argv as string[], { from: 'user' });
  const o = program.opts<DumpOptions>();
  if (o.path !== undefined && o.nid !== undefined) throw new UsageError('use either --path or --nid, not both');
  if ((o.e || o.ls) && o.path === undefined && o.nid === undefined) throw new UsageError('-e and --ls need --path or --nid');
  if (o.nid !== undefined && !/^\d+$/.test(o.nid)) throw new UsageError(`invalid nid ${o.nid}`);
  return { image: program.args[0]!, o };
}

export async function main(argv: readonly string[]): Promise<number> {
  exitQuietlyOnClosedStdout();
  let image: string;
  let o: DumpOptions;
  try {
    ({ image, o } = parse(argv));
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    process.stderr.write(`${PROG}: ${(e as Error).message}\nTry '${PROG} --help' for more information.\n`);
    return 2;
  }
  let img: ErofsImage;
  try {
    img = openImage(image, { devices: o.device ?? [] });
  } catch (e) {
    const why = e instanceof ErofsError ? e.message : `cannot open: ${(e as Error).message}`;
    process.stderr.write(`${PROG}: ${image}: ${why}\n`);
    return 1;
  }
  try {
    const inodeWanted = o.path !== undefined || o.nid !== undefined;
    const showSb = o.s || (!o.S && !inodeWanted);
    if (showSb) showSuperblock(img);
    if (o.S) {
      if (showSb) out();
      showStats(img);
    }
    if (inodeWanted) {
      if (showSb || o.S) out();
      const n = o.path !== undefined ? img.lookup(o.path) : toNid(Number(o.nid));
      const path = o.path !== undefined ? o.path : findPath(img, n);
      if (!o.e && !o.ls) showInode(img, n, path);
      if (o.e) showExtents(img, n, path);
      if (o.ls) {
        if (o.e) out();
        showListing(img, n);
      }
    }
    return 0;
  } catch (e) {
    if (e instanceof ErofsError) {
      process.stderr.write(`${PROG}: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`${PROG}: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 70;
  } finally {
    img.close();
  }
}
