"""Hostile zip files for the wheel reader: patches to the headers of a wheel zipfile wrote, and a
writer that lays out a zip byte by byte (ZIP64 throughout, or deflate streams too large to build
in memory).

Offsets follow PKWARE's APPNOTE.TXT, sections 4.3.7 (local file header), 4.3.12 (central
directory header), 4.3.14-4.3.16 (ZIP64 end of central directory record, locator, end record)
and 4.5.3 (ZIP64 extended information extra field).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

LOCAL_MAGIC = b"PK\x03\x04"
CENTRAL_MAGIC = b"PK\x01\x02"
END_MAGIC = b"PK\x05\x06"
ZIP64_END_MAGIC = b"PK\x06\x06"
ZIP64_LOCATOR_MAGIC = b"PK\x06\x07"
ZIP64_EXTRA = 0x0001
MARK32 = 0xFFFF_FFFF
S_IFREG = 0o100000
S_IFLNK = 0o120000

# field -> (offset, struct code) inside each header
LOCAL_FIELDS = {"flags": (6, "H"), "method": (8, "H"), "crc": (14, "I"), "compressed": (18, "I"),
                "size": (22, "I"), "name_len": (26, "H"), "extra_len": (28, "H")}
CENTRAL_FIELDS = {"version_needed": (6, "H"), "flags": (8, "H"), "method": (10, "H"), "crc": (16, "I"),
                  "compressed": (20, "I"), "size": (24, "I"), "name_len": (28, "H"), "extra_len": (30, "H"),
                  "comment_len": (32, "H"),
                  "external_attr": (38, "I"), "local_offset": (42, "I")}


# ---- patching a zip that zipfile wrote -----------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """Where one member's headers sit in the file."""

    name: str
    local: int
    central: int


class Patch:
    """A zip file's bytes with its entries located, to be changed field by field and written back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = bytearray(path.read_bytes())
        end = self.data.rindex(END_MAGIC)
        count, _, start = struct.unpack_from("<HII", self.data, end + 10)
        if count == 0xFFFF or start == MARK32:  # the real values are in the ZIP64 end record
            assert self.data[end - 20:end - 16] == ZIP64_LOCATOR_MAGIC
            end64 = struct.unpack_from("<Q", self.data, end - 12)[0]
            count, _, start = struct.unpack_from("<QQQ", self.data, end64 + 32)
        self.entries: dict[str, Entry] = {}
        position = start
        for _ in range(count):
            assert self.data[position:position + 4] == CENTRAL_MAGIC
            name_len, extra_len, comment_len = struct.unpack_from("<HHH", self.data, position + 28)
            name = self.data[position + 46:position + 46 + name_len].decode()
            local = struct.unpack_from("<I", self.data, position + 42)[0]
            if local == MARK32:  # as write_zip lays it out: size, compressed size, offset
                local = struct.unpack_from("<Q", self.data, position + 46 + name_len + 20)[0]
            self.entries.setdefault(name, Entry(name, local, position))
            position += 46 + name_len + extra_len + comment_len

    def zip64(self, member: str, where: str, index: int, value: int) -> Patch:
        """Set value `index` (0 size, 1 compressed size, 2 offset) of the ZIP64 extra field that
        write_zip put in the member's local or central header."""
        entry = self.entries[member]
        header = entry.local if where == "local" else entry.central
        name_len = struct.unpack_from("<H", self.data, header + (26 if where == "local" else 28))[0]
        extra = header + (30 if where == "local" else 46) + name_len
        assert struct.unpack_from("<H", self.data, extra)[0] == ZIP64_EXTRA
        struct.pack_into("<Q", self.data, extra + 4 + 8 * index, value)
        return self

    def zip64_extra_length(self, member: str, length: int) -> Patch:
        """Make the central ZIP64 extra field claim a length its header does not hold."""
        entry = self.entries[member]
        name_len = struct.unpack_from("<H", self.data, entry.central + 28)[0]
        struct.pack_into("<H", self.data, entry.central + 46 + name_len + 2, length)
        return self

    def flags(self, member: str, bits: int) -> Patch:
        """Set flag bits in both headers."""
        for header, offset in ((self.entries[member].local, 6), (self.entries[member].central, 8)):
            value = struct.unpack_from("<H", self.data, header + offset)[0]
            struct.pack_into("<H", self.data, header + offset, value | bits)
        return self

    def local(self, member: str, name: str, value: int) -> Patch:
        offset, code = LOCAL_FIELDS[name]
        struct.pack_into("<" + code, self.data, self.entries[member].local + offset, value)
        return self

    def central(self, member: str, name: str, value: int) -> Patch:
        offset, code = CENTRAL_FIELDS[name]
        struct.pack_into("<" + code, self.data, self.entries[member].central + offset, value)
        return self

    def both(self, member: str, name: str, value: int) -> Patch:
        return self.local(member, name, value).central(member, name, value)

    def local_name(self, member: str, new_name: str) -> Patch:
        """Rename the member in its local header only (same length, so nothing moves)."""
        assert len(new_name.encode()) == len(member.encode())
        start = self.entries[member].local + 30
        self.data[start:start + len(member)] = new_name.encode()
        return self

    def save(self, path: Path | None = None) -> Path:
        target = path or self.path
        target.write_bytes(self.data)
        return target


