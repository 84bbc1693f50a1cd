// Loads a CLI bundle (dist/cjs/NAME.cjs) as require() would, with V8's code cache: the
// bundle's functions compiled by earlier runs, kept beside it in NAME.cjs.cache. Compiling
// a third of a megabyte of JavaScript costs 20-30 ms of every start, as much as some whole
// builds of a small container layer.
//
// A run compiles only the functions it calls, so the cache records which code paths the
// runs that made it took (a directory or a tar, which algorithms): a run down a path it
// lacks, say --tar=i after a directory build, would compile that path lazily on every start
// (a few ms), and instead writes the cache again, its functions added to those already in it.
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

// Layout: MAGIC, u32 LE source length, source, u32 LE paths length, paths (comma-separated), V8 data.
const MAGIC = Buffer.from('erofs-ts code cache 2\n');

/** The V8 data and code paths of a cache file made for exactly this source, else null. */
function cacheFor(cache, source) {
  let at = MAGIC.length;
  if (!cache || cache.length < at + 4 || !cache.subarray(0, at).equals(MAGIC)) return null;
  const length = cache.readUInt32LE(at);
  at += 4;
  if (length !== source.length || cache.length < at + length + 4) return null;
  if (!cache.subarray(at, at + length).equals(source)) return null;
  at += length;
  const pathsLength = cache.readUInt32LE(at);
  at += 4;
  if (cache.length <= at + pathsLength) return null;
  const paths = cache.toString('utf8', at, at + pathsLength).split(',').filter((p) => p !== '');
  return { data: cache.subarray(at + pathsLength), paths };
}

function readIfThere(file) {
  try {
    return fs.readFileSync(file);
  } catch {
    return null;
  }
}

/**
 * The bundle's exports, and saveCache(paths): once the run's work is done, it writes what V8
 * compiled so far for the next run, unless this run used a valid cache that has its code
 * paths already.
 */
function loadBundle(file) {
  const source = fs.readFileSync(file);
  const cacheFile = `${file}.cache`;
  const cache = cacheFor(readIfThere(cacheFile), source);
  // The same wrapper Node gives a CommonJS module.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) { ${source.toString()}\n})`, {
    filename: file,
    cachedData: cache?.data,
  });
  const known = cache !== null && !script.cachedDataRejected ? cache.paths : null;
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, createRequire(file), mod, file, path.dirname(file));
  return {
    exports: mod.exports,
    cacheUsed: known !== null,
    /** The code paths of the runs that made the cache this start used; null without one. */
    cachedPaths: known,
    saveCache(paths = ['default']) {
      const missing = paths.filter((p) => !known?.includes(p));
      if (known && missing.length === 0) return;
      const all = Buffer.from([...(known ?? []), ...missing].join(','));
      const temp = `${cacheFile}.${process.pid}.tmp`;
      try {
        const u32 = (n) => {
          const b = Buffer.alloc(4);
          b.writeUInt32LE(n);
          return b;
        };
        fs.writeFileSync(temp, Buffer.concat([MAGIC, u32(source.length), source, u32(all.length), all, script.createCachedData()]));
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
