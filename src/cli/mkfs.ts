// mkfs.erofs command line: parses the reference tool's options into BuildOptions.
// Nothing here touches the file system except through buildImage().

import { buildOnWithoutOutput } from './stdio.js';
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { CompressionOptionError, parseCompressionOption } from '../compress/index.js';
import { type BuildResult, buildImage } from '../mkfs/build.js';
import { tuneMalloc } from './malloc-tuning.js';
import { ProgressBar } from './progress-bar.js';
import { BuildError } from '../mkfs/errors.js';
import { type BuildOptions, type LogLevel, UsageError } from '../mkfs/options.js';
import { removeActiveTempFiles } from '../mkfs/writer.js';

const PROG = 'mkfs.erofs';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Integers as the reference's strtol(…, 0) reads them: decimal, 0x hex or 0 octal, optional sign. */
export function parseInteger(text: string, what: string): number {
  const m = /^([+-]?)(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)$/i.exec(text.trim());
  if (!m) throw new UsageError(`invalid ${what}: ${text}`);
  const body = m[2]!;
  const v = body.startsWith('0x') || body.startsWith('0X') ? parseInt(body, 16) : body.length > 1 && body.startsWith('0') ? parseInt(body, 8) : parseInt(body, 10);
  if (!Number.isSafeInteger(v)) throw new UsageError(`invalid ${what}: ${text}`);
  return m[1] === '-' ? -v : v;
}

/** -E sub-options that this version implements, and what each sets. */
const EXTENDED_OPTIONS: Record<string, (o: BuildOptions, on: boolean) => void> = {
  'force-inode-compact': (o, on) => { o.inodeVersion = on ? 'compact' : 'auto'; },
  'force-inode-extended': (o, on) => { o.inodeVersion = on ? 'extended' : 'auto'; },
  nosbcrc: (o, on) => { o.sbChecksum = !on; },
  sbcrc: (o, on) => { o.sbChecksum = on; },
  noinline_data: (o, on) => { o.inlineData = !on; },
  inline_data: (o, on) => { o.inlineData = on; },
  'xattr-name-filter': (o, on) => { o.xattrNameFilter = on; },
  ztailpacking: (o, on) => { o.ztailpacking = on; },
  'legacy-compress': (o, on) => { o.legacyCompress = on; },
};

/** -E sub-options of the reference that belong to features not built yet. */
const EXTENDED_LATER = new Set([
  'fragments', 'all-fragments', 'dedupe', 'fragdedupe', '48bit',
  'dot-omitted', 'force-inode-blockmap', 'force-chunk-indexes', 'plain-xattr-prefixes',
]);

export function applyExtendedOptions(o: BuildOptions, arg: string): void {
  for (const raw of arg.split(',')) {
    if (raw === '') continue;
    const on = !raw.startsWith('^');
    const token = on ? raw : raw.slice(1);
    const [key] = token.split('=', 1) as [string];
    const set = EXTENDED_OPTIONS[key];
    if (set) {
      if (token.includes('=')) throw new UsageError(`-E${key} takes no value`);
      set(o, on);
    } else if (EXTENDED_LATER.has(key)) {
      throw new UsageError(`-E${key} is not supported yet`);
    } else {
      throw new UsageError(`unknown extended option -E${token}`);
    }
  }
}

/** Options of the reference tool that later versions of this one will implement. */
const NOT_YET: ReadonlyArray<[flags: string, description: string]> = [
  ['-m <bytes>', 'metadata compression (not supported yet)'],
  ['--chunksize <bytes>', 'chunk-based files (not supported yet)'],
  ['--blobdev <file>', 'extra blob device (not supported yet)'],
  ['--zD [0|1]', 'directory compression (not supported yet)'],
  ['--MZ [zone]', 'metadata zone (not supported yet)'],
  ['--dsunit <blocks>', 'data alignment (not supported yet)'],
  ['--fsalignblks <blocks>', 'device size alignment (not supported yet)'],
  ['--offset <bytes>', 'image offset (not supported yet)'],
  ['--xattr-prefix <prefix>', 'long xattr name prefixes (not supported yet)'],
  ['--mount-point <path>', 'target path prefix (not supported yet)'],
  ['--file-contexts <file>', 'selinux labels (not supported yet)'],
  ['--zfeature-bits <bits>', 'compression feature bits (not supported yet)'],
  ['--vmdk-desc <file>', 'VMDK descriptor (not supported yet)'],
  ['--clean [mode]', 'clean build (not supported yet)'],
  ['--incremental [mode]', 'incremental build (not supported yet)'],
];

