/**
 * Conditional skips for machines that lack root, an EROFS kernel or a system library.
 * Each skip is announced on stderr; with EROFS_REQUIRE_ALL=1 (set by .ci/run, whose
 * machine has all of them) a missing prerequisite fails the run instead of skipping.
 */
export function skipUnless(available: boolean, what: string): boolean {
  if (available) return false;
  if (process.env.EROFS_REQUIRE_ALL === '1') throw new Error(`EROFS_REQUIRE_ALL=1 but ${what} is not available`);
  console.warn(`\n*** SKIPPING tests that need ${what} ***\n`);
  return true;
}

export const isRoot = process.getuid?.() === 0;
