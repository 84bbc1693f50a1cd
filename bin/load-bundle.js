// Loads a CLI bundle (dist/cjs/NAME.cjs) as require() would, with V8's code cache: the
// bundle's functions compiled by an earlier run, kept beside it in NAME.cjs.cache. Compiling
// a third of a megabyte of JavaScript costs 20-30 ms of every start, as much as some whole
// builds of a small container layer.
//
// V8 checks a cache against its own version and flags, but against the source's length only:
// the cache file holds the source it was made for, and one made for other bytes is never
// handed to V8 (comparing them costs less than loading node:crypto to hash them). A missing,
// stale or rejected cache only makes a start slower; the run then writes a fresh one where
// it may (a read-only install keeps none).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

const MAGIC = Buffer.from('erofs-ts code cache 1\n');

/** The V8 data in a cache file made for exactly this source, else null. */
function cachedDataFor(cache, source) {
  const head = MAGIC.length + 4;
  if (!cache || cache.length < head || !cache.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  const length = cache.readUInt32LE(MAGIC.length);
  if (length !== source.length || cache.length <= head + length) return null;
  if (!cache.subarray(head, head + length).equals(source)) return null;
  return cache.subarray(head + length);
}

function readIfThere(file) {
  try {
    return fs.readFileSync(file);
  } catch {
    return null;
  }
}

/**
 * The bundle's exports, and saveCache(): once the run's work is done, it writes what V8
 * compiled so far for the next run, unless this run used a valid cache already.
 */
function loadBundle(file) {
  const source = fs.readFileSync(file);
  const cacheFile = `${file}.cache`;
  const cachedData = cachedDataFor(readIfThere(cacheFile), source);
  // The same wrapper Node gives a CommonJS module.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) { ${source.toString()}\n})`, {
    filename: file,
    cachedData: cachedData ?? undefined,
  });
  const used = cachedData !== null && !script.cachedDataRejected;
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, createRequire(file), mod, file, path.dirname(file));
  return {
    exports: mod.exports,
    cacheUsed: used,
    saveCache() {
      if (used) return;
      const temp = `${cacheFile}.${process.pid}.tmp`;
      try {
        const length = Buffer.alloc(4);
        length.writeUInt32LE(source.length);
        fs.writeFileSync(temp, Buffer.concat([MAGIC, length, source, script.createCachedData()]));
        fs.renameSync(temp, cacheFile);
      } catch {
        // A read-only install: every start compiles the bundle.
        try {
          fs.unlinkSync(temp);
        } catch {
          // never made
        }
      }
    },
  };
}

module.exports = { loadBundle };
