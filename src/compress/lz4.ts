// LZ4 (EROFS algorithm 0): raw LZ4 blocks with "fill the output" (destSize) semantics.
//
// Two implementations: the system liblz4 (LZ4_compress_destSize / LZ4_compress_HC_destSize) via
// koffi, and a pure TypeScript encoder (greedy hash table for `lz4`, hash chain + lazy matching
// for `lz4hc`) that works with no native library at all. Plus a bounds-checked TS block decoder.
//
// LZ4 block format (lz4 block spec): sequences of
//   token (hi nibble literal count, lo nibble match length - 4; 15 = more bytes follow, each 255
//   adds and continues), literals, le16 match offset (1..65535), match length extension bytes;
// the last sequence has literals only. End-of-block rules that strict decoders enforce:
//   the last 5 bytes are literals, and the last match starts at least 12 bytes before the end.

import { Z_EROFS_COMPRESSION_LZ4 } from '../format/constants.js';
import {
  type AlgorithmName,
  type Backend,
  type Compressor,
  type Decompressor,
  type DestSizeResult,
  checkDstCapacity,
  DecompressError,
} from './compressor.js';
import { type Lz4Native, isNativeDisabled, loadLz4, tryLoad } from './native.js';

const MINMATCH = 4;
const LASTLITERALS = 5;
const MFLIMIT = 12;
const MAX_DISTANCE = 65535;
/** Inputs shorter than this cannot hold a match (the match must start <= len - 12). */
const MIN_INPUT_FOR_MATCH = MFLIMIT + 1;

const FAST_HASH_LOG = 14;
/** Hash-chain candidates examined per position, by lz4hc level (index 0 unused: it means 9). */
const HC_ATTEMPTS = [0, 4, 8, 12, 16, 24, 32, 48, 64, 96, 256, 1024, 4096];
const HC_HASH_LOG = 15;
/**
 * compressDestSize offers the encoder a window of input first: twice the output capacity
 * plus a margin. A result that consumes to within the margin of the window's end is redone
 * with a window PROBE_GROWTH times larger; one that stops short of it is what the whole
 * input would have given. The margin covers how far past its output each parser looks:
 * liblz4's hash chain (levels 1-9) a few overlapping matches, its optimal parser (10-12)
 * up to LZ4_OPT_NUM = 4096 positions, taking any match of 4096 bytes or more at once.
 */
const PROBE_MARGIN_CHAIN = 1 << 10;
const PROBE_MARGIN_OPT = (8 << 10) + 64;
const LZ4HC_OPT_MIN_LEVEL = 10;
/** liblz4's greedy encoder uses a different hash table for inputs below this size. */
const LZ4_64KLIMIT = 65536 + MFLIMIT - 1;
const PROBE_GROWTH = 16;
/** Past both probe margins: what compressDestSize stops short of leaves the result as it is. */
const STABLE_BEYOND = 64 << 10;
/** Multiplicative hash constant (Knuth's golden-ratio prime). */
const PRIME32 = -1640531535; // 2654435761 as int32
const PRIME32_B = 0x2f0b3c4d;

/** Extension bytes needed for a length field value n (literal count, or match length - 4). */
function extLen(n: number): number {
  return n < 15 ? 0 : (((n - 15) / 255) | 0) + 1;
}

/** Largest literal count L whose last sequence (token + extension + L bytes) fits in `room`. */
function maxLiteralsFor(room: number): number {
  if (room <= 1) return 0;
  if (room <= 15) return room - 1; // L <= 14: no extension byte
  // L >= 15 costs L + 1 + extLen(L); start from an estimate and correct.
  let l = room - 2 - (((room - 17) / 256) | 0);
  while (l > 0 && l + 1 + extLen(l) > room) l--;
  while (l + 2 + extLen(l + 1) <= room) l++;
  return l;
}

function read32(s: Uint8Array, i: number): number {
  return s[i]! | (s[i + 1]! << 8) | (s[i + 2]! << 16) | (s[i + 3]! << 24);
}

/**
 * Hash of the 5 bytes at i (the greedy encoder's table key): with one slot per key, a 5-byte key
 * keeps candidates that tend to match longer than a 4-byte key would.
 */
