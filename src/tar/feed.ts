// Input for the native streaming decoders (xz.ts, zstd.ts): the stream's bytes copied into
// the decoder's fixed native input buffer, a buffer's worth at a time.

/**
 * Copies `src` into `buf` piece by piece, yielding each piece's length once it is there;
 * the caller decodes it before asking for the next. Throws `emptyMessage` if src has no bytes.
 */
export async function* feedInput(src: AsyncIterable<Buffer>, buf: Uint8Array, emptyMessage: string): AsyncGenerator<number> {
  let total = 0;
  for await (const chunk of src) {
    total += chunk.length;
    for (let off = 0; off < chunk.length; ) {
      const n = Math.min(chunk.length - off, buf.length);
      buf.set(chunk.subarray(off, off + n));
      off += n;
      yield n;
    }
  }
  if (total === 0) throw new Error(emptyMessage);
}
