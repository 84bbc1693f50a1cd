/**
 * Image fixtures for the reader tests: crafted images covering every layout and algorithm,
 * and images built by Debian's mkfs.erofs 1.5 from temp trees.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { S_IFLNK, S_IFREG } from '../../../src/format/constants.js';
import type { Nid } from '../../../src/format/types.js';
import { Crafter, type XattrSpec, sampleData as sample } from './craft.js';

export interface CraftedFile {
  name: string;
  data: Buffer;
  /** What the reader must produce for listXattrs (name -> value). */
  xattrs?: Record<string, string>;
  /** Extent kinds the file is expected to contain. */
  expectKinds?: string[];
  symlink?: boolean;
}

export interface CraftedImage {
  image: Buffer;
  files: CraftedFile[];
}

/**
 * One image with a file for each feature: every algorithm, HEAD2, big pclusters, tail
 * packing (compressed and raw), fragments (tail and whole file) in a compressed packed
 * inode, a partial-reference pcluster, INTERLACED raw pclusters, chunk maps and chunk
 * indexes with holes, long xattr prefixes (in the packed inode) and shared xattrs.
 */
export function craftAllFeatures(opts: { small?: boolean } = {}): CraftedImage {
  const c = new Crafter();
  // Small images keep the same structure with less data (for fuzzing).
  const k = opts.small ? 0.2 : 1;
  const sampleData = (n: number, seed: number, frac?: number): Buffer => sample(Math.max(1, Math.round(n * k)), seed, frac);
  const files: CraftedFile[] = [];
  const entries: { name: string; nid: Nid; mode: number }[] = [];
  const add = (f: CraftedFile, nid: Nid, mode = S_IFREG | 0o644): void => {
    files.push(f);
    entries.push({ name: f.name, nid, mode });
  };

  for (const [i, alg] of (['lz4', 'lzma', 'deflate', 'zstd'] as const).entries()) {
    // Mostly text, with incompressible stretches that LZ4 leaves raw.
    const data = sampleData(70_000 + i * 3001, 11 + i);
    add({ name: `${alg}.bin`, data, expectKinds: alg === 'lz4' ? ['compressed', 'raw'] : ['compressed'] }, c.addCompressed(data, { alg }).nid);
  }
  {
    const data = sampleData(90_000, 21);
    add({ name: 'head2.bin', data, expectKinds: ['compressed'] }, c.addCompressed(data, { alg: ['lz4', 'deflate'] }).nid);
  }
  {
    const data = sampleData(150_000, 22, 0.05);
    add({ name: 'big-pcluster.bin', data, expectKinds: ['compressed'] }, c.addCompressed(data, { alg: 'zstd', pclusterBlocks: 4 }).nid);
  }
  {
    const data = sampleData(30_000 + 777, 23, 0);
    add({ name: 'ztail-deflate.bin', data, expectKinds: ['compressed'] }, c.addCompressed(data, { alg: 'deflate', ztail: true }).nid);
  }
  {
    const data = sampleData(3 * 4096 + 1000, 24, 1);
    add({ name: 'ztail-raw.bin', data, expectKinds: ['raw'] }, c.addCompressed(data, { alg: 'lz4', ztail: true, forceRaw: true }).nid);
  }
  {
    const data = sampleData(40_000, 25, 0.5);
    add({ name: 'interlaced.bin', data, expectKinds: ['raw'] }, c.addCompressed(data, { alg: 'lz4', interlaced: true }).nid);
  }
  {
    const data = sampleData(50_000, 26, 0);
    add({ name: 'fragment-tail.bin', data, expectKinds: ['compressed', 'fragment'] }, c.addCompressed(data, { alg: 'lzma', fragmentTail: 3000 }).nid);
  }
  {
    const data = Buffer.from('a small file kept whole in the packed inode\n'.repeat(20));
    add({ name: 'fragment-whole.txt', data, expectKinds: ['fragment'] }, c.addWholeFragmentFile(data));
  }
  {
    // Partial reference: a file made of the first bytes of another file's first pcluster.
    const src = sampleData(60_000, 27, 0);
    const { plan } = c.addCompressed(src, { alg: 'deflate' });
    const first = plan[0]!;
    const len = Math.min(first.length - 1000, 5000);
    const nid = c.addCompressedFile(len, [{ ...first, length: len, partial: true }], { alg: 'deflate' });
    add({ name: 'partial-ref.bin', data: src.subarray(0, len), expectKinds: ['compressed'] }, nid);
  }
  {
    // The same with LZMA, whose decoder must stop early without an exact size.
    const src = sampleData(60_000, 29, 0);
    const { plan } = c.addCompressed(src, { alg: 'lzma' });
    const first = plan[0]!;
    const len = Math.min(first.length - 1000, 5000);
    const nid = c.addCompressedFile(len, [{ ...first, length: len, partial: true }], { alg: 'lzma' });
    add({ name: 'partial-ref-lzma.bin', data: src.subarray(0, len), expectKinds: ['compressed'] }, nid);
  }
  {
    const data = sample(10 * 4096 + 123, 28);
    add({ name: 'chunk-map.bin', data, expectKinds: ['plain', 'hole'] }, c.addChunkedFile(data, 13, { holes: [1, 4] }));
    data.fill(0, 8192, 16384);
    data.fill(0, 32768, 40960);
  }
  {
    const data = sample(9 * 4096 + 5, 29);
    add({ name: 'chunk-index.bin', data, expectKinds: ['plain', 'hole'] }, c.addChunkedFile(data, 12, { indexes: true, holes: [0, 8] }));
    data.fill(0, 0, 4096);
    data.fill(0, 8 * 4096, 9 * 4096);
  }
  {
    // Long prefixes (table in the packed inode) and shared xattrs.
    c.prefixes = [
      { base: 6, infix: 'selinux' },
      { base: 1, infix: 'org.example.' },
    ];
    c.prefixesInPacked = true;
    const shared: XattrSpec = { index: 1, suffix: 'shared', value: 'same everywhere' };
    const id = c.addSharedXattr(shared);
    const xattrs: XattrSpec[] = [
      { index: 0x80, suffix: '', value: 'system_u:object_r:etc_t:s0' },
      { index: 0x81, suffix: 'color', value: 'blue' },
      { index: 1, suffix: 'plain', value: 'value' },
      { index: 4, suffix: 'trusted-one', value: '\u0001\u0002' },
    ];
    const data = Buffer.from('xattr holder\n');
    add(
      {
        name: 'xattrs.txt',
        data,
        xattrs: {
          'user.shared': 'same everywhere',
          'security.selinux': 'system_u:object_r:etc_t:s0',
          'user.org.example.color': 'blue',
          'user.plain': 'value',
          'trusted.trusted-one': '\u0001\u0002',
        },
      },
      c.addFlatFile(data, { xattrs, shared: [id] }),
    );
  }
  {
    const target = Buffer.from('deflate.bin');
    add({ name: 'link', data: target, symlink: true }, c.addFlatFile(target, {}, S_IFLNK | 0o777), S_IFLNK | 0o777);
  }
  c.finishPacked({ alg: 'lz4' });
  const root = c.reserveDir();
  c.writeDir(root, root, entries);
  return { image: c.build(root), files };
}

/** Writes `image` to a fresh temp file; returns its path and a cleanup. */
export function tempImage(image: Uint8Array, name = 'crafted.erofs'): { file: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'erofs-reader-'));
  const file = path.join(dir, name);
  writeFileSync(file, image);
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Builds an image with Debian's /usr/bin/mkfs.erofs. */
export function debianMkfs(image: string, source: string, args: string[] = []): void {
  execFileSync('/usr/bin/mkfs.erofs', ['--quiet', ...args, image, source], { stdio: 'pipe' });
}

export const HAVE_DEBIAN_MKFS = (() => {
  try {
    execFileSync('/usr/bin/mkfs.erofs', ['--help'], { stdio: 'pipe' });
    return true;
  } catch (e) {
    return (e as { status?: number }).status !== undefined;
  }
})();
