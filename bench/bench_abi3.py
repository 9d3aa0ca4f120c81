#!/usr/bin/env python3
"""What the abi3 check costs `show`, and `fastaudit abi3` against abi3audit, side by side in one run.

    python bench/bench_abi3.py [--set all] [--extra DIR] [--repeat 5] [--json FILE]

1. Overhead, over every Linux wheel of the set: `audit_wheel(path)` as `show` runs it, with the
   abi3 step and with the step replaced by one that returns nothing, the two arms interleaved
   wheel by wheel; per wheel the median of --repeat runs after a warm-up. Reported: the sum of the
   medians of each arm and the difference in percent.
2. Against abi3audit 0.0.26, over the set's abi3 wheels (and those in --extra DIR):
   - in this process, the code each command runs without interpreter start-up: abi3audit's
     WheelExtractor + audit() over every object (once) against fastaudit's audit_abi3() (median
     of 3, after a warm-up);
   - as a user runs each in cibuildwheel's audit step, `fastaudit abi3 --report WHEEL` against
     `abi3audit --report WHEEL` (subprocesses, start-up included), and the whole list in one
     invocation of each.
   Reported: the ratio of the totals and the median of the per-wheel ratios.
The OS page cache is warm for both tools (every wheel is read once before anything is timed).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import fastaudit.analyze as analyze_module
from fastaudit.analyze import audit_wheel
from fastaudit.errors import FastauditError
from fastaudit.wheel import parse_wheel_name

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


def _fetch(set_name: str) -> list[Path]:
    spec = importlib.util.spec_from_file_location("fetch_wheels", BENCH_DIR / "fetch_wheels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fetch(set_name)


def _is_abi3(path: Path) -> bool:
    return bool({"abi3", "abi3t"} & set(parse_wheel_name(path.name).abi_tags))


def _time(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def overhead(wheels: list[Path], repeat: int) -> dict:
    real_step = analyze_module._abi3_step

    def without(name, members):
        return None, []

    with_s = without_s = 0.0
    audited = 0
    for path in wheels:
        try:
            audit_wheel(path)  # warm-up, and wheels the reader refuses are left out
        except FastauditError:
            continue
        audited += 1
        a, b = [], []
        for _ in range(repeat):
            analyze_module._abi3_step = real_step
            a.append(_time(lambda: audit_wheel(path), 1))
            analyze_module._abi3_step = without
            b.append(_time(lambda: audit_wheel(path), 1))
        analyze_module._abi3_step = real_step
        with_s += statistics.median(a)
        without_s += statistics.median(b)
    return {"wheels": audited, "with_abi3_s": round(with_s, 3), "without_abi3_s": round(without_s, 3),
            "overhead_percent": round(100 * (with_s - without_s) / without_s, 2)}


def _run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def in_process(wheels: list[Path]) -> dict:
    from abi3audit._audit import audit
    from abi3audit._extract import WheelExtractor, WheelSpec

    from fastaudit.analyze import audit_abi3

    def theirs(path: Path) -> None:
        for so in WheelExtractor(WheelSpec(str(path))):
            audit(so)

    rows = []
    for path in wheels:
        audit_abi3(path)  # warm-up: the page cache (for both), the stable ABI data
        a, b = _time(lambda: theirs(path), 1), _time(lambda: audit_abi3(path), 3)
        rows.append({"wheel": path.name, "abi3audit_s": round(a, 4), "fastaudit_s": round(b, 4),
                     "ratio": round(a / b, 1)})
        print(f"  {path.name[:70]:70s} abi3audit {a:7.3f} s  fastaudit {b:6.3f} s  x{rows[-1]['ratio']}", flush=True)
    total_a, total_b = sum(r["abi3audit_s"] for r in rows), sum(r["fastaudit_s"] for r in rows)
    return {"wheels": len(rows), "per_wheel": rows, "total_abi3audit_s": round(total_a, 2),
            "total_fastaudit_s": round(total_b, 2), "ratio_of_totals": round(total_a / total_b, 1),
            "median_ratio": round(statistics.median(r["ratio"] for r in rows), 1)}


def versus_abi3audit(wheels: list[Path]) -> dict:
    fastaudit = [str(VENV_BIN / "fastaudit"), "abi3", "--report", "-o", "/dev/null"]
    abi3audit = [sys.executable, "-m", "abi3audit", "--report", "-o", "/dev/null"]
    rows = []
    for path in wheels:
        path.read_bytes()  # page cache warm for both
        theirs = _run([*abi3audit, str(path)])
        ours = statistics.median(_run([*fastaudit, str(path)]) for _ in range(3))
        rows.append({"wheel": path.name, "mb": round(path.stat().st_size / 2**20, 1), "abi3audit_s": round(theirs, 3),
                     "fastaudit_s": round(ours, 3), "ratio": round(theirs / ours, 1)})
        print(f"  {path.name[:70]:70s} {rows[-1]['mb']:7.1f} MB  abi3audit {theirs:7.2f} s"
              f"  fastaudit {ours:6.3f} s  x{rows[-1]['ratio']}", flush=True)
    batch_theirs = _run([*abi3audit, *map(str, wheels)])
    batch_ours = _run([*fastaudit, *map(str, wheels)])
    total_theirs = sum(r["abi3audit_s"] for r in rows)
    total_ours = sum(r["fastaudit_s"] for r in rows)
    return {"wheels": len(rows), "per_wheel": rows,
            "per_wheel_total_abi3audit_s": round(total_theirs, 2), "per_wheel_total_fastaudit_s": round(total_ours, 2),
            "ratio_of_totals": round(total_theirs / total_ours, 1),
            "median_ratio": round(statistics.median(r["ratio"] for r in rows), 1),
            "one_invocation_abi3audit_s": round(batch_theirs, 2), "one_invocation_fastaudit_s": round(batch_ours, 2),
            "one_invocation_ratio": round(batch_theirs / batch_ours, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="all")
    parser.add_argument("--extra", type=Path, action="append", default=[],
                        help="a folder of more wheels whose abi3 ones join part 2 (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--part", choices=["overhead", "in-process", "cli"], action="append",
                        help="run only these parts (repeatable; default: all)")
    args = parser.parse_args()
    parts = set(args.part or ("overhead", "in-process", "cli"))
    results: dict = {}
    wheels = [w for w in _fetch(args.set) if not parse_wheel_name(w.name).is_pure]
    extra = sorted({p for d in args.extra for p in d.glob("*.whl")} - set(wheels))
    if "overhead" in parts:
        print(f"1. abi3 step overhead in show, {len(wheels)} wheels of set {args.set!r}, median of {args.repeat}:")
        over = results["overhead"] = overhead(wheels, args.repeat)
        print(f"   with {over['with_abi3_s']} s, without {over['without_abi3_s']} s:"
              f" {over['overhead_percent']:+.2f}% over {over['wheels']} wheels")
    abi3_wheels = sorted((w for w in [*wheels, *extra] if _is_abi3(w)), key=lambda p: p.name)
    if "in-process" in parts:
        print(f"2a. audit_abi3 against abi3audit's audit, in process, {len(abi3_wheels)} abi3 wheels:")
        inner = results["in_process"] = in_process(abi3_wheels)
        print(f"   abi3audit {inner['total_abi3audit_s']} s, fastaudit {inner['total_fastaudit_s']} s:"
              f" x{inner['ratio_of_totals']} (median per wheel x{inner['median_ratio']})")
    if "cli" in parts:
        print(f"2b. fastaudit abi3 against abi3audit as commands, {len(abi3_wheels)} abi3 wheels:")
        versus = results["cli"] = versus_abi3audit(abi3_wheels)
        print(f"   per wheel: abi3audit {versus['per_wheel_total_abi3audit_s']} s, fastaudit"
              f" {versus['per_wheel_total_fastaudit_s']} s: x{versus['ratio_of_totals']} (median per wheel"
              f" x{versus['median_ratio']}); one invocation over all: abi3audit"
              f" {versus['one_invocation_abi3audit_s']} s, fastaudit {versus['one_invocation_fastaudit_s']} s:"
              f" x{versus['one_invocation_ratio']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