/**
 * --compress-hints file, as the reference reads it: "PCLUSTER_SIZE [ALGORITHM_INDEX] REGEX"
 * per line; '#' starts a comment line.
 */
export function readCompressHints(file: string): NonNullable<BuildOptions['compressHints']> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${file}: cannot read compress hints: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const hints: NonNullable<BuildOptions['compressHints']> = [];
  text.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const m = /^[\t ]*(\S+)[\t ]+(\S+)(?:[\t ]+(.*))?$/.exec(line);
    if (!m) throw new UsageError(`${file}:${i + 1}: cannot find a match pattern`);
    const pclusterSize = parseInteger(m[1]!, `physical cluster size at ${file}:${i + 1}`);
    if (m[3] === undefined || m[3] === '') hints.push({ pclusterSize, pattern: m[2]! });
    else hints.push({ pclusterSize, algorithm: parseInteger(m[2]!, `algorithm at ${file}:${i + 1}`), pattern: m[3] });
  });
  return hints;
}

/**
 * Options whose argument is optional in the reference (getopt optional_argument): the value
 * must be attached with '=', so a bare flag never swallows the next word (the image path).
 */
const OPTIONAL_ARGUMENT_DEFAULTS: Record<string, string> = { '--tar': 'f', '--ovlfs-strip': '1' };

function getoptOptionalArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const d = OPTIONAL_ARGUMENT_DEFAULTS[a];
    out.push(d === undefined ? a : `${a}=${d}`);
  }
  return out;
}

/** --tar=f|i|headerball and the options that only mean something with it. */
function parseTarOptions(o: Record<string, unknown>): NonNullable<BuildOptions['tar']> {
  const spec = String(o.tar);
  const [kind, mapfile] = spec.split(',', 2) as [string, string | undefined];
  if (mapfile !== undefined && mapfile !== '') throw new UsageError(`--tar=${kind},MAPFILE (block list file) is not supported yet`);
  const modes: Record<string, 'full' | 'index' | 'headerball'> = { f: 'full', i: 'index', '0': 'index', headerball: 'headerball' };
  const mode = modes[kind];
  if (!mode) throw new UsageError(`invalid --tar mode ${spec} (f, i or headerball)`);
  const strip = o.ovlfsStrip === undefined ? undefined : String(o.ovlfsStrip);
  if (strip !== undefined && strip !== '0' && strip !== '1') throw new UsageError(`invalid --ovlfs-strip=${strip} (0 or 1)`);
  // --sort=none lets the reference skip a copy for uncompressed images; the image content is
  // the same either way, so it is only checked.
  if (o.sort !== undefined && o.sort !== 'path' && o.sort !== 'none') throw new UsageError(`invalid --sort=${String(o.sort)} (path or none)`);
  if ((o.ungzip || o.gzip) && o.unxz) throw new UsageError('--ungzip and --unxz cannot be used together');
  return {
    mode,
    decompress: o.ungzip || o.gzip ? 'gzip' : o.unxz ? 'xz' : 'auto',
    aufs: Boolean(o.aufs),
    ovlfsStrip: strip === '1',
  };
}

/** Repeatable options accumulate, as with getopt in the reference tool. */
const collect = (value: string, previous: string[]): string[] => [...previous, value];

interface Parsed {
  options: BuildOptions;
  verbosity: number;
  quiet: boolean;
  json: boolean;
}

