#!/usr/bin/env python3
"""Atheris fuzz harness for the ELF rewriter (`fastaudit.rewrite_elf`).

Run through `fuzz/run.sh` with FUZZ_TARGET=rewrite (the AddressSanitizer/UBSan debug build, as for
the reader). An input is four plan bytes followed by an ELF image; the plan bytes choose which
DT_NEEDED entries are renamed or removed (and to names of which length: shorter ones can be
written in place, longer ones need the new segment), and what SONAME, RPATH or RUNPATH is set, so
mutation explores both the plans and the images. The image is copied into an exactly sized numpy
buffer, so a read one byte past its end lands in ASan's redzone.

A pass is: `RepairError` (a plan the image refuses) or an `ELFError` subclass; or a result that
reads back, when the input itself read cleanly, with exactly the planned DT_NEEDED and SONAME
(the harness turns off rewrite_elf's own read-back check, so the plan itself is what is judged)
(an image without sections may fail to read back: see the comment in test_one_input).
Anything else, a sanitizer report, a hang or an out-of-memory is a crash.
"""
from __future__ import annotations

import sys

import atheris
import numpy as np

with atheris.instrument_imports(include=["fastaudit"]):
    import fastaudit.elf
    from fastaudit import ElfEdits, read_elf, rewrite_elf
    from fastaudit.elf import WANT_DYNAMIC
    from fastaudit.errors import ELFError, RepairError

# rewrite_elf reads its output back and refuses one that does not read back as planned; the fuzzer
# judges the planner itself, so that net is taken away here and a fault of the plan is a crash
fastaudit.elf._check_reads_back = lambda image, needed, edits: None

PLAN_BYTES = 4


def name_of_length(length: int, seed: int) -> str:
    return ("lib" + "abcdefghijklmnopqrstuvwxyz"[seed % 26] * length)[: max(length, 1)] + ".so"


def plan_for(plan: bytes, needed: tuple[str, ...]) -> ElfEdits:
    rename_mask, remove_mask, lengths, paths = plan
    replace = {}
    remove = set()
    for i, name in enumerate(needed[:8]):
        if remove_mask >> i & 1:
            remove.add(name)
        elif rename_mask >> i & 1:
            # bit 0 of `lengths` picks shorter (fits in place) or longer (needs the new segment)
            length = max(1, len(name) - 4) if lengths & 1 else len(name) + (lengths >> 1)
            replace[name] = name_of_length(length, i)
    soname = (None, "", "libx.so", name_of_length(lengths, 7))[paths & 3]
    path_value = (None, "", "$ORIGIN", "$ORIGIN/../" + "p" * lengths)[(paths >> 2) & 3]
    use_runpath = bool(paths & 0x10)
    return ElfEdits(replace_needed=replace, remove_needed=frozenset(remove), soname=soname,
                    rpath=None if use_runpath else path_value, runpath=path_value if use_runpath else None)


def test_one_input(data: bytes) -> None:
    if len(data) < PLAN_BYTES:
        return
    plan, image = data[:PLAN_BYTES], data[PLAN_BYTES:]
    buf = np.frombuffer(image, dtype=np.uint8).copy()
    try:
        before = read_elf(buf, WANT_DYNAMIC)
    except ELFError:
        before = None
    edits = plan_for(plan, before.needed if before else ())
    try:
        out = rewrite_elf(buf, edits)
    except (ELFError, RepairError):
        return
    if before is None:
        return
    try:
        after = read_elf(np.frombuffer(out, dtype=np.uint8).copy(), WANT_DYNAMIC)
    except ELFError:
        if before.has_sections:
            raise
        # without sections the symbol count comes from walking DT_GNU_HASH chains, which in a
        # mutated image may run on through .dynamic, whose values the rewrite changed
        return
    expected = tuple(edits.replace_needed.get(n, n) for n in before.needed if n not in edits.remove_needed)
    if after.needed != expected:
        raise AssertionError(f"DT_NEEDED {after.needed} after planning {expected}")
    if edits.soname is not None and after.soname != (edits.soname or None):
        raise AssertionError(f"DT_SONAME {after.soname!r} after planning {edits.soname!r}")


def main(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
