// Streaming zstd decoder for tar input (zstd-compressed layers) through libzstd's ZSTD_DStream,
// which runs from one frame into the next by itself, so concatenated frames need nothing extra.
//
// ZSTD_inBuffer {const void *src; size_t size; size_t pos} and ZSTD_outBuffer {void *dst;
// size_t size; size_t pos}: 24 bytes each on 64-bit. They and the data buffers live in native
// memory so the pointers in them stay valid.

import { getKoffi, loadZstd, NativeBuffer, ZSTD_d_windowLogMax, type ZstdNative } from '../compress/native.js';
import { feedInput } from './feed.js';

const OUT_SIZE = 1 << 20;
const BUF_STRUCT = 24;
const OFF_PTR = 0;
const OFF_SIZE = 8;
const OFF_POS = 16;
// Layers made with --long or high levels can use windows beyond the default 128 MiB limit.
const WINDOW_LOG_MAX = 31;

/** A size_t result as a number; error codes are (size_t)-code, which koffi returns as a BigInt. */
function check(nat: ZstdNative, r: number | bigint): number {
  if (typeof r === 'bigint' || nat.isError(r) !== 0) throw new Error(`zstd: ${String(nat.getErrorName(r))}`);
  return r;
}

/** The decompressed bytes of `src`, in chunks of at most 1 MiB. */
export async function* unzstd(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const nat = loadZstd(); // a missing libzstd throws its NativeLibraryError unchanged
  const koffi = getKoffi();
  if (koffi.sizeof('void *') !== 8 || koffi.sizeof('size_t') !== 8) {
    throw new Error('zstd: only 64-bit platforms are supported (ZSTD_inBuffer layout)');
  }
  const inSize = Math.max(1 << 16, Number(nat.dStreamInSize()));
  const inBuf = new NativeBuffer(inSize);
  const outBuf = new NativeBuffer(OUT_SIZE);
  const inDesc = new NativeBuffer(BUF_STRUCT);
  const outDesc = new NativeBuffer(BUF_STRUCT);
  const ind = new DataView(inDesc.view.buffer, inDesc.view.byteOffset, BUF_STRUCT);
  const outd = new DataView(outDesc.view.buffer, outDesc.view.byteOffset, BUF_STRUCT);
  const outPos = () => Number(outd.getBigUint64(OFF_POS, true));
  const resetOut = () => {
    outd.setBigUint64(OFF_PTR, outBuf.address, true);
    outd.setBigUint64(OFF_SIZE, BigInt(OUT_SIZE), true);
    outd.setBigUint64(OFF_POS, 0n, true);
  };
  // A copy: the native buffer is reused for the next chunk.
  const take = () => {
    const chunk = Buffer.from(outBuf.view.subarray(0, outPos()));
    resetOut();
    return chunk;
  };
  let ds: unknown = null;
  try {
    ds = nat.createDStream();
    if (!ds) throw new Error('zstd: ZSTD_createDStream failed');
    check(nat, nat.dctxSetParameter(ds, ZSTD_d_windowLogMax, WINDOW_LOG_MAX) as number | bigint);
    resetOut();
    // Last result of ZSTD_decompressStream: 0 once a frame is complete and fully flushed.
    let hint = 1;
    for await (const n of feedInput(src, inBuf.view, 'zstd: empty input (not a zstd stream)')) {
      ind.setBigUint64(OFF_PTR, inBuf.address, true);
      ind.setBigUint64(OFF_SIZE, BigInt(n), true);
      ind.setBigUint64(OFF_POS, 0n, true);
      // A full output buffer may leave data inside the decoder: call again after handing it out,
      // unless the frame just ended (hint 0; another call would start on the next frame's header).
      for (;;) {
        hint = check(nat, nat.decompressStream(ds, outDesc.ptr, inDesc.ptr) as number | bigint);
        const full = outPos() === OUT_SIZE;
        if (full) yield take();
        if (Number(ind.getBigUint64(OFF_POS, true)) === n && !(full && hint !== 0)) break;
      }
    }
    if (hint !== 0) throw new Error('zstd: truncated input');
    if (outPos() > 0) yield take();
  } finally {
    // Also reached when the consumer stops early (return()) or an error is thrown.
    if (ds) nat.freeDStream(ds);
    inBuf.free();
    outBuf.free();
    inDesc.free();
    outDesc.free();
  }
}