function hash5(s: Uint8Array, i: number, shift: number): number {
  return (Math.imul(read32(s, i), PRIME32) ^ Math.imul(s[i + 4]!, PRIME32_B)) >>> shift;
}

/** Length of the common run of s[a..] and s[b..] (b < a), stopping at `limit` for a. */
function commonLength(s: Uint8Array, a: number, b: number, limit: number): number {
  const start = a;
  while (a < limit && s[a] === s[b]) {
    a++;
    b++;
  }
  return a - start;
}

/**
 * The match length (possibly shortened, >= MINMATCH) that can be emitted after litLen literals at
 * output position op while still leaving room for a legal final literal run; 0 if none fits.
 * The final run needs max(5, 12 - ml) literals so that the match ends >= 5 bytes and starts
 * >= 12 bytes before the end of the block.
 */
function fitMatch(op: number, cap: number, litLen: number, ml: number): number {
  const fixed = op + 1 + litLen + extLen(litLen) + 2;
  if (fixed + extLen(ml - MINMATCH) + 1 + Math.max(LASTLITERALS, MFLIMIT - ml) <= cap) return ml;
  // A shorter match needs fewer length bytes; only lengths >= 19 have any to drop.
  const room = cap - fixed - 1 - LASTLITERALS;
  if (room < 0) return 0;
  const maxCode = 14 + 255 * room; // the most a field with `room` extension bytes encodes without a wasted byte
  if (ml - MINMATCH > maxCode) return MINMATCH + maxCode;
  return 0;
}

function writeLength(out: Uint8Array, op: number, n: number): number {
  // Caller has put min(n, 15) in the token; emit the rest as 255... + remainder.
  n -= 15;
  while (n >= 255) {
    out[op++] = 255;
    n -= 255;
  }
  out[op++] = n;
  return op;
}

/** Write literals src[anchor .. anchor+litLen) and a match (offset, ml) at op; returns the new op. */
function writeSequence(
  out: Uint8Array,
  op: number,
  src: Uint8Array,
  anchor: number,
  litLen: number,
  offset: number,
  ml: number,
): number {
  const code = ml - MINMATCH;
  const tokenPos = op++;
  out[tokenPos] = ((litLen < 15 ? litLen : 15) << 4) | (code < 15 ? code : 15);
  if (litLen >= 15) op = writeLength(out, op, litLen);
  if (litLen > 32) {
    out.set(src.subarray(anchor, anchor + litLen), op);
    op += litLen;
  } else {
    for (let i = 0; i < litLen; i++) out[op++] = src[anchor + i]!;
  }
  out[op++] = offset & 0xff;
  out[op++] = offset >>> 8;
  if (code >= 15) op = writeLength(out, op, code);
  return op;
}

/** Write the final literal-only sequence; returns the new op. */
function writeLastLiterals(out: Uint8Array, op: number, src: Uint8Array, anchor: number, litLen: number): number {
  out[op++] = (litLen < 15 ? litLen : 15) << 4;
  if (litLen >= 15) op = writeLength(out, op, litLen);
  out.set(src.subarray(anchor, anchor + litLen), op);
  return op + litLen;
}

/**
 * Pure TypeScript LZ4 destSize encoder. Keeps its tables between calls; positions are stored
 * offset by a per-call base so stale entries from earlier inputs are recognisable without clearing.
 */
export class Lz4JsEncoder {
  private fastTable: Int32Array | null = null;
  private hcHead: Int32Array | null = null;
  private hcChain: Uint16Array | null = null;
  private base = 1;
  private out = new Uint8Array(0);
  /** Input bytes consumed by the last call. */
  consumed = 0;

  /**
   * level 0 = greedy (`lz4`); 1..12 = hash chain with search depth growing with the level (`lz4hc`).
   * Returns a view of the internal output buffer (valid until the next call), or null.
   */
  compress(src: Uint8Array, cap: number, level: number): Uint8Array | null {
    this.consumed = 0;
    if (src.length === 0 || cap < 2) return null;
    if (this.out.length < cap) this.out = new Uint8Array(Math.max(cap, 4096));
    if (this.base + src.length >= 0x7fff0000) this.resetTables();
    const size = level <= 0 ? this.compressFast(src, cap) : this.compressHC(src, cap, level);
    return this.out.subarray(0, size);
  }

  private resetTables(): void {
    this.fastTable?.fill(0);
    this.hcHead?.fill(0);
    this.base = 1;
  }

