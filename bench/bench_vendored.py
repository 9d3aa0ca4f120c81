#!/usr/bin/env python3
"""What identifying vendored libraries adds to the audit, measured side by side in one run.

    python bench/bench_vendored.py [--set dev] [--repeat 3]

Per wheel, in this process with the page cache warm (each wheel is read once first):
* audit: ``read_wheel_facts(path)`` (inflate, ELF tables, version strings) + ``analyze``, median;
* strings: ``scan_version_strings`` over exactly the ELF members the audit inflates, median;
* whole: the same over each member's whole image (what it did before it read only the constant
  data), for comparison;
* inflate: plain zlib inflate of those members (the floor).
Prints per-set totals: strings / (audit - strings) is what identification adds to an audit that
did not do it; strings / inflate puts it against the floor. Wall and CPU medians, each.

Then a cold `scan` of the same wheels into a fresh store with --jobs workers, --repeat times each
way, alternating: as shipped, and with the version-string scan replaced by one that finds nothing
(in this process before the workers fork, so only this benchmark ever runs without it). Wall, and
CPU of this process and its reaped workers.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import fastaudit._elfstrings
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


def _cpu() -> float:
    """User + system seconds of this process and of its children that have been waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _median(fn, repeat: int) -> tuple[float, float]:
    """Median wall and median CPU seconds of fn()."""
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _whole_image(data) -> list[tuple[int, int]]:
    return [(0, len(memoryview(data).cast("B")))]


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
    names = ("audit", "strings", "whole", "inflate")
    totals = {name: [0.0, 0.0] for name in names}   # wall, CPU
    wheels = [w for w in _fetch(args.set) if check_linux_wheel_name(w).is_linux]
    constant_data = fastaudit._elfstrings.constant_data_ranges
    for wheel in wheels:
        name = check_linux_wheel_name(wheel)
        members = _elf_members(wheel)
        inflated = [zlib.decompress(data, -15) if method == 8 else data for data, method in members]

        def whole() -> None:
            fastaudit._elfstrings.constant_data_ranges = _whole_image
            try:
                [scan_version_strings(data) for data in inflated]
            finally:
                fastaudit._elfstrings.constant_data_ranges = constant_data

        measured = {
            "audit": _median(lambda: analyze(name, read_wheel_facts(wheel).elves), args.repeat),
            "strings": _median(lambda: [scan_version_strings(data) for data in inflated], args.repeat),
            "whole": _median(whole, args.repeat),
            "inflate": _median(lambda: [zlib.decompress(d, -15) if m == 8 else d for d, m in members], args.repeat),
        }
        for key, (wall, cpu) in measured.items():
            totals[key][0] += wall
            totals[key][1] += cpu
    load = os.getloadavg()
    print(f"{len(wheels)} wheels of set {args.set!r}, medians of {args.repeat}; load average"
          f" {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("                                  wall s    CPU s")
    for key, label in (("audit", "audit with identification"), ("strings", "of which version strings"),
                       ("whole", "the same over whole images"), ("inflate", "zlib inflate floor")):
        print(f"  {label:30s} {totals[key][0]:8.3f} {totals[key][1]:8.3f}")
    for i, clock in enumerate(("wall", "CPU")):
        without = totals["audit"][i] - totals["strings"][i]
        print(f"  {clock}: identification adds {totals['strings'][i] / without:.1%} to the audit without it;"
              f" {totals['strings'][i] / totals['inflate'][i]:.1%} of the inflate floor;"
              f" over whole images it would add {totals['whole'][i] / without:.1%}")
    tree = Path(tempfile.mkdtemp(prefix="bench-vendored-"))
    try:
        for wheel in wheels:
            os.link(wheel, tree / wheel.name)  # scan follows no link out of its tree
        shipped = fastaudit.facts.scan_version_strings
        runs: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
        for i in range(args.repeat):
            for mode in ("with", "without"):
                fastaudit.facts.scan_version_strings = shipped if mode == "with" else (lambda data: {})
                db = tree / f"store-{mode}-{i}.db"
                start, cpu = time.perf_counter(), _cpu()
                with Store(db) as store:
                    scan([tree], store, ScanOptions(jobs=args.jobs), progress=False)
                runs[mode].append((time.perf_counter() - start, _cpu() - cpu))
        fastaudit.facts.scan_version_strings = shipped
    finally:
        shutil.rmtree(tree)
    load = os.getloadavg()
    for i, clock in enumerate(("wall", "CPU")):
        with_ = statistics.median(run[i] for run in runs["with"])
        without_ = statistics.median(run[i] for run in runs["without"])
        print(f"  cold scan, {args.jobs} workers, {clock}: {with_:.2f} s with identification, {without_:.2f} s"
              f" without: +{with_ / without_ - 1:.1%}")
    print(f"  cold scan runs (wall, CPU): {runs}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
