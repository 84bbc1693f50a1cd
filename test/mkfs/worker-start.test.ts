import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { setWorkerStartHook, startWorker, type WorkerEntry } from '../../src/mkfs/worker-script.js';
import { scratchDir } from '../helpers/build.js';

const { SETS } = createRequire(import.meta.url)('../../bin/v8-flags.js') as { SETS: Record<string, string[]> };

/** '--no-flush-bytecode' and '--flush-bytecode=...' both name flush-bytecode. */
const flagName = (flag: string): string => flag.replace(/^--(no-)?/, '').replace(/=.*$/, '');

describe("the CLI's sets of V8 flags", () => {
  it('every set names every flag the others change, so switching sets leaves none behind', () => {
    const names = Object.values(SETS).map((set) => set.map(flagName).sort());
    for (const set of names) expect(set).toEqual(names[0]);
  });

  it('the default set holds V8 defaults: the values `node --v8-options` reports', () => {
    const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    for (const flag of SETS.default!) {
      const name = flagName(flag);
      const reported = new RegExp(`default: (--(no-)?${name}(=\\S+)?)`).exec(options.slice(options.indexOf(`--${name} `)));
      expect(reported?.[1]).toBe(flag);
    }
  });
});

describe('starting a worker thread', () => {
  const out = scratchDir('erofs-worker-start-');
  const script = `${out.dir}/quiet.cjs`;
  writeFileSync(script, "'use strict';\n");
  afterAll(() => out.cleanup());
  afterEach(() => setWorkerStartHook(null));

  const started = (entry: WorkerEntry): Promise<number> =>
    new Promise((resolve, reject) => {
      const worker = startWorker(entry, { boot: entry.boot });
      worker.on('error', reject);
      worker.on('exit', resolve);
    });

  it("runs the CLI's hook just before a thread of the CLI (one with a boot) starts", async () => {
    let calls = 0;
    setWorkerStartHook(() => calls++);
    const entry: WorkerEntry = { script: pathToFileURL(script), boot: { bundle: script, codePaths: null } };
    const exit = started(entry);
    expect(calls).toBe(1);
    expect(await exit).toBe(0);
  });

  it('runs no hook for a thread without a boot (a library build starting its own modules)', async () => {
    let calls = 0;
    setWorkerStartHook(() => calls++);
    expect(await started({ script: pathToFileURL(script), boot: null })).toBe(0);
    expect(calls).toBe(0);
  });
});
