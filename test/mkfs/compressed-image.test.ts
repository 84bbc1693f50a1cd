import { readdirSync, readFileSync, truncateSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, vi } from 'vitest';
import type { AlgorithmName } from '../../src/compress/index.js';
import type { BuildOptions } from '../../src/mkfs/options.js';
import { FileCopier } from '../../src/mkfs/copier.js';
import { RangeCopier } from '../../src/mkfs/range-copier.js';
import { ZFeed } from '../../src/mkfs/zdata.js';
import { ZPool } from '../../src/mkfs/zpool.js';
import { ImageWriter, Spool } from '../../src/mkfs/writer.js';
import { openImage } from '../../src/reader/index.js';
import { build, cli, expectImageMatches, scratchDir } from '../helpers/build.js';
import { describeIfMount, itIfMount } from '../helpers/mount.js';
import { prng } from '../compress/helpers.js';
import { dir, file, hardlink, makeTree, symlink, type Tree } from '../helpers/tree.js';

/** Compressible, incompressible and all-zero data at sizes around block and pcluster edges. */
function compressionSpec() {
  const sizes = [1, 100, 4095, 4096, 4097, 8191, 8192, 12_000, 65_535, 65_536, 65_537, 200_000];
  const entries: Array<[string, ReturnType<typeof file>]> = [];
  for (const s of sizes) {
    entries.push([`text-${s}`, file({ size: s, pattern: 'text', seed: `t${s}` })]);
    entries.push([`random-${s}`, file({ size: s, pattern: 'random', seed: `r${s}` })]);
    entries.push([`zero-${s}`, file({ size: s, pattern: 'zero' })]);
  }
  const mixed = Buffer.concat([
    Buffer.alloc(70_000, 0x61),
    Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 2654435761) >>> 24)),
    Buffer.alloc(30_000),
    Buffer.from('the end of a mixed file\n'.repeat(500)),
  ]);
  return dir({
    ...Object.fromEntries(entries),
    mixed: file(mixed, { xattrs: { 'user.kind': 'mixed' } }),
    'big-text': file({ size: 3 << 20, pattern: 'text', seed: 'big' }),
    'big-random': file({ size: (2 << 20) + 5, pattern: 'random', seed: 'bigr' }),
    'big-zero': file({ size: 5 << 20, pattern: 'zero' }),
    empty: file(''),
    sub: dir({ again: hardlink('text-12000'), link: symlink('../mixed'), nested: file({ size: 50_000, pattern: 'text', seed: 'n' }) }),
  });
}

const ALGORITHMS: AlgorithmName[] = ['lz4', 'lz4hc', 'lzma', 'deflate', 'zstd'];

/**
 * Builds `source` with no workers and with two, expects the same bytes, and returns the
 * two-worker image; `threads`: how many compressed in the second build (1: too little input
 * for a worker to start).
 */
async function buildWithAndWithoutWorkers(source: string, prefix: string, opts: Partial<BuildOptions>, threads = 2): Promise<string> {
  const images: Buffer[] = [];
  for (const workers of [0, 2]) {
    const r = await build(source, `${prefix}-w${workers}.erofs`, { ...opts, workers });
    expect(r.compression?.threads).toBe(workers === 0 ? 1 : threads);
    images.push(readFileSync(`${prefix}-w${workers}.erofs`));
  }
  expect(images[1]!.equals(images[0]!)).toBe(true);
  return `${prefix}-w2.erofs`;
}

