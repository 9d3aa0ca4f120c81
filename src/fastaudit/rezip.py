"""Writing a wheel: RECORD rows (PEP 376 / PEP 427) and a deterministic zip.

Members that do not change are copied as stored, without inflating and deflating them again;
only new and changed ones are compressed, on a thread per core (libdeflate and zlib both release
the GIL while they compress) while repair goes on rewriting the next one. The zip is written to a
temporary file beside the destination and renamed over it, so a failure (a full disk, an
interrupt) leaves no partial wheel.
"""
from __future__ import annotations

import base64
import hashlib
import os
import struct
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fastaudit.errors import RepairError
from fastaudit.files import atomic_output
from fastaudit.inflate import crc32, deflate_raw

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_ZIP32_LIMIT = 0xFFFFFFFF
_UTF8_FLAG = 0x800
_MADE_BY_UNIX = (3 << 8) | 20
# -rwxr-xr-x regular file: what a grafted library is given
EXECUTABLE_FILE_ATTR = (0o100755 << 16)

DateTime = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class Entry:
    """One member of the zip to write, already in its stored form."""

    name: str
    payload: bytes          # compressed (or stored) bytes
    compress_type: int      # zipfile.ZIP_DEFLATED or ZIP_STORED
    crc32: int
    size: int
    date_time: DateTime
    external_attr: int


# Below this a member is compressed in the calling thread: handing it to a worker costs more.
_PARALLEL_MIN_SIZE = 64 * 1024
# Content waiting for a thread, at most: past it, add() waits, so a wheel that grafts gigabytes
# does not hold every library uncompressed at once.
_PENDING_MAX_BYTES = 128 * 1024 * 1024


def deflated(name: str, data: bytes, level: int, date_time: DateTime, external_attr: int) -> Entry:
    return Entry(name, deflate_raw(data, level), 8, crc32(data), len(data), date_time, external_attr)


def compress_threads() -> int:
    """The cores this process may run on: as many members are compressed at once."""
    return len(os.sched_getaffinity(0))


class Deflater:
    """deflated() for each member added, on a thread per core (libdeflate and zlib release the GIL
    while they compress) while the caller goes on with the next member."""

    def __init__(self, level: int, threads: int | None = None) -> None:
        self._level = level
        self._pool = ThreadPoolExecutor(max_workers=threads or compress_threads())
        self._pending: deque[tuple[Future[Entry], int]] = deque()
        self._pending_bytes = 0

    def add(self, name: str, data: bytes, date_time: DateTime, external_attr: int) -> Future[Entry]:
        if len(data) < _PARALLEL_MIN_SIZE:
            done: Future[Entry] = Future()
            done.set_result(deflated(name, data, self._level, date_time, external_attr))
            return done
        while self._pending and (self._pending[0][0].done() or
                                 self._pending_bytes + len(data) > _PENDING_MAX_BYTES):
            oldest, size = self._pending.popleft()
            oldest.result()
            self._pending_bytes -= size
        future = self._pool.submit(deflated, name, data, self._level, date_time, external_attr)
        self._pending.append((future, len(data)))
        self._pending_bytes += len(data)
        return future

    def __enter__(self) -> Deflater:
        return self

    def __exit__(self, *exc: object) -> None:
        # on an error, what has not started is dropped; what runs finishes (one member per thread)
        self._pool.shutdown(cancel_futures=True)


def record_hash(data: bytes) -> str:
    """The RECORD hash field: sha256, urlsafe base64 without padding."""
    return record_field(hashlib.sha256(data).digest())


def record_field(sha256: bytes) -> str:
    """The RECORD hash field of a sha256 digest."""
    return "sha256=" + base64.urlsafe_b64encode(sha256).rstrip(b"=").decode()


def render_record(rows: Iterable[tuple[str, str, str]]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


def source_date_epoch() -> DateTime | None:
    """SOURCE_DATE_EPOCH (reproducible-builds.org) as a zip timestamp, when set."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    # zip timestamps start in 1980 and have a two-second resolution
    stamp = time.gmtime(max(int(value), 315532800))
    return (stamp.tm_year, stamp.tm_mon, stamp.tm_mday, stamp.tm_hour, stamp.tm_min, stamp.tm_sec)


def _dos(date_time: DateTime) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


def write_zip(destination: Path, entries: Sequence[Entry]) -> None:
    """Write the entries, in order, as a zip at destination (atomically: temporary file, rename)."""
    with atomic_output(destination, "wb") as out:
        central = []
        offset = 0
        for e in entries:
            name = e.name.encode("utf-8")
            if max(e.size, len(e.payload), offset) >= _ZIP32_LIMIT:
                raise RepairError(f"{e.name}: the repaired wheel would need ZIP64, which fastaudit does not write")
            flags = _UTF8_FLAG if not e.name.isascii() else 0
            dos_time, dos_date = _dos(e.date_time)
            out.write(_LOCAL.pack(0x04034B50, 20, flags, e.compress_type, dos_time, dos_date,
                                  e.crc32, len(e.payload), e.size, len(name), 0))
            out.write(name)
            out.write(e.payload)
            central.append(_CENTRAL.pack(0x02014B50, _MADE_BY_UNIX, 20, flags, e.compress_type, dos_time,
                                         dos_date, e.crc32, len(e.payload), e.size, len(name), 0, 0, 0, 0,
                                         e.external_attr, offset) + name)
            offset += _LOCAL.size + len(name) + len(e.payload)
        directory = b"".join(central)
        if len(entries) >= 0xFFFF or offset + len(directory) >= _ZIP32_LIMIT:
            raise RepairError("the repaired wheel would need ZIP64, which fastaudit does not write")
        out.write(directory)
        out.write(_END.pack(0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0))
