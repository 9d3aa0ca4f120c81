#!/usr/bin/env python3
"""Time `fastaudit scan` in one run: 1 vs 2 jobs, against auditwheel, ELF cache off vs on, and
the peak memory of a worker.

    python bench/bench_scan.py [--set dev] [--cache-set recurring] [--limit N] [--repeat 3]
                               [--no-auditwheel] [--json FILE]

Every scan goes into a fresh store in a temporary folder with new worker processes and an empty
ELF cache ("cold"); the OS page cache is warmed once for every wheel before anything is timed, so
the disk is out of the comparison. Wheels are scanned in file-name order, the order
`fastaudit scan DIR` takes in one folder. Repeated settings are interleaved (1, 2, 1, 2, ...)
so a burst of load from elsewhere hits both alike; the median is reported.

1. scaling: `scan --jobs 1` vs `--jobs 2` over --set, median of --repeat runs (target: >= 1.7x).
2. auditwheel: `auditwheel show` over the same wheels, one in-process call per wheel as a shell
   loop over a folder runs it (bench/bench_show.py's auditwheel_show: lru_cache cleared, logging
   off, imports paid by an untimed call first), timed once; vs the 2-job scan (target: >= 50x).
3. ELF cache: `scan --jobs 2 --no-elf-cache` vs `--jobs 2` over --cache-set, where grafted
   libraries recur (target: >= 2x). The scan does not report cache hits, so the recurring ELF
   members are counted from their content keys (WheelArchive.content_key) instead.
4. memory: a `--jobs 1` scan in a subprocess over the 3 wheels of --set with the largest ELF
   members; the worker's peak RSS (getrusage RUSAGE_CHILDREN of that subprocess) against twice the
   largest member, the constant being a worker's peak RSS on the wheel with the smallest ELF member.

--limit N keeps the first N wheels of each set (for trying the script out on small inputs).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from fastaudit.errors import FastauditError
from fastaudit.scan import ScanOptions, ScanSummary, scan
from fastaudit.store import Store
from fastaudit.wheel import WheelArchive, parse_wheel_name

BENCH_DIR = Path(__file__).resolve().parent
MiB = 1 << 20
TARGET_JOBS_SPEEDUP = 1.7
TARGET_OVER_AUDITWHEEL = 50.0
TARGET_CACHE_SPEEDUP = 2.0
MEMORY_WHEELS = 3
RSS_PROBE_FLAG = "--rss-probe"


# ---------------------------------------------------------------- wheels


def load_bench_module(name: str) -> ModuleType:
    """bench/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need their module registered
    spec.loader.exec_module(module)
    return module


def wheels_of_set(set_name: str, limit: int | None) -> list[Path]:
    """The first `limit` wheels of a bench/fetch_wheels.py set, in the order a folder scan takes."""
    fetcher = load_bench_module("fetch_wheels")
    paths = [Path(p) for p in fetcher.fetch(set_name)][:limit]
    return sorted(paths, key=lambda p: p.name)  # scan.discover sorts the names of one folder


def warm_page_cache(paths: Sequence[Path]) -> None:
    for path in paths:
        with path.open("rb") as f:
            while f.read(4 * MiB):
                pass


def is_opened_by_scan(path: Path) -> bool:
    """Whether `fastaudit scan` opens this wheel (Linux platform tags), or counts it by name only."""
    try:
        return parse_wheel_name(path.name).is_linux
    except FastauditError:
        return False


@dataclass(frozen=True)
class ElfMember:
    cache_key: bytes  # what the scan's ElfCache keys on (WheelArchive.content_key)
    size: int  # inflated


@lru_cache(maxsize=None)
def elf_members(path: Path) -> tuple[ElfMember, ...]:
    """The ELF members the scan reads from this wheel, with the key its ELF cache gives each."""
    if not is_opened_by_scan(path):
        return ()
    try:
        with WheelArchive(path) as archive:
            return tuple(ElfMember(archive.content_key(m), m.size) for m in archive.elf_candidates())
    except FastauditError:
        return ()  # the scan records an error row for it


# ---------------------------------------------------------------- scans


