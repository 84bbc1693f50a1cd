import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { codePaths, main } from '../../src/cli/mkfs.js';
import { scratchDir } from '../helpers/build.js';
import { keepSignalHandlers } from '../helpers/signals.js';
import { makeTar } from '../helpers/tar.js';

// What the CLI tells its code cache (bin/load-bundle.js) about a run: the source kind and
// the algorithms, which pick the code a build runs.
describe('the code paths a build reports for the code cache', () => {
  const out = scratchDir('erofs-paths-');
  afterAll(() => out.cleanup());
  afterEach(keepSignalHandlers());

  const tree = join(out.dir, 'tree');
  mkdirSync(tree);
  writeFileSync(join(tree, 'a'), 'a'.repeat(10000));
  const tar = join(out.dir, 'layer.tar');
  writeFileSync(tar, makeTar([{ name: 'a', data: 'a'.repeat(10000) }]));

  it('a directory build with -z names the directory walk and each algorithm', async () => {
    expect(await main(['--quiet', '-zlz4hc:lzma', join(out.dir, 'z.erofs'), tree])).toBe(0);
    expect(codePaths()).toEqual(['dir', 'lz4hc', 'lzma']);
  });

  it('a tar build names its mode; --tar=i, which stores no data, no algorithm', async () => {
    expect(await main(['--quiet', '--tar=f', '-zlz4', join(out.dir, 'f.erofs'), tar])).toBe(0);
    expect(codePaths()).toEqual(['tar-full', 'lz4']);
    expect(await main(['--quiet', '--tar=i', '-zlz4', join(out.dir, 'i.erofs'), tar])).toBe(0);
    expect(codePaths()).toEqual(['tar-index']);
  });
});
