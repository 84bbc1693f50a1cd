#!/usr/bin/env node
// The CLI as one CommonJS bundle (npm run build): Node loads it ~0.1 s faster than the
// ES modules under dist/, most of it in resolving and linking them. This file is CommonJS
// too (bin/package.json): an ES module entry point costs Node's ES loader another 5-10 ms.
// The bundle's compiled code is kept between runs (load-bundle.js).
'use strict';

// Most builds last a second or less. At its default eagerness V8's optimizing compiler
// then spends more CPU, on threads that compete with the build for a machine's few cores,
// than the code it makes saves: a fifth to a quarter of the user time on a Debian root.
// Eight times the default budget still optimizes the hot loops of long builds, a little
// later. Set before the bundle loads, so every function of it gets this budget.
const v8 = require('node:v8');
v8.setFlagsFromString('--interrupt-budget=540672');

// The young generation grows to 16 MiB semispaces while the tree is walked (every inode
// survives), 10-15 MB of peak RSS for no measurable speed: a growth factor of 1 keeps it at
// its first size. A new isolate puts the factor back to at least V8's default of 2 as its
// heap is set up, on its own thread, soon after the Worker is made: the factor is set again
// at every turn of the event loop (the walk gives it one every few hundred entries) until
// the worker runs.
const keepYoungGenerationSmall = () => v8.setFlagsFromString('--semi-space-growth-factor=1');
keepYoungGenerationSmall();
process.on('worker', (worker) => {
  const again = setInterval(keepYoungGenerationSmall, 1);
  const stop = () => {
    clearInterval(again);
    keepYoungGenerationSmall();
  };
  worker.once('online', stop);
  worker.once('exit', stop);
});

// The code cache (load-bundle.js) is saved after a build, from the functions still compiled
// then: V8 would drop the bytecode of functions a long build stopped calling (the walk's,
// after a minute of compression), and the next start would compile them again.
v8.setFlagsFromString('--no-flush-bytecode');

const { loadBundle } = require('./load-bundle.js');

const bundle = loadBundle(require('node:path').join(__dirname, '../dist/cjs/mkfs.cjs'));
bundle.exports.main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // A failed build may have stopped short of its paths' code: it adds no path to the cache.
  bundle.saveCache(code === 0 ? bundle.exports.codePaths() : []);
});
