import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ByteReader } from '../../src/tar/bytes.js';
import { parseTarHeader, parseTarNumber, TarFormatError } from '../../src/tar/header.js';
import { parsePaxRecords, parsePaxTime } from '../../src/tar/pax.js';
import { type TarEntry, TarReader } from '../../src/tar/reader.js';
import { makeTar, paxRecords, type TarMember, tarHeader } from '../helpers/tar.js';

/** Feeds bytes in awkward pieces, as a pipe would. */
async function* pieces(b: Buffer, size = 333): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function readAll(tar: Buffer, opts: { headerball?: boolean } = {}): Promise<{ entries: Array<TarEntry & { data: string }>; warnings: string[]; end: number }> {
  const warnings: string[] = [];
  const r = new TarReader(new ByteReader(pieces(tar)[Symbol.asyncIterator]()), { ...opts, warn: (m) => warnings.push(m) });
  const entries: Array<TarEntry & { data: string }> = [];
  for (let e = await r.next(); e; e = await r.next()) {
    const chunks: Buffer[] = [];
    await r.readData((p) => chunks.push(Buffer.from(p)));
    entries.push({ ...e, path: Buffer.from(e.path), linkpath: Buffer.from(e.linkpath), data: Buffer.concat(chunks).toString() });
  }
  return { entries, warnings, end: r.offset };
}

describe('tar numbers', () => {
  const field = (s: string, width = 12) => Buffer.from(s.padEnd(width, '\0'), 'latin1');

  it('reads octal with leading spaces and a NUL or space terminator', () => {
    expect(parseTarNumber(field('0000644\0', 8), 'mode')).toBe(0o644);
    expect(parseTarNumber(field('   755 ', 8), 'mode')).toBe(0o755);
    expect(parseTarNumber(field('', 8), 'mode')).toBe(0);
  });

  it('reads GNU base-256, positive and negative', () => {
    const pos = Buffer.alloc(12);
    pos[0] = 0x80;
    pos.writeUIntBE(2 ** 40 + 5, 6, 6);
    expect(parseTarNumber(pos, 'size')).toBe(2 ** 40 + 5);
    const neg = Buffer.alloc(12, 0xff);
    neg[11] = 0xfe; // -2
    expect(parseTarNumber(neg, 'mtime')).toBe(-2);
  });

  it('refuses digits that are not octal, garbage after the number, and values past 2^53', () => {
    expect(() => parseTarNumber(field('0009'), 'size')).toThrow(TarFormatError);
    expect(() => parseTarNumber(field('12 x'), 'size')).toThrow(TarFormatError);
    const huge = Buffer.alloc(12, 0);
    huge[0] = 0x80;
    huge[1] = 0x7f;
    expect(() => parseTarNumber(huge, 'size')).toThrow(/out of range/);
  });
});

describe('tar headers', () => {
  it('checks the checksum, also in the old signed-char form', () => {
    const h = tarHeader({ name: Buffer.from('caf\xe9', 'latin1'), data: 'x' });
    expect(parseTarHeader(h).size).toBe(1);
    // Recompute as signed chars: a byte above 127 counts 256 less.
    const signed = Buffer.from(h);
    let sum = 0;
    signed.fill(0x20, 148, 156);
    for (const b of signed) sum += b > 127 ? b - 256 : b;
    signed.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(parseTarHeader(signed).name.toString('latin1')).toBe('caf\xe9');
    expect(() => parseTarHeader(tarHeader({ name: 'x', badChecksum: true }))).toThrow(/checksum mismatch/);
  });

  it('sums the checksum the same wherever the header lies in memory, with every byte value', () => {
    // Bytes up to 0xff in every field around the checksum, at each alignment of the block.
    const h = tarHeader({ name: Buffer.from('\xff\xfe\x80'.repeat(33), 'latin1'), data: 'x' });
    h.fill(0xff, 100, 148);
    h.fill(0xfe, 156, 257);
    h.fill(0xff, 265, 512);
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    for (let shift = 0; shift < 4; shift++) {
      const at = Buffer.alloc(512 + 4);
      h.copy(at, shift);
      expect(() => parseTarHeader(at.subarray(shift, shift + 512))).not.toThrow(/checksum/);
      at[shift + 511] ^= 1;
      expect(() => parseTarHeader(at.subarray(shift, shift + 512))).toThrow(/checksum mismatch/);
    }
  });

  it('joins the ustar prefix, but not in GNU headers, whose prefix field holds times', () => {
    const h = tarHeader({ name: 'file' });
    h.write('some/dir', 345, 'latin1');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(parseTarHeader(h).name.toString()).toBe('some/dir/file');
  });
});

