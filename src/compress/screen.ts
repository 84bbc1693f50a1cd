// A quick test for input no compressor can shrink (data that is already compressed or
// encrypted), so the slow ones need not try: LZMA spends as long failing on such data as
// it spends compressing text, ~0.7 ms per 4 KiB.

import { Lz4JsEncoder } from './lz4.js';

/** Input looked at, at least; the caller stores this much raw when it is incompressible. */
export const SCREEN_SPAN = 64 << 10;

/**
 * Random bytes measure about 8 - 255 / (2 * n * ln 2) bits of order-0 entropy over n bytes
 * (7.997 for 64 KiB); below this, a literal coder could save something.
 */
const MIN_BITS_PER_BYTE = 7.99;
/**
 * And in every 4 KiB of it (random: 7.955, give or take 0.005), so that no pcluster-sized
 * part of it holds text, headers or padding a compressor could take a few bytes off.
 */
const PIECE = 4096;
const MIN_PIECE_BITS_PER_BYTE = 7.93;

/**
 * Most compressible input is told by its first kilobyte, at a quarter of a piece's cost
 * (the count runs as unoptimized code in a build of a second or two: 4 KiB per window took
 * 7% of the CPU of an lz4hc build of shared libraries). Random bytes measure 7.82 bits per
 * byte over 1 KiB, give or take 0.02: below 7.7, the input is not like them.
 */
const GLANCE = 1024;
const MIN_GLANCE_BITS_PER_BYTE = 7.7;

/** log2 of 0..n for the largest n asked so far, filled as needed. */
let log2Table: Float64Array | null = null;

export class IncompressibleScreen {
  private readonly lz4 = new Lz4JsEncoder();
  private readonly piece = new Uint32Array(256);
  private readonly whole = new Uint32Array(256);

  /**
   * True when `data` has near-uniform byte frequencies, in every 4 KiB and over all, and no
   * repeats LZ4 can use: no entropy coder gains a byte per pcluster on it, and no match
   * finder finds anything. Compressible data is usually told by its first 4 KiB. The JS
   * encoder is used everywhere, so the verdict does not depend on the machine.
   */
  incompressible(data: Uint8Array): boolean {
    const n = data.length;
    if (n === 0 || n > SCREEN_SPAN * 16) return false;
    // Bytes of the first piece already counted in `piece`: the glance's.
    let counted = 0;
    if (n >= PIECE) {
      this.piece.fill(0);
      for (let i = 0; i < GLANCE; i++) this.piece[data[i]!]!++;
      if (bitsPerByte(this.piece, GLANCE) < MIN_GLANCE_BITS_PER_BYTE) return false;
      counted = GLANCE;
    }
    this.whole.fill(0);
    for (let at = 0; at < n; at += PIECE) {
      const end = Math.min(n, at + PIECE);
      if (counted === 0) this.piece.fill(0);
      for (let i = at + counted; i < end; i++) this.piece[data[i]!]!++;
      counted = 0;
      if (end - at === PIECE && bitsPerByte(this.piece, PIECE) < MIN_PIECE_BITS_PER_BYTE) return false;
      for (let b = 0; b < 256; b++) this.whole[b]! += this.piece[b]!;
    }
    if (bitsPerByte(this.whole, n) < MIN_BITS_PER_BYTE) return false;
    // Greedy LZ4 with 1/64 less room than the input: filling it all means repeats were found.
    const cap = n - (n >> 6);
    this.lz4.compress(data, cap, 0);
    return this.lz4.consumed < n;
  }
}

/** Order-0 entropy of n bytes with these byte counts: log2(n) - sum(c * log2(c)) / n. */
function bitsPerByte(counts: Uint32Array, n: number): number {
  const table = log2Of(n);
  let sum = 0;
  for (let s = 0; s < 256; s++) sum += counts[s]! * table[counts[s]!]!;
  return table[n]! - sum / n;
}

function log2Of(n: number): Float64Array {
  if (!log2Table || log2Table.length <= n) {
    const from = log2Table?.length ?? 1;
    const grown = new Float64Array(n + 1);
    if (log2Table) grown.set(log2Table);
    for (let i = from; i <= n; i++) grown[i] = Math.log2(i);
    log2Table = grown;
  }
  return log2Table;
}