# ---- writing a zip byte by byte ------------------------------------------------------------------------

@dataclass
class RawMember:
    """A member as it goes into the archive: its compressed bytes and what the headers declare."""

    name: str
    compressed: bytes
    method: int
    crc: int
    size: int
    external_attr: int = (S_IFREG | 0o644) << 16
    flags: int = 0x800  # the name is UTF-8

    @classmethod
    def of(cls, name: str, content: bytes, *, deflate: bool = True, mode: int = 0o644) -> RawMember:
        if deflate:
            packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            compressed = packer.compress(content) + packer.flush()
        else:
            compressed = content
        return cls(name, compressed, 8 if deflate else 0, zlib.crc32(content), len(content),
                   (S_IFREG | mode) << 16)


def write_zip(path: Path, members: Iterable[RawMember], *, zip64: bool) -> Path:
    """Write the members as a zip file. With zip64, every local and central header carries its
    sizes and offset in a ZIP64 extra field (the 32-bit fields hold 0xFFFFFFFF), and the end of
    the central directory is found through a ZIP64 record and locator, as the spec has it for
    archives past 4 GiB. Without, sizes must fit 32 bits."""
    out = io.BytesIO()
    central = io.BytesIO()
    count = 0
    for member in members:
        offset = out.tell()
        name = member.name.encode()
        if zip64:
            local_extra = struct.pack("<HHQQ", ZIP64_EXTRA, 16, member.size, len(member.compressed))
            central_extra = struct.pack("<HHQQQ", ZIP64_EXTRA, 24, member.size, len(member.compressed), offset)
            sizes32 = (MARK32, MARK32)
            offset32 = MARK32
        else:
            local_extra = central_extra = b""
            sizes32 = (len(member.compressed), member.size)
            offset32 = offset
        version = 45 if zip64 else 20
        out.write(LOCAL_MAGIC + struct.pack("<HHHHHIIIHH", version, member.flags, member.method, 0, 0x21,
                                            member.crc, *sizes32, len(name), len(local_extra)))
        out.write(name + local_extra)
        out.write(member.compressed)
        central.write(CENTRAL_MAGIC + struct.pack(
            "<HHHHHHIIIHHHHHII", (3 << 8) | version, version, member.flags, member.method, 0, 0x21,
            member.crc, *sizes32, len(name), len(central_extra), 0, 0, 0, member.external_attr, offset32))
        central.write(name + central_extra)
        count += 1
    start = out.tell()
    out.write(central.getvalue())
    size = out.tell() - start
    if zip64:
        end64 = out.tell()
        out.write(ZIP64_END_MAGIC + struct.pack("<QHHIIQQQQ", 44, (3 << 8) | 45, 45, 0, 0, count, count,
                                                size, start))
        out.write(ZIP64_LOCATOR_MAGIC + struct.pack("<IQI", 0, end64, 1))
        out.write(END_MAGIC + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, MARK32, MARK32, 0))
    else:
        out.write(END_MAGIC + struct.pack("<HHHHIIH", 0, 0, count, count, size, start, 0))
    path.write_bytes(out.getvalue())
    return path


