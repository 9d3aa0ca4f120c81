#!/usr/bin/env python3
"""`fastaudit scan` of one folder by two builds side by side: the installed one and another
checkout's sources (same compiled extension), interleaved, fresh store each run, median.

    python bench/bench_scan_ab.py OTHER_SRC FOLDER [--repeat 3] [scan options...]

OTHER_SRC is a folder holding a `fastaudit` package (for instance `git archive main src/fastaudit`
unpacked, with the installed `_elf*.so` copied in when the .pyx files are the same).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("other_src")
    parser.add_argument("folder")
    parser.add_argument("--repeat", type=int, default=3)
    args, scan_options = parser.parse_known_args()
    variants = {"other": {"PYTHONPATH": args.other_src}, "installed": {}}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, extra in variants.items():
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "fastaudit", "scan", "--db", f"{folder}/s.db",
                                       *scan_options, args.folder], env={**os.environ, **extra},
                                      capture_output=True, text=True)
                times[name].append(time.perf_counter() - started)
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr)
    for name, values in times.items():
        print(f"{name}: {' '.join(f'{v:.2f}' for v in values)} s, median {statistics.median(values):.2f} s")


if __name__ == "__main__":
    main()