describeIfMount('compressed images', () => {
  let tree: Tree;
  const out = scratchDir();
  beforeAll(async () => {
    tree = await makeTree(compressionSpec());
  });
  afterAll(async () => {
    await tree.cleanup();
    out.cleanup();
  });

  for (const algorithm of ALGORITHMS) {
    describe(algorithm, () => {
      for (const pclusterSize of [4096, 65_536]) {
        for (const ztailpacking of [false, true]) {
          for (const legacyCompress of [false, true]) {
            const name = `${pclusterSize / 1024} KiB pclusters, ${ztailpacking ? 'tail packing' : 'no tail packing'}, ${legacyCompress ? 'full' : 'compact'} indexes`;
            itIfMount(`reads back every byte with ${name}`, async () => {
              const image = `${out.dir}/${algorithm}-${pclusterSize}-${ztailpacking}-${legacyCompress}.erofs`;
              const r = await build(tree.root, image, {
                compression: [{ name: algorithm }],
                pclusterSize,
                ztailpacking,
                legacyCompress,
              });
              // Debian's fsck.erofs 1.5 only knows LZ4.
              await expectImageMatches(image, tree.root, { fsck: algorithm === 'lz4' || algorithm === 'lz4hc' });
              expect(r.imageBytes).toBeGreaterThan(0);
            });
          }
        }
      }
    });
  }

  itIfMount('levels and dictionary sizes are honoured and still read back', async () => {
    for (const spec of [
      { name: 'lz4hc' as const, level: 12 },
      { name: 'lzma' as const, level: 109, dictSize: 1 << 20 },
      { name: 'deflate' as const, level: 9, dictSize: 1 << 14 },
      { name: 'zstd' as const, level: 19, dictSize: 1 << 17 },
    ]) {
      const image = `${out.dir}/${spec.name}-level.erofs`;
      await build(tree.root, image, { compression: [spec], pclusterSize: 16_384, ztailpacking: true });
      await expectImageMatches(image, tree.root, { fsck: spec.name === 'lz4hc' });
    }
  });

  itIfMount('--max-extent-bytes bounds extents and still reads back', async () => {
    const image = `${out.dir}/maxextent.erofs`;
    await build(tree.root, image, { compression: [{ name: 'lz4hc' }], maxExtentBytes: 8192, pclusterSize: 8192 });
    await expectImageMatches(image, tree.root);
  });

  itIfMount('a tail-packed pcluster too long to share a block with its index starts the next block, and reads back', async () => {
    // Text that compresses well, then an incompressible run: after one compressed pcluster
    // and one raw block, the last extent is raw and 4000 to 4090 bytes long, too long to
    // follow its index in the block where the inode starts.
    const noise = (n: number, seed: number): Buffer => {
      const b = Buffer.alloc(n);
      let x = seed | 1;
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
      }
      return b;
    };
    const content = (t: number): Buffer => Buffer.concat([Buffer.from('a line of text that compresses\n'.repeat(2048)), noise(8192 + t, t + 7)]);
    const tails = Array.from({ length: 10 }, (_, k) => 3700 + 10 * k);
    const edge = await makeTree(dir(Object.fromEntries(tails.map((t) => [`tail-${t}`, file(content(t))]))));
    try {
      const image = `${out.dir}/straddle.erofs`;
      await build(edge.root, image, { compression: [{ name: 'lz4' }], ztailpacking: true });
      const img = openImage(image);
      let straddling = 0;
      try {
        for (const t of tails) {
          const nid = img.lookup(`/tail-${t}`);
          const i = img.inode(nid);
          const last = img.mapExtent(nid, i.size - 1);
          if (last.inline && Math.floor(last.physical / 4096) > Math.floor(i.pos / 4096)) straddling++;
        }
      } finally {
        img.close();
      }
      expect(straddling).toBeGreaterThan(0);
      await expectImageMatches(image, edge.root, { fsck: true });
    } finally {
      await edge.cleanup();
    }
  });

  itIfMount('compression makes compressible trees smaller than plain images', async () => {
    const plain = await build(tree.root, `${out.dir}/plain.erofs`);
    const z = await build(tree.root, `${out.dir}/z.erofs`, { compression: [{ name: 'lz4hc' }] });
    expect(z.imageBytes).toBeLessThan(plain.imageBytes * 0.7);
  });
});

