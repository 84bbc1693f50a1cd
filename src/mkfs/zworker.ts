// Worker thread: compresses whole files with its own compressor and scratch buffers and
// sends back the pclusters (numbered from block 0) for the main thread to place.

import { parentPort, workerData } from 'node:worker_threads';
import { createCompressor } from '../compress/index.js';
import { BuildError } from './errors.js';
import { compressStream, type ZJob, type ZParams, zBuffers } from './zdata.js';
import type { ZReply } from './zpool.js';

const params = workerData as ZParams;
const compressors = params.specs.map((s) =>
  createCompressor(s.name, { level: s.level, dictSize: s.dictSize, maxPclusterBytes: params.maxPclusterBytes }),
);
const buffers = zBuffers(params);
let out = new Uint8Array(1 << 20);

parentPort!.on('message', ({ id, job }: { id: number; job: ZJob }) => {
  const blksz = 1 << params.blkszbits;
  let reply: ZReply;
  try {
    let used = 0;
    const res = compressStream(compressors[job.algorithm]!, params, job, buffers, (rel, bytes) => {
      const end = rel * blksz + bytes.length;
      if (end > out.length) {
        const grown = new Uint8Array(Math.max(end, out.length * 2));
        grown.set(out.subarray(0, used));
        out = grown;
      }
      out.set(bytes, rel * blksz);
      used = end;
    });
    reply = { id, res, data: out.slice(0, used) };
  } catch (e) {
    reply = { id, error: (e as Error).message, internal: !(e instanceof BuildError) };
  }
  parentPort!.postMessage(reply, reply.data ? [reply.data.buffer as ArrayBuffer] : []);
});
