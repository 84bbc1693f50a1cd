import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { BATCH_BYTES, BATCH_FILES, SmallFileReads } from '../../src/mkfs/small-reads.js';
import { Uring } from '../../src/mkfs/uring.js';
import { scratchDir } from '../helpers/build.js';

/** io_uring with linked file slots: Linux 5.18 or later, where no sysctl turns it off. */
function uringExpected(): boolean {
  const [major, minor] = release().split('.').map(Number) as [number, number];
  let disabled = '0';
  try {
    disabled = readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim();
  } catch {
    // older kernels have no such switch
  }
  return process.platform === 'linux' && (major > 5 || (major === 5 && minor >= 18)) && disabled === '0';
}

describe('small files read whole in batches through io_uring', () => {
  const out = scratchDir('erofs-small-reads-');
  afterAll(() => out.cleanup());

  /** Batched reads whose handler records what each file came back with. */
  const reader = () => {
    const seen: Array<{ name: string; bytes: Buffer | null }> = [];
    const reads = SmallFileReads.create<string>((name, bytes) => seen.push({ name, bytes: bytes && Buffer.from(bytes) }));
    return { reads, seen };
  };
  const file = (name: string, bytes: Buffer): string => {
    const path = `${out.dir}/${name}`;
    writeFileSync(path, bytes);
    return path;
  };

  it('is there on this kernel exactly when the kernel offers io_uring with linked file slots', () => {
    const { reads } = reader();
    expect(reads !== null).toBe(uringExpected());
    reads?.close();
  });

  it.runIf(uringExpected())('gives every file its bytes, in the order added, over many batches of files and of bytes', () => {
    const { reads, seen } = reader();
    // More files than a batch takes, and sizes that fill a batch's bytes before its files.
    const sizes = Array.from({ length: 3 * BATCH_FILES + 5 }, (_, i) => (i % 7 === 0 ? 60_000 : 1 + ((i * 911) % 9000)));
    const files = sizes.map((n, i) => ({ name: `f${i}`, bytes: randomBytes(n) }));
    for (const f of files) expect(reads!.add(Buffer.from(file(f.name, f.bytes)), f.bytes.length, f.name)).toBe(true);
    reads!.flush();
    reads!.close();
    expect(seen.map((s) => s.name)).toEqual(files.map((f) => f.name));
    seen.forEach((s, i) => expect(s.bytes?.equals(files[i]!.bytes)).toBe(true));
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(2 * BATCH_BYTES);
  });

  it.runIf(uringExpected())('takes a path with its NUL already after it', () => {
    const { reads, seen } = reader();
    const bytes = randomBytes(100);
    reads!.add(Buffer.concat([Buffer.from(file('nul', bytes)), Buffer.alloc(1)]), 100, 'nul');
    reads!.flush();
    reads!.close();
    expect(seen[0]!.bytes?.equals(bytes)).toBe(true);
  });

  it.runIf(uringExpected())('gives no bytes for a file that is missing, a symlink, grew or shrank, and still reads those around it', () => {
    const { reads, seen } = reader();
    const before = randomBytes(500);
    const after = randomBytes(700);
    const grew = file('grew', randomBytes(100));
    appendFileSync(grew, 'x');
    const shrank = file('shrank', randomBytes(100));
    truncateSync(shrank, 60);
    symlinkSync(file('target', randomBytes(100)), `${out.dir}/link`);
    reads!.add(Buffer.from(file('before', before)), 500, 'before');
    reads!.add(Buffer.from(`${out.dir}/missing`), 100, 'missing');
    reads!.add(Buffer.from(`${out.dir}/link`), 100, 'link');
    reads!.add(Buffer.from(grew), 100, 'grew');
    reads!.add(Buffer.from(shrank), 100, 'shrank');
    reads!.add(Buffer.from(file('after', after)), 700, 'after');
    reads!.flush();
    reads!.close();
    expect(seen.map((s) => [s.name, s.bytes?.length ?? null])).toEqual([
      ['before', 500],
      ['missing', null],
      ['link', null],
      ['grew', null],
      ['shrank', null],
      ['after', 700],
    ]);
    expect(seen[0]!.bytes!.equals(before)).toBe(true);
    expect(seen[5]!.bytes!.equals(after)).toBe(true);
  });

  it.runIf(uringExpected())('after a failed system call gives the batch back without bytes and refuses the rest', () => {
    const { reads, seen } = reader();
    const run = vi.spyOn(Uring.prototype, 'run').mockImplementationOnce(() => {
      throw new Error('io_uring_enter failed: errno 5');
    });
    try {
      reads!.add(Buffer.from(file('one', randomBytes(10))), 10, 'one');
      reads!.add(Buffer.from(file('two', randomBytes(20))), 20, 'two');
      reads!.flush();
      expect(seen).toEqual([
        { name: 'one', bytes: null },
        { name: 'two', bytes: null },
      ]);
      expect(reads!.add(Buffer.from(file('three', randomBytes(5))), 5, 'three')).toBe(false);
      reads!.close();
    } finally {
      run.mockRestore();
    }
  });

  it.runIf(uringExpected())('refuses, queueing nothing, a file too big for a batch, a path too long, and anything once closed', () => {
    const { reads, seen } = reader();
    const path = Buffer.from(file('small', randomBytes(10)));
    expect(reads!.add(path, BATCH_BYTES, 'big')).toBe(false);
    expect(reads!.add(Buffer.alloc(4096, 'a'), 10, 'long')).toBe(false);
    reads!.close();
    expect(reads!.add(path, 10, 'closed')).toBe(false);
    reads!.flush();
    expect(seen).toEqual([]);
  });
});
