// Worker thread: compresses whole files with its own compressor and scratch buffers and
// sends back the pclusters (numbered from block 0) for the main thread to place.

import { parentPort, workerData } from 'node:worker_threads';
import { createCompressor } from '../compress/index.js';
import { BuildError } from './errors.js';
import { compressStream, type ZJob, zBuffers } from './zdata.js';
import type { ZMessage, ZReply, ZWorkerData } from './zpool.js';

const { params, stop: stopBuffer } = workerData as ZWorkerData;
const stop = new Int32Array(stopBuffer);
const compressors = params.specs.map((s) =>
  createCompressor(s.name, { level: s.level, dictSize: s.dictSize, maxPclusterBytes: params.maxPclusterBytes }),
);
const buffers = zBuffers(params);
const OUT_BYTES = 1 << 20;
let out = new Uint8Array(OUT_BYTES);

function compressOne(id: number, job: ZJob): ZReply {
  try {
    let used = 0;
    // Every byte of every block is emitted (padding and raw tails as zeros), in order.
    const res = compressStream(compressors[job.algorithm]!, params, job, buffers, (at, bytes) => {
      const end = at + bytes.length;
      if (end > out.length) {
        const grown = new Uint8Array(Math.max(end, out.length * 2));
        grown.set(out.subarray(0, used));
        out = grown;
      }
      out.set(bytes, at);
      used = end;
    });
    if (used < OUT_BYTES) return { id, res, data: out.slice(0, used) };
    // A big segment's output is handed over as it is (no copy); the next job starts afresh.
    const data = out.subarray(0, used);
    out = new Uint8Array(OUT_BYTES);
    return { id, res, data };
  } catch (e) {
    return { id, error: (e as Error).message, internal: !(e instanceof BuildError) };
  }
}

// Small files come in batches: one message each way for many files. A closing pool wants
// no more results: the thread ends once it has no call in progress.
parentPort!.on('message', (m: ZMessage) => {
  if (!Array.isArray(m)) {
    parentPort!.close();
    return;
  }
  const replies: ZReply[] = [];
  for (const { id, job } of m) {
    if (Atomics.load(stop, 0) !== 0) return;
    replies.push(compressOne(id, job));
  }
  parentPort!.postMessage(replies, replies.flatMap((r) => (r.data ? [r.data.buffer as ArrayBuffer] : [])));
});
