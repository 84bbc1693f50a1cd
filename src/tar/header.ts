// One 512-byte tar header block (POSIX ustar, GNU and v7), decoded. Pure: block in, fields out.

export const TAR_BLOCK_SIZE = 512;

/** Typeflags (POSIX and GNU). '\0' is an old-style regular file. */
export const REGTYPE = 0x30; // '0'
export const AREGTYPE = 0x00;
export const LNKTYPE = 0x31; // '1'
export const SYMTYPE = 0x32; // '2'
export const CHRTYPE = 0x33; // '3'
export const BLKTYPE = 0x34; // '4'
export const DIRTYPE = 0x35; // '5'
export const FIFOTYPE = 0x36; // '6'
export const CONTTYPE = 0x37; // '7'
export const XHDTYPE = 0x78; // 'x': PAX extended header for the next entry
export const XGLTYPE = 0x67; // 'g': PAX global header
export const GNUTYPE_LONGNAME = 0x4c; // 'L'
export const GNUTYPE_LONGLINK = 0x4b; // 'K'
export const GNUTYPE_VOLHDR = 0x56; // 'V'
export const GNUTYPE_SPARSE = 0x53; // 'S'

export class TarFormatError extends Error {}

export interface TarHeader {
  /**
   * name, with the ustar prefix joined in front when the archive is POSIX ustar. name and
   * linkname may be views into the block: copy what is kept past the block's reuse.
   */
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
}

/** A NUL-terminated field (a field may also fill its whole width), as a view into the block. */
function cstring(block: Buffer, off: number, len: number): Buffer {
  let end = off;
  while (end < off + len && block[end] !== 0) end++;
  return block.subarray(off, end);
}

/**
 * A numeric field: octal digits (leading spaces allowed, ended by NUL or space), or GNU
 * base-256 when the high bit of the first byte is set. Throws on anything else, and on
 * values JavaScript cannot hold exactly.
 */
export function parseTarNumber(field: Buffer, what: string): number {
  return numberAt(field, 0, field.length, what);
}

/** parseTarNumber of block[off, off + len), read in place. */
function numberAt(block: Buffer, off: number, len: number, what: string): number {
  if (len === 0) return 0;
  const end = off + len;
  const first = block[off]!;
  if (first & 0x80) {
    // Base-256, two's complement: 0x80 marks a positive number, 0xff a negative one.
    const negative = first === 0xff;
    if (!negative && first !== 0x80) throw new TarFormatError(`invalid base-256 ${what}`);
    let v = 0n;
    for (let i = off + 1; i < end; i++) v = (v << 8n) | BigInt(block[i]!);
    if (negative) v -= 1n << BigInt(8 * (len - 1));
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new TarFormatError(`${what} out of range`);
    return Number(v);
  }
  let i = off;
  while (i < end && block[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new TarFormatError(`invalid ${what}`);
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) {
    if (block[i] !== 0 && block[i] !== 0x20) throw new TarFormatError(`invalid ${what}`);
  }
  if (!Number.isSafeInteger(v)) throw new TarFormatError(`${what} out of range`);
  return digits === 0 ? 0 : v;
}

export const isZeroBlock = (block: Buffer): boolean => {
  for (let i = 0; i < TAR_BLOCK_SIZE; i++) if (block[i] !== 0) return false;
  return true;
};

/** Sum of the header with the checksum field read as spaces, as unsigned bytes. */
function checksum(block: Buffer): number {
  if ((block.byteOffset & 3) === 0) return checksumByWords(block);
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < TAR_BLOCK_SIZE; i++) sum += block[i]!;
  return sum;
}

/**
 * The same, four bytes at a time: bytes 0 and 2 of every word add up in one 16-bit lane,
 * bytes 1 and 3 in the other (126 words of at most 2 * 255 per lane cannot carry over).
 * The checksum field is words 37 and 38.
 */
function checksumByWords(block: Buffer): number {
  const words = wordsOf(block.buffer);
  const first = block.byteOffset / 4;
  let lanes = 0;
  for (let i = first; i < first + 37; i++) {
    const w = words[i]!;
    lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
  }
  for (let i = first + 39; i < first + TAR_BLOCK_SIZE / 4; i++) {
    const w = words[i]!;
    lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
  }
  return 8 * 0x20 + (lanes & 0xffff) + Math.floor(lanes / 0x10000);
}

/**
 * The words of the buffer the blocks are read into, kept while blocks come from it (one
 * reused buffer, mostly): a view made for each header was a tenth of a tar walk's garbage.
 */
const wordViews = new WeakMap<ArrayBufferLike, Uint32Array<ArrayBufferLike>>();
function wordsOf(buffer: ArrayBufferLike): Uint32Array<ArrayBufferLike> {
  let words = wordViews.get(buffer);
  if (!words) {
    words = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    wordViews.set(buffer, words);
  }
  return words;
}

/** The same with signed chars: 256 less for every byte above 127. */
function signedChecksum(block: Buffer): number {
  let high = 0;
  for (let i = 0; i < TAR_BLOCK_SIZE; i++) {
    if (i === 148) i = 156;
    if (block[i]! > 127) high++;
  }
  return checksum(block) - 256 * high;
}

/** Decodes a non-zero header block; throws TarFormatError when it is not a valid one. */
export function parseTarHeader(block: Buffer): TarHeader {
  const stored = numberAt(block, 148, 8, 'header checksum');
  // Some old tars summed signed chars; both forms are accepted, as GNU tar does.
  if (stored !== checksum(block) && stored !== signedChecksum(block)) throw new TarFormatError('header checksum mismatch');
  const ustar = magicIs(block, USTAR_MAGIC);
  const gnu = !ustar && magicIs(block, GNU_MAGIC);
  if (!ustar && !gnu && !magicIs(block, NO_MAGIC)) throw new TarFormatError('not a tar header (bad magic)');
  let name = cstring(block, 0, 100);
  // Only POSIX ustar has a prefix field: GNU keeps times there.
  if (ustar && block[345] !== 0) name = Buffer.concat([cstring(block, 345, 155), SLASH, name]);
  return {
    name,
    mode: numberAt(block, 100, 8, 'mode'),
    uid: numberAt(block, 108, 8, 'uid'),
    gid: numberAt(block, 116, 8, 'gid'),
    size: numberAt(block, 124, 12, 'size'),
    mtime: numberAt(block, 136, 12, 'mtime'),
    typeflag: block[156]!,
    linkname: cstring(block, 157, 100),
    devmajor: ustar || gnu ? numberAt(block, 329, 8, 'device major') : 0,
    devminor: ustar || gnu ? numberAt(block, 337, 8, 'device minor') : 0,
  };
}

function magicIs(block: Buffer, magic: Buffer): boolean {
  for (let i = 0; i < magic.length; i++) if (block[257 + i] !== magic[i]) return false;
  return true;
}

const SLASH = Buffer.from('/');
/** POSIX "ustar\0" (version "00" follows); GNU "ustar " (version " \0" follows). */
const USTAR_MAGIC = Buffer.from('ustar\0', 'latin1');
const GNU_MAGIC = Buffer.from('ustar ', 'latin1');
/** v7 archives have no magic at all. */
const NO_MAGIC = Buffer.alloc(6);
