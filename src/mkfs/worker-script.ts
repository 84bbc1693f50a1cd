// How a worker thread starts. In the CLI its script is a bundle beside the CLI's
// (dist/cjs/NAME.cjs), started through bin/worker.js, which loads it with its code cache as
// the CLI's own bundle is; else it is the compiled module beside this one
// (dist/mkfs/NAME.js). Tests run the TypeScript sources and workers need JavaScript, so from
// src/ they get the compiled one.

import { existsSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { workerThreads } from '../builtins.js';

/** What bin/worker.js reads from workerData.boot. */
export interface WorkerBoot {
  /** The bundle's path. */
  bundle: string;
  /** The code paths its cache is to record at the thread's clean end; null: save none. */
  codePaths: string[] | null;
}

export interface WorkerEntry {
  script: URL;
  /** To go in workerData.boot; null where the script is the worker's own module. */
  boot: WorkerBoot | null;
}

/**
 * Worker NAME's entry. `codePaths` name the code the thread runs (its cache records them);
 * give them to one thread of a kind only, null to the others.
 */
export function workerScript(name: string, codePaths: string[] | null): WorkerEntry {
  const bundle = new URL(`./${name}.cjs`, import.meta.url);
  if (existsSync(fileURLToPath(bundle))) {
    const boot = new URL('../../bin/worker.js', import.meta.url);
    if (existsSync(fileURLToPath(boot))) return { script: boot, boot: { bundle: fileURLToPath(bundle), codePaths } };
    return { script: bundle, boot: null };
  }
  const local = new URL(`./${name}.js`, import.meta.url);
  if (existsSync(fileURLToPath(local))) return { script: local, boot: null };
  return { script: new URL(`../../dist/mkfs/${name}.js`, import.meta.url), boot: null };
}

let beforeBootedStart: (() => void) | null = null;

/**
 * What the CLI runs just before a thread of its own (one with a boot) starts: it puts V8's
 * default flags back (bin/v8-flags.js) while the thread loads Node's built-in modules,
 * whose code cache V8 accepts only under the flags it was made with.
 */
export function setWorkerStartHook(hook: (() => void) | null): void {
  beforeBootedStart = hook;
}

/** Starts the worker thread `entry` names (see workerScript), with `data` as its workerData. */
export function startWorker<T extends { boot: WorkerBoot | null }>(entry: WorkerEntry, data: T): Worker {
  if (entry.boot) beforeBootedStart?.();
  // A small young generation: workers allocate little but their buffers, and every megabyte
  // of it is a megabyte of peak RSS per worker. No execArgv: the host's (say --input-type)
  // may not apply to a worker script.
  return new (workerThreads().Worker)(entry.script, { workerData: data, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 2 } });
}
