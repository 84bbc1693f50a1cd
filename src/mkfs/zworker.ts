// Worker thread: compresses whole files with its own compressor and scratch buffers and
// sends back the pclusters (numbered from block 0) for the main thread to place.

import { parentPort, workerData } from 'node:worker_threads';
import { createCompressor } from '../compress/index.js';
import { BuildError } from './errors.js';
import { compressStream, type ZJob, zBuffers } from './zdata.js';
import { CHUNK_BYTES, type ZAnswer, type ZMessage, type ZReply, type ZWorkerData } from './zpool.js';

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
/** The job in progress: its output so far, and where its bytes in `chunk` start. */
let pieces: Uint8Array[] = [];
let pieceStart = 0;

function closePiece(): void {
  if (chunkUsed > pieceStart) pieces.push(chunk.subarray(pieceStart, chunkUsed));
  pieceStart = chunkUsed;
}

/** Room in `chunk` for at least one byte; returns how much. */
function room(): number {
  if (chunkUsed === chunk.length) {
    closePiece();
    chunk = new Uint8Array(spare.pop() ?? new ArrayBuffer(CHUNK_BYTES));
    chunkUsed = 0;
    pieceStart = 0;
    sent.push(chunk.buffer as ArrayBuffer);
  }
  return chunk.length - chunkUsed;
}

function put(bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) {
    const n = Math.min(bytes.length - done, room());
    chunk.set(n === bytes.length ? bytes : bytes.subarray(done, done + n), chunkUsed);
    chunkUsed += n;
    done += n;
  }
}

/** Zeros, written: a reused chunk holds old bytes. */
function putZeros(count: number): void {
  for (let done = 0; done < count; ) {
    const n = Math.min(count - done, room());
    chunk.fill(0, chunkUsed, chunkUsed + n);
    chunkUsed += n;
    done += n;
  }
}

function compressOne(id: number, job: ZJob): ZReply {
  pieces = [];
  pieceStart = chunkUsed;
  try {
    let used = 0;
    // Every byte of every block is emitted, in order; a gap (padding) is zeros.
    const res = compressStream(compressors[job.algorithm]!, params, job, buffers, (at, bytes) => {
      if (at > used) putZeros(at - used);
      put(bytes);
      used = at + bytes.length;
    });
    closePiece();
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
  const began = performance.now();
  const replies: ZReply[] = [];
  for (const { id, job } of m.jobs) {
    if (Atomics.load(stop, 0) !== 0) return;
    replies.push(compressOne(id, job));
  }
  // The chunk in progress goes too: the next batch starts a fresh one.
  const answer: ZAnswer = { replies, busyMs: performance.now() - began };
  parentPort!.postMessage(answer, sent);
  sent = [];
  chunk = new Uint8Array(0);
  chunkUsed = 0;
});
