/**
 * POSIX ACL text (as accepted by `setfacl`, e.g. "u::rwx,u:1000:r-x,g::r-x,m::rwx,o::---")
 * to the binary value of the `system.posix_acl_access` / `system.posix_acl_default` xattrs,
 * exactly as the kernel (and therefore `getfattr`) presents it.
 */

const ACL_VERSION = 2;
const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;
const ACL_UNDEFINED_ID = 0xffffffff;

interface AclEntry {
  tag: number;
  perm: number;
  id: number;
}

const TAGS: Record<string, number> = {
  u: ACL_USER,
  user: ACL_USER,
  g: ACL_GROUP,
  group: ACL_GROUP,
  m: ACL_MASK,
  mask: ACL_MASK,
  o: ACL_OTHER,
  other: ACL_OTHER,
};

function parsePerm(text: string, entry: string): number {
  if (/^[0-7]$/.test(text)) return Number(text);
  if (!/^[rwx-]*$/.test(text)) throw new Error(`bad ACL permissions in '${entry}'`);
  return (text.includes('r') ? 4 : 0) | (text.includes('w') ? 2 : 0) | (text.includes('x') ? 1 : 0);
}

/**
 * Encodes ACL text to its xattr value. Entries missing among u::, g::, o:: are taken from
 * `mode` (like `setfacl -m` does); a missing mask is computed as the union of the group-class
 * entries when named users/groups are present (like `setfacl`).
 */
export function encodeAcl(text: string, mode: number): Buffer {
  const entries: AclEntry[] = [];
  for (const raw of text.split(/[,\s]+/)) {
    const item = raw.trim();
    if (item === '') continue;
    const parts = item.split(':');
    if (parts.length !== 3) throw new Error(`bad ACL entry '${item}' (want tag:qualifier:perms)`);
    const [tagText, qual, permText] = parts as [string, string, string];
    let tag = TAGS[tagText];
    if (tag === undefined) throw new Error(`bad ACL tag in '${item}'`);
    if (qual === '') {
      if (tag === ACL_USER) tag = ACL_USER_OBJ;
      else if (tag === ACL_GROUP) tag = ACL_GROUP_OBJ;
    } else if (tag === ACL_MASK || tag === ACL_OTHER) {
      throw new Error(`ACL entry '${item}' takes no qualifier`);
    } else if (!/^\d+$/.test(qual)) {
      throw new Error(`ACL qualifier must be a numeric id in '${item}'`);
    }
    const id = tag === ACL_USER || tag === ACL_GROUP ? Number(qual) : ACL_UNDEFINED_ID;
    const perm = parsePerm(permText, item);
    const dup = entries.findIndex((e) => e.tag === tag && e.id === id);
    if (dup >= 0) entries[dup] = { tag, perm, id };
    else entries.push({ tag, perm, id });
  }
  const has = (tag: number) => entries.some((e) => e.tag === tag);
  if (!has(ACL_USER_OBJ)) entries.push({ tag: ACL_USER_OBJ, perm: (mode >> 6) & 7, id: ACL_UNDEFINED_ID });
  if (!has(ACL_GROUP_OBJ)) entries.push({ tag: ACL_GROUP_OBJ, perm: (mode >> 3) & 7, id: ACL_UNDEFINED_ID });
  if (!has(ACL_OTHER)) entries.push({ tag: ACL_OTHER, perm: mode & 7, id: ACL_UNDEFINED_ID });
  if (!has(ACL_MASK) && (has(ACL_USER) || has(ACL_GROUP))) {
    const perm = entries
      .filter((e) => e.tag === ACL_USER || e.tag === ACL_GROUP || e.tag === ACL_GROUP_OBJ)
      .reduce((acc, e) => acc | e.perm, 0);
    entries.push({ tag: ACL_MASK, perm, id: ACL_UNDEFINED_ID });
  }
  entries.sort((a, b) => a.tag - b.tag || a.id - b.id);
  const out = Buffer.alloc(4 + 8 * entries.length);
  out.writeUInt32LE(ACL_VERSION, 0);
  entries.forEach((e, i) => {
    out.writeUInt16LE(e.tag, 4 + 8 * i);
    out.writeUInt16LE(e.perm, 6 + 8 * i);
    out.writeUInt32LE(e.id, 8 + 8 * i);
  });
  return out;
}
