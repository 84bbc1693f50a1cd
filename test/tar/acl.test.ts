import { describe, expect, it } from 'vitest';
import { aclTextToXattr } from '../../src/tar/acl.js';
import { encodeAcl } from '../helpers/acl.js';

describe('ACL text from tar headers', () => {
  it('encodes GNU tar text (newline-separated, numeric qualifiers) as the kernel stores it', () => {
    const text = 'user::rw-\nuser:1234:rwx\ngroup::r--\ngroup:1:r--\nmask::rwx\nother::r--';
    expect(aclTextToXattr(text)).toEqual(encodeAcl('u::rw-,u:1234:rwx,g::r--,g:1:r--,m::rwx,o::r--', 0o644));
  });

  it('takes the id star and bsdtar append after the permissions, whatever the name', () => {
    const text = 'user::rwx,user:alice:r-x:1001,group::r-x,mask::r-x,other::---';
    expect(aclTextToXattr(text)).toEqual(encodeAcl('u::rwx,u:1001:r-x,g::r-x,m::r-x,o::---', 0o750));
  });

  it('refuses names without ids, missing base entries, a missing mask, and bad permissions', () => {
    expect(aclTextToXattr('user::rw-,user:alice:r--,group::r--,mask::r--,other::r--')).toBeNull();
    expect(aclTextToXattr('user::rw-,other::r--')).toBeNull();
    expect(aclTextToXattr('user::rw-,user:7:r--,group::r--,other::r--')).toBeNull();
    expect(aclTextToXattr('user::rwz,group::r--,other::r--')).toBeNull();
  });
});
