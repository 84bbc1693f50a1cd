// Errors a user can act on: one line naming the path and the problem.

export class BuildError extends Error {
  override name = 'BuildError';
}

const MESSAGES: Record<string, string> = {
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  ENOSPC: 'No space left on device',
  EDQUOT: 'Disk quota exceeded',
  EROFS: 'Read-only file system',
  EIO: 'Input/output error',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  EMFILE: 'Too many open files',
  EFBIG: 'File too large',
};

/** strerror()-style text for a Node fs error, without Node's "ENOENT: ... 'path'" decoration. */
export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code && MESSAGES[code]) return MESSAGES[code]!;
  return code ?? (e instanceof Error ? e.message : String(e));
}

/** A source file that ended before the size it had when it was walked. */
export function fileShrank(shown: string, expected: number, got: number): BuildError {
  return new BuildError(`${shown}: file shrank while being read (expected ${expected} bytes, got ${got})`);
}

/** A source file that went on past the size it had when it was walked. */
export function fileGrew(shown: string, expected: number): BuildError {
  return new BuildError(`${shown}: file grew while being read (expected ${expected} bytes)`);
}

/** Bytes a tar's headers promised were not in the tar file: it shrank while it was read. */
export function tarEndedEarly(shown: string): BuildError {
  return new BuildError(`${shown}: the tar file ended early (did it change while it was read?)`);
}
