// Streaming .xz decoder for tar input (--unxz) through liblzma's auto decoder, which also takes
// .lzma ("alone") files. LZMA_CONCATENATED makes it read stream after stream (as `xz -d` does)
// and report LZMA_STREAM_END only once LZMA_FINISH is given at the end of the input.
//
// lzma_stream (64-bit, 136 bytes, all zero = LZMA_STREAM_INIT): next_in @0, avail_in @8,
// next_out @24, avail_out @32. liblzma keeps next_in/next_out between calls, so the stream and
// both buffers live in native memory that does not move.

import { getKoffi, loadLzma, NativeBuffer } from '../compress/native.js';
import { feedInput } from './feed.js';

const LZMA_OK = 0;
const LZMA_STREAM_END = 1;
const LZMA_BUF_ERROR = 10;
const LZMA_RUN = 0;
const LZMA_FINISH = 3;
const LZMA_CONCATENATED = 0x08;
const NO_MEMLIMIT = 0xffff_ffff_ffff_ffffn;

const STREAM_SIZE = 136;
const OFF_NEXT_IN = 0;
const OFF_AVAIL_IN = 8;
const OFF_NEXT_OUT = 24;
const OFF_AVAIL_OUT = 32;

const IN_SIZE = 64 << 10;
const OUT_SIZE = 1 << 20;

const WHAT: Record<number, string> = {
  5: 'out of memory',
  6: 'memory limit reached',
  7: 'not an .xz or .lzma stream',
  8: 'unsupported options',
  9: 'corrupt input',
  10: 'truncated input',
};

function xzError(ret: number): Error {
  return new Error(`xz: ${WHAT[ret] ?? 'decoder failed'} (lzma_ret ${ret})`);
}

/** The decompressed bytes of `src`, in chunks of at most 1 MiB. */
export async function* unxz(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const nat = loadLzma(); // a missing liblzma throws its NativeLibraryError unchanged
  const koffi = getKoffi();
  if (koffi.sizeof('void *') !== 8 || koffi.sizeof('size_t') !== 8) {
    throw new Error('xz: only 64-bit platforms are supported (lzma_stream layout)');
  }
  const strm = new NativeBuffer(STREAM_SIZE);
  strm.view.fill(0);
  const dv = new DataView(strm.view.buffer, strm.view.byteOffset, STREAM_SIZE);
  const inBuf = new NativeBuffer(IN_SIZE);
  const outBuf = new NativeBuffer(OUT_SIZE);
  const resetOut = () => {
    dv.setBigUint64(OFF_NEXT_OUT, outBuf.address, true);
    dv.setBigUint64(OFF_AVAIL_OUT, BigInt(OUT_SIZE), true);
  };
  const availOut = () => Number(dv.getBigUint64(OFF_AVAIL_OUT, true));
  // A copy: the native buffer is reused for the next chunk.
  const take = () => {
    const chunk = Buffer.from(outBuf.view.subarray(0, OUT_SIZE - availOut()));
    resetOut();
    return chunk;
  };
  try {
    const r = nat.autoDecoder(strm.ptr, NO_MEMLIMIT, LZMA_CONCATENATED) as number;
    if (r !== LZMA_OK) throw xzError(r);
    resetOut();
    for await (const n of feedInput(src, inBuf.view, 'xz: empty input (not an .xz stream)')) {
      dv.setBigUint64(OFF_NEXT_IN, inBuf.address, true);
      dv.setBigUint64(OFF_AVAIL_IN, BigInt(n), true);
      // Each call stops when the input is used up or the output is full (hand that out first).
      while (dv.getBigUint64(OFF_AVAIL_IN, true) > 0n) {
        const ret = nat.code(strm.ptr, LZMA_RUN) as number;
        if (ret !== LZMA_OK) throw xzError(ret);
        if (availOut() === 0) yield take();
      }
    }
    // LZMA_FINISH flushes; LZMA_BUF_ERROR means liblzma still wanted input that never came.
    for (;;) {
      const ret = nat.code(strm.ptr, LZMA_FINISH) as number;
      if (ret === LZMA_STREAM_END) break;
      if (ret === LZMA_BUF_ERROR) throw new Error('xz: truncated input');
      if (ret !== LZMA_OK) throw xzError(ret);
      if (availOut() === 0) yield take();
    }
    if (availOut() < OUT_SIZE) yield take();
  } finally {
    // Also reached when the consumer stops early (return()) or an error is thrown.
    nat.end(strm.ptr);
    strm.free();
    inBuf.free();
    outBuf.free();
  }
}
