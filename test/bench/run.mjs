#!/usr/bin/env node
// npm run bench [-- TREE]: builds the same tree with this tool and with the reference
// mkfs.erofs (MKFS_EROFS_REF, or mkfs.erofs on PATH) for each algorithm, as a tar, against
// mksquashfs (MKSQUASHFS, or on PATH), and synthetic trees of 10k to 1M files (BENCH_SCALE=0
// skips those); prints wall time, image size and peak RSS with the ratios ours / other.
// Medians of BENCH_RUNS runs, each tool's runs taking turns with the other's.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ours = path.resolve(here, '../../bin/mkfs.erofs.js');
const runs = Number(process.env.BENCH_RUNS ?? 3);
const timeBin = ['/usr/bin/time'].find((p) => existsSync(p));

function pickTree() {
  const given = process.argv[2] ?? process.env.BENCH_TREE;
  if (given) return given;
  const cached = path.resolve(here, '../../.ci-cache/rootfs');
  if (existsSync(`${cached}.complete`)) return cached;
  console.error('no tree given (npm run bench -- DIR); using /usr/share');
  return '/usr/share';
}

function which(cmd) {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** One build: wall and CPU seconds, peak RSS in MiB (needs GNU time), image bytes; null if it failed. */
function measure(argv, image) {
  rmSync(image, { force: true });
  // The last build's image is still being written back: each build starts from a clean
  // page cache, untimed, or it pays for the one before.
  spawnSync('sync');
  const start = process.hrtime.bigint();
  const cmd = timeBin ? [timeBin, '-f', '%M %U %S', ...argv] : argv;
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], env: childEnv });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) return null;
  const [rssKiB, user, sys] = timeBin ? r.stderr.trim().split('\n').pop().split(' ').map(Number) : [NaN, NaN, NaN];
  return { wall, cpu: user + sys, rss: rssKiB / 1024, size: statSync(image).size };
}

// NODE_EXTRA_CA_CERTS makes Node parse a CA bundle before any script runs (50 ms on a
// Debian bundle), which no image build needs: both tools run without it.
const childEnv = { ...process.env };
delete childEnv.NODE_EXTRA_CA_CERTS;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const summary = (results) =>
  results && {
    wall: median(results.map((r) => r.wall)),
    cpu: median(results.map((r) => r.cpu)),
    rss: median(results.map((r) => r.rss)),
    size: results[0].size,
  };

/**
 * Medians of `runs` builds with each tool, their runs taking turns (ours, other, ours, ...):
 * a virtual machine's speed drifts over minutes, and runs in a row would each see a
 * different part of it. `other` may be null; a tool that fails once gets null.
 */
function bench(ourArgv, ourImage, otherArgv = null, otherImage = null) {
  const tools = [
    { argv: ourArgv, image: ourImage, results: [] },
    { argv: otherArgv, image: otherImage, results: otherArgv ? [] : null },
  ];
  for (let i = 0; i < runs; i++) {
    for (const t of tools) {
      if (!t.results) continue;
      const m = measure(t.argv, t.image);
      if (m) t.results.push(m);
      else t.results = null;
    }
  }
  return tools.map((t) => summary(t.results));
}

const tree = pickTree();
const ref = process.env.MKFS_EROFS_REF ?? which('mkfs.erofs');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'erofs-bench-'));
const cases = [
  ['none', []],
  ['lz4', ['-zlz4']],
  // The same number of compressing threads each: ours uses one for lz4 by default, the
  // reference as many as cores.
  ['lz4 --workers=1', ['-zlz4', '--workers=1']],
  ['lz4 --workers=2', ['-zlz4', '--workers=2']],
  ['lz4hc', ['-zlz4hc']],
  ['lz4hc,12 -C65536 -Eztailpacking', ['-zlz4hc,12', '-C65536', '-Eztailpacking']],
  ['lzma', ['-zlzma']],
  ['deflate', ['-zdeflate']],
  ['zstd', ['-zzstd']],
];