  private compressFast(src: Uint8Array, cap: number): number {
    const out = this.out;
    const n = src.length;
    let op = 0;
    let anchor = 0;
    let ip = 0;
    if (n >= MIN_INPUT_FOR_MATCH) {
      const table = (this.fastTable ??= new Int32Array(1 << FAST_HASH_LOG));
      const shift = 32 - FAST_HASH_LOG;
      const base = this.base;
      const mflimit = n - MFLIMIT;
      const matchlimit = n - LASTLITERALS;
      // Past this position the pending literals plus a minimal sequence and tail can't fit.
      let stop = Math.min(mflimit, anchor + maxLiteralsFor(cap - op - 2 - 1 - 6));
      table[hash5(src, 0, shift)] = base;
      ip = 1;
      outer: for (;;) {
        let ref = 0;
        let searches = 1 << 6; // step grows after repeated misses: skims incompressible data
        for (;;) {
          if (ip > stop) break outer;
          const seq = read32(src, ip);
          const h = hash5(src, ip, shift);
          ref = table[h]! - base;
          table[h] = ip + base;
          if (ref >= 0 && ip - ref <= MAX_DISTANCE && read32(src, ref) === seq) break;
          ip += searches++ >>> 6;
        }
        // Grow the match backwards into the pending literals.
        while (ip > anchor && ref > 0 && src[ip - 1] === src[ref - 1]) {
          ip--;
          ref--;
        }
        const full = MINMATCH + commonLength(src, ip + MINMATCH, ref + MINMATCH, matchlimit);
        const litLen = ip - anchor;
        const ml = fitMatch(op, cap, litLen, full);
        if (ml === 0) break;
        op = writeSequence(out, op, src, anchor, litLen, ip - ref, ml);
        ip += ml;
        anchor = ip;
        if (ml < full) break; // output is full
        if (ip > mflimit) break;
        stop = Math.min(mflimit, anchor + maxLiteralsFor(cap - op - 2 - 1 - 6));
        // Index a position inside the match, as it often starts the next one.
        table[hash5(src, ip - 2, shift)] = ip - 2 + base;
      }
      this.base = base + Math.min(n, ip) + 1;
    }
    const lits = Math.min(maxLiteralsFor(cap - op), n - anchor);
    op = writeLastLiterals(out, op, src, anchor, lits);
    this.consumed = anchor + lits;
    return op;
  }

