"""Type stub for the Cython ELF walkers (src/fastaudit/_elf.pyx)."""
from typing import Any

import numpy as np

WANT_DYNAMIC: int
WANT_VERSIONS: int
WANT_DYNSYM: int
WANT_NOTES: int
WANT_ALL: int

STATUS_OK: int
STATUS_TRUNCATED: int
STATUS_INVALID: int
STATUS_CORRUPT: int
STATUS_UNSUPPORTED: int

def parse(buf: bytes | bytearray | memoryview | np.ndarray, want: int = ...) -> dict[str, Any] | tuple[int, int, str]:
    """The tables of one ELF image, or (status, offset, what) when the image is malformed."""
