// Shared by the commands: a closed pipe on stdout (`dump.erofs ... | head`) ends the
// command quietly, as it does for C tools, instead of an unhandled EPIPE error.

export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}
