/**
 * A small tar writer for tests: ustar, GNU (L/K long names, base-256 numbers) and PAX
 * members built byte by byte, including deliberately broken ones.
 */

export interface TarMember {
  name: string | Buffer;
  /** Typeflag character: '0' file, '1' hard link, '2' symlink, '3' chr, '4' blk, '5' dir, '6' fifo, 'x', 'g', 'L', 'K', ... */
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  data?: string | Buffer;
  /** Overrides the size field (the data written stays `data`). */
  size?: number;
  linkname?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  /** 'ustar' (default), 'gnu' or 'v7' header magic. */
  magic?: 'ustar' | 'gnu' | 'v7';
  /** Write numeric fields in GNU base-256. */
  base256?: boolean;
  /** Corrupt the checksum. */
  badChecksum?: boolean;
  /** PAX records written as an 'x' header before this member. */
  pax?: Record<string, string | Buffer>;
}

const enc = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s) : s);

function octal(n: number, width: number): Buffer {
  const s = n.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new Error(`tar helper: ${n} does not fit ${width} octal digits`);
  return Buffer.from(`${s}\0`, 'latin1');
}

function base256(n: number, width: number): Buffer {
  const b = Buffer.alloc(width);
  let v = BigInt(n);
  if (v < 0n) v += 1n << BigInt(8 * width - 8);
  for (let i = width - 1; i >= 1; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[0] = n < 0 ? 0xff : 0x80;
  return b;
}

export function paxRecords(records: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${k}=`), enc(v), Buffer.from('\n')]);
    // The length counts its own digits.
    let len = body.length + 1;
    while (String(len).length + body.length > len) len++;
    parts.push(Buffer.from(String(len)), body);
  }
  return Buffer.concat(parts);
}

export function tarHeader(m: TarMember): Buffer {
  const h = Buffer.alloc(512);
  const data = enc(m.data ?? '');
  const num = (n: number, off: number, width: number) => (m.base256 ? base256(n, width) : octal(n, width)).copy(h, off);
  enc(m.name).copy(h, 0, 0, 100);
  num(m.mode ?? 0o644, 100, 8);
  num(m.uid ?? 0, 108, 8);
  num(m.gid ?? 0, 116, 8);
  num(m.size ?? data.length, 124, 12);
  num(m.mtime ?? 0, 136, 12);
  h.write(m.type ?? '0', 156, 'latin1');
  enc(m.linkname ?? '').copy(h, 157, 0, 100);
  const magic = m.magic ?? 'ustar';
  if (magic === 'ustar') h.write('ustar\x0000', 257, 'latin1');
  if (magic === 'gnu') h.write('ustar  \x00', 257, 'latin1');
  if (magic !== 'v7') {
    num(m.devmajor ?? 0, 329, 8);
    num(m.devminor ?? 0, 337, 8);
  }
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  octal(m.badChecksum ? sum + 1 : sum, 7).copy(h, 148);
  return h;
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

/** One member: its PAX header if any, the header, the data and padding. */
export function tarMember(m: TarMember): Buffer {
  const parts: Buffer[] = [];
  if (m.pax) {
    const body = paxRecords(m.pax);
    parts.push(tarHeader({ name: 'PaxHeaders/x', type: 'x', data: body }), body, pad(body.length));
  }
  const data = enc(m.data ?? '');
  parts.push(tarHeader(m), data, pad(data.length));
  return Buffer.concat(parts);
}

/** A whole archive with the two zero blocks at the end (omit them with `end: false`). */
export function makeTar(members: TarMember[], opts: { end?: boolean } = {}): Buffer {
  return Buffer.concat([...members.map(tarMember), opts.end === false ? Buffer.alloc(0) : Buffer.alloc(1024)]);
}

/** GNU long-name ('L') and long-link ('K') members in front of `m`. */
export function gnuLong(m: TarMember, longName?: string, longLink?: string): TarMember[] {
  const out: TarMember[] = [];
  if (longName) out.push({ name: '././@LongLink', type: 'L', magic: 'gnu', data: `${longName}\0` });
  if (longLink) out.push({ name: '././@LongLink', type: 'K', magic: 'gnu', data: `${longLink}\0` });
  out.push({ ...m, magic: 'gnu' });
  return out;
}
