#!/usr/bin/env node
// The CLI as one CommonJS bundle (npm run build), loaded from CommonJS (bin/package.json):
// Node starts it faster than through ES modules; with V8's code cache (load-bundle.js).
'use strict';

const { loadBundle } = require('./load-bundle.js');

const bundle = loadBundle(require('node:path').join(__dirname, '../dist/cjs/fsck.cjs'));
bundle.exports.main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  bundle.saveCache();
});
