#!/usr/bin/env node
// The CLI as one CommonJS bundle (npm run build): Node loads it ~0.1 s faster than the
// ES modules under dist/, most of it in resolving and linking them. This file is CommonJS
// too (bin/package.json): an ES module entry point costs Node's ES loader another 5-10 ms.
'use strict';

// Most builds last a second or less. At its default eagerness V8's optimizing compiler
// then spends more CPU, on threads that compete with the build for a machine's few cores,
// than the code it makes saves: a fifth to a quarter of the user time on a Debian root.
// Eight times the default budget still optimizes the hot loops of long builds, a little
// later. Set before the bundle loads, so every function of it gets this budget.
require('node:v8').setFlagsFromString('--interrupt-budget=540672');

const { main } = require('../dist/cjs/mkfs.cjs');
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