describe('PAX records', () => {
  it('splits records by their lengths, values may hold spaces, newlines and NULs', () => {
    const recs = parsePaxRecords(paxRecords({ path: 'a b\nc', 'SCHILY.xattr.user.x': Buffer.from([0, 1, 0]) }));
    expect(recs.map((r) => r.key)).toEqual(['path', 'SCHILY.xattr.user.x']);
    expect(recs[0]!.value.toString()).toBe('a b\nc');
    expect([...recs[1]!.value]).toEqual([0, 1, 0]);
  });

  it('refuses lengths that do not match the record', () => {
    expect(() => parsePaxRecords(Buffer.from('99 path=x\n'))).toThrow(/malformed/);
    expect(() => parsePaxRecords(Buffer.from('8 path=x\n'))).toThrow(/malformed/);
    expect(() => parsePaxRecords(Buffer.from('x9 path=x\n'))).toThrow(/malformed/);
  });

  it('reads times with fractions, also before 1970', () => {
    expect(parsePaxTime(Buffer.from('1700000000.5'))).toEqual({ sec: 1_700_000_000, nsec: 500_000_000 });
    expect(parsePaxTime(Buffer.from('-1.25'))).toEqual({ sec: -2, nsec: 750_000_000 });
    expect(parsePaxTime(Buffer.from('12.1234567891'))).toEqual({ sec: 12, nsec: 123_456_789 });
    expect(() => parsePaxTime(Buffer.from('1e9'))).toThrow(/invalid/);
  });
});

describe('the tar reader', () => {
  const file = (name: string, data: string, more: Partial<TarMember> = {}): TarMember => ({ name, data, ...more });

  it('gives members with their data, fed in arbitrary pieces, and ends at the end marker', async () => {
    const tar = makeTar([file('a', 'x'.repeat(700)), { name: 'd/', type: '5' }, file('d/b', '')]);
    const { entries, end } = await readAll(Buffer.concat([tar, Buffer.alloc(4096)]));
    expect(entries.map((e) => [e.type, e.path.toString(), e.data.length])).toEqual([
      ['file', 'a', 700],
      ['directory', 'd/', 0],
      ['file', 'd/b', 0],
    ]);
    // The end is right after the two zero blocks, not at the end of the padding.
    expect(end).toBe(tar.length);
  });

  it('applies a global header to later members, and an emptied record restores the header field', async () => {
    const g: TarMember = { name: 'g', type: 'g', data: paxRecords({ uid: '77', gid: '88' }) };
    const { entries } = await readAll(makeTar([g, file('a', '1', { uid: 5 }), file('b', '2', { pax: { uid: '' } , uid: 6 })]));
    expect(entries.map((e) => [e.uid, e.gid])).toEqual([[77, 88], [6, 88]]);
  });

  it('accepts an archive holding only a global header', async () => {
    const { entries } = await readAll(makeTar([{ name: 'g', type: 'g', data: paxRecords({ comment: 'hi' }) }]));
    expect(entries).toEqual([]);
  });

  it('warns about a missing end marker and a lone zero block, and skips unknown member types', async () => {
    const tar = makeTar([file('a', '1'), { name: 'weird', type: 'Z', data: 'skipped' }, file('b', '2')], { end: false });
    const withLone = Buffer.concat([tar.subarray(0, 1024), Buffer.alloc(512), tar.subarray(1024)]);
    const { entries, warnings } = await readAll(withLone);
    expect(entries.map((e) => e.path.toString())).toEqual(['a', 'b']);
    expect(warnings.join('\n')).toMatch(/lone zero block/);
    expect(warnings.join('\n')).toMatch(/unknown type 'Z'/);
    expect(warnings.join('\n')).toMatch(/without an end-of-archive marker/);
  });

  it('in a headerball, files keep their size but no data follows them', async () => {
    const tar = Buffer.concat([tarHeader({ name: 'big', size: 1 << 30 }), tarHeader({ name: 'next', size: 0 }), Buffer.alloc(1024)]);
    const { entries } = await readAll(tar, { headerball: true });
    expect(entries.map((e) => [e.path.toString(), e.fileSize, e.size])).toEqual([
      ['big', 1 << 30, 0],
      ['next', 0, 0],
    ]);
  });

  it('records where each member and its data start', async () => {
    const tar = makeTar([file('a', 'x'), file('b', 'y', { pax: { mtime: '5.5' } })]);
    const { entries } = await readAll(tar);
    expect(entries.map((e) => [e.headerOffset, e.dataOffset])).toEqual([
      [0, 512],
      [1024, 2560],
    ]);
  });

  it('from a file, keeps every name and link target while its read buffer is reused', async () => {
    const members: TarMember[] = [];
    for (let i = 0; i < 3000; i++) {
      members.push(i % 3 === 0 ? { name: `l${i}`, type: '2', linkname: `target-${i}` } : file(`f${i}`, 'y'.repeat(i % 700)));
    }
    const dir = mkdtempSync(join(tmpdir(), 'erofs-tar-'));
    try {
      writeFileSync(`${dir}/t.tar`, makeTar(members));
      const fd = openSync(`${dir}/t.tar`, 'r');
      try {
        const r = new TarReader(new ByteReader({ fd, size: makeTar(members).length }));
        const seen: TarEntry[] = [];
        for (let e = await r.next(); e; e = await r.next()) seen.push(e);
        expect(seen.map((e) => [e.path.toString(), e.linkpath.toString()])).toEqual(
          members.map((m) => [m.name, m.linkname ?? '']),
        );
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