export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Parsed {
  const program = new Command(PROG)
    .usage('[OPTIONS] FILE SOURCE')
    .description('Build an EROFS image FILE from the directory SOURCE (with --tar: a tar file, or stdin).')
    .argument('<FILE>', 'image file to create')
    .argument('[SOURCE]', 'source directory, or tar file with --tar (default with --tar: standard input)')
    .helpOption('-h, --help', 'display this help and exit')
    .version(`${PROG} (erofs-ts) ${packageVersion()}`, '-V, --version', 'print the version number and exit')
    .option('-b <size>', 'set block size to <size> (512, 1024, 2048 or 4096; default 4096)')
    .option('-d <level>', 'set output verbosity; 0=quiet, 9=verbose (default=2)')
    .option('-x <n>', 'set xattr tolerance to <n> (< 0, disable xattrs; default 2)')
    .option('-z <algorithms>', 'compress with ALG[,level=N][,dictsize=N][:ALG2...] (lz4, lz4hc, lzma, deflate, zstd)')
    .option('-C <bytes>', 'maximum physical cluster size in bytes (a multiple of the block size)')
    .option('--max-extent-bytes <bytes>', 'maximum decompressed extent size in bytes')
    .option('--compress-hints <file>', 'per-file pcluster size and algorithm: lines of "SIZE [ALG#] REGEX"')
    .option('--workers <n>', 'compression threads (default: the number of CPUs)')
    .option('-E <options>', 'extended options, comma-separated, ^ negates (see README)', collect, [])
    .option('-L <label>', 'set the volume label (maximum 15 bytes)')
    .option('-T <seconds>', 'specify a fixed UNIX timestamp as build time')
    .option('--all-time', 'the timestamp is also applied to all files (default)')
    .option('--mkfs-time', 'the timestamp is applied as build time only')
    .option('-U <uuid>', 'use a given filesystem UUID (or "clear", "random")')
    .option('--all-root', 'make all files owned by root')
    .option('--exclude-path <path>', 'avoid including file <path> (exact path relative to SOURCE)', collect, [])
    .option('--exclude-regex <regex>', 'avoid including files that match <regex>', collect, [])
    .option('--force-uid <uid>', 'set all file uids to <uid>')
    .option('--force-gid <gid>', 'set all file gids to <gid>')
    .option('--uid-offset <n>', 'add offset <n> to all file uids')
    .option('--gid-offset <n>', 'add offset <n> to all file gids')
    .option('--hard-dereference', 'dereference hardlinks, add links as separate inodes')
    .option('--ignore-mtime', 'use build time instead of strict per-file modification time')
    .option('--preserve-mtime', 'keep per-file modification time strictly')
    .option('--root-xattr-isize <bytes>', 'ensure the inline xattr size of the root directory is <bytes> at least')
    .option('--tar <mode>', 'build from a tar stream: f (full), i (index only, 512-byte blocks), headerball')
    .option('--aufs', 'replace aufs special files (.wh.*) with overlayfs metadata')
    .option('--ovlfs-strip <0|1>', 'strip overlayfs metadata (whiteouts, opaque marks) from the image')
    .option('--sort <order>', 'data order for tar input: path (default) or none')
    .option('--ungzip', 'filter the tar stream through gzip (default: detect gzip, xz and zstd)')
    .option('--gzip', 'same as --ungzip')
    .option('--unxz', 'filter the tar stream through xz')
    .option('--quiet', 'quiet execution (do not write anything to standard output)')
    .option('--json', 'print a machine-readable report on standard output instead of the summary');
  for (const [flags, description] of NOT_YET) program.addOption(new Option(flags, description));
  program.exitOverride();
  program.configureOutput({ writeErr: () => {} });
  program.showSuggestionAfterError(false);

  try {
    program.parse(getoptOptionalArgs(argv), { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') throw e;
      throw new UsageError(e.message.replace(/^error: /, ''));
    }
    throw e;
  }
  const o = program.opts<Record<string, unknown>>();
  const [image, source] = program.args as [string, string | undefined];
  if (o.tar === undefined && source === undefined) throw new UsageError('missing argument: SOURCE');
  if (program.args.length > 2) throw new UsageError(`too many arguments: ${program.args.slice(2).join(' ')}`);

  for (const [flags] of NOT_YET) {
    const long = /--([\w-]+)/.exec(flags)?.[1];
    const short = /^-(\w)\b/.exec(flags)?.[1];
    const key = long ? long.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()) : short!;
    if (o[key] !== undefined) throw new UsageError(`option ${long ? `--${long}` : `-${short}`} is not supported yet`);
  }

  const int = (v: unknown, what: string): number | undefined => (v === undefined ? undefined : parseInteger(String(v), what));
  const options: BuildOptions = { image, source: source ?? '-' };
  if (o.tar !== undefined) options.tar = parseTarOptions(o);
  else {
    for (const flag of ['aufs', 'ovlfsStrip', 'sort', 'ungzip', 'gzip', 'unxz']) {
      if (o[flag] !== undefined) throw new UsageError(`--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --tar`);
    }
  }
  options.blockSize = int(o.b, 'block size');
  options.xattrTolerance = int(o.x, 'xattr tolerance');
  if (o.L !== undefined) options.label = String(o.L);
  if (o.U !== undefined) options.uuid = String(o.U);
  for (const e of o.E as string[]) applyExtendedOptions(options, e);
  options.timestamp = int(o.T, 'timestamp');
  if (o.mkfsTime) options.timestampScope = 'mkfs';
  if (o.allTime) options.timestampScope = 'all';
  if (o.ignoreMtime) options.ignoreMtime = true;
  if (o.preserveMtime) options.ignoreMtime = false;
  if (o.allRoot) options.allRoot = true;
  options.forceUid = int(o.forceUid, '--force-uid');
  options.forceGid = int(o.forceGid, '--force-gid');
  options.uidOffset = int(o.uidOffset, '--uid-offset');
  options.gidOffset = int(o.gidOffset, '--gid-offset');
  if (o.hardDereference) options.hardDereference = true;
  options.excludePaths = o.excludePath as string[];
  options.excludeRegexes = o.excludeRegex as string[];
  options.rootXattrIsize = int(o.rootXattrIsize, '--root-xattr-isize');
  if (o.z !== undefined) {
    try {
      options.compression = parseCompressionOption(String(o.z));
    } catch (e) {
      if (e instanceof CompressionOptionError) throw new UsageError(e.message);
      throw e;
    }
  }
  options.pclusterSize = int(o.C, 'physical cluster size');
  options.maxExtentBytes = int(o.maxExtentBytes, '--max-extent-bytes');
  options.workers = int(o.workers, '--workers');
  if (o.compressHints !== undefined) options.compressHints = readCompressHints(String(o.compressHints));

  const sde = env.SOURCE_DATE_EPOCH;
  if (sde !== undefined && sde !== '') {
    if (!/^\d+$/.test(sde)) throw new UsageError(`environment variable $SOURCE_DATE_EPOCH ${sde} is invalid`);
    options.sourceDateEpoch = Number(sde);
  }

  const verbosity = int(o.d, 'verbosity level') ?? 2;
  if (verbosity < 0 || verbosity > 9) throw new UsageError(`invalid verbosity level ${verbosity} (0-9)`);
  return { options, verbosity, quiet: Boolean(o.quiet), json: Boolean(o.json) };
}

