// Public API of erofs-ts.
export { buildImage, type BuildResult, type InodeKind } from './mkfs/build.js';
export type { BuildProgress } from './mkfs/progress.js';
export type { ZdataStats as CompressionStats } from './mkfs/zdata.js';
export { type BuildOptions, type Logger, type LogLevel, UsageError } from './mkfs/options.js';
export { BuildError } from './mkfs/errors.js';
export type { BlockAddr, Nid, ByteOffset } from './format/types.js';
