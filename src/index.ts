// Public API of erofs-ts.
export { buildImage, type BuildResult } from './mkfs/build.js';
export { type BuildOptions, type Logger, type LogLevel, UsageError } from './mkfs/options.js';
export { BuildError } from './mkfs/errors.js';
export type { BlockAddr, Nid, ByteOffset } from './format/types.js';
