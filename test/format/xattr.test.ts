import { describe, expect, it } from 'vitest';
import {
  EROFS_XATTR_INDEX_POSIX_ACL_ACCESS,
  EROFS_XATTR_INDEX_SECURITY,
  EROFS_XATTR_INDEX_USER,
} from '../../src/format/constants.js';
import {
  decodeXattrEntryHeader,
  encodeXattrEntry,
  encodeXattrIbody,
  splitXattrName,
  xattrNameFilter,
} from '../../src/format/xattr.js';

describe('xattr names', () => {
  it('maps short prefixes to their index and keeps the suffix', () => {
    const k = splitXattrName(Buffer.from('security.capability'))!;
    expect(k.index).toBe(EROFS_XATTR_INDEX_SECURITY);
    expect(Buffer.from(k.suffix).toString()).toBe('capability');
  });
  it('stores POSIX ACL names whole, with an empty suffix', () => {
    const k = splitXattrName(Buffer.from('system.posix_acl_access'))!;
    expect(k.index).toBe(EROFS_XATTR_INDEX_POSIX_ACL_ACCESS);
    expect(k.suffix.length).toBe(0);
  });
  it('rejects names the kernel has no handler for', () => {
    expect(splitXattrName(Buffer.from('system.foo'))).toBeNull();
    expect(splitXattrName(Buffer.from('user.'))).toBeNull();
  });
});

describe('xattr entries', () => {
  it('pads an entry to 4 bytes after the name suffix and value', () => {
    const e = encodeXattrEntry({ index: EROFS_XATTR_INDEX_USER, suffix: Buffer.from('ab') }, Buffer.from('xyz'));
    expect(e.length).toBe(12);
    expect(decodeXattrEntryHeader(e)).toEqual({ nameLen: 2, nameIndex: EROFS_XATTR_INDEX_USER, valueSize: 3 });
    expect(Buffer.from(e.subarray(4, 9)).toString()).toBe('abxyz');
  });
  it('writes the header, shared ids, then inline entries', () => {
    const body = encodeXattrIbody({ nameFilter: 0x1234, sharedIds: [7, 9], entries: [new Uint8Array(8)], padding: 4 });
    const v = new DataView(body.buffer);
    expect(body.length).toBe(12 + 8 + 8 + 4);
    expect(v.getUint32(0, true)).toBe(0x1234);
    expect(v.getUint8(4)).toBe(2);
    expect(v.getUint32(12, true)).toBe(7);
  });
});

describe('xattr name filter', () => {
  it('clears the bit of user.comment as the reference does (0xfff7ffff)', () => {
    expect(xattrNameFilter([splitXattrName(Buffer.from('user.comment'))!])).toBe(0xfff7ffff);
  });
  it('is all ones when there are no xattrs', () => {
    expect(xattrNameFilter([])).toBe(0xffffffff);
  });
});