  private compressHC(src: Uint8Array, cap: number, level: number): number {
    const out = this.out;
    const n = src.length;
    let op = 0;
    let anchor = 0;
    if (n >= MIN_INPUT_FOR_MATCH) {
      const head = (this.hcHead ??= new Int32Array(1 << HC_HASH_LOG));
      const chain = (this.hcChain ??= new Uint16Array(65536));
      const shift = 32 - HC_HASH_LOG;
      const base = this.base;
      const mflimit = n - MFLIMIT;
      const matchlimit = n - LASTLITERALS;
      const lv = level > 12 ? 12 : level;
      // Search effort per level, tuned so level 9 lands within ~1% of liblz4's HC-9 ratio.
      const maxAttempts = HC_ATTEMPTS[lv]!;
      const nice = lv >= 10 ? 1024 : 192;
      const lazyDepth = lv >= 9 ? 2 : lv >= 4 ? 1 : 0;
      let nextToUpdate = 0;
      let matchRef = 0;

      // Longest match for position ip that is longer than `atLeast` (else 0); its source goes to matchRef.
      const find = (ip: number, atLeast: number): number => {
        for (let p = nextToUpdate; p < ip; p++) {
          const h = Math.imul(read32(src, p), PRIME32) >>> shift;
          const prev = head[h]! - base;
          const d = p - prev;
          chain[p & 0xffff] = prev >= 0 && d <= MAX_DISTANCE ? d : 0; // 0 ends the chain
          head[h] = p + base;
        }
        if (nextToUpdate < ip) nextToUpdate = ip;
        const seq = read32(src, ip);
        let cand = head[Math.imul(seq, PRIME32) >>> shift]! - base;
        const maxLen = matchlimit - ip;
        if (atLeast >= maxLen) return 0;
        // Candidates that cannot beat `best` fail the cheap byte test at offset `best`.
        let best = atLeast;
        let attempts = maxAttempts;
        while (cand >= 0 && ip - cand <= MAX_DISTANCE && attempts-- > 0) {
          // (cand < ip: look-ahead may have indexed positions past ip; those are no match source.)
          if (cand < ip && src[cand + best] === src[ip + best] && read32(src, cand) === seq) {
            const len = MINMATCH + commonLength(src, ip + MINMATCH, cand + MINMATCH, matchlimit);
            if (len > best) {
              best = len;
              matchRef = cand;
              if (len >= nice || len >= maxLen) break;
            }
          }
          const d = chain[cand & 0xffff]!;
          if (d === 0) break;
          cand -= d;
        }
        return best > atLeast ? best : 0;
      };

      let stop = Math.min(mflimit, maxLiteralsFor(cap - 2 - 1 - 6));
      let ip = 0;
      // Emit pending literals and the match (start, ref, ml); false once the output is full.
      const emit = (start: number, ref: number, ml: number): boolean => {
        const litLen = start - anchor;
        const fml = fitMatch(op, cap, litLen, ml);
        if (fml === 0) return false;
        op = writeSequence(out, op, src, anchor, litLen, start - ref, fml);
        anchor = start + fml;
        return fml === ml;
      };
      while (ip <= stop) {
        let ml = find(ip, MINMATCH - 1);
        if (ml === 0) {
          ip++;
          continue;
        }
        let ref = matchRef;
        // Lazy matching: a literal now is worth it if a later start gives a longer match.
        for (let d = 1; d <= lazyDepth; d++) {
          if (ip + d > stop) break;
          const ml2 = find(ip + d, ml + (d - 1));
          if (ml2 !== 0) {
            ip += d;
            ml = ml2;
            ref = matchRef;
            d = 0; // restart the look-ahead from the new position
          }
        }
        while (ip > anchor && ref > 0 && src[ip - 1] === src[ref - 1]) {
          ip--;
          ref--;
          ml++;
        }
        if (!emit(ip, ref, ml)) break;
        ip = anchor;
        stop = Math.min(mflimit, anchor + maxLiteralsFor(cap - op - 2 - 1 - 6));
      }
      this.base = base + Math.min(n, Math.max(nextToUpdate, ip)) + 1;
    }
    const lits = Math.min(maxLiteralsFor(cap - op), n - anchor);
    op = writeLastLiterals(out, op, src, anchor, lits);
    this.consumed = anchor + lits;
    return op;
  }
}

/**
 * Decode one raw LZ4 block that must produce exactly outLen bytes and use all of src.
 * strict (default) also enforces the end-of-block rules (last 5 bytes literal, last match starting
 * >= 12 bytes before the end), as liblz4's and the kernel's safe decoders do.
 */
export function lz4DecompressBlock(src: Uint8Array, outLen: number, strict = true): Uint8Array {
  const out = new Uint8Array(outLen);
  const n = src.length;
  let ip = 0;
  let op = 0;
  for (;;) {
    if (ip >= n) throw new DecompressError('lz4: truncated block');
    const token = src[ip++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= n) throw new DecompressError('lz4: truncated literal length');
        b = src[ip++]!;
        lit += b;
      } while (b === 255);
    }
    if (ip + lit > n) throw new DecompressError('lz4: literals run past the input');
    if (op + lit > outLen) throw new DecompressError('lz4: literals run past the output size');
    if (lit > 32) {
      out.set(src.subarray(ip, ip + lit), op);
      ip += lit;
      op += lit;
    } else {
      for (let i = 0; i < lit; i++) out[op++] = src[ip++]!;
    }
    if (ip === n) {
      if (op !== outLen) throw new DecompressError(`lz4: block decodes to ${op} bytes, expected ${outLen}`);
      return out;
    }
    if (strict && op > outLen - MFLIMIT) throw new DecompressError('lz4: match starts within the last 12 bytes');
    if (ip + 2 > n) throw new DecompressError('lz4: truncated match offset');
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new DecompressError(`lz4: bad match offset ${offset}`);
    let ml = token & 15;
    if (ml === 15) {
      let b: number;
      do {
        if (ip >= n) throw new DecompressError('lz4: truncated match length');
        b = src[ip++]!;
        ml += b;
      } while (b === 255);
    }
    ml += MINMATCH;
    if (op + ml > (strict ? outLen - LASTLITERALS : outLen)) {
      throw new DecompressError('lz4: match runs past the output size (or into the last 5 bytes)');
    }
    let from = op - offset;
    if (offset >= ml && ml > 32) {
      out.copyWithin(op, from, from + ml);
      op += ml;
    } else {
      // Overlapping copy replicates the last `offset` bytes, byte by byte.
      const end = op + ml;
      while (op < end) out[op++] = out[from++]!;
    }
  }
}

