#!/usr/bin/env python3
"""The store's cross-run ELF cache on what a mirror receives: every Linux wheel of one release of
numpy, scipy and pillow scanned into a store, then every wheel of the next release into the same
store, with the store's cache on and off, with --jobs 1, --jobs 2 and on a loopback Dask cluster
of two single-threaded workers.

    python bench/bench_xcache.py [--repeat 3] [--json FILE]

The wheels are the `xcache` set (bench/corpus/xcache-wheels.txt: category `a` is the first release
of each project, `b` the next), fetched into the shared cache by bench/fetch_wheels.py. Release a
is scanned once (--jobs 2) into a template store; each measured run scans release b into a fresh
copy of that template, as `fastaudit scan` in a subprocess. Cache off is `--no-stored-elf-cache`:
each worker still keeps its own in-process cache, so what differs is only the store's. Runs are
interleaved (on/off order alternating per round) and the Dask workers are restarted before every
run, so no worker carries facts in memory from one run to the next. CPU is user+sys of the scan
and its pool workers (RUSAGE_CHILDREN), plus, for Dask, of the cluster's worker processes.
What was not inflated comes from the store's elf_cache_runs row of the run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MIB = 1 << 20


def _fetch_wheels():
    spec = importlib.util.spec_from_file_location("fetch_wheels", HERE / "fetch_wheels.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def lay_out(work: Path) -> dict[str, list[Path]]:
    """Release a and release b, hard-linked (or copied) from the cache into two folders."""
    fetch = _fetch_wheels()
    paths = {p.name: p for p in fetch.fetch("xcache")}
    releases: dict[str, list[Path]] = {"a": [], "b": []}
    for wheel in fetch.load_set("xcache"):
        dest = work / wheel.category / wheel.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() and os.path.samefile(dest, paths[wheel.filename]):
            releases[wheel.category].append(dest)
            continue
        try:
            os.link(paths[wheel.filename], dest)
        except OSError:
            shutil.copy2(paths[wheel.filename], dest)
        releases[wheel.category].append(dest)
    return releases


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scan(db: Path, folder: Path, *options: str) -> dict[str, Any]:
    """One `fastaudit scan` subprocess: wall, CPU of it and its pool workers, exit status."""
    cpu, load, started = _children_cpu(), os.getloadavg()[0], time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fastaudit", "scan", "--db", str(db), *options, str(folder)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"wall": wall, "cpu": _children_cpu() - cpu, "load": load}


def cache_usage(db: Path, run_id: int) -> dict[str, Any]:
    with closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM elf_cache_runs WHERE run_id=?", (run_id,)).fetchone()
        return dict(row) if row else {}


class DaskCluster:
    """A loopback cluster of two single-threaded worker processes, and the CPU its workers use."""

    def __init__(self) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address=None)
        self.client = Client(self.cluster)

    def restart(self) -> None:
        self.client.restart(wait_for_workers=True)

    def worker_cpu(self) -> float:
        """User+sys CPU seconds of the workers' processes so far (time.process_time in each)."""
        return sum(self.client.run(time.process_time).values())

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def measure(work: Path, template: Path, folder: Path, executor: str, cache_on: bool, index: int,
            dask: DaskCluster | None) -> dict[str, Any]:
    db = work / f"run-{index}.db"   # a new file each run: a worker's view of the store is per file
    shutil.copy2(template, db)
    options = ["--scheduler", dask.cluster.scheduler_address] if executor == "dask" else ["--jobs", executor[-1]]
    if not cache_on:
        options.append("--no-stored-elf-cache")
    extra_cpu = 0.0
    if dask is not None:
        dask.restart()
        before = dask.worker_cpu()
    figures = scan(db, folder, *options)
    if dask is not None:
        extra_cpu = dask.worker_cpu() - before
    figures["cpu"] += extra_cpu
    usage = cache_usage(db, 2)
    figures.update({k: usage.get(k, 0) for k in ("members_from_store", "bytes_from_store", "members_from_memory",
                                                  "bytes_from_memory", "members_read", "bytes_read")})
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return figures