@dataclass
class ScanTiming:
    setting: str
    jobs: int
    elf_cache: bool
    wheels: int
    seconds: list[float] = field(default_factory=list)
    analyzed: int = 0
    not_analyzed: int = 0
    errors: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def scan_setting(jobs: int, elf_cache: bool) -> str:
    return f"fastaudit scan --jobs {jobs}" + ("" if elf_cache else " --no-elf-cache")


def timed_cold_scan(paths: Sequence[Path], jobs: int, elf_cache: bool) -> tuple[float, ScanSummary]:
    """Wall time of one scan into a fresh store, worker start-up included."""
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp, Store(Path(tmp) / "scan.db") as store:
        started = time.perf_counter()
        summary = scan([str(p) for p in paths], store, ScanOptions(jobs=jobs, elf_cache=elf_cache),
                       progress=False)
        return time.perf_counter() - started, summary


def time_scans(label: str, paths: Sequence[Path], settings: Sequence[tuple[int, bool]],
               repeat: int) -> list[ScanTiming]:
    timings = [ScanTiming(scan_setting(jobs, cache), jobs, cache, len(paths)) for jobs, cache in settings]
    for run in range(1, repeat + 1):
        for timing in timings:  # interleaved, so load from elsewhere hits every setting alike
            seconds, summary = timed_cold_scan(paths, timing.jobs, timing.elf_cache)
            timing.seconds.append(seconds)
            timing.analyzed, timing.not_analyzed, timing.errors = (
                summary.analyzed, summary.not_analyzed, summary.errors)
            log(f"[{label} {run}/{repeat}] {timing.setting}: {seconds:.2f} s "
                f"({summary.analyzed} analyzed, {summary.errors} errors)")
    return timings


# ---------------------------------------------------------------- auditwheel


@dataclass
class AuditwheelRun:
    wheels: int
    seconds: float
    raised: int
    per_wheel_seconds: dict[str, float]


def time_auditwheel(paths: Sequence[Path]) -> AuditwheelRun:
    """`auditwheel show` on every wheel, one after the other, in this process, once."""
    show = load_bench_module("bench_show")
    show.quiet_auditwheel()
    try:  # untimed: auditwheel's imports are not charged to the first wheel
        show.auditwheel_show(min(paths, key=lambda p: p.stat().st_size))
    except Exception:  # noqa: BLE001 - only the imports matter here
        pass
    per_wheel: dict[str, float] = {}
    raised = 0
    started = time.perf_counter()
    for n, path in enumerate(paths, 1):
        wheel_started = time.perf_counter()
        try:
            show.auditwheel_show(path)
        except Exception:  # noqa: BLE001 - auditwheel raises on some wheels, as the CLI would
            raised += 1
        per_wheel[path.name] = time.perf_counter() - wheel_started
        log(f"[auditwheel {n}/{len(paths)}] {path.name}: {per_wheel[path.name]:.2f} s")
    return AuditwheelRun(len(paths), time.perf_counter() - started, raised, per_wheel)


# ---------------------------------------------------------------- ELF cache


@dataclass
class Recurrence:
    """ELF members whose cache key was seen before in the set: what one shared cache would hit
    (the scan's caches are per worker, so its hits can only be fewer)."""

    elf_members: int = 0
    elf_bytes: int = 0
    repeats_in_set: int = 0
    repeat_bytes_in_set: int = 0

    @property
    def speedup_bound(self) -> float | None:
        """cache-off / cache-on if the time were in proportion to the ELF bytes inflated."""
        left = self.elf_bytes - self.repeat_bytes_in_set
        return self.elf_bytes / left if left else None


def count_recurrence(paths: Sequence[Path]) -> Recurrence:
    counts = Recurrence()
    seen: set[tuple[str, int, int, int]] = set()
    for path in paths:
        for member in elf_members(path):
            counts.elf_members += 1
            counts.elf_bytes += member.size
            if member.cache_key in seen:
                counts.repeats_in_set += 1
                counts.repeat_bytes_in_set += member.size
            seen.add(member.cache_key)
    return counts


# ---------------------------------------------------------------- memory


@dataclass
class WorkerPeak:
    wheels: list[str]
    largest_elf_member: int  # bytes, inflated
    worker_peak_rss: int  # bytes
    seconds: float


