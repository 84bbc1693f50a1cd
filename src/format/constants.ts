// On-disk constants, named as in the kernel's fs/erofs/erofs_fs.h.

export const EROFS_SUPER_OFFSET = 1024;
export const EROFS_SUPER_MAGIC_V1 = 0xe0f5e1e2;
/** Base superblock size; mkfs never uses extension slots without metabox. */
export const EROFS_SUPER_BASE_SIZE = 128;

export const EROFS_MIN_BLOCK_BITS = 9;
export const EROFS_MAX_BLOCK_BITS = 12;

export const EROFS_FEATURE_COMPAT_SB_CHKSUM = 0x0001;
export const EROFS_FEATURE_COMPAT_MTIME = 0x0002;
export const EROFS_FEATURE_COMPAT_XATTR_FILTER = 0x0004;

export const EROFS_FEATURE_INCOMPAT_ZERO_PADDING = 0x0001;
export const EROFS_FEATURE_INCOMPAT_COMPR_CFGS = 0x0002;
export const EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER = 0x0002;
export const EROFS_FEATURE_INCOMPAT_CHUNKED_FILE = 0x0004;
export const EROFS_FEATURE_INCOMPAT_DEVICE_TABLE = 0x0008;
export const EROFS_FEATURE_INCOMPAT_COMPR_HEAD2 = 0x0008;
export const EROFS_FEATURE_INCOMPAT_ZTAILPACKING = 0x0010;
export const EROFS_FEATURE_INCOMPAT_FRAGMENTS = 0x0020;
export const EROFS_FEATURE_INCOMPAT_DEDUPE = 0x0020;
export const EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES = 0x0040;
export const EROFS_FEATURE_INCOMPAT_48BIT = 0x0080;
export const EROFS_FEATURE_INCOMPAT_METABOX = 0x0100;

/** i_format bit 0: 0 = compact (32-byte) inode, 1 = extended (64-byte) inode. */
export const EROFS_INODE_LAYOUT_COMPACT = 0;
export const EROFS_INODE_LAYOUT_EXTENDED = 1;
export const EROFS_I_VERSION_BIT = 0;
export const EROFS_I_DATALAYOUT_BIT = 1;
export const EROFS_I_ALL = 0x1f;

export const EROFS_INODE_FLAT_PLAIN = 0;
export const EROFS_INODE_COMPRESSED_FULL = 1;
export const EROFS_INODE_FLAT_INLINE = 2;
export const EROFS_INODE_COMPRESSED_COMPACT = 3;
export const EROFS_INODE_CHUNK_BASED = 4;

export const EROFS_INODE_COMPACT_SIZE = 32;
export const EROFS_INODE_EXTENDED_SIZE = 64;
/** Inodes live in 32-byte slots: nid = (byte offset - meta_blkaddr * blksz) / 32. */
export const EROFS_ISLOTBITS = 5;
export const EROFS_ISLOTSIZE = 1 << EROFS_ISLOTBITS;

/** Block address meaning "no block" (e.g. an inode whose data is all inline). */
export const EROFS_NULL_ADDR = 0xffffffff;

export const EROFS_NAME_LEN = 255;
export const EROFS_DIRENT_SIZE = 12;

export const EROFS_FT_UNKNOWN = 0;
export const EROFS_FT_REG_FILE = 1;
export const EROFS_FT_DIR = 2;
export const EROFS_FT_CHRDEV = 3;
export const EROFS_FT_BLKDEV = 4;
export const EROFS_FT_FIFO = 5;
export const EROFS_FT_SOCK = 6;
export const EROFS_FT_SYMLINK = 7;

export const EROFS_XATTR_INDEX_USER = 1;
export const EROFS_XATTR_INDEX_POSIX_ACL_ACCESS = 2;
export const EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT = 3;
export const EROFS_XATTR_INDEX_TRUSTED = 4;
export const EROFS_XATTR_INDEX_LUSTRE = 5;
export const EROFS_XATTR_INDEX_SECURITY = 6;
/** e_name_index with this bit set refers to the long-prefix table. */
export const EROFS_XATTR_LONG_PREFIX = 0x80;
export const EROFS_XATTR_LONG_PREFIX_MASK = 0x7f;

export const EROFS_XATTR_IBODY_HEADER_SIZE = 12;
export const EROFS_XATTR_ENTRY_SIZE = 4;
export const EROFS_XATTR_FILTER_BITS = 32;
export const EROFS_XATTR_FILTER_DEFAULT = 0xffffffff;
export const EROFS_XATTR_FILTER_SEED = 0x25bbe08f;

export const Z_EROFS_COMPRESSION_LZ4 = 0;
export const Z_EROFS_COMPRESSION_LZMA = 1;
export const Z_EROFS_COMPRESSION_DEFLATE = 2;
export const Z_EROFS_COMPRESSION_ZSTD = 3;
export const Z_EROFS_COMPRESSION_MAX = 4;

export const Z_EROFS_ADVISE_COMPACTED_2B = 0x0001;
export const Z_EROFS_ADVISE_EXTENTS = 0x0001;
export const Z_EROFS_ADVISE_BIG_PCLUSTER_1 = 0x0002;
export const Z_EROFS_ADVISE_BIG_PCLUSTER_2 = 0x0004;
export const Z_EROFS_ADVISE_INLINE_PCLUSTER = 0x0008;
export const Z_EROFS_ADVISE_INTERLACED_PCLUSTER = 0x0010;
export const Z_EROFS_ADVISE_FRAGMENT_PCLUSTER = 0x0020;

export const Z_EROFS_LCLUSTER_TYPE_PLAIN = 0;
export const Z_EROFS_LCLUSTER_TYPE_HEAD1 = 1;
export const Z_EROFS_LCLUSTER_TYPE_NONHEAD = 2;
export const Z_EROFS_LCLUSTER_TYPE_HEAD2 = 3;

export const Z_EROFS_LI_LCLUSTER_TYPE_MASK = 0x3;
export const Z_EROFS_LI_PARTIAL_REF = 1 << 15;
export const Z_EROFS_LI_D0_CBLKCNT = 1 << 11;

/** Size of the compressed-inode map header that precedes the lcluster indexes. */
export const Z_EROFS_MAP_HEADER_SIZE = 8;
/** Full (legacy) index records are 8 bytes; the header area is 16 bytes (header + 8 reserved). */
export const Z_EROFS_FULL_INDEX_ALIGN_SIZE = 16;
export const Z_EROFS_FULL_INDEX_SIZE = 8;

export const EROFS_CHUNK_FORMAT_BLKBITS_MASK = 0x001f;
export const EROFS_CHUNK_FORMAT_INDEXES = 0x0020;
export const EROFS_CHUNK_FORMAT_48BIT = 0x0040;

/** POSIX file type bits of st_mode. */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