/** --json: what was built, how, and what it cost. */
function jsonReport(r: BuildResult, o: BuildOptions) {
  const z = r.compression;
  return {
    image: r.imagePath,
    uuid: r.uuid,
    blockSize: r.blockSize,
    blocks: r.blocks,
    metadataBlocks: r.metadataBlocks,
    imageBytes: r.imageBytes,
    inodes: r.inodes,
    inodesByType: r.inodesByType,
    sourceBytes: r.sourceBytes,
    compression: z && {
      algorithms: (o.compression ?? []).map((c) => c.name),
      threads: z.threads,
      compressedFiles: z.compressedFiles,
      inputBytes: z.inputBytes,
      storedBytes: z.storedBytes,
      ratio: z.storedBytes > 0 ? z.inputBytes / z.storedBytes : null,
      tailPackedFiles: z.inlinePclusters,
    },
    timingsMs: r.timings,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}

const LEVELS: Record<LogLevel, number> = { error: 0, warn: 2, info: 3, debug: 7 };

// For bin/mkfs.erofs.js, which sets V8 flags around its worker threads' start.
export { setWorkerStartHook } from '../mkfs/worker-script.js';

let ranPaths: string[] = [];

/**
 * The code paths the last main() took, for the CLI's code cache (bin/load-bundle.js): the
 * source kind and the algorithms, which between them pick nearly all the code a build runs.
 */
export function codePaths(): string[] {
  return ranPaths;
}

function codePathsOf(o: BuildOptions): string[] {
  const source = o.tar ? `tar-${o.tar.mode}` : 'dir';
  return [source, ...(o.tar?.mode === 'full' || !o.tar ? (o.compression ?? []).map((c) => c.name) : [])];
}

export async function main(argv: readonly string[]): Promise<number> {
  buildOnWithoutOutput();
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv, process.env);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version print through commander's stdout writer.
      return e.exitCode;
    }
    process.stderr.write(`${PROG}: ${(e as Error).message}\nTry '${PROG} --help' for more information.\n`);
    return 1;
  }
  const { options, verbosity, quiet, json } = parsed;
  ranPaths = codePathsOf(options);
  tuneMalloc();
  const bar = !quiet && process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
  if (bar) options.onProgress = (p) => bar.update(p);
  options.log = (level, message) => {
    if (LEVELS[level] > verbosity || (quiet && level !== 'error')) return;
    process.stderr.write(`${PROG}: ${level === 'warn' ? 'warning: ' : ''}${message}\n`);
  };

  const cleanupAndExit = (signal: NodeJS.Signals, code: number) => () => {
    removeActiveTempFiles();
    process.stderr.write(`${PROG}: interrupted by ${signal}\n`);
    process.exit(code);
  };
  // Status 128 + the signal's number, as a shell reports a process the signal ended.
  process.once('SIGINT', cleanupAndExit('SIGINT', 130));
  process.once('SIGTERM', cleanupAndExit('SIGTERM', 143));
  // The terminal went away (a closed ssh session): the build ends as it would, but tidily.
  process.once('SIGHUP', cleanupAndExit('SIGHUP', 129));
  // A build that stops without an outcome (a bug: nothing left to wait for, and no result)
  // would end the process with status 0 and no image; 'beforeExit' comes only then, never
  // on process.exit() or a signal.
  const stalled = (): void => {
    removeActiveTempFiles();
    process.stderr.write(`${PROG}: internal error: the build stopped before it finished\n`);
    process.exitCode = 70;
  };
  process.once('beforeExit', stalled);

  try {
    if (!quiet && !json && verbosity >= LEVELS.warn) process.stdout.write(`${PROG} (erofs-ts) ${packageVersion()}\n`);
    const r = await buildImage(options);
    bar?.clear();
    if (json) {
      process.stdout.write(`${JSON.stringify(jsonReport(r, options), null, 2)}\n`);
    } else if (!quiet && verbosity >= LEVELS.warn) {
      process.stdout.write(
        [
          'Build completed.',
          '------',
          `Filesystem UUID: ${r.uuid}`,
          `Filesystem total blocks: ${r.blocks} (of ${r.blockSize}-byte blocks)`,
          `Filesystem total inodes: ${r.inodes}`,
          `Filesystem total metadata blocks: ${r.metadataBlocks}`,
          `Image size: ${r.imageBytes} bytes`,
          '',
        ].join('\n'),
      );
    }
    return 0;
  } catch (e) {
    bar?.clear();
    if (e instanceof BuildError || e instanceof UsageError) {
      process.stderr.write(`${PROG}: ${e.message}\n`);
      return 1;
    }
    removeActiveTempFiles();
    process.stderr.write(`${PROG}: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 70;
  } finally {
    process.off('beforeExit', stalled);
  }
}
