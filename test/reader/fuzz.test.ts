/**
 * Hostile images: valid images are mutated (bit flips, random field values, truncation;
 * mostly in metadata, with the superblock checksum usually repaired so that mutations reach
 * past it) and the whole reader is run over each result: open, fsck (every inode, xattr,
 * directory and extent decoded), statistics, and direct API calls. Every outcome must be
 * success or an ErofsError; no other exception, no hang, bounded memory. Deterministic
 * (seeded PRNG), so a failure names the seed and iteration to replay.
 */
import { isRoot, skipUnless } from '../helpers/require.js';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EROFS_FEATURE_COMPAT_SB_CHKSUM, EROFS_SUPER_OFFSET } from '../../src/format/constants.js';
import { computeSuperblockChecksum, superblockChecksumLength } from '../../src/format/superblock.js';
import { ErofsError, type ErofsImage, openImageBuffer } from '../../src/reader/index.js';
import { fsckImage } from '../../src/reader/fsck.js';
import { collectStats } from '../../src/reader/stats.js';
import { walkTree } from '../../src/reader/walk.js';
import { dir, file, hardlink, makeTree, symlink, type Tree, fifo } from '../helpers/tree.js';
import { HAVE_DEBIAN_MKFS, craftAllFeatures, debianMkfs } from './helpers/fixtures.js';

/** mulberry32: tiny, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Range = readonly [number, number];

/** Byte ranges worth mutating: superblock, inodes with their xattrs/indexes/inline data, directory blocks, pcluster starts. */
function hotRanges(image: Buffer): Range[] {
  const ranges: Range[] = [[EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + 256]];
  const img = openImageBuffer(image);
  const nids = new Set<number>();
  walkTree(img, {
    onEntry(e) {
      nids.add(e.nid);
    },
    onError() {},
  });
  if (img.packedNid !== null) nids.add(img.packedNid);
  for (const n of nids) {
    const i = img.inode(n);
    ranges.push([i.pos, i.tailPos + img.indexBytes(n) + 64]);
    let k = 0;
    for (const e of img.extents(n)) {
      if (k++ > 8) break;
      if (e.kind === 'plain' && i.kind === 'dir') ranges.push([e.physical, e.physical + Math.min(e.physicalLength, 4096)]);
      if (e.kind === 'compressed' || e.kind === 'raw') ranges.push([e.physical, e.physical + Math.min(e.physicalLength, 64)]);
    }
  }
  img.close();
  return ranges;
}

const INTERESTING = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7ff, 0x800, 0xfff, 0x1000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

interface Mutation {
  bytes: Buffer;
  what: string;
}

/** One to three stacked mutations. */
function mutate(orig: Buffer, hot: Range[], rnd: () => number): Mutation {
  let m = mutateOnce(orig, hot, rnd);
  const extra = rnd() < 0.25 ? 1 + Math.floor(rnd() * 2) : 0;
  for (let i = 0; i < extra; i++) {
    const next = mutateOnce(m.bytes, hot, rnd);
    m = { bytes: next.bytes, what: `${m.what}; ${next.what}` };
  }
  return m;
}

