import { describe, expect, it } from 'vitest';
import { randomBytes, workerThreads, zlib } from '../src/builtins.js';

describe('built-in modules loaded on first use', () => {
  it('random bytes come in the length asked for, and differ from call to call', () => {
    const a = randomBytes(16);
    const b = randomBytes(16);
    expect(a.length).toBe(16);
    expect(randomBytes(0).length).toBe(0);
    expect(a.equals(b)).toBe(false);
  });

  it('zlib and worker_threads are the modules themselves', async () => {
    expect(zlib().createGunzip).toBe((await import('node:zlib')).createGunzip);
    expect(workerThreads().Worker).toBe((await import('node:worker_threads')).Worker);
  });
});
