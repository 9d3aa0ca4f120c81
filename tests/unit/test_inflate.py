"""inflate_raw on real raw-deflate streams, through libdeflate and through the zlib fallback.

Both backends must give the same bytes, and refuse the same bad streams: corrupt, truncated, or
inflating to more or fewer bytes than the declared size.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tracemalloc
import zlib

import pytest

from fastaudit import inflate
from fastaudit.inflate import InflateError, inflate_raw

SIZES = [0, 1, 4, 1000, 65_537, 5 << 20]


def raw_deflate(data: bytes, level: int = 6) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def payload(size: int) -> bytes:
    """Repeated text with every other byte random: compressible, far from deflate's ratio limit."""
    text = b"libfoo.so.1\x00GLIBC_2.17\x00"
    mixed = bytearray((text * (size // len(text) + 1))[:size])
    mixed[1::2] = random.Random(size).randbytes(size)[1::2]
    return bytes(mixed)


@pytest.fixture(params=["libdeflate", "zlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "libdeflate":
        pytest.importorskip("deflate")
    name: str = request.param
    monkeypatch.setattr(inflate, "BACKEND", name)
    return name


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("level", [1, 6, 9])
def test_round_trip(backend: str, size: int, level: int) -> None:
    data = payload(size)
    assert bytes(inflate_raw(raw_deflate(data, level), size)) == data


def test_reads_a_memoryview(backend: str) -> None:
    data = payload(100_000)
    framed = b"PK" + raw_deflate(data) + b"PK"
    assert bytes(inflate_raw(memoryview(framed)[2:-2], len(data))) == data


def test_highly_compressible_stream(backend: str) -> None:
    data = bytes(3 << 20)  # about 1000:1, close to deflate's limit
    assert bytes(inflate_raw(raw_deflate(data, 9), len(data))) == data


@pytest.mark.parametrize("size", [s for s in SIZES if s])
def test_more_than_declared_size(backend: str, size: int) -> None:
    with pytest.raises(InflateError, match="more than the declared"):
        inflate_raw(raw_deflate(payload(size)), size - 1)


@pytest.mark.parametrize("size", [0, 1000])
def test_lying_size_does_not_balloon_memory(backend: str, size: int) -> None:
    bomb = raw_deflate(bytes(64 << 20), 9)  # 64 MiB from about 64 KiB
    tracemalloc.start()
    try:
        with pytest.raises(InflateError, match="more than the declared"):
            inflate_raw(bomb, size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_empty_member_that_is_not_empty(backend: str) -> None:
    with pytest.raises(InflateError, match="more than the declared 0 bytes"):
        inflate_raw(raw_deflate(b"x"), 0)


@pytest.mark.parametrize("size", SIZES)
def test_fewer_than_declared_size(backend: str, size: int) -> None:
    with pytest.raises(InflateError, match=f"inflates to {size} bytes, not the declared {size + 1}"):
        inflate_raw(raw_deflate(payload(size)), size + 1)


@pytest.mark.parametrize("size", [s for s in SIZES if s])
@pytest.mark.parametrize("keep", [0.5, -1])  # half the stream, or all but its last byte
def test_truncated_stream(backend: str, size: int, keep: float) -> None:
    stream = raw_deflate(payload(size))
    cut = stream[:int(len(stream) * keep)] if keep > 0 else stream[:-1]
    with pytest.raises(InflateError, match="truncated"):
        inflate_raw(cut, size)


def test_no_data_at_all(backend: str) -> None:
    with pytest.raises(InflateError, match="truncated"):
        inflate_raw(b"", 0)


def test_corrupt_stream(backend: str) -> None:
    with pytest.raises(InflateError, match="corrupt deflate data"):
        inflate_raw(b"\xff" * 64, 1000)


def test_size_no_stream_of_that_length_can_reach(backend: str) -> None:
    # refused before the declared gigabytes are allocated
    with pytest.raises(InflateError, match="more than 2 compressed bytes can hold"):
        inflate_raw(raw_deflate(b""), 1 << 30)


def test_negative_size(backend: str) -> None:
    with pytest.raises(InflateError, match="negative"):
        inflate_raw(raw_deflate(b"abc"), -1)


def test_error_is_a_value_error() -> None:
    assert issubclass(InflateError, ValueError)


def _backend_in_subprocess(**env: str) -> str:
    code = "from fastaudit.inflate import BACKEND; print(BACKEND)"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_environment_forces_zlib() -> None:
    assert _backend_in_subprocess(FASTAUDIT_INFLATE="zlib") == "zlib"


def test_libdeflate_is_chosen_when_installed() -> None:
    pytest.importorskip("deflate")
    assert _backend_in_subprocess(FASTAUDIT_INFLATE="") == "libdeflate"


@pytest.mark.parametrize("level", [-1, 0, 1, 6, 9])
@pytest.mark.parametrize("size", [0, 1, 4096, 300_000])
def test_deflate_raw_is_read_back_by_zlib(backend: str, size: int, level: int) -> None:
    data = payload(size)
    packed = inflate.deflate_raw(data, level)
    assert zlib.decompress(packed, -zlib.MAX_WBITS) == data
    assert bytes(inflate.inflate_raw(packed, size)) == data
