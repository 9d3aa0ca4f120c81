"""Raw deflate (zip method 8) inflated into exactly the size the zip central directory declares,
and deflated for the members repair writes.

libdeflate (the ``deflate`` package) does it when it imports: on the ELF members of the dev wheel
set it inflates 2.5x as fast as zlib, ahead of ISA-L and zlib-ng (bench/bench_inflate.py). zlib is
the fallback; ``FASTAUDIT_INFLATE=zlib`` forces it.

No backend allocates more output than the declared size, so a lying header cannot balloon memory.
"""
from __future__ import annotations

import os
import zlib
from types import ModuleType

_libdeflate: ModuleType | None
try:
    import deflate as _libdeflate
except ImportError:  # a platform without its wheel: zlib gives the same bytes, slower
    _libdeflate = None

# Read by inflate_raw at each call, so tests can switch it.
BACKEND: str = (
    "zlib" if _libdeflate is None or os.environ.get("FASTAUDIT_INFLATE") == "zlib" else "libdeflate"
)

# Deflate's densest code spends 2 bits on a 258-byte match: no stream inflates to more than 1032
# bytes per compressed byte, so a larger declared size is refused before anything is allocated.
_MAX_RATIO = 1032
# The deflate binding reads the size as a C unsigned int and wraps larger ones silently.
_LIBDEFLATE_MAX_SIZE = 0xFFFF_FFFF


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """The zip CRC-32 of data, continuing from value: libdeflate's runs at about 20 GB/s, so
    checking every inflated member costs little next to the inflate."""
    return _libdeflate.crc32(data, value) if _libdeflate is not None else zlib.crc32(data, value)


class InflateError(ValueError):
    """The data is not a deflate stream that inflates to exactly the declared size."""


def inflate_raw(data: bytes | memoryview, size: int) -> bytes | bytearray:
    """Inflate raw deflate ``data`` that must hold exactly ``size`` bytes.

    libdeflate's result is a bytearray: turning it into bytes would copy every member, and that
    copy costs more than libdeflate gains over the next-fastest backend.
    """
    if size < 0:
        raise InflateError(f"negative declared size {size}")
    if size > _MAX_RATIO * len(data):
        raise InflateError(f"declared size {size} is more than {len(data)} compressed bytes can hold")
    if BACKEND == "libdeflate" and 0 < size <= _LIBDEFLATE_MAX_SIZE:
        assert _libdeflate is not None
        try:
            content: bytearray = _libdeflate.deflate_decompress(data, size)
        except _libdeflate.DeflateError:
            # libdeflate says only that it failed; zlib, the reference, says why (or disagrees)
            return _inflate_zlib(data, size)
        if len(content) != size:
            raise InflateError(f"inflates to {len(content)} bytes, not the declared {size}")
        return content
    return _inflate_zlib(data, size)


def _inflate_zlib(data: bytes | memoryview, size: int) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        # max_length caps the output (0 would mean no cap, hence 1 for an empty member)
        content = inflater.decompress(data, size or 1)
        # full before the stream ended: one byte more tells a longer stream from a cut one
        full = not inflater.eof and len(content) == size
        longer = full and inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as e:
        raise InflateError(f"corrupt deflate data: {e}") from e
    if longer or len(content) > size:
        raise InflateError(f"inflates to more than the declared {size} bytes")
    if not inflater.eof:
        raise InflateError(f"truncated deflate stream: it ends after {len(content)} of the declared {size} "
                           "bytes")
    if len(content) != size:
        raise InflateError(f"inflates to {len(content)} bytes, not the declared {size}")
    return content


def deflate_raw(data: bytes, level: int) -> bytes:
    """Raw deflate at a zlib level (-1 is zlib's default, 6). libdeflate compresses the libraries
    repair grafts four times as fast as zlib at the same level, and a little smaller."""
    level = 6 if level < 0 else level
    if BACKEND == "libdeflate" and data:
        assert _libdeflate is not None
        return bytes(_libdeflate.deflate_compress(data, level))
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()
