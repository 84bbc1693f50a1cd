// Worker thread: compresses whole files with its own compressor and scratch buffers and
// sends back the pclusters (numbered from block 0) for the main thread to place.

import { parentPort, workerData } from 'node:worker_threads';
import { createCompressor } from '../compress/index.js';
import { BuildError } from './errors.js';
import { type FileToCopy, runCopy } from './file-copy.js';
import { zBuffers } from './zdata.js';
import { ChunkedCompressor, discardChunk, type ZReply } from './zchunks.js';
import { FdAppender, FdWriter } from './writer.js';
import type { ZAnswer, ZFlatAnswer, ZMessage, ZWorkerData } from './zpool.js';

const { params, spill, stop: stopBuffer } = workerData as ZWorkerData;
const stop = new Int32Array(stopBuffer);
const compressors = params.specs.map((s) =>
  createCompressor(s.name, { level: s.level, dictSize: s.dictSize, maxPclusterBytes: params.maxPclusterBytes }),
);

/**
 * Chunks back from the main thread, to fill again. A fresh chunk costs a page fault per 4
 * KiB (0.2 ms): while the main thread walks the tree it writes nothing, and this thread's
 * output then takes fresh chunks; kept afterwards, they carry the rest of the build (lz4 on
 * a Debian root: 75 fresh chunks rather than 125-180, 30 ms less CPU).
 */
const spare: ArrayBuffer[] = [];
const MAX_SPARE = 16;
const chunked = new ChunkedCompressor(
  compressors,
  params,
  zBuffers(params),
  () => spare.pop(),
  spill ? new FdAppender(spill.fd, spill.path) : null,
);

// Small files come in batches: one message each way for many files. A closing pool wants
// no more results: the thread ends once it has no call in progress.
parentPort!.on('message', (m: ZMessage) => {
  if ('flat' in m) {
    parentPort!.postMessage(copyFlat(m.flat, new FdWriter(m.imageFd, m.imagePath, FLAT_BUFFER_BYTES)));
    return;
  }
  if (!('jobs' in m)) {
    parentPort!.close();
    return;
  }
  // The main thread sends about what the batch takes, and one more.
  for (const c of m.spare) {
    if (spare.length < MAX_SPARE) spare.push(c);
    else discardChunk(c);
  }
  const began = performance.now();
  const replies: ZReply[] = [];
  for (const { id, job } of m.jobs) {
    if (Atomics.load(stop, 0) !== 0) return;
    replies.push(chunked.run(id, job));
  }
  const chunks = chunked.takeChunks();
  const answer: ZAnswer = { replies, busyMs: performance.now() - began };
  parentPort!.postMessage(answer, chunks);
});

/**
 * The flat copies' read buffer and merged writes: the files of 64 KiB and more are copied in
 * the kernel, and this thread's memory counts in the build's peak.
 */
const FLAT_BUFFER_BYTES = 256 << 10;

/**
 * Files compression lost on, copied flat from their sources into the image (blocks nothing
 * else wrote: holes stay holes) while the main thread writes the metadata. Stops after the
 * file in progress once the pool is closing.
 */
function copyFlat(copies: readonly FileToCopy[], image: FdWriter): ZFlatAnswer {
  const buf = Buffer.allocUnsafe(FLAT_BUFFER_BYTES);
  try {
    for (const c of copies) {
      if (Atomics.load(stop, 0) !== 0) return { flatError: 'stopped', internal: true };
      // Its inline tail came back with its result; the one read here goes unused.
      runCopy(c, image, buf);
    }
    image.flush();
    return { flatDone: true };
  } catch (e) {
    return { flatError: (e as Error).message, internal: !(e instanceof BuildError) };
  }
}
