// What the commands do when the reader of their output goes away (`dump.erofs ... | head`):
// Node reports EPIPE as an error event that would otherwise end the process uncaught.

/** Reading commands end quietly, as C tools do, when nobody reads their stdout any more. */
export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}

/**
 * mkfs goes on without its messages when nobody reads stdout or stderr any more: the image
 * is what was asked for, and stopping part way would leave a half-built temporary image
 * behind and, exiting 0, tell the caller the build succeeded.
 */
export function buildOnWithoutOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
}
