// The entry of the CLI's worker threads (compression, file copies): their bundle
// (dist/cjs/NAME.cjs, named in workerData.boot) loaded with V8's code cache, as the
// commands' bundles are (load-bundle.js). Compiling the compression worker's bundle at
// every start had cost each lz4 build 15-20 ms of a core its two threads both want.
'use strict';

// The main thread put V8's default flags back for this thread's start (v8-flags.js); the
// bundle loads under the flags of threads at work. (Were another thread started meanwhile,
// this one's bundle would only compile, not load from its cache.)
require('./v8-flags.js').useFlags('threads');

const { workerData } = require('node:worker_threads');
const { loadBundle } = require('./load-bundle.js');

const { bundle, codePaths } = workerData.boot;
const loaded = loadBundle(bundle);
// Only at a clean end: a thread stopped part way has not run all its paths' code. The
// parent names code paths for one thread of a kind only, so no two write the same cache.
process.once('exit', (code) => {
  if (code === 0 && codePaths) loaded.saveCache(codePaths);
});