function mutateOnce(orig: Buffer, hot: Range[], rnd: () => number): Mutation {
  const pickHot = (): number => {
    if (rnd() < 0.15) return Math.floor(rnd() * orig.length);
    const [a, b] = hot[Math.floor(rnd() * hot.length)]!;
    return Math.max(0, Math.min(orig.length - 1, a + Math.floor(rnd() * Math.max(1, b - a))));
  };
  const r = rnd();
  let bytes: Buffer;
  let what: string;
  if (r < 0.45) {
    bytes = Buffer.from(orig);
    const n = 1 + Math.floor(rnd() * 4);
    const offs: number[] = [];
    for (let i = 0; i < n; i++) {
      const off = pickHot();
      bytes[off]! ^= 1 << Math.floor(rnd() * 8);
      offs.push(off);
    }
    what = `bit flips at ${offs.join(',')}`;
  } else if (r < 0.9) {
    bytes = Buffer.from(orig);
    const width = [1, 2, 4, 8][Math.floor(rnd() * 4)]!;
    const off = Math.max(0, Math.min(orig.length - width, pickHot() & ~(width - 1)));
    const v = rnd() < 0.6 ? INTERESTING[Math.floor(rnd() * INTERESTING.length)]! : Math.floor(rnd() * 2 ** 32);
    if (width === 1) bytes.writeUInt8(v & 0xff, off);
    else if (width === 2) bytes.writeUInt16LE(v & 0xffff, off);
    else if (width === 4) bytes.writeUInt32LE(v >>> 0, off);
    else bytes.writeBigUInt64LE(BigInt(v >>> 0) * (rnd() < 0.3 ? 0x100000000n : 1n), off);
    what = `${width}-byte field at ${off} = 0x${v.toString(16)}`;
  } else {
    const len = rnd() < 0.5 ? pickHot() : Math.floor(rnd() * orig.length);
    bytes = Buffer.from(orig.subarray(0, len));
    what = `truncated to ${len}`;
  }
  // Usually repair the superblock checksum so that the mutation is looked at further.
  if (rnd() < 0.85 && bytes.length >= EROFS_SUPER_OFFSET + 128) {
    const blkszbits = bytes[EROFS_SUPER_OFFSET + 12]!;
    const compat = bytes.readUInt32LE(EROFS_SUPER_OFFSET + 8);
    if (blkszbits >= 9 && blkszbits <= 12 && compat & EROFS_FEATURE_COMPAT_SB_CHKSUM) {
      const len = superblockChecksumLength(1 << blkszbits);
      if (bytes.length >= EROFS_SUPER_OFFSET + len) {
        const sum = computeSuperblockChecksum(bytes.subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + len));
        bytes.writeUInt32LE(sum, EROFS_SUPER_OFFSET + 4);
        what += ' (checksum repaired)';
      }
    }
  }
  return { bytes, what };
}

/** Anything but an ErofsError is a reader bug. */
function expectImageError(e: unknown): void {
  if (!(e instanceof ErofsError)) throw e;
}

function guarded(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    expectImageError(e);
  }
}

/** Runs every reader entry point over an image; returns how far it got. */
function exercise(bytes: Buffer): 'unopenable' | 'clean' | 'corrupt' {
  let img: ErofsImage;
  try {
    img = openImageBuffer(bytes);
  } catch (e) {
    expectImageError(e);
    return 'unopenable';
  }
  let problems = 0;
  guarded(() => {
    problems += fsckImage(img).problems.length;
  });
  guarded(() => {
    problems += collectStats(img).errors.length;
  });
  // Direct API use on whatever the walk reaches.
  const nids: number[] = [];
  guarded(() =>
    walkTree(img, {
      onEntry(e) {
        if (nids.length < 500) nids.push(e.nid);
      },
      onError() {},
    }),
  );
  for (const n of nids) {
    guarded(() => {
      const st = img.stat(n);
      if (st.kind === 'symlink') img.readlink(n);
      if (st.kind === 'dir') {
        for (const e of img.readdir(n).slice(0, 50)) img.lookupIn(n, e.name);
      }
      img.listXattrs(n);
      img.getXattr(n, 'user.shared');
      img.read(n, Math.floor(st.size / 3), 70_000);
    });
  }
  guarded(() => {
    img.lookup('/sub/nested/file');
  });
  img.close();
  return problems > 0 ? 'corrupt' : 'clean';
}

interface Corpus {
  name: string;
  image: Buffer;
  hot: Range[];
}

const corpus: Corpus[] = [];
let tree: Tree | undefined;
let work: string | undefined;

beforeAll(async () => {
  const add = (name: string, image: Buffer): void => {
    corpus.push({ name, image, hot: hotRanges(image) });
  };
  add('crafted (all algorithms, fragments, partial refs, chunks, long prefixes)', craftAllFeatures({ small: true }).image);
  if (!skipUnless(HAVE_DEBIAN_MKFS && isRoot, 'root and Debian mkfs.erofs for the fuzz corpus')) {
    tree = await makeTree(
      dir(
        {
          'a.txt': file({ size: 20_000, pattern: 'text', seed: 'a' }, { xattrs: { 'user.k': 'v', 'trusted.t': 'x' } }),
          'b.txt': file({ size: 9_000, pattern: 'text', seed: 'b' }, { xattrs: { 'user.k': 'v' } }),
          'c.txt': file({ size: 5_000, pattern: 'random', seed: 'c' }, { xattrs: { 'user.k': 'v' } }),
          tiny: file('tiny\n'),
          link: symlink('a.txt'),
          hard: hardlink('a.txt'),
          pipe: fifo(),
          sub: dir({ nested: dir({ file: file({ size: 13_000, pattern: 'text', seed: 'n' }) }), more: file({ size: 30_000, pattern: 'text', seed: 'm' }) }),
        },
        { mtime: { sec: 1_700_000_000 } },
      ),
    );
    work = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-fuzz-'));
    const variants: Record<string, string[]> = {
      'mkfs 1.5 plain': [],
      'mkfs 1.5 lz4hc compact': ['-zlz4hc'],
      'mkfs 1.5 lz4hc big pcluster + ztailpacking': ['-zlz4hc', '-C16384', '-Eztailpacking'],
      'mkfs 1.5 lz4 legacy + ztailpacking': ['-zlz4', '-Elegacy-compress', '-Eztailpacking'],
      'mkfs 1.5 chunked': ['--chunksize=4096'],
    };
    for (const [name, args] of Object.entries(variants)) {
      const p = nodePath.join(work, `${Object.keys(variants).indexOf(name)}.erofs`);
      debianMkfs(p, tree.root, ['-T1700000000', '-U00112233-4455-6677-8899-aabbccddeeff', ...args]);
      add(name, readFileSync(p));
    }
  }
}, 120_000);

