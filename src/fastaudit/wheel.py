"""Wheels as zip files read in memory: the central directory, member inflate, names and tags.

Nothing is extracted to disk. The central directory gives every member's sizes and CRC-32 before
any inflate; a member is inflated in full only when its first bytes are the ELF magic.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import re
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from fastaudit.errors import (
    UnsafeMemberError,
    WheelChangedError,
    WheelError,
    ZipBombError,
    ZipConfusionError,
)
from fastaudit.inflate import InflateError, crc32, inflate_raw

# The first four bytes of every ELF image (gABI e_ident[EI_MAG0..EI_MAG3]).
ELF_MAGIC = b"\x7fELF"

# Zip bomb guards (README "Hostile input"), read from the environment once at import. They bound
# what is actually inflated, never what a member merely declares: a member that is never read is
# never a reason to refuse a wheel, and a high compression ratio alone is none either (real wheels
# carry test data that inflates 472-fold and libraries of padding that inflate 223-fold).
# - a member that is read may declare at most MAX_MEMBER_SIZE bytes;
# - the members read from one wheel may inflate to MAX_WHEEL_INFLATE bytes in all (each read counts);
# - reading one wheel's members may take MAX_WHEEL_SECONDS from the moment it is opened.
MAX_MEMBER_SIZE = int(os.environ.get("FASTAUDIT_MAX_MEMBER_SIZE", str(8 << 30)))
MAX_WHEEL_INFLATE = int(os.environ.get("FASTAUDIT_MAX_WHEEL_INFLATE", str(16 << 30)))
MAX_WHEEL_SECONDS = float(os.environ.get("FASTAUDIT_MAX_WHEEL_SECONDS", "600"))
# A member larger than this is inflated in chunks into an unlinked temporary file, mapped for the
# ELF reader, so memory stays bounded whatever its size; smaller ones are inflated in memory.
SPOOL_SIZE = int(os.environ.get("FASTAUDIT_SPOOL_SIZE", str(512 << 20)))
_CHUNK = 1 << 20
# The ELF magic test feeds the inflater this much compressed data first (a normal stream yields its
# first bytes from the first few hundred), then four times as much each round, up to _CHUNK.
_HEAD_INPUT = 1024
# A local header is read with this much after its name: room for a usual extra field and the magic
# test's first input, so that the test costs no second read.
_HEAD_READ = 128 + _HEAD_INPUT

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"
_FLAG_ENCRYPTED = 0x1
_FLAG_DATA_DESCRIPTOR = 0x8
_FLAG_UTF8 = 0x800
_ZIP64_EXTRA = 0x0001
_ZIP64_MARK = 0xFFFF_FFFF
_S_IFMT, _S_IFLNK = stat.S_IFMT(0o170000), stat.S_IFLNK

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


class Hasher(Protocol):
    """What read() feeds content to: any hashlib object."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class Member(NamedTuple):
    """One file in the wheel, as the central directory describes it. A named tuple: a wheel can
    have thousands, and a tuple is built five times faster than a frozen dataclass."""

    name: str
    crc32: int
    compressed_size: int
    size: int
    compress_type: int
    header_offset: int
    encrypted: bool
    # the first byte the member's data must end before: the next entry's header, or the central
    # directory (entries sorted by offset)
    data_limit: int
    # kept when repair copies the member into a new zip
    date_time: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0)
    external_attr: int = 0


def unsafe_name_reason(name: str) -> str | None:
    """Why an installer must not write a member under this name, or None. Backslashes count as
    separators too, as they do on Windows."""
    if name.startswith(("/", "\\")) or name[1:2] == ":" and name[:1].isalpha():
        return "is an absolute path"
    if ".." in name and ".." in name.replace("\\", "/").split("/"):
        return "has a '..' component"
    return None


