// File-copy thread: writes uncompressed file data into the image while the main thread is
// still walking the source tree (see copier.ts). Jobs arrive in batches, in order; the
// first failure is reported and the jobs after it are dropped.

import { parentPort, workerData } from 'node:worker_threads';
import { byteOffset } from '../format/types.js';
import type { CopierData, CopyMessage, CopyReply } from './copier.js';
import { BuildError } from './errors.js';
import { copyFileData } from './file-copy.js';
import { FdWriter } from './writer.js';

const data = workerData as CopierData;
// Files are small on the whole: a MiB merges hundreds of them into one write.
const image = new FdWriter(data.imageFd, data.imagePath, 1 << 20);
const tails = new FdWriter(data.tailsFd, data.tailsPath, 256 << 10);
const buf = Buffer.allocUnsafe(data.bufferBytes);
let failed = false;

function fail(e: unknown): void {
  failed = true;
  const reply: CopyReply = { error: (e as Error).message, internal: !(e instanceof BuildError) };
  parentPort!.postMessage(reply);
}

parentPort!.on('message', (m: CopyMessage) => {
  if (m.jobs && !failed) {
    try {
      for (const job of m.jobs) {
        const path = Buffer.from(job.path.buffer, job.path.byteOffset, job.path.byteLength);
        const steps = copyFileData(
          { path, size: job.size, inlineTail: job.inlineTail, dst: byteOffset(job.dst), spool: null, untouched: true },
          image,
          buf,
        );
        let step = steps.next();
        while (!step.done) step = steps.next();
        if (step.value) tails.writeAt(byteOffset(job.tailAt), step.value);
      }
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