/**
 * How much input the first `outBytes` bytes of an LZ4 block stand for: its sequences up to
 * that cut (a literal run split by it counts in part, a match only if wholly before it).
 */
export function lz4InputBefore(block: Uint8Array, outBytes: number): number {
  const end = Math.min(block.length, outBytes);
  let ip = 0;
  let op = 0;
  while (op < end) {
    const token = block[op++]!;
    let literals = token >>> 4;
    if (literals === 15) {
      for (let b = 255; b === 255 && op < end; literals += b) b = block[op++]!;
    }
    if (op + literals >= end) return ip + Math.max(0, end - op);
    op += literals;
    ip += literals;
    op += 2; // match offset
    let match = token & 15;
    if (match === 15) {
      for (let b = 255; b === 255 && op < end; match += b) b = block[op++]!;
    }
    if (op > end) return ip;
    ip += match + MINMATCH;
  }
  return ip;
}

export interface Lz4CompressorConfig {
  hc: boolean;
  level: number;
  backend: Backend;
}

/** `lz4` (greedy) and `lz4hc` (levels 0-12, 0 meaning liblz4's default 9). */
export class Lz4Compressor implements Compressor {
  readonly name: AlgorithmName;
  readonly algorithm = Z_EROFS_COMPRESSION_LZ4;
  readonly level: number;
  readonly backend: 'native' | 'js';
  readonly dictSize = 0;
  /** lz4hc searches its hash chains at every position of data it cannot shrink. */
  readonly slowOnIncompressible: boolean;
  /**
   * compressDestSize keeps a result only when it stops PROBE_MARGIN_* short of the window it
   * offered, or the window was all of src (see PROBE_GROWTH); 256 KiB of src or more picks
   * the greedy encoder's table for large input (LZ4_64KLIMIT).
   */
  readonly stableBeyond = STABLE_BEYOND;
  private readonly hc: boolean;
  private readonly native: Lz4Native | null;
  private readonly js: Lz4JsEncoder | null;
  private hcState: Uint8Array | null = null;
  private scratch = new Uint8Array(0);
  private readonly srcSize = new Int32Array(1);
  /** Input bytes the last encode() used. */
  private consumed = 0;
  /** Input the last pcluster took, to size the next first window (forgotten per file). */
  private lastConsumed = 0;

  constructor(cfg: Lz4CompressorConfig) {
    this.hc = cfg.hc;
    this.slowOnIncompressible = cfg.hc;
    this.name = cfg.hc ? 'lz4hc' : 'lz4';
    this.level = cfg.level;
    if (cfg.backend === 'native') this.native = loadLz4();
    else if (cfg.backend === 'js') this.native = null;
    else this.native = tryLoad(loadLz4);
    this.backend = this.native ? 'native' : 'js';
    this.js = this.native ? null : new Lz4JsEncoder();
  }