def reuse_by_project(work: Path, template: Path) -> None:
    """Per project of release b: its ELF members, and those whose facts release a's store holds
    (their content keys looked up in the template store), in members and inflated MiB."""
    from fastaudit.facts import facts_version
    from fastaudit.wheel import WheelArchive

    with closing(sqlite3.connect(f"{template.resolve().as_uri()}?mode=ro", uri=True)) as con:
        stored = {key for (key,) in con.execute("SELECT member_key FROM elf_cache WHERE facts_version=?",
                                                (facts_version(),))}
    figures: dict[str, list[Any]] = {}
    for wheel in sorted((work / "b").iterdir()):
        row = figures.setdefault(wheel.name.split("-")[0].lower(), [0, 0, 0, 0, set(), set()])
        with WheelArchive(wheel) as archive:
            for member in archive.members:
                if member.name.endswith(".py") or not archive.starts_with_elf_magic(member):
                    continue
                key = archive.content_key(member)
                row[0] += 1
                row[1] += member.size
                row[4].add(key)
                if key in stored:
                    row[2] += 1
                    row[3] += member.size
                    row[5].add(key)
    print("| project, release b | ELF members | MiB | with facts from release a | MiB | distinct members |"
          " of them stored |\n|---|---|---|---|---|---|---|")
    for project, (members, size, hits, hit_size, distinct, distinct_hits) in sorted(figures.items()):
        print(f"| {project} | {members:,} | {size / MIB:,.0f} | {hits:,} | {hit_size / MIB:,.0f} | {len(distinct):,} |"
              f" {len(distinct_hits):,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write every run's figures here")
    parser.add_argument("--work", default=None, help="folder for the wheels' links and stores (default: a temp dir)")
    parser.add_argument("--reuse-only", action="store_true",
                        help="only the per-project reuse table (from the template store an earlier run left in --work)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-xcache-"))
    releases = lay_out(work)
    template = work / "template.db"
    if args.reuse_only:
        reuse_by_project(work, template)
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{template}{suffix}").unlink(missing_ok=True)
    first = scan(template, work / "a", "--jobs", "2")
    first.update({k: v for k, v in cache_usage(template, 1).items() if k.startswith(("members", "bytes", "rows"))})
    with closing(sqlite3.connect(template)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        first["stored_facts_bytes"] = con.execute("SELECT coalesce(sum(stored_bytes), 0) FROM elf_cache").fetchone()[0]
    print(f"release a: {len(releases['a'])} wheels, {sum(p.stat().st_size for p in releases['a']) / MIB:.0f} MiB;"
          f" scanned (--jobs 2) in {first['wall']:.1f} s wall, {first['cpu']:.1f} s CPU;"
          f" {first['members_read']} ELF members read ({first['bytes_read'] / MIB:.0f} MiB inflated),"
          f" facts stored: {first['stored_facts_bytes'] / MIB:.2f} MiB", flush=True)
    print(f"release b: {len(releases['b'])} wheels, {sum(p.stat().st_size for p in releases['b']) / MIB:.0f} MiB",
          flush=True)
    dask = DaskCluster()
    runs: list[dict[str, Any]] = []
    index = 0
    try:
        for round_ in range(args.repeat):
            for executor in ("jobs1", "jobs2", "dask"):
                order = (True, False) if round_ % 2 == 0 else (False, True)
                for cache_on in order:
                    index += 1
                    figures = measure(work, template, work / "b", executor, cache_on, index,
                                      dask if executor == "dask" else None)
                    figures.update(executor=executor, cache=cache_on, round=round_)
                    runs.append(figures)
                    print(f"  {executor:5s} cache {'on ' if cache_on else 'off'}: {figures['wall']:6.1f} s wall"
                          f" {figures['cpu']:6.1f} s CPU  load {figures['load']:.1f};"
                          f" from store {figures['members_from_store']} ({figures['bytes_from_store'] / MIB:.0f} MiB),"
                          f" from memory {figures['members_from_memory']}"
                          f" ({figures['bytes_from_memory'] / MIB:.0f} MiB),"
                          f" inflated {figures['members_read']} ({figures['bytes_read'] / MIB:.0f} MiB)", flush=True)
    finally:
        dask.close()
    print("\nmedians over", args.repeat, "rounds (release b into the store holding release a):")
    print(f"{'executor':8s} {'cache':5s} {'wall s':>7s} {'CPU s':>7s} {'not inflated MiB':>17s}"
          f" {'inflated MiB':>13s} {'members from store':>19s}")
    for executor in ("jobs1", "jobs2", "dask"):
        for cache_on in (False, True):
            chosen = [r for r in runs if r["executor"] == executor and r["cache"] == cache_on]
            med = {k: statistics.median(r[k] for r in chosen) for k in ("wall", "cpu", "bytes_from_store",
                                                                         "bytes_from_memory", "bytes_read",
                                                                         "members_from_store")}
            print(f"{executor:8s} {'on' if cache_on else 'off':5s} {med['wall']:7.1f} {med['cpu']:7.1f}"
                  f" {(med['bytes_from_store'] + med['bytes_from_memory']) / MIB:17.0f} {med['bytes_read'] / MIB:13.0f}"
                  f" {med['members_from_store']:19.0f}")
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    reuse_by_project(work, template)
    if args.json:
        Path(args.json).write_text(json.dumps({"first": first, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