def rss_probe(paths: Sequence[str]) -> None:
    """Run in a subprocess: scan with one worker, print its peak RSS (and this process's) as JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp, Store(Path(tmp) / "probe.db") as store:
        summary = scan(list(paths), store, ScanOptions(jobs=1), progress=False)
    # the pool has joined its worker, so RUSAGE_CHILDREN covers it; ru_maxrss is in KiB on Linux
    print(json.dumps({
        "worker_peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "probe_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "analyzed": summary.analyzed,
        "errors": summary.errors,
    }))


def worker_peak(paths: Sequence[Path], largest_member: int) -> WorkerPeak:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), RSS_PROBE_FLAG, *map(str, paths)],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    probe = json.loads(proc.stdout.splitlines()[-1])
    if probe["errors"]:
        log(f"memory probe: {probe['errors']} error rows among {[p.name for p in paths]}")
    return WorkerPeak([p.name for p in paths], largest_member, probe["worker_peak_rss"], seconds)


@dataclass
class MemoryResult:
    large: WorkerPeak
    baseline: WorkerPeak  # the constant: a worker on a wheel with a tiny ELF member

    @property
    def bound(self) -> int:
        return 2 * self.large.largest_elf_member + self.baseline.worker_peak_rss

    @property
    def margin(self) -> int:
        return self.bound - self.large.worker_peak_rss


def measure_memory(paths: Sequence[Path]) -> MemoryResult | None:
    largest = {p: max((m.size for m in elf_members(p)), default=0) for p in paths}
    with_elf = sorted((p for p in paths if largest[p]), key=lambda p: largest[p])
    if not with_elf:
        return None
    biggest = with_elf[-MEMORY_WHEELS:]
    log(f"memory: worker over {[p.name for p in biggest]}")
    large = worker_peak(biggest, max(largest[p] for p in biggest))
    log(f"memory: worker over {with_elf[0].name} (baseline)")
    baseline = worker_peak([with_elf[0]], largest[with_elf[0]])
    return MemoryResult(large, baseline)


# ---------------------------------------------------------------- report


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def target_text(value: float | None, target: float) -> str:
    if value is None:
        return ""
    return f">= {target:g}x  {'met' if value >= target else 'NOT met'}"


class Table:
    COLUMNS = f"{'measurement':14} {'command / setting':54} {'wheels':>6} {'median s':>9} {'ratio':>8}  target"

    def __init__(self) -> None:
        self.lines = [self.COLUMNS, "-" * (len(self.COLUMNS) + 12)]

    def row(self, measurement: str, setting: str, wheels: int, seconds: float | None,
            ratio: float | None = None, target: str = "") -> None:
        secs = "-" if seconds is None else f"{seconds:.2f}"
        ratio_text = "" if ratio is None else f"{ratio:.2f}x"
        self.lines.append(f"{measurement:14} {setting:54} {wheels:>6} {secs:>9} {ratio_text:>8}  {target}")

    def note(self, text: str) -> None:
        self.lines.append(f"{'':14} {text}")

    def print(self) -> None:
        print("\n".join(self.lines))


def mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [RSS_PROBE_FLAG]:
        rss_probe(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="dev", help="wheel set of bench/fetch_wheels.py for 1, 2 and 4 (default dev)")
    parser.add_argument("--cache-set", default="recurring", help="wheel set for the ELF cache (default recurring)")
    parser.add_argument("--limit", type=int, help="only the first N wheels of each set")
    parser.add_argument("--repeat", type=int, default=3, help="timed scans per setting (default 3)")
    parser.add_argument("--no-auditwheel", action="store_true", help="skip the auditwheel comparison")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    load_at_start = os.getloadavg()
    log(f"load average {load_at_start[0]:.2f} on {os.cpu_count()} cores")
    paths = wheels_of_set(args.set, args.limit)
    cache_paths = wheels_of_set(args.cache_set, args.limit)
    if not paths or not cache_paths:
        log("no wheels")
        return 1
    warm_page_cache(sorted(set(paths) | set(cache_paths)))
    table = Table()
    record: dict[str, object] = {
        "python": sys.version, "cpus": os.cpu_count(), "load_average_at_start": load_at_start,
        "set": args.set, "cache_set": args.cache_set, "limit": args.limit, "repeat": args.repeat,
    }

    # 1. one job vs two
    one_job, two_jobs = time_scans("scaling", paths, [(1, True), (2, True)], args.repeat)
    jobs_speedup = one_job.median / two_jobs.median
    table.row("1 scaling", one_job.setting, one_job.wheels, one_job.median)
    table.row("", two_jobs.setting, two_jobs.wheels, two_jobs.median, jobs_speedup,
              target_text(jobs_speedup, TARGET_JOBS_SPEEDUP))
    table.note(f"{two_jobs.analyzed} analyzed, {two_jobs.not_analyzed} not opened (pure/not Linux), "
               f"{two_jobs.errors} error rows")
    record["scaling"] = {"one_job": asdict(one_job), "two_jobs": asdict(two_jobs), "speedup": jobs_speedup}

    # 2. against auditwheel
    if not args.no_auditwheel:
        auditwheel = time_auditwheel(paths)
        over_auditwheel = auditwheel.seconds / two_jobs.median
        table.row("2 auditwheel", "auditwheel show, one call per wheel (once)", auditwheel.wheels,
                  auditwheel.seconds)
        table.row("", f"{two_jobs.setting} (the median above)", two_jobs.wheels, two_jobs.median,
                  over_auditwheel, target_text(over_auditwheel, TARGET_OVER_AUDITWHEEL))
        table.note(f"auditwheel raised on {auditwheel.raised} wheels")
        record["auditwheel"] = asdict(auditwheel) | {"scan_two_jobs_over_auditwheel": over_auditwheel}

    # 3. ELF cache off vs on
    cache_off, cache_on = time_scans("elf cache", cache_paths, [(2, False), (2, True)], args.repeat)
    cache_speedup = cache_off.median / cache_on.median
    recurrence = count_recurrence(cache_paths)
    table.row("3 ELF cache", f"{cache_off.setting}  [{args.cache_set}]", cache_off.wheels, cache_off.median)
    table.row("", f"{cache_on.setting}  [{args.cache_set}]", cache_on.wheels, cache_on.median, cache_speedup,
              target_text(cache_speedup, TARGET_CACHE_SPEEDUP))
    r = recurrence
    bound = "-" if r.speedup_bound is None else f"{r.speedup_bound:.2f}x"
    table.note(f"no hit count in the scan summary; from the content keys: {r.elf_members} ELF "
               f"members ({mib(r.elf_bytes)}),")
    table.note(f"{r.repeats_in_set} recur in the set ({mib(r.repeat_bytes_in_set)}: the hits of one shared "
               f"cache; {bound} if time ~ ELF bytes),")
    record["elf_cache"] = {"off": asdict(cache_off), "on": asdict(cache_on), "speedup": cache_speedup,
                           "recurrence": asdict(recurrence) | {"speedup_bound": recurrence.speedup_bound}}

    # 4. peak memory of a worker
    memory = measure_memory(paths)
    if memory is None:
        table.row("4 memory", "no wheel with an ELF member", 0, None)
    else:
        large, base = memory.large, memory.baseline
        table.row("4 memory", "fastaudit scan --jobs 1: worker peak RSS", len(large.wheels), large.seconds,
                  large.worker_peak_rss / (2 * large.largest_elf_member),
                  f"/ 2 x largest ELF member; target peak < 2 x member + constant: "
                  f"{'met' if memory.margin > 0 else 'NOT met'}")
        table.note(f"wheels: {', '.join(large.wheels)}")
        table.note(f"peak RSS {mib(large.worker_peak_rss)}; largest ELF member {mib(large.largest_elf_member)},"
                   f" 2 x = {mib(2 * large.largest_elf_member)}")
        table.note(f"constant = worker peak RSS on {base.wheels[0]} (largest ELF member "
                   f"{mib(base.largest_elf_member)}): {mib(base.worker_peak_rss)}")
        table.note(f"2 x member + constant = {mib(memory.bound)}; margin {mib(memory.margin)}")
        record["memory"] = {"large": asdict(large), "baseline": asdict(base),
                            "bound": memory.bound, "margin": memory.margin}

    table.print()
    if args.json:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
