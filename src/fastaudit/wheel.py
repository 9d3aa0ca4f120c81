"""Wheels as zip files read in memory: the central directory, member inflate, names and tags.

Nothing is extracted to disk. The central directory gives every member's sizes and CRC-32 before
any inflate; a member is inflated in full only when its first bytes are the ELF magic.
"""
from __future__ import annotations

import mmap
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastaudit.errors import WheelError
from fastaudit.inflate import InflateError, inflate_raw

# The first four bytes of every ELF image (gABI e_ident[EI_MAG0..EI_MAG3]).
ELF_MAGIC = b"\x7fELF"

# A member whose declared size is above this is refused rather than inflated (zip bomb guard).
MAX_MEMBER_SIZE = int(os.environ.get("FASTAUDIT_MAX_MEMBER_SIZE", 8 << 30))

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"

# PEP 427: {distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl
_WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?"
    r"-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$"
)


@dataclass(frozen=True)
class WheelName:
    filename: str
    name: str
    version: str
    build: str | None
    python_tags: tuple[str, ...]
    abi_tags: tuple[str, ...]
    platform_tags: tuple[str, ...]

    @property
    def is_pure(self) -> bool:
        return self.platform_tags == ("any",)

    @property
    def is_linux(self) -> bool:
        return any(is_linux_tag(tag) for tag in self.platform_tags)


def is_linux_tag(tag: str) -> bool:
    return tag.startswith(("manylinux", "musllinux", "linux_"))


def parse_wheel_name(filename: str) -> WheelName:
    match = _WHEEL_NAME.match(filename)
    if match is None:
        raise WheelError("not a valid wheel file name (PEP 427)", path=filename)
    return WheelName(
        filename=filename,
        name=match["name"],
        version=match["version"],
        build=match["build"],
        python_tags=tuple(match["python"].split(".")),
        abi_tags=tuple(match["abi"].split(".")),
        platform_tags=tuple(match["platform"].split(".")),
    )


@dataclass(frozen=True)
class Member:
    """One file in the wheel, as the central directory describes it."""

    name: str
    crc32: int
    compressed_size: int
    size: int
    compress_type: int
    header_offset: int
    encrypted: bool
    date_time: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0)
    external_attr: int = 0


class WheelArchive:
    """A wheel opened for reading: members are listed from the central directory and inflated on
    demand from a memory map of the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:  # ValueError: an empty file cannot be mapped
            raise WheelError(f"cannot open: {e}", path=str(self.path)) from e
        try:
            with zipfile.ZipFile(self._map) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
            self._map.close()
            raise WheelError(f"not a readable zip file: {e}", path=str(self.path)) from e
        self.members = tuple(
            Member(i.filename, i.CRC, i.compress_size, i.file_size, i.compress_type, i.header_offset,
                   bool(i.flag_bits & 0x1), i.date_time, i.external_attr)
            for i in infos
            if not i.is_dir()
        )

    def close(self) -> None:
        self._map.close()

    def __enter__(self) -> WheelArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _compressed(self, member: Member) -> memoryview:
        start = member.header_offset
        header = self._map[start:start + _LOCAL_HEADER.size]
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
            raise WheelError("bad local file header", path=str(self.path), member=member.name)
        fields = _LOCAL_HEADER.unpack(header)
        data_start = start + _LOCAL_HEADER.size + fields[9] + fields[10]
        data_end = data_start + member.compressed_size
        if data_end > len(self._map):
            raise WheelError("member data extends past the end of the file", path=str(self.path),
                             member=member.name)
        return memoryview(self._map)[data_start:data_end]

    def _check_member(self, member: Member) -> None:
        if member.encrypted:
            raise WheelError("encrypted member", path=str(self.path), member=member.name)
        if member.size > MAX_MEMBER_SIZE:
            raise WheelError(f"member declares {member.size} bytes, above the {MAX_MEMBER_SIZE}-byte limit",
                             path=str(self.path), member=member.name)
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise WheelError(f"unsupported compression method {member.compress_type}",
                             path=str(self.path), member=member.name)

    def compressed(self, member: Member) -> bytes:
        """The member's data as stored (deflated or not), for copying it unchanged into a new zip."""
        self._check_member(member)
        with self._compressed(member) as data:
            return bytes(data)

    def starts_with_elf_magic(self, member: Member) -> bool:
        """Inflate just enough of a member to see its first four bytes."""
        if member.size < len(ELF_MAGIC):
            return False
        self._check_member(member)
        # Release the view into the map on every way out: while one lives (as it would in the
        # traceback of an error), the map cannot close, and closing it would raise BufferError.
        with self._compressed(member) as data:
            if member.compress_type == zipfile.ZIP_STORED:
                return bytes(data[:4]) == ELF_MAGIC
            try:
                head = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data[:1024], len(ELF_MAGIC))
            except zlib.error as e:
                raise WheelError(f"corrupt deflate data: {e}", path=str(self.path), member=member.name) from e
        return head == ELF_MAGIC

    def read(self, member: Member) -> bytes | bytearray:
        """The member's whole content, exactly the size the directory declares (or WheelError)."""
        self._check_member(member)
        with self._compressed(member) as data:  # released on every way out, as above
            if member.compress_type == zipfile.ZIP_STORED:
                if len(data) != member.size:
                    raise WheelError(f"stored member holds {len(data)} bytes, not the declared {member.size}",
                                     path=str(self.path), member=member.name)
                return bytes(data)
            try:
                return inflate_raw(data, member.size)
            except InflateError as e:
                raise WheelError(str(e), path=str(self.path), member=member.name) from e

    def elf_candidates(self) -> Iterator[Member]:
        """Members that start with the ELF magic; `.py` files are skipped unread. Contents are read
        one at a time by the caller, so no two large members are held at once."""
        for member in self.members:
            if not member.name.endswith(".py") and self.starts_with_elf_magic(member):
                yield member