afterAll(async () => {
  await tree?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Per corpus image; FUZZ_ITERATIONS=n runs a longer campaign locally. */
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 150);
const SEED_BASE = Number(process.env.FUZZ_SEED ?? 0x5eed);
const MAX_ITERATION_MS = 3000;

describe('mutated images', () => {
  it('unmutated corpus images are clean (so the mutations are what the fuzz test measures)', () => {
    for (const c of corpus) expect(exercise(c.image), c.name).toBe('clean');
  });

  it('never crash, hang or blow up memory, whatever the mutation', () => {
    const failures: string[] = [];
    const outcomes: Record<string, number> = { unopenable: 0, clean: 0, corrupt: 0 };
    let slowest = 0;
    let peakArrayBuffers = 0;
    corpus.forEach((c, ci) => {
      const seed = SEED_BASE + ci;
      const rnd = prng(seed);
      for (let i = 0; i < ITERATIONS; i++) {
        const m = mutate(c.image, c.hot, rnd);
        const t0 = performance.now();
        try {
          outcomes[exercise(m.bytes)]!++;
        } catch (e) {
          failures.push(`${c.name}, seed ${seed}, iteration ${i} (${m.what}): ${(e as Error).stack ?? String(e)}`);
        }
        const ms = performance.now() - t0;
        slowest = Math.max(slowest, ms);
        if (ms > MAX_ITERATION_MS) failures.push(`${c.name}, seed ${seed}, iteration ${i} (${m.what}) took ${ms.toFixed(0)} ms`);
        peakArrayBuffers = Math.max(peakArrayBuffers, process.memoryUsage().arrayBuffers);
      }
    });
    if (process.env.FUZZ_VERBOSE) console.log(corpus.map((c) => c.name), outcomes, { slowest, peakArrayBuffers });
    expect(failures.slice(0, 5)).toEqual([]);
    // The mutations must actually reach the checks, not just break the superblock.
    expect(outcomes.corrupt).toBeGreaterThan(corpus.length * ITERATIONS * 0.2);
    expect(peakArrayBuffers).toBeLessThan(768 * 1024 * 1024);
    expect(slowest).toBeLessThan(MAX_ITERATION_MS);
  }, 300_000);

  it('extraction of mutated images never writes outside the target directory', () => {
    const failures: string[] = [];
    const rnd = prng(SEED_BASE ^ 0xe7);
    const iterations = Math.max(20, Math.floor(ITERATIONS / 5));
    for (const c of corpus) {
      for (let i = 0; i < iterations; i++) {
        const m = mutate(c.image, c.hot, rnd);
        const base = mkdtempSync(nodePath.join(os.tmpdir(), 'erofs-fuzz-x-'));
        try {
          const img = openImageBuffer(m.bytes);
          try {
            fsckImage(img, { extract: { dir: nodePath.join(base, 'out'), overwrite: true } });
          } finally {
            img.close();
          }
        } catch (e) {
          if (!(e instanceof ErofsError)) failures.push(`${c.name}, iteration ${i} (${m.what}): ${(e as Error).stack}`);
        }
        const left = readdirSync(base).filter((n) => n !== 'out');
        if (left.length > 0) failures.push(`${c.name}, iteration ${i} (${m.what}): wrote ${left.join(', ')} outside the target`);
        rmSync(base, { recursive: true, force: true });
      }
    }
    expect(failures.slice(0, 5)).toEqual([]);
  }, 300_000);
});
