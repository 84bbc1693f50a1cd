import { describe, expect, it, vi } from 'vitest';

// Names as the walkers keep them: one char per byte, any byte but '/' and NUL.
const name = Buffer.from([0x61, 0x80, 0xe9, 0xff, 0x20, 0x2e]).toString('latin1');

describe('latin1 names back into bytes', () => {
  it('writes a char per byte at the offset, touching nothing else', async () => {
    const { writeLatin1 } = await import('../src/latin1.js');
    const buf = new Uint8Array(10).fill(0xaa);
    writeLatin1(buf, name, 3);
    expect([...buf]).toEqual([0xaa, 0xaa, 0xaa, 0x61, 0x80, 0xe9, 0xff, 0x20, 0x2e, 0xaa]);
  });

  it('writes the same bytes where Buffer has no latin1 encoder of its own', async () => {
    const proto = Buffer.prototype as Buffer & { latin1Write?: unknown };
    const own = proto.latin1Write;
    vi.resetModules();
    delete proto.latin1Write;
    try {
      const { writeLatin1 } = await import('../src/latin1.js');
      const buf = new Uint8Array(8);
      writeLatin1(buf, name, 1);
      expect([...buf]).toEqual([0, 0x61, 0x80, 0xe9, 0xff, 0x20, 0x2e, 0]);
    } finally {
      proto.latin1Write = own;
    }
  });
});
