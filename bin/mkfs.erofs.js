#!/usr/bin/env node
// The CLI as one CommonJS bundle (npm run build): Node loads it ~0.1 s faster than the
// ES modules under dist/, most of it in resolving and linking them. This file is CommonJS
// too (bin/package.json): an ES module entry point costs Node's ES loader another 5-10 ms.
// The bundle's compiled code is kept between runs (load-bundle.js).
'use strict';

// V8's flags (v8-flags.js), before the bundle loads.
const { useFlags } = require('./v8-flags.js');
useFlags('start');

const { loadBundle } = require('./load-bundle.js');

const bundle = loadBundle(require('node:path').join(__dirname, '../dist/cjs/mkfs.cjs'));
bundle.exports.setWorkerStartHook(() => useFlags('default'));
bundle.exports.main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // Under the flags it is loaded under (the threads have ended).
  useFlags('start');
  // A failed build may have stopped short of its paths' code: it adds no path to the cache.
  bundle.saveCache(code === 0 ? bundle.exports.codePaths() : []);
  // Everything is done and written (on Linux, stdout and stderr are written synchronously,
  // pipes included): the process ends now rather than after Node frees its heap and buffers
  // one by one (2 ms after a build of a Debian root).
  process.exit();
});
