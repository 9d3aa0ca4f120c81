"""Type stub for the Cython ELF rewriter's byte loops (src/fastaudit/_elfedit.pyx)."""
import numpy as np

def write(source: bytes | bytearray | memoryview | np.ndarray, size: int, copies: list[tuple[int, int, int]],
          blobs: list[tuple[int, bytes]],
          patches: list[tuple[int, int, int]],
          symbol_moves: list[tuple[tuple[tuple[int, int], ...], int, int, int, int]],
          unversion: tuple[tuple[tuple[int, int], ...], bytes] | None) -> bytes | tuple[str, int, str]:
    """A copy of source grown to size, with an elfedit.RewritePlan applied, or (status, offset, what)."""