describeIfMount('compression with worker threads', () => {
  let tree: Tree;
  const out = scratchDir();
  beforeAll(async () => {
    tree = await makeTree(compressionSpec());
  });
  afterAll(async () => {
    await tree.cleanup();
    out.cleanup();
  });

  itIfMount('starts no worker thread for a tree with under a megabyte to compress, and gives the same image', async () => {
    const small = await makeTree(dir({ a: file({ size: 300_000, pattern: 'text', seed: 'a' }), b: file({ size: 200_000, pattern: 'text', seed: 'b' }) }));
    const compress = vi.spyOn(ZPool.prototype, 'compress');
    try {
      const image = await buildWithAndWithoutWorkers(small.root, `${out.dir}/few`, { compression: [{ name: 'lz4hc' }], timestamp: 0 }, 1);
      expect(compress).not.toHaveBeenCalled();
      await expectImageMatches(image, small.root, { expectMtime: () => 0n });
    } finally {
      compress.mockRestore();
      await small.cleanup();
    }
  });

  itIfMount('files compression cannot shrink go flat: compressed alone, in the blocks their raw pclusters took; with workers, copied from their source once, by the workers while the metadata is written', async () => {
    const sizes = [4096, 5000, 9000, 3 * 4096, 70_001, (1 << 20) + 7];
    const raw = await makeTree(dir(Object.fromEntries(sizes.map((n) => [`random-${n}`, file({ size: n, pattern: 'random', seed: `f${n}` })]))));
    const readBack = vi.spyOn(ImageWriter.prototype, 'readAt');
    const kernelCopy = vi.spyOn(ImageWriter.prototype, 'copySparseFrom');
    const copyFlat = vi.spyOn(ZPool.prototype, 'copyFlat');
    try {
      const image = await buildWithAndWithoutWorkers(raw.root, `${out.dir}/flat`, { compression: [{ name: 'lz4hc' }], timestamp: 0 });
      // The first build (no workers) kept the input of the files its first read took whole
      // in memory; the 1 MiB one came in several (see firstWindow in zdata.ts) and stayed in
      // the blocks of its raw pclusters, its tail read back from the image. The second
      // build's threads gave back no output for any of them (see ZReply.lost), only their
      // last bytes: nothing was written to be written over, no tail was read back, and the
      // workers copied them into place once compression was over, none the main thread
      // (all but the one-block file, which cannot save a block and is never compressed).
      // (Reads of 1 KiB and more are the superblock's checksum region.)
      const tails = readBack.mock.calls.map(([, length]) => length).filter((length) => length < 1024);
      expect(tails).toEqual([7]);
      expect(kernelCopy).not.toHaveBeenCalled();
      expect(copyFlat).toHaveBeenCalledTimes(1);
      expect(copyFlat.mock.calls[0]![0].map((c) => c.size).sort((a, b) => a - b)).toEqual(sizes.slice(1));
      await expectImageMatches(image, raw.root, { fsck: true, expectMtime: () => 0n });
    } finally {
      readBack.mockRestore();
      kernelCopy.mockRestore();
      copyFlat.mockRestore();
      await raw.cleanup();
    }
  });

  /** Files of a build of `${name}.erofs` in the output directory: the image, its temporary file, scratch files. */
  const leftBehind = (name: string): string[] => readdirSync(out.dir).filter((n) => n.startsWith(name) || n.startsWith(`.${name}`));

  itIfMount('a file compression lost on that shrinks before the workers copy it fails the build with its error, and leaves no image', async () => {
    // More than the 1 MiB of input a pool starts from (lz4hc).
    const raw = await makeTree(dir({ a: file({ size: 2_000_000, pattern: 'random', seed: 'sa' }), b: file({ size: 70_001, pattern: 'text', seed: 'sb' }) }));
    const real = ZPool.prototype.copyFlat;
    const copyFlat = vi.spyOn(ZPool.prototype, 'copyFlat').mockImplementation(function (this: ZPool, copies, fd, path) {
      truncateSync(`${raw.root}/a`, 1000);
      return real.call(this, copies, fd, path);
    });
    try {
      const image = `${out.dir}/shrunk.erofs`;
      await expect(build(raw.root, image, { compression: [{ name: 'lz4hc' }], workers: 2, timestamp: 0 })).rejects.toThrow(`${raw.root}/a: file shrank while being read`);
      expect(copyFlat).toHaveBeenCalledTimes(1);
      expect(leftBehind('shrunk')).toEqual([]);
    } finally {
      copyFlat.mockRestore();
      await raw.cleanup();
    }
  });

  itIfMount('a build that fails while the workers copy files flat stops them before the image goes, and leaves none', async () => {
    const raw = await makeTree(dir({ a: file({ size: 2_000_000, pattern: 'random', seed: 'fa' }), b: file({ size: 900_000, pattern: 'random', seed: 'fb' }) }));
    const copyFlat = vi.spyOn(ZPool.prototype, 'copyFlat');
    const halt = vi.spyOn(ZPool.prototype, 'halt');
    const flushMeta = vi.spyOn(ImageWriter.prototype, 'flushMeta').mockImplementation(() => {
      throw new Error('no space left');
    });
    try {
      const image = `${out.dir}/failed.erofs`;
      await expect(build(raw.root, image, { compression: [{ name: 'lz4hc' }], workers: 2, timestamp: 0 })).rejects.toThrow('no space left');
      expect(copyFlat).toHaveBeenCalledTimes(1);
      // Halted on the failure, before the image's descriptor was closed, and again by close().
      expect(halt.mock.calls.length).toBeGreaterThanOrEqual(2);
      expect(leftBehind('failed')).toEqual([]);
    } finally {
      copyFlat.mockRestore();
      halt.mockRestore();
      flushMeta.mockRestore();
      await raw.cleanup();
    }
  });

  itIfMount('places every piece of a result where it goes when its chunk is let go the moment its last piece is written', async () => {
    const { discardChunk } = await import('../../src/mkfs/zchunks.js');
    // As if the pool held all the spare chunks it keeps: each chunk written is let go at once.
    const recycle = vi.spyOn(ZPool.prototype as unknown as { recycle: (chunk: ArrayBuffer) => void }, 'recycle').mockImplementation((chunk) => discardChunk(chunk));
    try {
      const image = await buildWithAndWithoutWorkers(tree.root, `${out.dir}/let-go`, { compression: [{ name: 'lz4hc' }], ztailpacking: true, timestamp: 0 });
      expect(recycle).toHaveBeenCalled();
      await expectImageMatches(image, tree.root, { fsck: true, expectMtime: () => 0n });
    } finally {
      recycle.mockRestore();
    }
  });

  itIfMount('gives byte-identical images for 0, 1, 2 and 5 workers', async () => {
    for (const name of ['lz4hc', 'zstd', 'deflate'] as const) {
      const images = [];
      for (const workers of [0, 1, 2, 5]) {
        const image = `${out.dir}/${name}-w${workers}.erofs`;
        await build(tree.root, image, { compression: [{ name }], workers, ztailpacking: true, pclusterSize: 16_384, timestamp: 0 });
        images.push(readFileSync(image));
      }
      for (const img of images.slice(1)) expect(img.equals(images[0]!)).toBe(true);
      await expectImageMatches(`${out.dir}/${name}-w2.erofs`, tree.root, { fsck: name === 'lz4hc', expectMtime: () => 0n });
    }
  });
});

