// A minimal io_uring, through libc's syscall(2) and koffi: its rings mapped into this
// process and read and written in place from JavaScript. The build uses it to read small
// files many at a time: one system call for a batch of them, where each took three (open,
// read, close), each with its own cost of getting into the kernel and back.
//
// Needs Linux 5.18 (IORING_FEAT_LINKED_FILE: a read linked after the openat that fills its
// file slot finds the file at run time). Elsewhere, in a sandbox that refuses io_uring, or
// on a big-endian machine, open() returns null and callers read as before.

import { closeSync } from 'node:fs';
import * as os from 'node:os';
import { loadKoffi } from '../ffi.js';
import { TWO32 } from '../format/types.js';

// The system call numbers are the same on every architecture (they came after the tables
// were unified).
const SYS_io_uring_setup = 425;
const SYS_io_uring_enter = 426;
const SYS_io_uring_register = 427;

const IORING_OFF_SQ_RING = 0;
const IORING_OFF_SQES = 0x10000000;
const IORING_FEAT_SINGLE_MMAP = 1 << 0;
const IORING_FEAT_NODROP = 1 << 1;
const IORING_FEAT_LINKED_FILE = 1 << 12;
const IORING_ENTER_GETEVENTS = 1 << 0;
const IORING_REGISTER_FILES = 2;
const IORING_REGISTER_PROBE = 8;
const IO_URING_OP_SUPPORTED = 1 << 0;

export const IORING_OP_OPENAT = 18;
export const IORING_OP_CLOSE = 19;
export const IORING_OP_READ = 22;

export const IOSQE_FIXED_FILE = 1 << 0;
export const IOSQE_IO_LINK = 1 << 2;
/** Links on whatever the request before returned (a short read, an error). */
export const IOSQE_IO_HARDLINK = 1 << 3;

export const AT_FDCWD = -100;

const PROT_READ_WRITE = 0x3;
const MAP_SHARED = 0x01;
const MAP_POPULATE = 0x8000;
const EINTR = 4;

/** struct io_uring_params and its ring offsets (io_sqring_offsets, io_cqring_offsets). */
const PARAMS_BYTES = 120;
const P_SQ_ENTRIES = 0;
const P_CQ_ENTRIES = 4;
const P_FEATURES = 20;
const P_SQ_OFF = 40;
const P_CQ_OFF = 80;
/** Where head, tail and mask are in either ring's offsets. */
const RING_HEAD = 0;
const RING_TAIL = 4;
const RING_MASK = 8;
const SQ_ARRAY = 24;
const CQ_CQES = 20;

const SQE_BYTES = 64;
const CQE_BYTES = 16;
const PROBE_OPS = 64;

/** A submission queue entry's fields, as 32-bit words (64-bit fields as two, low first). */
const W_FD = 1;
const W_ADDR = 4;
const W_LEN = 6;
const W_OP_FLAGS = 7;
const W_USER_DATA = 8;
const W_FILE_INDEX = 11;

interface Libc {
  syscall: (...args: unknown[]) => number | bigint;
  mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  munmap: (addr: unknown, length: number) => number;
}

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== 'linux' || os.endianness() !== 'LE') return libc;
  try {
    const lib = loadKoffi().load('libc.so.6');
    libc = {
      syscall: lib.func('long syscall(long number, ...)') as Libc['syscall'],
      mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)') as Libc['mmap'],
      munmap: lib.func('int munmap(void *addr, size_t length)') as Libc['munmap'],
    };
  } catch {
    libc = null;
  }
  return libc;
}

