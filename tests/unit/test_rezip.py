"""The members repair writes, compressed on threads: the same bytes as in the calling thread, at
every compression level auditwheel accepts, and each inflates back to its content."""
from __future__ import annotations

import random
import threading
import zlib

import pytest

from fastaudit import rezip
from fastaudit.inflate import deflate_raw
from fastaudit.rezip import Deflater, deflated


def contents() -> list[bytes]:
    rng = random.Random(7)
    text = b"".join(b"symbol_%d GLIBC_2.%d\0" % (rng.randrange(5000), rng.randrange(40)) for _ in range(40000))
    # empty, below and above the size handed to a thread, compressible and not
    return [b"", b"x", text[:1000], text[:64 * 1024 - 1], text[:64 * 1024], text, rng.randbytes(300_000)]


@pytest.mark.parametrize("level", [-1, 0, 1, 6, 9])
def test_threads_write_the_same_entries_as_the_calling_thread(level: int) -> None:
    stamp = (2024, 1, 2, 3, 4, 6)
    with Deflater(level, threads=4) as deflater:
        futures = [deflater.add(f"m{i}", data, stamp, 0o644 << 16) for i, data in enumerate(contents())]
        threaded = [f.result() for f in futures]
    for i, (entry, data) in enumerate(zip(threaded, contents())):
        assert entry == deflated(f"m{i}", data, level, stamp, 0o644 << 16)
        assert entry.size == len(data) and entry.crc32 == zlib.crc32(data)
        assert zlib.decompress(entry.payload, -zlib.MAX_WBITS) == data


def test_the_default_level_is_zlibs_default_and_levels_keep_their_order() -> None:
    text = contents()[5]
    assert deflate_raw(text, -1) == deflate_raw(text, zlib.Z_DEFAULT_COMPRESSION) == deflate_raw(text, 6)
    sizes = [len(deflate_raw(text, level)) for level in (0, 1, 6, 9)]
    assert sizes[0] >= len(text) and sizes == sorted(sizes, reverse=True) and sizes[1] > sizes[3]


def test_content_waiting_for_a_thread_stays_under_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rezip, "_PENDING_MAX_BYTES", 250_000)
    members = [random.Random(i).randbytes(100_000) for i in range(12)]
    with Deflater(6, threads=1) as deflater:
        futures = []
        for i, data in enumerate(members):
            futures.append(deflater.add(f"m{i}", data, (2024, 1, 1, 0, 0, 0), 0))
            assert deflater._pending_bytes <= 250_000
        assert [zlib.decompress(f.result().payload, -zlib.MAX_WBITS) for f in futures] == members


def test_an_error_leaves_no_thread_running() -> None:
    threads = threading.active_count()
    with pytest.raises(TypeError), Deflater(6, threads=2) as deflater:
        deflater.add("big", b"x" * 100_000, (2024, 1, 1, 0, 0, 0), 0)
        deflater.add("bad", "not bytes" * 10_000, (2024, 1, 1, 0, 0, 0), 0).result()  # type: ignore[arg-type]
    assert threading.active_count() == threads
