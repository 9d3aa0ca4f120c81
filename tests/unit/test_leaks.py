"""No memory kept across calls: the ELF reader and the rewriter, on success and on failure, run
thousands of times without the traced heap growing (tracemalloc sees every Python and numpy
allocation the Cython code makes; a leaked object per call would add up to far more than the bound).

The fuzz runs keep LeakSanitizer off (CPython's own allocations at exit would drown it); this is
the leak check that can fail."""
from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from fastaudit.elf import ElfEdits, read_elf, rewrite_elf
from fastaudit.errors import ELFError

SEEDS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "elf"
RUNS = 2000
BOUND = 32 << 10  # bytes: 2000 leaked objects of even 16 bytes would pass it


def traced_growth(call: Callable[[], object]) -> int:
    for _ in range(100):  # warm-up: caches, interned strings, first-use allocations
        call()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(RUNS):
            call()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def read_all_facts(data: bytes) -> None:
    info = read_elf(data)
    (info.needed, info.version_requirements, info.symbols.names, info.undefined_symbols, info.defined_symbols)


def failing(call: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with pytest.raises(ELFError):
            call()
    return run


@pytest.mark.parametrize("seed", ["gcc-x86_64-versioned.elf", "crafted-ppc64-sections.elf",
                                  "crafted-armv7l-sections.elf"])
def test_reader_and_rewriter_keep_nothing(seed: str) -> None:
    data = (SEEDS / seed).read_bytes()
    needed = read_elf(data).needed
    grow = ElfEdits(replace_needed={needed[0]: "lib" + "x" * 60 + ".so"}, soname="libq.so", rpath="$ORIGIN/../q")
    calls: dict[str, Callable[[], object]] = {
        "read": lambda: read_all_facts(data),
        "rewrite into a new segment": lambda: rewrite_elf(data, grow),
        "rewrite in place": lambda: rewrite_elf(data, ElfEdits(remove_needed=frozenset({needed[0]}))),
        "read a truncated image": failing(lambda: read_elf(data[:300])),
        "rewrite a truncated image": failing(lambda: rewrite_elf(data[: len(data) // 2], grow)),
    }
    for name, call in calls.items():
        assert traced_growth(call) < BOUND, name
