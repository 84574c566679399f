"""A disk's GPT and its partitions' ext superblocks, read from raw bytes (a few preads through the appliance),
so that finding persist on an ordinary disk needs no listing of devices and no blkid. Pure parsing: anything
unusual answers None, and the appliance falls back to asking its kernel.
"""

from __future__ import annotations

import struct
import zlib

EXT_SUPERBLOCK_OFFSET = 1024
EXT_SUPERBLOCK_SIZE = 512
# Features an ext3 driver understands; anything beyond makes blkid call the filesystem ext4.
_EXT3_INCOMPAT = 0x0002 | 0x0004 | 0x0010  # filetype, recover, meta_bg
_EXT3_RO_COMPAT = 0x0001 | 0x0002 | 0x0004  # sparse_super, large_file, btree_dir
_EXT_HAS_JOURNAL, _EXT_INCOMPAT_JOURNAL_DEV, _EXT_INCOMPAT_64BIT = 0x0004, 0x0008, 0x0080


def ext_probe(superblock: bytes) -> tuple[str, str, int] | None:
    """(label, "ext2"/"ext3"/"ext4" as blkid names them, size in bytes) of an ext superblock, or None when
    it is not one. Reading it takes one pread_device, where blkid starts a program in the appliance."""
    if len(superblock) < 0x154 or superblock[0x38:0x3A] != b"\x53\xef":
        return None
    compat, incompat, ro_compat = struct.unpack_from("<III", superblock, 0x5C)
    if incompat & _EXT_INCOMPAT_JOURNAL_DEV:
        return None  # an external journal, not a filesystem
    if incompat & ~_EXT3_INCOMPAT or ro_compat & ~_EXT3_RO_COMPAT:
        kind = "ext4"
    else:
        kind = "ext3" if compat & _EXT_HAS_JOURNAL else "ext2"
    blocks = struct.unpack_from("<I", superblock, 0x04)[0]
    if incompat & _EXT_INCOMPAT_64BIT:
        blocks |= struct.unpack_from("<I", superblock, 0x150)[0] << 32
    block_size = 1024 << struct.unpack_from("<I", superblock, 0x18)[0]
    label = superblock[0x78:0x88].split(b"\0", 1)[0].decode("utf-8", "replace")
    return label, kind, blocks * block_size


def plain_label(label: str) -> bool:
    """A label that blkid shows exactly as the superblock holds it (no character its export format escapes)."""
    return all(c.isascii() and (c.isalnum() or c in "._-+:@") for c in label)


_SECTOR = 512
GPT_READ = 34 * _SECTOR  # protective MBR, GPT header, 128 entries of 128 bytes: what every GPT tool writes
# The first read of a disk: the GPT and the superblock of a first partition aligned at 1 MiB (every
# partitioning tool's default), so that partition needs no read of its own (each costs a udev settle).
FIRST_READ = (1 << 20) + EXT_SUPERBLOCK_OFFSET + EXT_SUPERBLOCK_SIZE


def gpt_partitions(raw: bytes, disk_size: int) -> list[tuple[int, int]] | None:
    """(number, first byte) of each partition in a disk's primary GPT (gpt_entries without the sizes)."""
    entries = gpt_entries(raw, disk_size)
    return None if entries is None else [(number, first) for number, first, _size in entries]


def gpt_entries(raw: bytes, disk_size: int) -> list[tuple[int, int, int]] | None:
    """(number, first byte, size in bytes) of each partition in a disk's primary GPT, numbered as Linux
    numbers them (entry index + 1); the size is the partition's, as parted (part_list) gives it.

    None unless the table is one the kernel uses exactly as read here: a protective MBR, header and entry
    CRCs that match, entries where tools put them, every partition within the usable area, which lies on
    the disk. Anything else (an MBR disk, a damaged primary table the kernel would replace by the backup)
    is left to the full listing, which asks the appliance's kernel."""
    if len(raw) < GPT_READ or raw[510:512] != b"\x55\xaa":
        return None
    if not any(raw[446 + 16 * i + 4] == 0xEE for i in range(4)):
        return None
    header = raw[_SECTOR : 2 * _SECTOR]
    if header[:8] != b"EFI PART":
        return None
    size, crc = struct.unpack_from("<II", header, 12)
    (my_lba,) = struct.unpack_from("<Q", header, 24)
    first_usable, last_usable = struct.unpack_from("<QQ", header, 40)
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
    if not 92 <= size <= _SECTOR or my_lba != 1 or entries_lba != 2 or entry_size != 128:
        return None
    if zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:size]) != crc:
        return None
    table = raw[2 * _SECTOR : 2 * _SECTOR + count * entry_size]
    if count * entry_size > GPT_READ - 2 * _SECTOR or zlib.crc32(table) != entries_crc:
        return None
    if not first_usable <= last_usable < disk_size // _SECTOR:
        return None
    found = []
    for index in range(count):
        entry = table[index * entry_size : (index + 1) * entry_size]
        if entry[:16] == bytes(16):
            continue  # an unused slot: Linux skips it but keeps the numbering
        first, last = struct.unpack_from("<QQ", entry, 32)
        if not first_usable <= first <= last <= last_usable:
            return None
        found.append((index + 1, first * _SECTOR, (last - first + 1) * _SECTOR))
    return found
