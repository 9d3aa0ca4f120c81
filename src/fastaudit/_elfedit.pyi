"""Type stub for the Cython ELF rewriter (src/fastaudit/_elfedit.pyx)."""
import numpy as np

def rewrite(buf: bytes | bytearray | memoryview | np.ndarray, replace_needed: dict[bytes, bytes],
            remove_needed: set[bytes], soname: bytes | None, rpath: bytes | None, runpath: bytes | None,
            page_size: int) -> bytes | tuple[int, int, str]:
    """The image with the edits applied (the input itself when nothing changes), or (status, offset, what)."""