/** A mapping's address, or null for MAP_FAILED. */
function mapped(c: Libc, length: number, fd: number, offset: number): { ptr: unknown; length: number } | null {
  const ptr = c.mmap(null, length, PROT_READ_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
  return loadKoffi().address(ptr) === 2n ** 64n - 1n ? null : { ptr, length };
}

/**
 * One ring with `entries` submission slots whose entries the caller keeps at fixed places
 * (write an entry once, change a field or two, queue it again), and `fileSlots` registered
 * file slots for direct descriptors.
 */
export class Uring {
  /** Entries queued since the last submit. */
  private queued = 0;
  private sqTail: number;
  /** The rings and the submission entries, as words (and the entries as bytes). */
  private readonly ring: Uint32Array;
  private readonly ringI32: Int32Array;
  private readonly sqe: Uint32Array;
  private readonly sqeBytes: Uint8Array;

  private constructor(
    private readonly c: Libc,
    private readonly fd: number,
    private readonly maps: Array<{ ptr: unknown; length: number }>,
    /** The rings (head, tail, masks, the SQ index array, the completions). */
    ringBuffer: ArrayBuffer,
    /** The submission entries. */
    sqeBuffer: ArrayBuffer,
    /** Word indexes in `ring`. */
    private readonly sq: { tail: number; mask: number; array: number },
    private readonly cq: { head: number; tail: number; mask: number; cqes: number },
  ) {
    this.ring = new Uint32Array(ringBuffer);
    this.ringI32 = new Int32Array(ringBuffer);
    this.sqe = new Uint32Array(sqeBuffer);
    this.sqeBytes = new Uint8Array(sqeBuffer);
    this.sqTail = Atomics.load(this.ring, sq.tail);
  }

  /** A ring, or null where io_uring cannot be used here (see the module's comment). */
  static open(entries: number, fileSlots: number): Uring | null {
    const c = loadLibc();
    if (!c) return null;
    const koffi = loadKoffi();
    const params = Buffer.alloc(PARAMS_BYTES);
    let fd: number;
    try {
      fd = Number(c.syscall(SYS_io_uring_setup, 'uint32', entries, 'void *', params));
    } catch {
      return null;
    }
    if (fd < 0) return null;
    const maps: Array<{ ptr: unknown; length: number }> = [];
    const fail = (): null => {
      for (const m of maps) c.munmap(m.ptr, m.length);
      closeSync(fd);
      return null;
    };
    const features = params.readUInt32LE(P_FEATURES);
    const need = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_LINKED_FILE;
    if ((features & need) !== need) return fail();
    const sqEntries = params.readUInt32LE(P_SQ_ENTRIES);
    const cqEntries = params.readUInt32LE(P_CQ_ENTRIES);
    const sqOff = (i: number): number => params.readUInt32LE(P_SQ_OFF + i);
    const cqOff = (i: number): number => params.readUInt32LE(P_CQ_OFF + i);
    const ringBytes = Math.max(sqOff(SQ_ARRAY) + sqEntries * 4, cqOff(CQ_CQES) + cqEntries * CQE_BYTES);
    const ringMap = mapped(c, ringBytes, fd, IORING_OFF_SQ_RING);
    if (!ringMap) return fail();
    maps.push(ringMap);
    const sqeMap = mapped(c, sqEntries * SQE_BYTES, fd, IORING_OFF_SQES);
    if (!sqeMap) return fail();
    maps.push(sqeMap);
    const register = (opcode: number, arg: Buffer, count: number): number =>
      Number(c.syscall(SYS_io_uring_register, 'int', fd, 'uint32', opcode, 'void *', arg, 'uint32', count));
    // Every operation the reads use, and a table of empty file slots.
    const probe = Buffer.alloc(16 + PROBE_OPS * 8);
    if (register(IORING_REGISTER_PROBE, probe, PROBE_OPS) < 0) return fail();
    for (const op of [IORING_OP_OPENAT, IORING_OP_READ, IORING_OP_CLOSE]) {
      if (op > probe[0]! || (probe.readUInt16LE(16 + op * 8 + 2) & IO_URING_OP_SUPPORTED) === 0) return fail();
    }
    const slots = Buffer.from(new Int32Array(fileSlots).fill(-1).buffer);
    if (register(IORING_REGISTER_FILES, slots, fileSlots) < 0) return fail();
    const ringBuffer = koffi.view(ringMap.ptr, ringBytes);
    const sqeBuffer = koffi.view(sqeMap.ptr, sqEntries * SQE_BYTES);
    const ring = new Uint32Array(ringBuffer);
    return new Uring(
      c,
      fd,
      maps,
      ringBuffer,
      sqeBuffer,
      { tail: sqOff(RING_TAIL) / 4, mask: ring[sqOff(RING_MASK) / 4]!, array: sqOff(SQ_ARRAY) / 4 },
      { head: cqOff(RING_HEAD) / 4, tail: cqOff(RING_TAIL) / 4, mask: ring[cqOff(RING_MASK) / 4]!, cqes: cqOff(CQ_CQES) / 4 },
    );
  }

  /** Writes submission entry `index` whole; user data is a 32-bit number. */
  prep(index: number, opcode: number, flags: number, fd: number, addr: number, len: number, opFlags: number, userData: number, fileIndex = 0): void {
    const w = index * (SQE_BYTES / 4);
    this.sqeBytes.fill(0, index * SQE_BYTES, (index + 1) * SQE_BYTES);
    this.sqeBytes[index * SQE_BYTES] = opcode;
    this.sqeBytes[index * SQE_BYTES + 1] = flags;
    this.sqe[w + W_FD] = fd >>> 0;
    this.setAddr(index, addr);
    this.sqe[w + W_LEN] = len;
    this.sqe[w + W_OP_FLAGS] = opFlags >>> 0;
    this.sqe[w + W_USER_DATA] = userData >>> 0;
    this.sqe[w + W_FILE_INDEX] = fileIndex;
  }

  setAddr(index: number, addr: number): void {
    const w = index * (SQE_BYTES / 4) + W_ADDR;
    this.sqe[w] = addr % TWO32;
    this.sqe[w + 1] = Math.floor(addr / TWO32);
  }

  setLen(index: number, len: number): void {
    this.sqe[index * (SQE_BYTES / 4) + W_LEN] = len;
  }

  /** Queues entry `index` to go with the next submit, after those queued before it. */
  queue(index: number): void {
    this.ring[this.sq.array + (this.sqTail & this.sq.mask)] = index;
    this.sqTail++;
    this.queued++;
  }

  /**
   * Submits what is queued and waits until every request of it has completed; then calls
   * `each` for every completion, in the order they came. Throws on a failed system call
   * (nothing of the batch is then to be trusted).
   */
  run(each: (userData: number, result: number) => void): void {
    Atomics.store(this.ring, this.sq.tail, this.sqTail);
    let toSubmit = this.queued;
    let toWait = this.queued;
    this.queued = 0;
    while (toWait > 0) {
      const n = Number(
        this.c.syscall(SYS_io_uring_enter, 'int', this.fd, 'uint32', toSubmit, 'uint32', toWait, 'uint32', IORING_ENTER_GETEVENTS, 'void *', null, 'size_t', 0),
      );
      if (n < 0) {
        if (loadKoffi().errno() === EINTR) continue;
        throw new Error(`io_uring_enter failed: errno ${loadKoffi().errno()}`);
      }
      toSubmit -= n;
      toWait -= this.reap(each);
    }
  }

  private reap(each: (userData: number, result: number) => void): number {
    const cq = this.cq;
    let head = Atomics.load(this.ring, cq.head);
    const tail = Atomics.load(this.ring, cq.tail);
    let n = 0;
    for (; head !== tail; head = (head + 1) >>> 0, n++) {
      const w = cq.cqes + (head & cq.mask) * (CQE_BYTES / 4);
      each(this.ring[w]!, this.ringI32[w + 2]!);
    }
    Atomics.store(this.ring, cq.head, head);
    return n;
  }

  close(): void {
    for (const m of this.maps) this.c.munmap(m.ptr, m.length);
    this.maps.length = 0;
    closeSync(this.fd);
  }
}