describeIfMount('small files of a compressed build', () => {
  const out = scratchDir();
  afterAll(() => {
    vi.restoreAllMocks();
    out.cleanup();
  });

  itIfMount('files smaller than a block that compression leaves whole are copied by the walk, with no copy thread', async () => {
    const add = vi.spyOn(FileCopier.prototype, 'add');
    const start = vi.spyOn(FileCopier.prototype as unknown as { start(): void }, 'start');
    const small = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`s${i}`, file({ size: 1 + i * 13, pattern: 'text', seed: `s${i}` })]));
    const tree = await makeTree(
      dir({
        small: dir(small),
        edge: dir({
          block: file({ size: 4096, pattern: 'text', seed: 'block' }),
          over: file({ size: 4097, pattern: 'text', seed: 'over' }),
          tagged: file({ size: 900, pattern: 'text', seed: 'tag' }, { xattrs: { 'user.k': 'v' } }),
          twin: hardlink('small/s1'),
        }),
      }),
    );
    try {
      // Plain lz4 starts no worker for this little input.
      const image = await buildWithAndWithoutWorkers(tree.root, `${out.dir}/small`, { compression: [{ name: 'lz4' }], timestamp: 0 }, 1);
      // Two builds; each offers the 299 small files not hard-linked (s1 is), and not the
      // exact block, the compressed file or the one with xattrs.
      expect(add).toHaveBeenCalledTimes(2 * 299);
      expect(start).not.toHaveBeenCalled();
      await expectImageMatches(image, tree.root, { fsck: true, expectMtime: () => 0n });
    } finally {
      await tree.cleanup();
    }
  });

  itIfMount('with tail packing, small files are compressed, not copied', async () => {
    const add = vi.spyOn(FileCopier.prototype, 'add');
    add.mockClear();
    const tree = await makeTree(dir({ a: file({ size: 3000, pattern: 'text', seed: 'a' }), b: file({ size: 100, pattern: 'zero' }) }));
    try {
      await build(tree.root, `${out.dir}/packed.erofs`, { compression: [{ name: 'lz4' }], ztailpacking: true, timestamp: 0 });
      expect(add).not.toHaveBeenCalled();
      await expectImageMatches(`${out.dir}/packed.erofs`, tree.root, { fsck: true, expectMtime: () => 0n });
    } finally {
      await tree.cleanup();
    }
  });
});

