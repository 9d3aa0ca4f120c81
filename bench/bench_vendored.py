#!/usr/bin/env python3
"""What identifying vendored libraries adds to the audit, measured side by side in one run.

    python bench/bench_vendored.py [--set dev] [--repeat 3]

Per wheel, in this process with the page cache warm (each wheel is read once first):
* audit: ``read_wheel_facts(path)`` (inflate, ELF tables, version strings) + ``analyze``, median;
* strings: ``scan_version_strings`` over exactly the ELF members the audit inflates, median;
* inflate: plain zlib inflate of those members (the floor).
Prints per-set totals: strings / (audit - strings) is what identification adds to an audit that
did not do it; strings / inflate puts it against the floor.

Then a cold `scan` of the same wheels into a fresh store with --jobs workers, --repeat times each
way, alternating: as shipped, and with the version-string scan replaced by one that finds nothing
(in this process before the workers fork, so only this benchmark ever runs without it).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import fastaudit.facts
from fastaudit.analyze import analyze
from fastaudit.facts import check_linux_wheel_name, read_wheel_facts
from fastaudit.scan import ScanOptions, scan
from fastaudit.store import Store
from fastaudit.vendored import scan_version_strings
from fastaudit.wheel import WheelArchive


def _fetch(set_name: str) -> list[Path]:
    spec = importlib.util.spec_from_file_location("fetch_wheels", Path(__file__).with_name("fetch_wheels.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fetch(set_name)


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _elf_members(path: Path) -> list[tuple[bytes, int]]:
    """(raw deflate data or stored bytes, method) of the members the audit reads as ELF."""
    out = []
    with WheelArchive(path) as archive:
        for member in archive.members:
            if member.name.endswith(".py") or not archive.starts_with_elf_magic(member):
                continue
            out.append((archive.compressed(member), member.compress_type))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="dev")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    totals = {"audit": 0.0, "strings": 0.0, "inflate": 0.0}
    wheels = [w for w in _fetch(args.set) if check_linux_wheel_name(w).is_linux]
    for wheel in wheels:
        name = check_linux_wheel_name(wheel)
        members = _elf_members(wheel)
        inflated = [zlib.decompress(data, -15) if method == 8 else data for data, method in members]
        audit = _median(lambda: analyze(name, read_wheel_facts(wheel).elves), args.repeat)
        strings = _median(lambda: [scan_version_strings(data) for data in inflated], args.repeat)
        floor = _median(lambda: [zlib.decompress(d, -15) if m == 8 else d for d, m in members], args.repeat)
        totals["audit"] += audit
        totals["strings"] += strings
        totals["inflate"] += floor
    without = totals["audit"] - totals["strings"]
    print(f"{len(wheels)} wheels of set {args.set!r}, medians of {args.repeat}:")
    print(f"  audit with identification   {totals['audit']:8.3f} s")
    print(f"  of which version strings    {totals['strings']:8.3f} s")
    print(f"  zlib inflate floor          {totals['inflate']:8.3f} s")
    print(f"  identification adds {totals['strings'] / without:.1%} to the audit without it;"
          f" {totals['strings'] / totals['inflate']:.1%} of the inflate floor")
    tree = Path(tempfile.mkdtemp(prefix="bench-vendored-"))
    try:
        for wheel in wheels:
            os.link(wheel, tree / wheel.name)  # scan follows no link out of its tree
        shipped = fastaudit.facts.scan_version_strings
        runs: dict[str, list[float]] = {"with": [], "without": []}
        for i in range(args.repeat):
            for mode in ("with", "without"):
                fastaudit.facts.scan_version_strings = shipped if mode == "with" else (lambda data: {})
                db = tree / f"store-{mode}-{i}.db"
                start = time.perf_counter()
                with Store(db) as store:
                    scan([tree], store, ScanOptions(jobs=args.jobs), progress=False)
                runs[mode].append(time.perf_counter() - start)
        fastaudit.facts.scan_version_strings = shipped
    finally:
        shutil.rmtree(tree)
    with_, without_ = statistics.median(runs["with"]), statistics.median(runs["without"])
    print(f"  cold scan, {args.jobs} workers: {with_:.2f} s with identification, {without_:.2f} s without:"
          f" +{with_ / without_ - 1:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
