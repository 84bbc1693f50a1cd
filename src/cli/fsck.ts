// fsck.erofs command line: check an image (decompressing every file) and
// optionally extract it.
//
// Exit status: 0 = no problems; 1 = the image is corrupt or cannot be read;
// 2 = usage error; 3 = the image is fine but extraction was incomplete.

import { exitQuietlyOnClosedStdout } from './stdio.js';
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ErofsError, UnsupportedFeatureError } from '../reader/errors.js';
import { ExtractError } from '../reader/extract.js';
import { fsckImage } from '../reader/fsck.js';
import { type ErofsImage, openImage } from '../reader/index.js';

const PROG = 'fsck.erofs';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

interface FsckCliOptions {
  extract?: string | boolean;
  force?: boolean;
  overwrite?: boolean;
  preserve?: boolean;
  preserveOwner?: boolean;
  preservePerms?: boolean;
  p?: boolean;
  d?: string;
  device?: string[];
}

class UsageError extends Error {}

function parse(argv: readonly string[]): { image: string; o: FsckCliOptions } {
  const program = new Command(PROG)
    .description('Check EROFS image IMAGE for corruption (every file is decompressed), optionally extracting it')
    .usage('[options] IMAGE')
    .argument('<IMAGE>')
    .version(`${PROG} (erofs-ts) ${packageVersion()}`, '-V, --version')
    .option('-d <level>', 'set output message level (accepted for compatibility)')
    .option('-p', 'print total compression ratio of all files')
    .option('--device <path>', 'extra device, in device-table order (repeatable; e.g. the tar of a --tar=i image)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--extract [DIR]', 'check all files (always done); --extract=DIR also extracts them to DIR')
    .option('--force', 'allow extracting to root')
    .option('--overwrite', 'overwrite files that already exist')
    .option('--preserve', 'extract with the same ownership and permissions as in the image (default for root)')
    .option('--no-preserve', 'extract as yourself and apply the umask (default for other users)')
    .option('--preserve-owner', 'extract with the same ownership as in the image')
    .option('--no-preserve-owner', 'extract as yourself')
    .option('--preserve-perms', 'extract with the same permissions as in the image')
    .option('--no-preserve-perms', "apply the user's umask to permissions");
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  // Like getopt's optional arguments, a bare --extract takes no value from the next word
  // (which is the image): only --extract=DIR names a directory.
  program.parse(
    argv.map((a) => (a === '--extract' ? '--extract=' : a)),
    { from: 'user' },
  );
  const o = program.opts<FsckCliOptions>();
  if (o.extract === '') o.extract = true;
  const image = program.args[0]!;
  const extracting = typeof o.extract === 'string';
  if (!extracting && (o.force || o.overwrite || o.preserve !== undefined || o.preserveOwner !== undefined || o.preservePerms !== undefined)) {
    throw new UsageError('extraction options need --extract=DIR');
  }
  return { image, o };
}

export async function main(argv: readonly string[]): Promise<number> {
  exitQuietlyOnClosedStdout();
  let image: string;
  let o: FsckCliOptions;
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
    if (e instanceof UnsupportedFeatureError) {
      process.stderr.write(`${PROG}: ${image}: ${e.message}\n`);
      return 1;
    }
    if (e instanceof ErofsError) {
      process.stderr.write(`${PROG}: ${image}: corrupt image: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`${PROG}: cannot open ${image}: ${(e as Error).message}\n`);
    return 1;
  }

  // A --tar=i image without its tar: say so once, not once per file.
  const sb = img.superblock;
  const flatEnd = Math.max(0, ...sb.devices.map((d) => (d.mappedBlkaddr + d.blocks) * sb.blksz));
  if ((o.device ?? []).length === 0 && sb.devices.length > 0 && img.imageSize < flatEnd) {
    process.stderr.write(`${PROG}: ${image}: file data is on ${sb.devices.length} extra device(s): give them with --device=PATH, or append them to the image\n`);
    img.close();
    return 1;
  }

  try {
    const preserveOwner = o.preserveOwner ?? o.preserve;
    const preservePerms = o.preservePerms ?? o.preserve;
    const report = fsckImage(img, {
      ...(typeof o.extract === 'string'
        ? {
            extract: {
              dir: o.extract,
              force: !!o.force,
              overwrite: !!o.overwrite,
              ...(preserveOwner !== undefined && { preserveOwner }),
              ...(preservePerms !== undefined && { preservePerms }),
            },
          }
        : {}),
      onProblem: (p) => {
        const nid = p.nid !== undefined ? ` (nid ${p.nid})` : '';
        process.stderr.write(`${PROG}: ${p.path}${nid}: ${p.message}\n`);
      },
    });
    for (const w of report.warnings) process.stderr.write(`${PROG}: warning: ${w}\n`);
    for (const w of report.extractErrors) process.stderr.write(`${PROG}: cannot extract ${w}\n`);
    const c = report.counts;
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    process.stdout.write(
      `${image}: ${total} entries (${c.file} files, ${c.dir} directories, ${c.symlink} symlinks, ` +
        `${c.chardev + c.blockdev + c.fifo + c.socket} special files) checked\n`,
    );
    if (o.p && report.logicalBytes > 0) {
      const ratio = (100 * report.storedBytes) / report.logicalBytes;
      process.stdout.write(`Compression ratio: ${ratio.toFixed(2)}%\n`);
    }
    if (report.problems.length > 0) {
      process.stdout.write(`${image}: ${report.problems.length} problem(s) found\n`);
      return 1;
    }
    process.stdout.write(`${image}: no problems found\n`);
    if (report.extractErrors.length > 0) return 3;
    return 0;
  } catch (e) {
    if (e instanceof ExtractError) {
      process.stderr.write(`${PROG}: ${e.message}\n`);
      return 3;
    }
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