describeIfMount('compression during the directory walk', () => {
  const out = scratchDir();
  afterAll(() => {
    vi.restoreAllMocks();
    out.cleanup();
  });

  itIfMount('files found by the walk are compressed then; those with xattrs, hard links or extended inodes after planning; the image is the same', async () => {
    const offer = vi.spyOn(ZFeed.prototype, 'offer');
    const compress = vi.spyOn(ZPool.prototype, 'compress');
    const text = (seed: string, size = 40_000) => file({ size, pattern: 'text', seed });
    const tree = await makeTree(
      dir({
        a: dir({ x: text('ax'), y: text('ay', 9000), z: text('az', 5000) }),
        // An extended inode (an mtime of its own), so a longer inode in front of the index.
        b: dir({ old: file({ size: 30_000, pattern: 'text', seed: 'old' }, { mtime: { sec: 1_000_000_000, nsec: 5 } }) }),
        c: dir({ tagged: file({ size: 20_000, pattern: 'text', seed: 'tag' }, { xattrs: { 'user.k': 'v' } }), twin: hardlink('a/x') }),
        // Over a megabyte in all, so that a worker starts.
        d: dir(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}`, text(`d${i}`, 30_000 + i * 700)]))),
      }),
    );
    try {
      const image = await buildWithAndWithoutWorkers(tree.root, `${out.dir}/walk`, {
        compression: [{ name: 'lz4hc' }],
        ztailpacking: true,
        pclusterSize: 16_384,
        timestamp: 1_700_000_000,
        timestampScope: 'mkfs',
      });
      // Offered during the walk: every regular file but the hard-linked (a/x) and the tagged
      // one; each compressed once (a walk-time result is used, not redone).
      expect(offer).toHaveBeenCalledTimes(2 + 1 + 40);
      expect(compress).toHaveBeenCalledTimes(45);
      await expectImageMatches(image, tree.root, { fsck: true });
    } finally {
      await tree.cleanup();
    }
  });
});

describeIfMount('output waiting on disk for its turn', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());

  itIfMount('with every result in the spill file, copied into place on the thread pool, the image is the same as without workers and reads back right; the file is removed', async () => {
    // No output held in memory at all: every batch goes through the spill file.
    const original = ZPool.prototype.compress;
    const compress = vi.spyOn(ZPool.prototype, 'compress').mockImplementation(function (this: ZPool, ...args) {
      (this as unknown as { heldChunks: number }).heldChunks = 0;
      return original.apply(this, args);
    });
    const beside = vi.spyOn(Spool, 'beside');
    const copy = vi.spyOn(RangeCopier.prototype, 'copy');
    const tree = await makeTree(compressionSpec());
    try {
      for (const name of ['lz4hc', 'zstd'] as const) {
        const image = await buildWithAndWithoutWorkers(tree.root, `${out.dir}/spilled-${name}`, { compression: [{ name }], ztailpacking: true, pclusterSize: 16_384, timestamp: 0 });
        // Debian's fsck.erofs 1.5 only knows LZ4.
        await expectImageMatches(image, tree.root, { fsck: name === 'lz4hc', expectMtime: () => 0n });
      }
      expect(beside.mock.calls.some(([, what]) => what === 'spill')).toBe(true);
      expect(copy).toHaveBeenCalled();
      expect(readdirSync(out.dir).filter((n) => n.includes('.spill'))).toEqual([]);
    } finally {
      compress.mockRestore();
      beside.mockRestore();
      copy.mockRestore();
      await tree.cleanup();
    }
  }, 300_000);
});

describeIfMount('big files beside worker threads', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());

  itIfMount('a file cut into 16 MiB segments gives the same image with or without workers, tail packed or not', async () => {
    const small = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`s${i}`, file({ size: 30_000 + i * 1000, pattern: 'text', seed: i })]));
    // Two and a half segments, ending in a short tail.
    const big = file({ size: (40 << 20) + 777, pattern: 'text', seed: 'big' });
    const tree = await makeTree(dir({ a: dir(small), big, z: dir(small) }));
    try {
      for (const ztailpacking of [false, true]) {
        const image = await buildWithAndWithoutWorkers(tree.root, `${out.dir}/big-${ztailpacking}`, { compression: [{ name: 'lz4hc' }], timestamp: 0, ztailpacking });
        await expectImageMatches(image, tree.root, { expectMtime: () => 0n });
      }
    } finally {
      await tree.cleanup();
    }
  }, 300_000);

  /** The pool's calls for a big file placed after small ones: its segments, and whether each went to the head of the queue. */
  async function bigLastCalls(name: string): Promise<Array<{ start: number; first: boolean }>> {
    const compress = vi.spyOn(ZPool.prototype, 'compress');
    const small = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`s${String(i).padStart(2, '0')}`, file({ size: 20_000 + i * 100, pattern: 'text', seed: i })]));
    // Two full segments and a short one, placed after every small file (a level deeper:
    // inodes are placed a directory level at a time).
    const bigSize = (32 << 20) + 100;
    const tree = await makeTree(dir({ a: dir(small), z: dir({ big: file({ size: bigSize, pattern: 'text', seed: 'zz' }) }) }));
    try {
      // lz4hc: plain lz4 starts no worker for less than 64 MiB.
      const image = await buildWithAndWithoutWorkers(tree.root, `${out.dir}/${name}`, { compression: [{ name: 'lz4hc' }], timestamp: 0 });
      await expectImageMatches(image, tree.root, { expectMtime: () => 0n });
      return compress.mock.calls.filter(([job]) => job.size === bigSize).map(([job, first]) => ({ start: job.start, first: first === true }));
    } finally {
      compress.mockRestore();
      await tree.cleanup();
    }
  }

  itIfMount('where a segment takes a worker seconds, a big file placed last goes to the head of the workers\' queue; the image is the same', async () => {
    // As lzma or lz4hc,12 go: 2 MB/s per worker.
    const rate = vi.spyOn(ZPool.prototype, 'rate').mockReturnValue(2 << 20);
    try {
      expect(await bigLastCalls('slow')).toEqual([0, 16 << 20, 32 << 20].map((start) => ({ start, first: true })));
    } finally {
      rate.mockRestore();
    }
  }, 300_000);

  itIfMount('where segments compress in well under a second, a big file goes in its turn, at the end of the queue (its output is not held meanwhile)', async () => {
    const rate = vi.spyOn(ZPool.prototype, 'rate').mockReturnValue(100 << 20);
    try {
      expect(await bigLastCalls('fast')).toEqual([0, 16 << 20, 32 << 20].map((start) => ({ start, first: false })));
    } finally {
      rate.mockRestore();
    }
  }, 300_000);

  itIfMount('a hard-linked file placed ahead of more segments than the workers may hold in flight is compressed, not refused', async () => {
    // The walk offers b/big's four segments (more than the in-flight budget of two workers)
    // before planning reaches a1, which it could not offer.
    const tree = await makeTree(
      dir({
        a1: file({ size: 170_000, pattern: 'text', seed: 'linked' }),
        a2: hardlink('a1'),
        b: dir({ big: file({ size: 60_000_000, pattern: 'random', seed: 'big' }) }),
      }),
    );
    try {
      const image = await buildWithAndWithoutWorkers(tree.root, `${out.dir}/linked`, { compression: [{ name: 'lz4hc' }], timestamp: 0 });
      await expectImageMatches(image, tree.root, { expectMtime: () => 0n });
    } finally {
      await tree.cleanup();
    }
  }, 300_000);
});

describeIfMount('tail packing with blocks smaller than the page', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());

  // Low-entropy text whose last pcluster often fills nearly a block, so it can only start
  // one; about one file in a hundred then started one block into a page, and the kernel
  // refused to read it (EFSCORRUPTED) until the allocator learned to avoid that.
  itIfMount('every tail-packed pcluster reads back, whatever block it has to start', async () => {
    const next = prng(1);
    const rand = () => next() / 2 ** 32;
    const files: Record<string, ReturnType<typeof file>> = {};
    for (let i = 0; i < 160; i++) {
      const size = 3000 + Math.floor(rand() * 117_000);
      const bytes = Buffer.alloc(size);
      for (let j = 0; j < size; j++) bytes[j] = 'aab\n '.charCodeAt(Math.floor(rand() * 5));
      files[`f${i}`] = file(bytes);
    }
    const tree = await makeTree(dir(files));
    try {
      for (const [name, blockSize] of [['lzma', 1024], ['lz4hc', 1024], ['lz4hc', 2048], ['deflate', 512]] as const) {
        const image = `${out.dir}/${name}-${blockSize}.erofs`;
        await build(tree.root, image, { compression: [{ name }], blockSize, ztailpacking: true, timestamp: 0 });
        await expectImageMatches(image, tree.root, { blockSize, expectMtime: () => 0n });
      }
    } finally {
      await tree.cleanup();
    }
  }, 600_000);
});

describeIfMount('--compress-hints', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());

  itIfMount('chooses pcluster size and algorithm per file by path, or no compression', async () => {
    const { writeFileSync } = await import('node:fs');
    const { openImage } = await import('../../src/reader/index.js');
    const { Z_EROFS_COMPRESSION_LZ4, Z_EROFS_COMPRESSION_ZSTD } = await import('../../src/format/constants.js');
    const text = (seed: string) => file({ size: 300_000, pattern: 'text', seed });
    const tree = await makeTree(dir({ 'a.txt': text('a'), 'b.log': text('b'), 'c.gz': text('c'), docs: dir({ 'd.txt': text('d') }) }));
    try {
      const hints = `${out.dir}/hints`;
      writeFileSync(hints, '# no compression for archives\n0 \\.gz$\n16384 1 ^docs/\n8192 \\.txt$\n');
      const image = `${out.dir}/hints.erofs`;
      const r = await cli(['--quiet', '-Uclear', '-zlz4hc:zstd', `--compress-hints=${hints}`, image, tree.root]);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      await expectImageMatches(image, tree.root, { fsck: false });
      const img = openImage(image);
      try {
        const extentsOf = (p: string) => [...img.extents(img.lookup(p))];
        expect(extentsOf('/c.gz').every((e) => e.kind === 'plain')).toBe(true);
        const docs = extentsOf('/docs/d.txt').filter((e) => e.kind === 'compressed');
        expect(docs.length).toBeGreaterThan(0);
        expect(docs.every((e) => e.algorithm === Z_EROFS_COMPRESSION_ZSTD && e.physicalLength <= 16_384)).toBe(true);
        expect(docs.some((e) => e.physicalLength > 8192)).toBe(true);
        const a = extentsOf('/a.txt').filter((e) => e.kind === 'compressed');
        expect(a.every((e) => e.algorithm === Z_EROFS_COMPRESSION_LZ4 && e.physicalLength <= 8192)).toBe(true);
        expect(a.some((e) => e.physicalLength === 8192)).toBe(true);
        const b = extentsOf('/b.log').filter((e) => e.kind === 'compressed');
        expect(b.every((e) => e.algorithm === Z_EROFS_COMPRESSION_LZ4 && e.physicalLength === 4096)).toBe(true);
      } finally {
        img.close();
      }
    } finally {
      await tree.cleanup();
    }
  });

  itIfMount('rejects a hint naming an algorithm -z does not list', async () => {
    const { writeFileSync } = await import('node:fs');
    const hints = `${out.dir}/bad-hints`;
    writeFileSync(hints, '4096 3 .*\n');
    const r = await cli(['-zlz4', `--compress-hints=${hints}`, `${out.dir}/x.erofs`, out.dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no compression algorithm #3/);
  });
});
