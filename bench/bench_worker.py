#!/usr/bin/env python3
"""The scan worker's CPU per wheel, in one process: the installed build against another source
tree, interleaved, with the inflate floor subtracted.

    python bench/bench_worker.py FOLDER [--wheels 1500] [--repeat 5] [--other SRC] [--profile]

Each turn runs a fresh interpreter per build that imports fastaudit, audits the first 20 Linux
wheels of FOLDER (sorted by path: imports, policy data), drops the worker's ELF cache and then
times `scan.audit_batch` (what a scan worker runs: read, judge, to_json, the stored facts) over
the next N with time.process_time. "Beyond inflating" subtracts the CPU that fastaudit's
inflate_raw takes on the ELF members the worker inflates: each distinct stored content once, as the
ELF cache skips a repeat. OTHER is a folder holding a `fastaudit` package (for instance
`git archive main src/fastaudit | tar -x -C /tmp/fa_main` with the installed `_elf*.so` copied in).
With --profile, the installed build is profiled once more (cProfile, CPU timer) and the top
functions printed. With --callgrind N, each build also runs under valgrind's callgrind twice, over
the first N wheels and over none (start-up and warm-up alone): the difference over N is the
instructions per wheel, a figure the machine's load does not move.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

WARM_UP = 20


def linux_wheels(folder: Path, count: int) -> list[str]:
    found = sorted(str(p) for p in folder.rglob("*.whl") if "linux" in p.name.rsplit("-", 1)[-1])
    return found[:count]


def inflate_floor_s(paths: list[str], use_cache: bool) -> float:
    """CPU seconds inflating the ELF members the worker inflates (with its ELF cache, each distinct
    stored content once)."""
    from fastaudit.inflate import inflate_raw
    from fastaudit.wheel import WheelArchive

    seen: set[bytes] = set()
    spent = 0.0
    for path in paths:
        with WheelArchive(path) as archive:
            for member in archive.elf_candidates():
                key = archive.content_key(member) if use_cache else b""
                if key in seen:
                    continue
                if use_cache:
                    seen.add(key)
                with archive._compressed_in_buffer(member) as data:
                    started = time.process_time()
                    inflate_raw(data, member.size)
                    spent += time.process_time() - started
    return spent


def child(paths: list[str], use_cache: bool, profile: bool, warm_up: list[str]) -> None:
    import fastaudit.scan as scan

    scan.audit_batch(warm_up, use_cache, True)
    scan._WORKER_CACHE = None
    profiler = cProfile.Profile(time.process_time) if profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    rows = scan.audit_batch(paths, use_cache, True)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - started
    errors = [r for r in rows if r.status == "error"]
    if errors:
        raise SystemExit(f"{len(errors)} error rows, first: {errors[0].message}")
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(35)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    print(json.dumps({"cpu_s": cpu, "wheels": len(paths)}))


def run_child(paths_file: Path, extra_env: dict[str, str], use_cache: bool, profile: bool = False) -> float:
    cmd = [sys.executable, __file__, "--child", str(paths_file)]
    if not use_cache:
        cmd.append("--no-elf-cache")
    if profile:
        cmd.append("--profile")
    env = {**os.environ, **extra_env}
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["cpu_s"])


def instructions(paths_file: Path, extra_env: dict[str, str], use_cache: bool, count: int) -> int:
    """Instructions callgrind counts for a child that audits the first `count` wheels."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
           "--child", str(paths_file), "--count", str(count)]
    if not use_cache:
        cmd.append("--no-elf-cache")
    proc = subprocess.run(cmd, env={**os.environ, **extra_env}, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if not found:
        raise SystemExit(proc.stderr[-2000:])
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--wheels", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--other", help="a folder holding another build's fastaudit package")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-elf-cache", action="store_true")
    parser.add_argument("--callgrind", type=int, metavar="N", help="count instructions over N wheels")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    use_cache = not args.no_elf_cache
    if args.child:
        paths = Path(args.child).read_text().split("\n")
        warm_up, paths = paths[:WARM_UP], paths[WARM_UP:]
        child(paths if args.count is None else paths[:args.count], use_cache, args.profile, warm_up)
        return
    if not args.folder:
        parser.error("FOLDER is required")
    found = linux_wheels(Path(args.folder), args.wheels + WARM_UP)
    paths = found[WARM_UP:]
    paths_file = Path(f"/tmp/bench_worker_{os.getpid()}.txt")
    paths_file.write_text("\n".join(found))
    try:
        floor = inflate_floor_s(paths, use_cache)
        variants = {"installed": {}} if not args.other else {"other": {"PYTHONPATH": args.other}, "installed": {}}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        loads = [os.getloadavg()[0]]
        for _ in range(args.repeat):
            for name, env in variants.items():
                cpu[name].append(run_child(paths_file, env, use_cache))
            loads.append(os.getloadavg()[0])
        n = len(paths)
        print(f"{n} Linux wheels of {args.folder}; inflate floor {floor / n * 1000:.3f} ms/wheel; "
              f"load average {min(loads):.1f}-{max(loads):.1f}")
        for name, values in cpu.items():
            per = [v / n * 1000 for v in values]
            median = statistics.median(per)
            print(f"{name}: CPU {' '.join(f'{v:.3f}' for v in per)} ms/wheel, median {median:.3f}, "
                  f"beyond inflating {median - floor / n * 1000:.3f} ms/wheel")
        if args.other:
            ratio = statistics.median(cpu["installed"]) / statistics.median(cpu["other"])
            print(f"installed / other: {ratio:.3f}")
        if args.callgrind:
            per_wheel = {}
            for name, env in variants.items():
                base = instructions(paths_file, env, use_cache, 0)
                per_wheel[name] = (instructions(paths_file, env, use_cache, args.callgrind) - base) / args.callgrind
                print(f"{name}: {per_wheel[name]:,.0f} instructions per wheel (callgrind, {args.callgrind} wheels)")
            if args.other:
                print(f"installed / other (instructions): {per_wheel['installed'] / per_wheel['other']:.3f}")
        if args.profile:
            run_child(paths_file, {}, use_cache, profile=True)
    finally:
        paths_file.unlink()


if __name__ == "__main__":
    main()
