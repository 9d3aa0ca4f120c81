#!/usr/bin/env python3
"""Measure `fastaudit scan` on a bandersnatch mirror from bench/make_mirror.py, side by side in one run.

    python bench/make_mirror.py /tmp/m10k --wheels 10000          # once
    python bench/bench_mirror.py /tmp/m10k [--repeat 3] [--jobs 2] [--json FILE]

Every step runs the installed CLI (`fastaudit scan MIRROR --db DB --jobs 2`, `fastaudit report`)
as a subprocess, as an operator's nightly job does; the OS page cache is warmed with every wheel
first, so the disk is out of it. Each step is repeated and the median quoted:

1. cold scan: a fresh store each time; wheels/s over the wheels opened, and the CPU per opened
   wheel beyond inflating: (CPU of client and workers) minus the inflate of the wheels' ELF
   members, timed here with fastaudit's own inflate_raw on the same members (all of them; the
   worker's ELF cache skips some grafted ones, so this is the low end of the fixed cost, and the
   figure without the grafted members the high end).
2. re-scan unchanged: a copy of the cold store, scanned again (nothing to analyze).
3. night: the next 1% of the mirror's stream arrives (make_mirror --add, not timed); a copy of the
   cold store scans the grown mirror. Against it: the same new wheels scanned alone into a fresh
   store (their analysis); the night's overhead is the difference.
4. `fastaudit report` on the night's store (run 2 against run 1).
5. store size after the cold scan and after the night; peak RSS (VmHWM, sampled from /proc every
   50 ms) of the client and of each worker; CPU of the client alone.

The night's wheels are removed again at the end (make_mirror --truncate), so the mirror is ready
for the next run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from fastaudit.inflate import inflate_raw
from fastaudit.wheel import WheelArchive

BENCH_DIR = Path(__file__).resolve().parent
CLI = Path(sys.executable).with_name("fastaudit")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.05
TARGET_RESCAN_S = 10.0
TARGET_NIGHT_OVERHEAD_S = 5.0
TARGET_FIXED_MS = 1.0


def load_make_mirror() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_mirror", BENCH_DIR / "make_mirror.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_mirror"] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- one CLI run, watched


@dataclass
class ProcessFigures:
    peak_rss_mib: float = 0.0
    cpu_s: float = 0.0


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # client and workers, from wait4
    client: ProcessFigures
    workers: list[ProcessFigures] = field(default_factory=list)
    output: str = ""


def _status_hwm_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _own_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: this process only


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(c) for c in f.read().split())
    except OSError:
        pass
    return found


def watch(cmd: list[str]) -> Run:
    """Run cmd; its wall and total CPU time, and the peak RSS and CPU of it and of each child."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: dict[int, ProcessFigures] = {}
    client = ProcessFigures()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        for child in _children(proc.pid):
            figures = seen.setdefault(child, ProcessFigures())
            hwm, cpu = _status_hwm_mib(child), _own_cpu_s(child)
            if hwm is not None:
                figures.peak_rss_mib = max(figures.peak_rss_mib, hwm)
            if cpu is not None:
                figures.cpu_s = max(figures.cpu_s, cpu)
        hwm, cpu = _status_hwm_mib(proc.pid), _own_cpu_s(proc.pid)
        if hwm is not None:
            client.peak_rss_mib = max(client.peak_rss_mib, hwm)
        if cpu is not None:
            client.cpu_s = max(client.cpu_s, cpu)
        time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{output}")
    # the client's own CPU: all of it minus what its reaped workers used (their last sample is
    # at most 50 ms short, so the client figure is that much high at worst)
    total = usage.ru_utime + usage.ru_stime
    workers = [f for f in seen.values() if f.cpu_s > 0 or f.peak_rss_mib > 0]
    client.cpu_s = max(client.cpu_s, total - sum(w.cpu_s for w in workers))
    return Run(wall, total, client, workers, output)


def scan_cmd(roots: list[str], db: Path, jobs: int) -> list[str]:
    return [str(CLI), "scan", *roots, "--db", str(db), "--jobs", str(jobs)]


def store_mib(db: Path) -> float:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / (1 << 20)


def copy_store(source: Path, target: Path) -> None:
    for p in target.parent.glob(target.name + "*"):
        p.unlink()
    shutil.copyfile(source, target)  # the CLI closed it, so the WAL is checkpointed into the file


# ---------------------------------------------------------------- inflate floor


def linux_wheels(mirror: Path, relative: list[str]) -> list[Path]:
    return [mirror / r for r in relative if "linux" in r.rsplit("-", 1)[-1]]


def warm(mirror: Path, relative: list[str]) -> float:
    started = time.perf_counter()
    for r in relative:
        with open(mirror / r, "rb") as f:
            while f.read(1 << 20):
                pass
    return time.perf_counter() - started


