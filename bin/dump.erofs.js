#!/usr/bin/env node
// The CLI as one CommonJS bundle (npm run build), loaded from CommonJS (bin/package.json):
// Node starts it faster than through ES modules.
'use strict';

const { main } = require('../dist/cjs/dump.cjs');
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
