// Errors raised by the reader. Every problem found in an image surfaces as an
// ErofsError subclass, so callers (and the fuzz test) can tell "bad input" apart
// from a bug in the reader.

import type { Nid } from '../format/types.js';

export interface ErrorContext {
  nid?: Nid | undefined;
  path?: string | undefined;
}

/** Base class of everything the reader throws on purpose. */
export class ErofsError extends Error {
  nid: Nid | undefined;
  path: string | undefined;
  /** The bare description, without the nid/path decoration. */
  readonly reason: string;

  constructor(reason: string, ctx: ErrorContext = {}) {
    super(reason);
    this.name = new.target.name;
    this.reason = reason;
    this.nid = ctx.nid;
    this.path = ctx.path;
    this.message = this.describe();
  }

  /** Attaches a path (known only to callers walking the tree) if none is set yet. */
  withPath(path: string): this {
    if (this.path === undefined) {
      this.path = path;
      this.message = this.describe();
    }
    return this;
  }

  private describe(): string {
    const where: string[] = [];
    if (this.path !== undefined) where.push(this.path);
    if (this.nid !== undefined) where.push(`nid ${this.nid}`);
    return where.length > 0 ? `${where.join(', ')}: ${this.reason}` : this.reason;
  }
}

/** The image contradicts the on-disk format (or is truncated). */
export class CorruptImageError extends ErofsError {}

/** The image is well formed but uses something this reader does not implement. */
export class UnsupportedFeatureError extends ErofsError {}

/** A path or name that does not exist in the image. */
export class NotFoundError extends ErofsError {}

/** The caller asked for something that does not apply (readlink on a file, ...). */
export class InvalidArgumentError extends ErofsError {}

/** Throws a CorruptImageError unless `cond` holds. */
export function check(cond: boolean, reason: string | (() => string), ctx?: ErrorContext): asserts cond {
  if (!cond) throw new CorruptImageError(typeof reason === 'string' ? reason : reason(), ctx);
}