// Tar input: the same tree as a PAX tar, built from the file and (as containerd does) from a pipe.
const tarFile = `${scratch}/tree.tar`;
execFileSync('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '--acls', '--numeric-owner', '-C', tree, '-cf', tarFile, '.']);
const fromPipe = (argv) => ['sh', '-c', 'cat "$0" | exec "$@"', tarFile, ...argv];
const tarCases = [
  ['--tar=f', ['--tar=f'], false],
  ['--tar=f, stdin pipe', ['--tar=f'], true],
  ['--tar=i', ['--tar=i'], false],
  ['--tar=f -zlz4hc', ['--tar=f', '-zlz4hc'], false],
];

function row(name, a, b) {
  const mib = (r) => (r ? fmt(r.size / 2 ** 20, 1) : 'n/a');
  console.log(
    `| ${name} | ${fmt(a?.wall)} | ${fmt(b?.wall)} | ${ratio(a?.wall, b?.wall)} | ${fmt(a?.cpu)} | ${fmt(b?.cpu)} | ${mib(a)} | ${mib(b)} | ${a && b ? (a.size / b.size).toFixed(4) : 'n/a'} | ${fmt(a?.rss, 0)} | ${fmt(b?.rss, 0)} |`,
  );
}

const fmt = (v, d = 2) => (v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(d));
const ratio = (a, b) => (a && b ? fmt(a / b) : 'n/a');
console.log(`tree: ${tree}; reference: ${ref ?? 'none found'}; ${runs} runs each; ${os.cpus().length} cores; node ${process.version}`);
const HEAD = '| ours s | ref s | time ratio | ours CPU s | ref CPU s | ours MiB | ref MiB | size ratio | ours RSS MiB | ref RSS MiB |';
const RULE = '|---|---|---|---|---|---|---|---|---|---|---|';
console.log(`| options ${HEAD}`);
console.log(RULE);
try {
  for (const [name, args] of cases) {
    const common = ['-T0', '-U', '11111111-2222-3333-4444-555555555555', ...args];
    const [a, b] = bench(
      [process.execPath, ours, '--quiet', ...common, `${scratch}/ours.erofs`, tree],
      `${scratch}/ours.erofs`,
      ref ? [ref, ...common, `${scratch}/ref.erofs`, tree] : null,
      `${scratch}/ref.erofs`,
    );
    row(name, a, b);
  }
  for (const [name, args, pipe] of tarCases) {
    const common = ['-T0', '-U', '11111111-2222-3333-4444-555555555555', ...args];
    const wrap = (argv) => (pipe ? fromPipe(argv) : [...argv, tarFile]);
    // Releases before 1.6 have no --tar: their row shows n/a.
    const [a, b] = bench(
      wrap([process.execPath, ours, '--quiet', ...common, `${scratch}/ours.erofs`]),
      `${scratch}/ours.erofs`,
      ref ? wrap([ref, '--quiet', ...common, `${scratch}/ref.erofs`]) : null,
      `${scratch}/ref.erofs`,
    );
    row(name, a, b);
  }
  squashfsTable();
  if (process.env.BENCH_SCALE !== '0') growthTable();
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

/** The same tree with mksquashfs (Debian's squashfs-tools) and comparable compression, if installed. */
function squashfsTable() {
  const sq = process.env.MKSQUASHFS ?? which('mksquashfs');
  if (!sq) {
    console.log('\nmksquashfs not found (apt-get install squashfs-tools): no squashfs comparison');
    return;
  }
  const threads = String(os.availableParallelism());
  const pairs = [
    ['none', [], ['-noI', '-noId', '-noD', '-noF', '-noX']],
    ['lz4', ['-zlz4'], ['-comp', 'lz4']],
    ['lz4hc', ['-zlz4hc'], ['-comp', 'lz4', '-Xhc']],
    ['lzma / xz', ['-zlzma'], ['-comp', 'xz']],
    ['deflate / gzip', ['-zdeflate'], ['-comp', 'gzip']],
    ['zstd', ['-zzstd'], ['-comp', 'zstd']],
  ];
  console.log(`\nagainst ${sq} (${threads} processors, 128 KiB blocks by default):`);
  console.log(`| compression ${HEAD.replaceAll('ref', 'squashfs')}`);
  console.log(RULE);
  for (const [name, ourArgs, sqArgs] of pairs) {
    const [a, b] = bench(
      [process.execPath, ours, '--quiet', '-T0', ...ourArgs, `${scratch}/ours.erofs`, tree],
      `${scratch}/ours.erofs`,
      [sq, tree, `${scratch}/out.sqfs`, '-noappend', '-quiet', '-no-progress', '-processors', threads, '-mkfs-time', '0', '-all-time', '0', ...sqArgs],
      `${scratch}/out.sqfs`,
    );
    row(name, a, b);
  }
}

/** Synthetic trees of 10k, 100k and 1M small files (1,000 per directory): how time and memory grow. */
function growthTable() {
  console.log('\ngrowth with the number of files (uncompressed, 1,000 files of a few bytes per directory):');
  console.log(`| files ${HEAD}`);
  console.log(RULE);
  for (const n of [10_000, 100_000, 1_000_000]) {
    const dir = `${scratch}/files-${n}`;
    const script = `const fs=require('fs');for(let d=0;d<${n / 1000};d++){const p='${dir}/d'+d;fs.mkdirSync(p,{recursive:true});for(let f=0;f<1000;f++)fs.writeFileSync(p+'/file-'+f,String(f));}`;
    execFileSync(process.execPath, ['-e', script]);
    const [a, b] = bench(
      [process.execPath, ours, '--quiet', '-T0', `${scratch}/ours.erofs`, dir],
      `${scratch}/ours.erofs`,
      ref ? [ref, '-T0', `${scratch}/ref.erofs`, dir] : null,
      `${scratch}/ref.erofs`,
    );
    row(n.toLocaleString('en-US'), a, b);
    rmSync(dir, { recursive: true, force: true });
  }
}