def inflate_floor(wheels: list[Path]) -> dict[str, float]:
    """CPU seconds to inflate every ELF member of the wheels with fastaudit's inflate_raw, and the
    same without the grafted ones (`<dist>.libs/`), which the workers' ELF cache may skip."""
    every = grafted = 0.0
    members = 0
    for path in wheels:
        with WheelArchive(path) as archive:
            for member in archive.members:
                if ".so" not in member.name.rsplit("/", 1)[-1]:
                    continue
                data = archive.compressed(member)
                started = time.process_time()
                inflate_raw(data, member.size)
                spent = time.process_time() - started
                every += spent
                members += 1
                if ".libs/" in member.name:
                    grafted += spent
    return {"all_s": every, "without_grafted_s": every - grafted, "members": members}


# ---------------------------------------------------------------- the steps


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]


def describe(run: Run) -> dict:
    return {"wall_s": round(run.wall_s, 3), "cpu_s": round(run.cpu_s, 3), "client_cpu_s": round(run.client.cpu_s, 3),
            "client_peak_rss_mib": round(run.client.peak_rss_mib, 1),
            "worker_peak_rss_mib": [round(w.peak_rss_mib, 1) for w in run.workers],
            "worker_cpu_s": [round(w.cpu_s, 2) for w in run.workers]}


def cold_figures(cold_runs: list[Run], base: int, linux: list[Path], floor: dict[str, float]) -> dict:
    cold = median_run(cold_runs)
    cpu_median = statistics.median(r.cpu_s for r in cold_runs)
    client_median = statistics.median(r.client.cpu_s for r in cold_runs)
    return describe(cold) | {
        "wall_s_all": [round(r.wall_s, 2) for r in cold_runs],
        "wheels_per_s_seen": round(base / cold.wall_s, 1),
        "wheels_per_s_opened": round(len(linux) / cold.wall_s, 1),
        "cpu_s_median": round(cpu_median, 2),
        "cpu_ms_per_opened_wheel": round(1000 * cpu_median / len(linux), 3),
        "client_ms_per_opened_wheel": round(1000 * client_median / len(linux), 3),
        "fixed_ms_per_opened_wheel_low": round(1000 * (cpu_median - floor["all_s"]) / len(linux), 3),
        "fixed_ms_per_opened_wheel_high": round(1000 * (cpu_median - floor["without_grafted_s"]) / len(linux), 3),
        "output": cold.output.strip().splitlines()[-14:]}


