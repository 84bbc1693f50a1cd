// POSIX ACLs given as text in PAX records (SCHILY.acl.access / SCHILY.acl.default, as star,
// bsdtar and GNU tar write them) to the binary value of the system.posix_acl_* xattrs.

const ACL_VERSION = 2;
const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;
const ACL_UNDEFINED_ID = 0xffffffff;

const TAGS: Record<string, number> = { user: ACL_USER, u: ACL_USER, group: ACL_GROUP, g: ACL_GROUP, mask: ACL_MASK, m: ACL_MASK, other: ACL_OTHER, o: ACL_OTHER };

/**
 * Entries "tag:qualifier:perms[:id]", separated by commas or newlines. Named entries need a
 * numeric id (the qualifier, or the id field star and bsdtar append): names are not looked up
 * on this machine. Returns null for text that is not a complete, valid ACL.
 */
export function aclTextToXattr(text: string): Buffer | null {
  const entries: Array<{ tag: number; perm: number; id: number }> = [];
  for (const raw of text.split(/[,\n]/)) {
    const item = raw.replace(/#.*/, '').trim();
    if (item === '') continue;
    const f = item.split(':');
    if (f.length < 3 || f.length > 4) return null;
    let tag = TAGS[f[0]!];
    if (tag === undefined || !/^[rwx-]{3}$/.test(f[2]!)) return null;
    const perm = (f[2]!.includes('r') ? 4 : 0) | (f[2]!.includes('w') ? 2 : 0) | (f[2]!.includes('x') ? 1 : 0);
    let id = ACL_UNDEFINED_ID;
    if (f[1] === '') {
      if (tag === ACL_USER) tag = ACL_USER_OBJ;
      else if (tag === ACL_GROUP) tag = ACL_GROUP_OBJ;
    } else if (tag === ACL_USER || tag === ACL_GROUP) {
      const numeric = f.length === 4 ? f[3]! : f[1]!;
      if (!/^\d+$/.test(numeric) || Number(numeric) >= ACL_UNDEFINED_ID) return null;
      id = Number(numeric);
    } else {
      return null;
    }
    if (entries.some((e) => e.tag === tag && e.id === id)) return null;
    entries.push({ tag, perm, id });
  }
  const has = (tag: number) => entries.some((e) => e.tag === tag);
  // What the kernel accepts: the owner, group and other entries, and a mask with named ones.
  if (!has(ACL_USER_OBJ) || !has(ACL_GROUP_OBJ) || !has(ACL_OTHER)) return null;
  if ((has(ACL_USER) || has(ACL_GROUP)) && !has(ACL_MASK)) return null;
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
