// Worker thread: compresses whole files with its own compressor and scratch buffers and
// sends back the pclusters (numbered from block 0) for the main thread to place.

import { parentPort, workerData } from 'node:worker_threads';
import { createCompressor } from '../compress/index.js';
import { BuildError } from './errors.js';
import { compressStream, type ZJob, zBuffers } from './zdata.js';
import { CHUNK_BYTES, type ZMessage, type ZReply, type ZWorkerData } from './zpool.js';

const { params, stop: stopBuffer } = workerData as ZWorkerData;
const stop = new Int32Array(stopBuffer);
const compressors = params.specs.map((s) =>
  createCompressor(s.name, { level: s.level, dictSize: s.dictSize, maxPclusterBytes: params.maxPclusterBytes }),
);
const buffers = zBuffers(params);
// Output goes out in chunks of CHUNK_BYTES, the results of a batch one after another (a big
// one across several). The main thread sends chunks back once it has written them
// (ZPool.written), so the same memory carries pcluster after pcluster: no buffer per result
// left to the main thread's garbage collector, none grown and copied for a big one.

/** Chunks back from the main thread, to fill again. */
const spare: ArrayBuffer[] = [];
const MAX_SPARE = 4;
let chunk = new Uint8Array(0);
let chunkUsed = 0;
/** Chunks filled for the batch in progress: they go with its replies. */
let sent: ArrayBuffer[] = [];
const zeros = new Uint8Array(64 << 10);

/** Appends bytes to the batch's chunks; `pieces` gets views of where they went. */
function append(pieces: Uint8Array[], bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) {
    if (chunkUsed === chunk.length) {
      chunk = new Uint8Array(spare.pop() ?? new ArrayBuffer(CHUNK_BYTES));
      chunkUsed = 0;
      sent.push(chunk.buffer as ArrayBuffer);
    }
    const n = Math.min(bytes.length - done, chunk.length - chunkUsed);
    chunk.set(n === bytes.length ? bytes : bytes.subarray(done, done + n), chunkUsed);
    const last = pieces[pieces.length - 1];
    // Contiguous in the same chunk: one piece.
    if (last && last.buffer === chunk.buffer && last.byteOffset + last.length === chunkUsed) pieces[pieces.length - 1] = chunk.subarray(last.byteOffset, chunkUsed + n);
    else pieces.push(chunk.subarray(chunkUsed, chunkUsed + n));
    chunkUsed += n;
    done += n;
  }
}

function compressOne(id: number, job: ZJob): ZReply {
  try {
    const pieces: Uint8Array[] = [];
    let used = 0;
    // Every byte of every block is emitted (padding and raw tails as zeros), in order; a
    // reused chunk holds old bytes, so any gap is written as zeros too.
    const res = compressStream(compressors[job.algorithm]!, params, job, buffers, (at, bytes) => {
      for (; used < at; used += Math.min(zeros.length, at - used)) append(pieces, zeros.subarray(0, Math.min(zeros.length, at - used)));
      append(pieces, bytes);
      used += bytes.length;
    });
    return { id, res, data: pieces };
  } catch (e) {
    return { id, error: (e as Error).message, internal: !(e instanceof BuildError) };
  }
}

// Small files come in batches: one message each way for many files. A closing pool wants
// no more results: the thread ends once it has no call in progress.
parentPort!.on('message', (m: ZMessage) => {
  if (!('jobs' in m)) {
    parentPort!.close();
    return;
  }
  // A few kept; more would sit idle here (the main thread sends about what a batch takes).
  for (const c of m.spare) if (spare.length < MAX_SPARE) spare.push(c);
  const replies: ZReply[] = [];
  for (const { id, job } of m.jobs) {
    if (Atomics.load(stop, 0) !== 0) return;
    replies.push(compressOne(id, job));
  }
  // The chunk in progress goes too: the next batch starts a fresh one.
  parentPort!.postMessage(replies, sent);
  sent = [];
  chunk = new Uint8Array(0);
  chunkUsed = 0;
});
