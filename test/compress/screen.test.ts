import { describe, expect, it } from 'vitest';
import { IncompressibleScreen, SCREEN_SPAN } from '../../src/compress/screen.js';
import { randomBytes, realText, textBytes } from './helpers.js';

describe('IncompressibleScreen', () => {
  const screen = new IncompressibleScreen();

  it('calls random bytes incompressible', () => {
    for (const seed of [1, 2, 3]) expect(screen.incompressible(randomBytes(SCREEN_SPAN, seed))).toBe(true);
  });

  it('calls text, code and zeros compressible', () => {
    expect(screen.incompressible(textBytes(SCREEN_SPAN))).toBe(false);
    expect(screen.incompressible(realText(SCREEN_SPAN))).toBe(false);
    expect(screen.incompressible(new Uint8Array(SCREEN_SPAN))).toBe(false);
  });

  it('calls random bytes with a short run of text in one 4 KiB piece compressible', () => {
    const data = randomBytes(SCREEN_SPAN, 4);
    data.set(textBytes(400, 5), 3 * 4096 + 100);
    expect(screen.incompressible(data)).toBe(false);
  });

  it('calls random bytes that repeat compressible (a match finder would use the repeat)', () => {
    const half = randomBytes(SCREEN_SPAN / 2, 6);
    const data = new Uint8Array(SCREEN_SPAN);
    data.set(half, 0);
    data.set(half, SCREEN_SPAN / 2);
    expect(screen.incompressible(data)).toBe(false);
  });

  it('calls base64 of random bytes compressible (six bits per byte: an entropy coder gains)', () => {
    const b64 = Buffer.from(Buffer.from(randomBytes(SCREEN_SPAN, 7)).toString('base64')).subarray(0, SCREEN_SPAN);
    expect(screen.incompressible(b64)).toBe(false);
  });

  it('gives up on empty input', () => {
    expect(screen.incompressible(new Uint8Array(0))).toBe(false);
  });
});