  compressDestSize(src: Uint8Array, dstCapacity: number): DestSizeResult | null {
    checkDstCapacity(dstCapacity);
    if (src.length === 0 || dstCapacity < 2) return null;
    // A pcluster never needs more input than 255 bytes per output byte (liblz4 takes an int).
    const limit = Math.min(src.length, 0x7e000000, dstCapacity * 256 + 64);
    // The encoders look for matches through all the input they are given before they find
    // the output full: on data that does not compress, lz4hc spends ~1.5 ms per 4 KiB
    // pcluster walking hash chains through the whole 255x limit, where a few times the
    // output (0.06 ms) tells the same. See PROBE_MARGIN_CHAIN.
    const margin = this.hc && this.level >= LZ4HC_OPT_MIN_LEVEL ? PROBE_MARGIN_OPT : PROBE_MARGIN_CHAIN;
    // Where the file's last pcluster took more input, this one likely will too. The optimal
    // parser costs ~5 ms per 64 KiB pcluster, so a window too short to keep is worth
    // avoiding: the greedy encoder (~0.03 ms on the whole input) says how much fits.
    let expect = 2 * Math.max(dstCapacity, this.lastConsumed);
    if (this.hc && this.level >= LZ4HC_OPT_MIN_LEVEL && this.encode(src.subarray(0, limit), dstCapacity, false) > 0) {
      // HC takes a little more input than the greedy encoder, rarely half as much again.
      expect = Math.max(dstCapacity, this.lastConsumed, this.consumed + (this.consumed >> 1));
    }
    // The greedy encoder must see 64 KiB or more to pick the table it uses for larger input.
    let window = Math.min(limit, Math.max(expect, this.hc ? 0 : LZ4_64KLIMIT) + margin);
    for (;;) {
      const size = this.encode(src.subarray(0, window), dstCapacity, this.hc);
      if (size <= 0 || this.consumed <= 0) return null;
      if (window === limit || this.consumed < window - margin) {
        this.lastConsumed = this.consumed;
        return { consumed: this.consumed, data: this.scratch.subarray(0, size) };
      }
      window = Math.min(limit, window * PROBE_GROWTH);
    }
  }

  /**
   * One destSize call, greedy or HC: compressed bytes in this.scratch[0, returned size),
   * input used in this.consumed.
   */
  private encode(src: Uint8Array, dstCapacity: number, hc: boolean): number {
    if (this.scratch.length < dstCapacity) this.scratch = new Uint8Array(Math.max(dstCapacity, 4096));
    if (this.js) {
      // liblz4 treats HC levels < 1 as its default 9; the JS encoder does the same.
      const lvl = hc ? (this.level < 1 ? 9 : this.level) : 0;
      const out = this.js.compress(src, dstCapacity, lvl);
      this.consumed = this.js.consumed;
      if (!out) return 0;
      this.scratch.set(out);
      return out.length;
    }
    const nat = this.native!;
    this.srcSize[0] = src.length;
    let size: number;
    if (hc) {
      if (!this.hcState) {
        this.hcState = new Uint8Array(nat.sizeofStateHC);
        nat.initStreamHC(this.hcState, this.hcState.length);
      }
      // LZ4_compress_HC_destSize clears its 256 KiB tables on every call; the fast reset
      // instead starts the next stream's positions past the old ones (which then fall
      // outside the window), so each pcluster is still compressed on its own, for less.
      nat.resetStreamHCFast(this.hcState, this.level);
      size = nat.compressHCContinueDestSize(this.hcState, src, this.scratch, this.srcSize, dstCapacity);
    } else {
      size = nat.compressDestSize(src, this.scratch, this.srcSize, dstCapacity);
    }
    this.consumed = this.srcSize[0]!;
    return size;
  }

  configRecord(maxPclusterBytes: number, blockSize = 4096): Uint8Array {
    // le16 max_distance, le16 max_pclusterblks, 10 reserved bytes.
    const rec = new Uint8Array(14);
    const dv = new DataView(rec.buffer);
    dv.setUint16(0, MAX_DISTANCE, true);
    dv.setUint16(2, Math.floor(maxPclusterBytes / blockSize), true);
    return rec;
  }

  setMaxPclusterSize(): void {
    // LZ4's window is fixed.
  }

  resetSearchHint(): void {
    this.lastConsumed = 0;
  }

  inputBefore(data: Uint8Array, outBytes: number): number {
    return lz4InputBefore(data, outBytes);
  }

  dispose(): void {
    this.hcState = null;
  }
}

export class Lz4Decompressor implements Decompressor {
  private readonly native: Lz4Native | null;
  constructor(backend: Backend = 'auto') {
    this.native = backend === 'js' ? null : backend === 'native' ? loadLz4() : tryLoad(loadLz4);
  }
  decompress(src: Uint8Array, outLen: number): Uint8Array {
    if (!this.native || isNativeDisabled()) return lz4DecompressBlock(src, outLen);
    const out = new Uint8Array(outLen);
    const r = this.native.decompressSafe(src, out, src.length, outLen) as number;
    if (r !== outLen) throw new DecompressError(`lz4: corrupt block (LZ4_decompress_safe returned ${r}, expected ${outLen})`);
    return out;
  }
}
