"""The constant-data ranges and the exported-object reader on mutated images: whatever header,
section table, symbol or relocation byte is changed, they return ranges inside the buffer and
objects no longer than they promise, and the version scan returns, never crashes or reads past
the buffer (the module is compiled without bounds checks, so a wrong offset would show here)."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastaudit._elfstrings import constant_data_ranges, exported_objects
from fastaudit.vendored import scan_version_strings
from tests.elfbuild import build_shared_object

BOUNDED = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.function_scoped_fixture])
SYMBOLS = [b"sqlite3_version", b"xmlParserVersion", b"xsltLibxsltVersion", b"_libiconv_version"]


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    lib = build_shared_object(tmp_path_factory.mktemp("seed"), "libseed.so.1", (
        'const char sqlite3_version[] = "3.45.1";\nconst char *const xmlParserVersion = "21207";\n'
        'const int xsltLibxsltVersion = 10142;\nint _libiconv_version = 0x0111;\n'
        'const char v[] = "OpenSSL 3.0.13 30 Jan 2024";\nint f(void) { return v[0]; }\n'))
    return Path(lib).read_bytes()


def _check(data: bytes) -> None:
    ranges = constant_data_ranges(data)
    assert all(0 <= start < end <= len(data) for start, end in ranges)
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    for content, pointed in exported_objects(data, SYMBOLS).values():
        assert len(content) <= 64 and (pointed is None or len(pointed) <= 64)
    scan_version_strings(data)


def test_the_seed_is_read_whole(seed: bytes) -> None:
    assert set(scan_version_strings(seed)) == {"sqlite", "libxml2", "libxslt", "libiconv", "openssl"}


@BOUNDED
@given(st.data())
def test_mutated_headers_and_tables(seed: bytes, data: st.DataObject) -> None:
    image = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(image) - 8))
        image[at:at + 8] = data.draw(st.binary(min_size=8, max_size=8))
    _check(bytes(image))


@BOUNDED
@given(st.data())
def test_truncated_images(seed: bytes, data: st.DataObject) -> None:
    _check(seed[:data.draw(st.integers(0, len(seed)))])


@BOUNDED
@given(st.data())
def test_header_fields_set_to_extremes(seed: bytes, data: st.DataObject) -> None:
    """e_phoff, e_shoff, their entry sizes and counts, e_shstrndx: set to 0, 1, the size or the top."""
    image = bytearray(seed)
    fields = [(0x20, 8), (0x28, 8), (0x36, 2), (0x38, 2), (0x3A, 2), (0x3C, 2), (0x3E, 2)]
    for offset, size in data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4)):
        value = data.draw(st.sampled_from([0, 1, len(seed), (1 << (8 * size)) - 1, (1 << (8 * size - 1))]))
        image[offset:offset + size] = value.to_bytes(size, "little")
    _check(bytes(image))
