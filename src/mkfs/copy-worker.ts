// File-copy thread: writes uncompressed file data into the image while the main thread is
// still walking the source tree (see copier.ts). Jobs arrive in batches, in order; the
// first failure is reported and the jobs after it are dropped.

import { parentPort, workerData } from 'node:worker_threads';
import { byteOffset } from '../format/types.js';
import type { CopierData, CopyMessage, CopyReply } from './copier.js';
import { runCopy } from './file-copy.js';
import { BuildError } from './errors.js';
import { FdWriter } from './writer.js';

const data = workerData as CopierData;
// Files are small on the whole: a MiB merges hundreds of them into one write.
const image = new FdWriter(data.imageFd, data.imagePath, 1 << 20);
const tails = new FdWriter(data.tailsFd, data.tailsPath, 256 << 10);
const buf = Buffer.allocUnsafe(data.bufferBytes);
const done = new Int32Array(data.progress);
let failed = false;

function fail(e: unknown): void {
  failed = true;
  const reply: CopyReply = { error: (e as Error).message, internal: !(e instanceof BuildError) };
  parentPort!.postMessage(reply);
}

parentPort!.on('message', (m: CopyMessage) => {
  if (m.stop) {
    parentPort!.close();
    return;
  }
  for (const job of m.jobs ?? []) {
    if (!failed && Atomics.load(done, 1) === 0) {
      try {
        const tail = runCopy(job, image, buf);
        if (tail) tails.writeAt(byteOffset(job.tailAt), tail);
      } catch (e) {
        fail(e);
      }
    }
    // Dropped jobs count too: the walk must not wait for a thread that has stopped copying.
    Atomics.add(done, 0, 1);
  }
  // The batch's tails on disk: the inode writer reads them from the spool from now on
  // (jobs dropped on a stop have none, but nothing reads tails after a stop).
  if (!failed && Atomics.load(done, 1) === 0) {
    try {
      tails.flush();
      Atomics.store(done, 2, Atomics.load(done, 0));
    } catch (e) {
      fail(e);
    }
  }
  if (m.end) {
    try {
      if (!failed) {
        image.flush();
        tails.flush();
      }
    } catch (e) {
      fail(e);
    }
    const reply: CopyReply = { done: true };
    parentPort!.postMessage(reply);
  }
});
