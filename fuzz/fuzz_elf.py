#!/usr/bin/env python3
"""Atheris fuzz harness for the ELF reader (`fastaudit.read_elf`).

Run through `fuzz/run.sh`, which builds the AddressSanitizer/UBSan debug extension (with gcc's
trace-pc/trace-cmp coverage hooks) and preloads the ASan runtime plus a small shim that routes
coverage to atheris's libFuzzer, so both this module's Python and the C walkers guide mutation.
Each input is copied into an exactly sized numpy buffer (plain malloc, no slack
byte), so a read one byte past the end of the image lands in ASan's redzone; a `bytes` object
would hide it behind its trailing NUL.

Every fact is touched so the lazy decoders run too. A return or an `ELFError` subclass is a pass;
any other exception, a sanitizer report, a hang or an out-of-memory is a crash.

Reproduce one input: `fuzz/run.sh --repro PATH` (or the same environment as run.sh and
`python fuzz/fuzz_elf.py PATH`).
"""
from __future__ import annotations

import sys

import atheris
import numpy as np

with atheris.instrument_imports(include=["fastaudit"]):
    from fastaudit import read_elf
    from fastaudit.errors import ELFError


def touch_facts(data: bytes) -> None:
    """Read `data` as an ELF image and evaluate every fact the auditor uses."""
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    try:
        info = read_elf(buf)
        facts = (
            info.needed,
            info.soname,
            info.rpath,
            info.runpath,
            {name: sorted(vers) for name, vers in info.version_requirements.items()},
            info.version_definitions,
            info.symbols.names,
            info.undefined_symbols,
            info.defined_symbols,
            info.isa_level,
            info.executable_stack,
            info.arch,
            info.interpreter,
        )
    except ELFError:
        return
    # the facts must be plain values a report can hold; a broken type is a finding too
    for fact in facts:
        repr(fact)


def test_one_input(data: bytes) -> None:
    touch_facts(data)


def main(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
