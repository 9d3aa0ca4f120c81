"""Type stub for the Cython multi-anchor scanner (src/fastaudit/_elfstrings.pyx)."""
from typing import Iterable

import numpy as np

class AnchorSet:
    count: int
    def __init__(self, anchors: Iterable[bytes]) -> None: ...
    def find(self, data: bytes | bytearray | memoryview | np.ndarray, start: int = ..., end: int = ...,
             max_hits: int = ...) -> list[tuple[int, int]]:
        """(anchor index, offset) of each occurrence in data[start:end], at most max_hits per anchor."""
