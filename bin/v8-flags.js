// The V8 flags the CLI runs with. Why each:
// - --interrupt-budget: most builds last a second or less. At its default eagerness V8's
//   optimizing compiler then spends more CPU, on threads that compete with the build for a
//   machine's few cores, than the code it makes saves: a fifth to a quarter of the user
//   time on a Debian root. Eight times the default budget still optimizes the hot loops of
//   long builds, a little later; once worker threads compress beside the main thread, 32
//   times (lz4 on a Debian root: -23 ms, 40 ms less CPU), while a build on one thread
//   leaves a core to the compiler and its JavaScript is the work (--tar=i is 17 ms slower
//   at 32 times). Set before the bundle loads, so every function of it gets the budget.
// - --semi-space-growth-factor=1: the young generation grows to 16 MiB semispaces while the
//   tree is walked (every inode survives), 10-15 MB of peak RSS for no measurable speed;
//   this keeps it at its first size.
// - --no-flush-bytecode: the code cache (load-bundle.js) is saved after a build, from the
//   functions still compiled then; V8 would drop the bytecode of functions a long build
//   stopped calling (the walk's, after a minute of compression), and the next start would
//   compile them again.
//
// They come in sets:
// - 'start': from the first line on; code is loaded from and saved to the code cache under it;
// - 'threads': once worker threads compress or copy beside the main thread (set by the
//   thread itself, bin/worker.js, as it begins);
// - 'default': V8's own values (those of Node 20's V8; elsewhere only the speed-up is lost),
//   while a worker thread starts. Node's built-in modules come with a code cache V8 accepts
//   only under the flags it was made with, which are the defaults: a thread started under
//   others compiles the ninety-odd modules a thread loads from source, and starts in 45-70
//   ms instead of 25.
// V8 checks a code cache against all flags but a few, whatever their meaning: each set
// names every flag the others change.
'use strict';

const v8 = require('node:v8');

const DEFAULT_INTERRUPT_BUDGET = 67584;

const SETS = {
  start: [`--interrupt-budget=${8 * DEFAULT_INTERRUPT_BUDGET}`, '--semi-space-growth-factor=1', '--no-flush-bytecode'],
  threads: [`--interrupt-budget=${32 * DEFAULT_INTERRUPT_BUDGET}`, '--semi-space-growth-factor=1', '--no-flush-bytecode'],
  default: [`--interrupt-budget=${DEFAULT_INTERRUPT_BUDGET}`, '--semi-space-growth-factor=2', '--flush-bytecode'],
};

/** Sets the flags of set `name` ('start', 'threads' or 'default'). */
function useFlags(name) {
  for (const flag of SETS[name]) v8.setFlagsFromString(flag);
}

module.exports = { useFlags, SETS };
