// Fixed-output compression for codecs that only compress "all of this input" (zstd, DEFLATE):
// search the input prefix length whose compressed size is as close to the budget as practical.

/**
 * Compress src[0, len) into the codec's scratch buffer; return the compressed size (always
 * known: callers size their scratch to the codec's bound).
 */
export type TrialFn = (len: number) => number;
/** Keep the bytes of the trial that just ran (its size <= budget). */
export type KeepFn = (size: number) => void;

export interface SearchResult {
  consumed: number;
  size: number;
}

/**
 * Find a long prefix of an n-byte input whose compressed size fits `cap`.
 * Each probe's size narrows [lo, hi) (lo = longest prefix known to fit, hi = shortest known not to);
 * the next guess interpolates between the two known (length, size) points, or scales by the
 * observed ratio while only one side is known, falling back to bisection when that stalls.
 * Stops when a fitting probe is within `margin` bytes of cap, when lo + 1 = hi, or after maxProbes.
 */
export function searchPrefix(
  n: number,
  cap: number,
  margin: number,
  firstGuess: number,
  trial: TrialFn,
  keep: KeepFn,
  maxProbes = 16,
): SearchResult | null {
  let lo = 0;
  let loSize = 0;
  let hi = n + 1;
  let hiSize = 0;
  let guess = Math.min(n, Math.max(1, Math.floor(firstGuess)));
  // Aim a bit under the budget so the next probe more likely fits than not.
  const target = Math.max(1, cap - (margin >> 1));
  // Probes in a row that landed on the same side: size estimates are creeping, step harder.
  let sameSide = 0;
  let lastFit: boolean | null = null;
  let lastLen = 0;
  let lastSize = 0;
  for (let probe = 0; probe < maxProbes; probe++) {
    const size = trial(guess);
    const fit = size <= cap;
    sameSide = fit === lastFit ? sameSide + 1 : 0;
    lastFit = fit;
    if (fit) {
      lo = guess;
      loSize = size;
      keep(size);
      if (guess === n || cap - size <= margin) break;
    } else {
      hi = guess;
      hiSize = size;
    }
    if (hi - lo <= 1) break;
    const prevLen = lastLen;
    const prevSize = lastSize;
    lastLen = guess;
    lastSize = size;
    let next: number;
    if (lo > 0 && hi <= n) {
      // Both sides known: linear interpolation of size over length, or bisection when that creeps.
      next =
        sameSide >= 2
          ? lo + ((hi - lo) >> 1)
          : lo + Math.floor(((target - loSize) * (hi - lo)) / Math.max(1, hiSize - loSize));
    } else {
      // One side known: scale by the observed ratio. If the last two probes show the size
      // barely moving with the length (a plateau), the ratio step is far too timid: take a big one.
      next = Math.floor((guess * target) / Math.max(1, size));
      const plateau =
        sameSide >= 1 && Math.abs(size - prevSize) * guess * 2 < Math.abs(guess - prevLen) * size;
      if (plateau) next = fit ? Math.max(next, guess + (guess >> 1)) : Math.min(next, guess - (guess >> 2));
    }
    if (next >= hi && hi === n + 1) next = n; // the whole input may well fit: try it
    else if (next <= lo || next >= hi) next = lo + ((hi - lo) >> 1);
    guess = next;
  }
  return lo > 0 ? { consumed: lo, size: loSize } : null;
}