def _check_directory(path: str, infos: list[zipfile.ZipInfo], start_dir: int) -> dict[str, int]:
    """Refuse what makes the central directory unsafe or ambiguous, before any member is read.
    Returns each entry's data limit (see Member.data_limit), by name.

    This runs on every wheel a scan opens, thousands of entries each: the common case is decided
    by whole-list operations, and entries are looked at one by one only to say which one is bad.
    """
    names = [info.filename for info in infos]
    unique = set(names)
    # zipfile cuts a name at its first NUL byte: a name that starts with one is left empty (found
    # by the wheel fuzzer, as an IndexError from ZipInfo.is_dir)
    if "" in unique:
        raise UnsafeMemberError("a member name is empty or starts with a NUL byte", path=path)
    if len(unique) != len(names):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ZipConfusionError("duplicate member name: installers keep one of the entries and "
                                        "readers may see the other", path=path, member=name)
            seen.add(name)
    joined = "\n" + "\n".join(names)
    if any(mark in joined for mark in ("\n/", "\n\\", "..", ":")):
        for name in names:
            reason = unsafe_name_reason(name)
            if reason:
                raise UnsafeMemberError(f"member name {reason}", path=path, member=name)
    for info in infos:
        if ((info.external_attr >> 16) & _S_IFMT == _S_IFLNK or info.flag_bits & _FLAG_ENCRYPTED
                or info.header_offset >= start_dir):
            if info.flag_bits & _FLAG_ENCRYPTED:
                raise WheelError("encrypted member", path=path, member=info.filename)
            if info.header_offset >= start_dir:
                raise ZipConfusionError("local header offset points into or past the central directory",
                                        path=path, member=info.filename)
            raise UnsafeMemberError("symbolic link entry: wheels cannot carry links", path=path, member=info.filename)
    # Entries that share bytes make a zip bomb out of honest-looking sizes (each kilobyte of data
    # counted again per entry), or show two readers two contents. A lower bound of each entry's end
    # (header, name, data; the local extra field is unknown here) must not pass the next header.
    ordered = sorted(infos, key=attrgetter("header_offset"))
    limits = [info.header_offset for info in ordered[1:]]
    limits.append(start_dir)
    for index, (info, limit) in enumerate(zip(ordered, limits)):
        if info.header_offset + _LOCAL_HEADER.size + len(info.orig_filename) + info.compress_size > limit:
            after = f"the entry of {ordered[index + 1].filename}" if index + 1 < len(ordered) else \
                "the central directory"
            raise ZipConfusionError(f"member data overlaps {after}", path=path, member=info.filename)
    return {info.filename: limit for info, limit in zip(ordered, limits)}


