import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/format/crc32c.js';
import { computeSuperblockChecksum, decodeSuperblock } from '../../src/format/superblock.js';
import { xxh32 } from '../../src/format/xxhash.js';

describe('crc32c', () => {
  it('matches the standard check value for "123456789"', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });
  it('agrees between the 8-byte and the byte-at-a-time paths', () => {
    const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff));
    expect(crc32c(data)).toBe(crc32c(Buffer.concat([data.subarray(0, 3), data.subarray(3)])));
  });
});

describe('xxh32', () => {
  it('matches the reference vectors', () => {
    expect(xxh32(new Uint8Array(0), 0)).toBe(0x02cc5d05);
    expect(xxh32(Buffer.from('abc'), 0)).toBe(0x32d153ff);
    expect(xxh32(Buffer.from('Nobody inspects the spammish repetition'), 0)).toBe(0xe2293b2f);
  });
});

describe('superblock checksum', () => {
  it('reproduces the checksum the reference mkfs.erofs stores', () => {
    const dir = mkdtempSync(join(tmpdir(), 'erofs-sb-'));
    try {
      const src = join(dir, 'src');
      execFileSync('mkdir', ['-p', src]);
      writeFileSync(join(src, 'f'), 'data');
      const img = join(dir, 'img');
      execFileSync('mkfs.erofs', [img, src], { stdio: 'ignore' });
      const region = readFileSync(img).subarray(1024, 4096);
      const sb = decodeSuperblock(region);
      expect(sb.featureCompat & 1).toBe(1);
      expect(computeSuperblockChecksum(region)).toBe(sb.checksum);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
