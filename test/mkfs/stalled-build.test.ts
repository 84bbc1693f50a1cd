import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { ImageWriter } from '../../src/mkfs/writer.js';
import { keepSignalHandlers } from '../helpers/signals.js';

const dir = mkdtempSync(join(tmpdir(), 'erofs-stall-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A build that never settles, as one would with a bug that leaves nothing to wait for: its
// temporary image made, then no outcome.
vi.mock('../../src/mkfs/build.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/mkfs/build.js')>()),
  buildImage: vi.fn(() => {
    ImageWriter.create(join(dir, 'out.erofs'));
    return new Promise(() => {});
  }),
}));

const { main } = await import('../../src/cli/mkfs.js');

it('a build that stops without finishing ends with status 70 and says so, leaving no temporary image', async () => {
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  const before = process.exitCode;
  const restoreSignalHandlers = keepSignalHandlers();
  try {
    void main(['--quiet', join(dir, 'out.erofs'), dir]);
    await new Promise((r) => setImmediate(r));
    expect(readdirSync(dir).some((n) => n.endsWith('.tmp'))).toBe(true);
    // What Node does once nothing is left to wait for.
    process.emit('beforeExit', 0);
    expect(process.exitCode).toBe(70);
    expect(stderr.mock.calls.map(([s]) => String(s)).join('')).toContain('mkfs.erofs: internal error: the build stopped before it finished');
    expect(readdirSync(dir)).toEqual([]);
  } finally {
    process.exitCode = before;
    stderr.mockRestore();
    restoreSignalHandlers();
  }
});