class _Identity(NamedTuple):
    """What changes when a file is written, truncated or replaced. Not st_ctime: it also moves when
    anyone links or unlinks the file (a cache shared by hard links, a backup with `cp -l`), which
    changes nothing read. A writer that sets st_mtime back can hide a change of the members not
    read in full; those read in full are checked against their CRC-32 anyway."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class WheelArchive:
    """A wheel opened for reading: members are listed from the central directory and inflated on
    demand, read from the file with pread.

    Not through a memory map: a file truncated while it is mapped (a mirror sync rewriting it)
    kills the process with SIGBUS on the next touch of a page past the new end. A read past the
    end is a short read instead, and any error met while the file is not as it was when opened
    is a WheelChangedError; check_unchanged says so for a change that broke nothing read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = self._open_regular_file()
        self._fd = self._file.fileno()
        self._identity = _Identity.of(os.fstat(self._fd))
        self.size = self._identity.size
        if self.size == 0:
            self._file.close()
            raise WheelError("cannot open: the file is empty", path=str(self.path))
        try:
            with zipfile.ZipFile(self._file) as zf:
                infos = zf.infolist()
                start_dir = zf.start_dir
        # NotImplementedError: an entry needs a newer zip version than zipfile reads (found by the
        # wheel fuzzer: "zip file version 6.4")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            error = self._changed_error(f"not a readable zip file: {e}") or \
                WheelError(f"not a readable zip file: {e}", path=str(self.path))
            self._file.close()
            raise error from e
        try:
            limits = _check_directory(str(self.path), infos, start_dir)
        except WheelError:
            self._file.close()
            raise
        self._buffer = bytearray()  # see _compressed_in_buffer
        self._buffer_holds: int | None = None  # the header offset of the member whose data is in it
        self._spans: dict[int, tuple[int, int]] = {}  # header offset -> data span, once checked
        self._window: tuple[int, bytes] = (0, b"")  # the last local header read, and what follows it
        self.inflated = 0  # bytes read in full so far, against MAX_WHEEL_INFLATE
        self._deadline = time.monotonic() + MAX_WHEEL_SECONDS
        self.members = tuple(
            Member(i.filename, i.CRC, i.compress_size, i.file_size, i.compress_type, i.header_offset,
                   bool(i.flag_bits & _FLAG_ENCRYPTED), limits[i.filename], i.date_time, i.external_attr)
            for i in infos
            if not i.is_dir()
        )

    def _open_regular_file(self) -> BinaryIO:
        """The file, opened only if it is a regular file: opening a FIFO blocks until a writer
        comes, and opening a device can act on it. Checked again on the open descriptor, which
        O_NONBLOCK keeps from blocking on a FIFO put in its place meanwhile."""
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                raise WheelError("not a regular file", path=str(self.path))
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise WheelError(f"cannot open: {e}", path=str(self.path)) from e
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise WheelError("not a regular file", path=str(self.path))
        return open(fd, "rb")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WheelArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _changed_error(self, message: str, member: str | None = None) -> WheelChangedError | None:
        """A WheelChangedError if the file, or what its path names, is no longer what was opened."""
        now = _Identity.of(os.fstat(self._fd))
        try:
            named: _Identity | None = _Identity.of(os.stat(self.path))
        except OSError:
            named = None  # the path is gone
        if now == self._identity and named == self._identity:
            return None
        what = "was replaced or removed" if now == self._identity else \
            f"changed ({self._identity.size} bytes when opened, {now.size} now)"
        return WheelChangedError(f"the file {what} while it was read: {message}", path=str(self.path), member=member)

    def check_unchanged(self) -> None:
        """Raise WheelChangedError if the file was written, truncated or replaced since it was opened:
        what was read may mix two versions of it."""
        error = self._changed_error("read it again once it is complete")
        if error is not None:
            raise error

    def _error(self, error: type[WheelError], message: str, member: Member) -> WheelError:
        return self._changed_error(message, member.name) or error(message, path=str(self.path), member=member.name)

    def _pread(self, start: int, length: int, member: Member) -> bytes:
        """Exactly `length` bytes from `start`; a file that ends first has changed under us, since
        every span read was checked against the size it had when opened."""
        data = self._pread_upto(start, length, member)
        if len(data) < length:
            raise self._error(WheelError, f"the file ends at {start + len(data)} bytes", member)
        return data

    def _pread_upto(self, start: int, length: int, member: Member) -> bytes:
        """Up to `length` bytes from `start`, fewer only where the file ends. A span inside the
        last local header's read is served from it: a member's first bytes come with its header."""
        window_start, window = self._window
        if window_start <= start and start + length <= window_start + len(window):
            return window[start - window_start:start - window_start + length]
        try:
            data = os.pread(self._fd, length, start)
            while len(data) < length and (more := os.pread(self._fd, length - len(data), start + len(data))):
                data += more
        except OSError as e:  # an I/O error of the device, say
            raise self._error(WheelError, f"cannot read: {e}", member) from e
        return data

    def _data_span(self, member: Member) -> tuple[int, int]:
        """Where the member's data lies, after checking that its local header says what the central
        directory says: the same name, method and (unless a data descriptor follows) CRC-32 and
        sizes. A reader that walks local headers, as streaming unzippers do, then sees what we see.
        Checked once per member: every later read of it starts from the span found then."""
        span = self._spans.get(member.header_offset)
        if span is None:
            span = self._spans[member.header_offset] = self._checked_data_span(member)
        return span

    def _checked_data_span(self, member: Member) -> tuple[int, int]:
        start = member.header_offset
        if start < 0 or start + _LOCAL_HEADER.size > self.size:  # zipfile adds a shift, which can be negative
            raise self._error(WheelError, "bad local file header", member)
        # in one read: the header, the name as long as the central directory has it, and enough
        # after it for a usual extra field and the start of the data (the ELF magic test's input)
        head = self._pread_upto(start, _LOCAL_HEADER.size + len(member.name.encode()) + _HEAD_READ, member)
        self._window = (start, head)
        header = head[:_LOCAL_HEADER.size]
        if len(header) < _LOCAL_HEADER.size:
            raise self._error(WheelError, f"the file ends at {start + len(head)} bytes", member)
        if header[:4] != _LOCAL_MAGIC:
            raise self._error(WheelError, "bad local file header", member)
        _, _, flags, method, _, _, crc, compressed, size, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        name_start = start + _LOCAL_HEADER.size
        extra_start = name_start + name_len
        data_start = extra_start + extra_len
        data_end = data_start + member.compressed_size
        if data_end > min(member.data_limit, self.size):
            raise self._error(ZipConfusionError, "member data extends past its entry", member)
        raw_name = self._pread(name_start, name_len, member)
        try:
            local_name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
        except UnicodeDecodeError:
            local_name = None
        if local_name != member.name:
            raise self._error(ZipConfusionError, f"local header names the member {raw_name!r}", member)
        if method != member.compress_type or bool(flags & _FLAG_ENCRYPTED) != member.encrypted:
            raise self._error(ZipConfusionError, "local header and central directory disagree on the "
                              "compression method or encryption", member)
        if not flags & _FLAG_DATA_DESCRIPTOR:
            if _ZIP64_MARK in (compressed, size):
                extra = self._pread(extra_start, extra_len, member)
                size, compressed = self._zip64_sizes(extra, size, compressed, member)
            if (crc, compressed, size) != (member.crc32, member.compressed_size, member.size):
                raise self._error(ZipConfusionError, f"local header declares CRC-32 {crc:#010x}, {compressed} "
                                  f"compressed and {size} bytes; the central directory {member.crc32:#010x}, "
                                  f"{member.compressed_size} and {member.size}", member)
        return data_start, data_end

    def _zip64_sizes(self, extra: bytes, size: int, compressed: int, member: Member) -> tuple[int, int]:
        """The sizes a local header's ZIP64 extra field gives for the fields marked 0xFFFFFFFF."""
        start = 0
        while start + 4 <= len(extra):
            tag, length = struct.unpack_from("<HH", extra, start)
            body = start + 4
            if tag == _ZIP64_EXTRA:
                wanted = (size == _ZIP64_MARK) + (compressed == _ZIP64_MARK)
                if length < 8 * wanted or body + length > len(extra):
                    break
                values = list(struct.unpack_from(f"<{wanted}Q", extra, body))
                if size == _ZIP64_MARK:
                    size = values.pop(0)
                if compressed == _ZIP64_MARK:
                    compressed = values.pop(0)
                return size, compressed
            start = body + length
        raise self._error(ZipConfusionError, "local header has no valid ZIP64 extra field for its sizes", member)

    def check_local_header(self, member: Member) -> None:
        """Check a member's local header against the central directory without reading its data."""
        self._data_span(member)

    def _compressed(self, member: Member) -> bytes:
        data_start, data_end = self._data_span(member)
        return self._pread(data_start, data_end - data_start, member)

    def _compressed_in_buffer(self, member: Member) -> memoryview:
        """The member's data, read into a buffer the archive reuses from member to member: a
        fresh one per member would cost its page faults every time (8% of a numpy or scipy
        audit). The view must be released before the next call (use it in a with block)."""
        data_start, data_end = self._data_span(member)
        length = data_end - data_start
        if self._buffer_holds == member.header_offset:  # content_key read it just before
            return memoryview(self._buffer)[:length]
        self._buffer_holds = None
        if len(self._buffer) < length:
            self._buffer = bytearray(length)
        view = memoryview(self._buffer)[:length]
        done = 0
        try:
            while done < length and (count := os.preadv(self._fd, [view[done:]], data_start + done)):
                done += count
        except OSError as e:
            view.release()
            raise self._error(WheelError, f"cannot read: {e}", member) from e
        if done < length:
            view.release()
            raise self._error(WheelError, f"the file ends at {data_start + done} bytes", member)
        self._buffer_holds = member.header_offset
        return view

    def _check_method(self, member: Member) -> None:
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self._error(WheelError, f"unsupported compression method {member.compress_type}", member)

    def _check_time(self, member: Member) -> None:
        if time.monotonic() > self._deadline:
            raise self._error(ZipBombError, f"reading the wheel takes more than {MAX_WHEEL_SECONDS:g} s "
                              "(FASTAUDIT_MAX_WHEEL_SECONDS)", member)

    def _admit(self, member: Member) -> None:
        """Count a member about to be read in full against the caps; refuse it if it does not fit.
        Its output is capped at the declared size, so the declared size is what it will cost."""
        self._check_method(member)
        if member.size > MAX_MEMBER_SIZE:
            raise self._error(ZipBombError, f"member declares {member.size} bytes, above the "
                              f"{MAX_MEMBER_SIZE}-byte limit (FASTAUDIT_MAX_MEMBER_SIZE)", member)
        if self.inflated + member.size > MAX_WHEEL_INFLATE:
            raise self._error(ZipBombError, f"reading this member's {member.size} bytes would bring what the wheel "
                              f"inflates to {self.inflated + member.size} bytes, above the {MAX_WHEEL_INFLATE}-byte "
                              "limit (FASTAUDIT_MAX_WHEEL_INFLATE)", member)
        self._check_time(member)
        self.inflated += member.size

    def compressed(self, member: Member) -> bytes:
        """The member's data as stored (deflated or not), for copying it unchanged into a new zip."""
        self._check_method(member)
        return self._compressed(member)

    def content_key(self, member: Member) -> bytes:
        """A key that names the member's content and that nobody can forge cheaply: the SHA-256 of
        its data as stored, with the method and the sizes and CRC-32 the directory declares. Equal
        keys mean equal stored bytes, so equal content (bench/bench_cache_key.py: hashing the
        stored bytes costs a sixth to a third of inflating them)."""
        self._check_method(member)
        digest = hashlib.sha256()
        if member.size <= SPOOL_SIZE and member.compress_type != zipfile.ZIP_STORED:
            # what read() inflates from memory (the same buffer, so no more memory than read() takes):
            # hashed where read() finds it, so the facts come from the very bytes the key names
            with self._compressed_in_buffer(member) as data:
                digest.update(data)
        else:
            data_start, data_end = self._data_span(member)
            for position in range(data_start, data_end, _CHUNK):
                digest.update(self._pread(position, min(_CHUNK, data_end - position), member))
        declared = struct.pack("<BIQQ", member.compress_type, member.crc32, member.compressed_size, member.size)
        return digest.digest() + declared

    def starts_with_elf_magic(self, member: Member) -> bool:
        """Whether the member's content starts with the ELF magic, inflating no more than it takes
        to produce four bytes: a stream may begin with any number of empty blocks (stored, fixed or
        dynamic), so input is fed until four bytes come out or the member's data ends."""
        if member.size < len(ELF_MAGIC):
            return False
        self._check_method(member)
        self._check_time(member)
        data_start, data_end = self._data_span(member)
        if member.compress_type == zipfile.ZIP_STORED:
            return self._pread(data_start, min(len(ELF_MAGIC), data_end - data_start), member) == ELF_MAGIC
        return self._inflated_head(data_start, data_end, member) == ELF_MAGIC

    def _inflated_head(self, start: int, end: int, member: Member) -> bytes:
        """The first (up to) four bytes the deflate stream at [start, end) inflates to."""
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        head = b""
        position, step = start, _HEAD_INPUT
        try:
            while len(head) < len(ELF_MAGIC) and not inflater.eof:
                chunk = inflater.unconsumed_tail
                if not chunk:
                    chunk = self._pread(position, min(step, end - position), member)
                    position += len(chunk)
                if not chunk:
                    break  # the data ends first: not an ELF image (a read would refuse it as truncated)
                head += inflater.decompress(chunk, len(ELF_MAGIC) - len(head))
                step = min(step * 4, _CHUNK)
                self._check_time(member)
        except zlib.error as e:
            raise self._error(WheelError, f"corrupt deflate data: {e}", member) from e
        return head

    def read(self, member: Member, hasher: Hasher | None = None) -> bytes | bytearray | mmap.mmap:
        """The member's whole content, exactly the size and CRC-32 the directory declares (or
        WheelError). Above SPOOL_SIZE it is a read-only map of a temporary file (see _spool).
        A hasher, if given, is fed the content as it is produced."""
        self._admit(member)
        if member.size > SPOOL_SIZE:
            return self._spool(member, hasher)
        content: bytes | bytearray
        if member.compress_type == zipfile.ZIP_STORED:
            content = self._compressed(member)
            if len(content) != member.size:
                raise self._error(WheelError, f"stored member holds {len(content)} bytes, not the declared "
                                  f"{member.size}", member)
        else:
            with self._compressed_in_buffer(member) as data:
                try:
                    content = inflate_raw(data, member.size)
                except InflateError as e:
                    raise self._error(WheelError, str(e), member) from e
        self._check_crc(member, crc32(content))
        if hasher is not None:
            hasher.update(content)
        return content

    def _check_crc(self, member: Member, crc: int) -> None:
        if crc != member.crc32:
            raise self._error(WheelError, f"content has CRC-32 {crc:#010x}, the directory declares "
                              f"{member.crc32:#010x}", member)

    def _spool(self, member: Member, hasher: Hasher | None) -> mmap.mmap:
        """Inflate (or copy) a large member in chunks into an unlinked temporary file and map it.

        The compressed bytes are read a chunk at a time, and runs of zeros become holes, so neither
        the wheel nor the content is ever resident in full: the ELF reader touches only the pages of
        the headers and tables it reads. The map is of our own unlinked file, which nobody else can
        truncate.
        """
        data_start, data_end = self._data_span(member)
        try:
            return self._spool_to_file(member, data_start, data_end, hasher)
        except OSError as e:  # the temporary folder is full
            raise self._error(WheelError, f"cannot inflate to a temporary file: {e}", member) from e

    def _spool_to_file(self, member: Member, data_start: int, data_end: int, hasher: Hasher | None) -> mmap.mmap:
        zeros = bytes(_CHUNK)
        written = crc = 0
        with tempfile.TemporaryFile() as spool:
            for out in self._chunks(data_start, data_end, member):
                self._check_time(member)
                written += len(out)
                if written > member.size:
                    raise self._error(WheelError, f"inflates to more than the declared {member.size} bytes", member)
                crc = crc32(out, crc)
                if hasher is not None:
                    hasher.update(out)
                if out == zeros[:len(out)]:
                    spool.seek(len(out), os.SEEK_CUR)  # a hole: no disk, no page
                else:
                    spool.write(out)
            if written != member.size:
                raise self._error(WheelError, f"holds {written} bytes, not the declared {member.size}", member)
            self._check_crc(member, crc)
            spool.truncate(written)  # the file ends in a hole if the content ends in zeros
            spool.flush()
            # the map holds its own reference to the file: the spool closes (and vanishes) here
            return mmap.mmap(spool.fileno(), written, access=mmap.ACCESS_READ)

    def _chunks(self, start: int, end: int, member: Member) -> Iterator[bytes]:
        """The member's content, at most _CHUNK bytes at a time."""
        position = start
        if member.compress_type == zipfile.ZIP_STORED:
            while position < end:
                chunk = self._pread(position, min(_CHUNK, end - position), member)
                position += len(chunk)
                yield chunk
            return
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        produced = 0
        while not inflater.eof:
            # small input reads: what does not fit the output cap is copied again as unconsumed_tail
            chunk = inflater.unconsumed_tail
            if not chunk:
                chunk = self._pread(position, min(_CHUNK >> 4, end - position), member)
                position += len(chunk)
            try:
                out = inflater.decompress(chunk, _CHUNK)
            except zlib.error as e:
                raise self._error(WheelError, f"corrupt deflate data: {e}", member) from e
            if not out and not chunk:
                raise self._error(WheelError, f"truncated deflate stream: it ends after {produced} of the "
                                  f"declared {member.size} bytes", member)
            produced += len(out)
            yield out

    def elf_candidates(self) -> Iterator[Member]:
        """Members that start with the ELF magic; `.py` files are skipped unread. Contents are read
        one at a time by the caller, so no two large members are held at once."""
        for member in self.members:
            if not member.name.endswith(".py") and self.starts_with_elf_magic(member):
                yield member