def bench(mirror: Path, repeat: int, cold_repeat: int, jobs: int, keep: Path | None,
          cold_store: Path | None = None) -> dict:
    make_mirror = load_make_mirror()
    manifest = make_mirror.read_manifest(mirror)
    base = manifest["batches"][0]["count"]
    if manifest["wheels"] != base:
        make_mirror.truncate(mirror, base)  # an earlier run's night
    relative = make_mirror.batch_files(mirror, 0).read_text().split()
    work = Path(tempfile.mkdtemp(prefix="bench_mirror_", dir=keep))
    figures: dict = {"mirror": str(mirror), "wheels": base, "jobs": jobs, "repeat": repeat, "cold_repeat": cold_repeat,
                     "load_average_start": os.getloadavg()}
    figures["warm_s"] = warm(mirror, relative)
    linux = linux_wheels(mirror, relative)
    figures["linux_wheels"] = len(linux)
    floor = inflate_floor(linux)
    figures["inflate"] = floor

    cold_db = work / "cold.db"
    cold_runs = []
    if cold_store is not None:  # the steps after the cold scan only, from a kept cold store
        copy_store(cold_store, cold_db)
        cold_repeat = 0
    for i in range(cold_repeat):
        db = work / f"cold{i}.db"
        cold_runs.append(watch(scan_cmd([str(mirror)], db, jobs)))
        print(f"cold scan {i + 1}: {cold_runs[-1].wall_s:.1f} s", file=sys.stderr, flush=True)
        if i == cold_repeat - 1:
            copy_store(db, cold_db)
        for p in work.glob(f"cold{i}.db*"):
            p.unlink()
    figures["cold"] = None if not cold_runs else cold_figures(cold_runs, base, linux, floor)
    figures["store_mib_cold"] = round(store_mib(cold_db), 1)

    rescan_runs = []
    for _ in range(repeat):
        db = work / "rescan.db"
        copy_store(cold_db, db)
        rescan_runs.append(watch(scan_cmd([str(mirror)], db, jobs)))
    figures["rescan"] = describe(median_run(rescan_runs)) | {"wall_s_all": [round(r.wall_s, 2) for r in rescan_runs]}

    night_count = max(1, base // 100)
    started = time.monotonic()
    night_batch = make_mirror.make(mirror, add=night_count, jobs=jobs)
    figures["night_generation_s"] = round(time.monotonic() - started, 1)
    new_files = make_mirror.batch_files(mirror, base).read_text().split()
    warm(mirror, new_files)
    figures["night_wheels"] = sum(night_batch["wheels"].values())
    figures["night_kinds"] = night_batch["wheels"]

    night_runs, alone_runs = [], []
    night_db = work / "night.db"
    for i in range(repeat):  # interleaved, so a burst of load elsewhere hits both alike
        copy_store(cold_db, night_db)
        night_runs.append(watch(scan_cmd([str(mirror)], night_db, jobs)))
        alone = work / "alone.db"
        for p in work.glob("alone.db*"):
            p.unlink()
        alone_runs.append(watch(scan_cmd([str(mirror / f) for f in new_files], alone, jobs)))
    night, alone = median_run(night_runs), median_run(alone_runs)
    figures["night"] = describe(night) | {"wall_s_all": [round(r.wall_s, 2) for r in night_runs]}
    figures["night_alone"] = describe(alone) | {"wall_s_all": [round(r.wall_s, 2) for r in alone_runs]}
    figures["night_overhead_s"] = round(night.wall_s - alone.wall_s, 3)
    figures["store_mib_night"] = round(store_mib(night_db), 1)

    report_runs = [watch([str(CLI), "report", "--db", str(night_db), "-o", str(work / "report")])
                   for _ in range(repeat)]
    figures["report"] = describe(median_run(report_runs)) | {"wall_s_all": [round(r.wall_s, 2) for r in report_runs]}

    make_mirror.truncate(mirror, base)
    figures["load_average_end"] = os.getloadavg()
    if keep is None:
        shutil.rmtree(work)
    else:
        figures["work"] = str(work)
    return figures


def summary(f: dict) -> str:
    cold, rescan, night = f["cold"], f["rescan"], f["night"]
    lines = [
        f"mirror {f['mirror']}: {f['wheels']} wheels, {f['linux_wheels']} opened (Linux), --jobs {f['jobs']},"
        f" median of {f['repeat']} (cold scan: {f['cold_repeat']});"
        f" load average {f['load_average_start'][0]:.1f} -> {f['load_average_end'][0]:.1f}",
        f"inflate floor: {f['inflate']['all_s']:.2f} s CPU over {f['inflate']['members']} ELF members"
        f" ({f['inflate']['without_grafted_s']:.2f} s without the grafted ones)",
    ]
    if cold:
        lines.append(
            f"cold scan      {cold['wall_s']:8.2f} s  {cold['wheels_per_s_opened']:7.1f} opened wheels/s"
            f"  CPU {cold['cpu_s_median']:.1f} s = {cold['cpu_ms_per_opened_wheel']:.2f} ms/opened wheel,"
            f" beyond inflating {cold['fixed_ms_per_opened_wheel_low']:.2f}"
            f"-{cold['fixed_ms_per_opened_wheel_high']:.2f}"
            f" ms (target < {TARGET_FIXED_MS} ms), of which the client {cold['client_ms_per_opened_wheel']:.3f} ms")
    lines += [
        f"re-scan        {rescan['wall_s']:8.2f} s  (target < {TARGET_RESCAN_S} s at 100,000)",
        f"night (+{f['night_wheels']})  {night['wall_s']:8.2f} s;"
        f" the new wheels alone {f['night_alone']['wall_s']:.2f} s;"
        f" overhead {f['night_overhead_s']:.2f} s (target < {TARGET_NIGHT_OVERHEAD_S} s)",
        f"report         {f['report']['wall_s']:8.2f} s",
        f"store          {f['store_mib_cold']:.1f} MiB after the cold scan,"
        f" {f['store_mib_night']:.1f} MiB after the night",
    ]
    for name in ("cold", "rescan", "night", "night_alone", "report"):
        step = f[name]
        if step is None:
            continue
        lines.append(f"peak RSS {name:12s} client {step['client_peak_rss_mib']:6.1f} MiB"
                     f" (CPU {step['client_cpu_s']:.2f} s)  workers {step['worker_peak_rss_mib']} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mirror", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold-repeat", type=int, help="how often to repeat the cold scan (default: --repeat)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--keep", type=Path, help="keep the stores in a folder made under KEEP")
    parser.add_argument("--cold-store", type=Path, help="skip the cold scans: start from this kept cold store"
                        " (a KEEP folder's cold.db of the same mirror and fastaudit)")
    args = parser.parse_args(argv)
    figures = bench(args.mirror.resolve(), args.repeat, args.cold_repeat or args.repeat, args.jobs, args.keep,
                    args.cold_store)
    print(summary(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