def read_members(wheel: Path) -> list[RawMember]:
    """A wheel's members, recompressed, in archive order."""
    with zipfile.ZipFile(wheel) as zf:
        return [RawMember.of(info.filename, zf.read(info), mode=(info.external_attr >> 16) & 0o7777)
                for info in zf.infolist()]


# ---- large deflate streams without large buffers ----------------------------------------------------

ZERO_BLOCK = 1 << 20


def _flushed(content: bytes) -> bytes:
    """content deflated and ended with a full flush: byte-aligned, no reference to what comes before,
    so such pieces can be concatenated (and repeated) into one stream."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(content) + packer.flush(zlib.Z_FULL_FLUSH)


@dataclass
class Padded:
    """`head` followed by `zeros` zero bytes, as one deflate stream built from a single deflated
    block of zeros repeated: gigabytes of content for a few megabytes of stream."""

    head: bytes
    zeros: int

    def __post_init__(self) -> None:
        assert self.zeros % ZERO_BLOCK == 0

    @property
    def size(self) -> int:
        return len(self.head) + self.zeros

    def stream(self) -> bytes:
        final = b"\x03\x00"  # an empty final block with fixed Huffman codes
        return _flushed(self.head) + _flushed(bytes(ZERO_BLOCK)) * (self.zeros // ZERO_BLOCK) + final

    def content_chunks(self) -> Iterator[bytes]:
        yield self.head
        block = bytes(ZERO_BLOCK)
        for _ in range(self.zeros // ZERO_BLOCK):
            yield block

    def crc(self) -> int:
        value = 0
        for chunk in self.content_chunks():
            value = zlib.crc32(chunk, value)
        return value

    def record_hash(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.content_chunks():
            digest.update(chunk)
        return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


# ---- RECORD -----------------------------------------------------------------------------------------------

def record_hash(content: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def record_text(rows: Iterable[tuple[str, str, int | str]], record_name: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    writer.writerow([record_name, "", ""])
    return out.getvalue().encode()


# ---- deflate streams that delay their first output ---------------------------------------------------
# RFC 1951: block header bits BFINAL (1) and BTYPE (2), LSB first; Huffman codes are sent most
# significant bit first; stored blocks start at a byte boundary with LEN and its complement NLEN.

class BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.bits = 0
        self.count = 0

    def write(self, value: int, count: int) -> None:
        """`count` bits of value, least significant first (header fields, extra bits)."""
        self.bits |= value << self.count
        self.count += count
        while self.count >= 8:
            self.out.append(self.bits & 0xFF)
            self.bits >>= 8
            self.count -= 8

    def code(self, code: int, length: int) -> None:
        """A Huffman code, most significant bit first."""
        self.write(int(format(code, f"0{length}b")[::-1], 2), length)

    def align(self) -> None:
        if self.count:
            self.write(0, 8 - self.count)

    def empty_stored(self) -> None:
        self.write(0, 3)  # not final, BTYPE 00
        self.align()
        self.write(0, 16)
        self.write(0xFFFF, 16)

    def stored(self, data: bytes) -> None:
        assert len(data) < 1 << 16
        self.write(0, 3)
        self.align()
        self.write(len(data), 16)
        self.write(len(data) ^ 0xFFFF, 16)
        self.out += data

    def empty_fixed(self) -> None:
        self.write(0b010, 3)  # not final, BTYPE 01
        self.code(0, 7)  # end of block: literal/length 256 is the 7-bit code 0000000

    def empty_dynamic(self) -> None:
        """A dynamic-Huffman block whose literal/length code holds only end-of-block (one 1-bit
        code, the incomplete code RFC 1951 implementations accept) and one distance code."""
        self.write(0b100, 3)  # not final, BTYPE 10
        self.write(0, 5)  # HLIT: 257 literal/length codes
        self.write(0, 5)  # HDIST: 1 distance code
        self.write(14, 4)  # HCLEN: 18 code length codes, up to the one for length 1
        order = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1)
        lengths = {18: 1, 0: 2, 1: 2}  # canonical codes: 18 -> 0, 0 -> 10, 1 -> 11
        for symbol in order:
            self.write(lengths.get(symbol, 0), 3)
        self.code(0, 1)  # 18: a run of 11 + 127 zero lengths
        self.write(127, 7)
        self.code(0, 1)  # 18: 11 + 107 more, 256 in all
        self.write(107, 7)
        self.code(0b11, 2)  # literal/length 256 has length 1
        self.code(0b11, 2)  # distance 0 has length 1
        self.code(0, 1)  # end of block

    def getvalue(self) -> bytes:
        self.align()
        return bytes(self.out)


def raw_deflate(content: bytes, level: int = 6, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, strategy)
    return packer.compress(content) + packer.flush()


def zlib_sync_flushes(count: int) -> bytes:
    """What zlib itself writes for `count` sync flushes with no input: empty stored blocks."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = b""
    for _ in range(count):
        out += packer.compress(b"") + packer.flush(zlib.Z_SYNC_FLUSH)
    return out


