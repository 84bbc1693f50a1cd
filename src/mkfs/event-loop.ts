// The build's long synchronous stretches (walks, metadata) give the event loop a turn now
// and then: signal handlers, the caller's AbortSignal, progress and the threads' messages
// run only there.

/** One turn of the event loop; throws the abort if the signal was aborted meanwhile. */
export async function eventLoopTurn(signal: AbortSignal | undefined): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  signal?.throwIfAborted();
}
