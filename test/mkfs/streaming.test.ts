import { execFile } from 'node:child_process';
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { afterAll, expect } from 'vitest';
import { expectImageMatches, scratchDir } from '../helpers/build.js';
import { describeIfMount, itIfMount, withMount } from '../helpers/mount.js';
import { dir, file, makeTree } from '../helpers/tree.js';

const run = promisify(execFile);
const GiB = 2 ** 30;

describeIfMount('file data is streamed', () => {
  const out = scratchDir();
  afterAll(() => out.cleanup());

  itIfMount('a 5 GiB file builds in bounded memory, gets an extended inode and reads back', async () => {
    const t = await makeTree(dir({ huge: file({ size: 5 * GiB, pattern: 'hole' }) }));
    const markers: Array<[number, string]> = [[0, 'start'], [GiB + 3, 'one-gib'], [4 * GiB + 4097, 'past-4gib'], [5 * GiB - 3, 'end']];
    const fd = openSync(t.path('huge'), 'r+');
    for (const [off, text] of markers) writeSync(fd, Buffer.from(text), 0, text.length, off);
    closeSync(fd);
    try {
      const image = `${out.dir}/huge.erofs`;
      // Build in a child process so its peak RSS is its own.
      const script = `
        const { buildImage } = await import(${JSON.stringify(pathToFileURL(`${process.cwd()}/dist/index.js`).href)});
        await buildImage({ image: ${JSON.stringify(image)}, source: ${JSON.stringify(t.root)}, uuid: 'clear' });
        process.stdout.write(String(process.resourceUsage().maxRSS));`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { maxBuffer: 1 << 20 });
      const maxRssMiB = Number(stdout) / 1024;
      expect(maxRssMiB).toBeGreaterThan(0);
      expect(maxRssMiB).toBeLessThan(200);
      await withMount(image, (mnt) => {
        expect(statSync(`${mnt}/huge`).size).toBe(5 * GiB);
        const f = openSync(`${mnt}/huge`, 'r');
        try {
          for (const [off, text] of markers) {
            // The marker, with the zero bytes of the hole on either side where there are any.
            const from = Math.max(0, off - 1);
            const to = Math.min(5 * GiB, off + text.length + 1);
            const buf = Buffer.alloc(to - from);
            expect(readSync(f, buf, 0, buf.length, from)).toBe(buf.length);
            expect(buf.toString('latin1')).toBe(`${from < off ? '\0' : ''}${text}${to > off + text.length ? '\0' : ''}`);
          }
        } finally {
          closeSync(f);
        }
      });
    } finally {
      await t.cleanup();
    }
  });

  itIfMount("worker threads start whatever Node options the host process was given (--input-type)", async () => {
    // Workers inherit the host's execArgv unless told otherwise, and --input-type makes a
    // worker script fail to load (the compression pool); an uncompressed build starts none.
    const t = await makeTree(dir({ a: file({ size: 300_000, pattern: 'text', seed: 1 }), b: file({ size: 200_000, pattern: 'random', seed: 2 }) }));
    try {
      for (const compression of ['', '"lz4hc"']) {
        const image = `${out.dir}/host-options${compression ? '-z' : ''}.erofs`;
        const script = `
          const { buildImage } = await import(${JSON.stringify(pathToFileURL(`${process.cwd()}/dist/index.js`).href)});
          await buildImage({ image: ${JSON.stringify(image)}, source: ${JSON.stringify(t.root)}, workers: 2${compression ? `, compression: [{ name: ${compression} }]` : ''} });`;
        await run(process.execPath, ['--input-type=module', '-e', script]);
        await expectImageMatches(image, t.root);
      }
    } finally {
      await t.cleanup();
    }
  });
});