def delayed_streams(content: bytes) -> dict[str, bytes]:
    """Valid raw deflate streams of `content` whose first output byte comes late: after empty
    blocks of each kind, or with the content's first byte alone, then the rest after a gap. Each
    is checked to inflate to `content`."""
    def prefixed(blocks: str, count: int) -> bytes:
        writer = BitWriter()
        for _ in range(count):
            getattr(writer, f"empty_{blocks}")()
        writer.empty_stored()  # back to a byte boundary for the stream that follows
        return writer.getvalue()

    streams = {
        f"{kind} x{count} + zlib -{level}": prefixed(kind, count) + raw_deflate(content, level)
        for kind, count, level in (("stored", 1, 6), ("stored", 300, 6), ("stored", 5000, 9),
                                   ("fixed", 2000, 1), ("dynamic", 1, 6), ("dynamic", 1000, 6))
    }
    streams["zlib sync flushes x3000 + zlib"] = zlib_sync_flushes(3000) + raw_deflate(content)
    for name, strategy in (("fixed codes", zlib.Z_FIXED), ("huffman only", zlib.Z_HUFFMAN_ONLY),
                           ("rle", zlib.Z_RLE)):
        streams[f"dynamic x500 + zlib {name}"] = prefixed("dynamic", 500) + raw_deflate(content, 6, strategy)
    streams["stored x2000 + zlib -0 (stored blocks)"] = prefixed("stored", 2000) + raw_deflate(content, 0)
    split = BitWriter()
    split.stored(content[:1])  # the 0x7f alone, then "ELF..." 40 kB later
    for _ in range(4000):
        split.empty_fixed()
    split.empty_stored()
    streams["first byte, fixed x4000, the rest"] = split.getvalue() + raw_deflate(content[1:])
    for name, stream in streams.items():
        assert zlib.decompress(stream, -zlib.MAX_WBITS) == content, name
    return streams


# ---- CRC-32 forging ------------------------------------------------------------------------------------

def forge_crc32(data: bytes, target: int, at: int) -> bytes:
    """`data` with the four bytes at `at` replaced so that its CRC-32 is `target`. CRC-32 is
    affine over GF(2): each bit of the patch flips a fixed set of CRC bits, so 32 CRCs give the
    matrix and elimination gives the patch."""
    base = bytearray(data)
    base[at:at + 4] = bytes(4)
    zero = zlib.crc32(base)
    columns = []
    for bit in range(32):
        probe = bytearray(base)
        probe[at + bit // 8] = 1 << (bit % 8)
        columns.append(zlib.crc32(probe) ^ zero)
    # solve sum(x_bit * columns[bit]) == target ^ zero, rows reduced as (column, patch bits) pairs
    rows = [(column, 1 << bit) for bit, column in enumerate(columns)]
    want, patch = target ^ zero, 0
    for position in range(32):
        mask = 1 << position
        pivot = next((i for i in range(position, 32) if rows[i][0] & mask), None)
        assert pivot is not None, "four consecutive bytes always reach every CRC-32"
        rows[position], rows[pivot] = rows[pivot], rows[position]
        for i in range(32):
            if i != position and rows[i][0] & mask:
                rows[i] = (rows[i][0] ^ rows[position][0], rows[i][1] ^ rows[position][1])
    for position in range(32):
        if want & (1 << position):
            patch ^= rows[position][1]
    base[at:at + 4] = patch.to_bytes(4, "little")
    assert zlib.crc32(base) == target
    return bytes(base)
