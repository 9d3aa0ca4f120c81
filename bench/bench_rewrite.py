#!/usr/bin/env python3
"""The rewriter of two builds side by side: same random edit plans, same real shared objects.

    python bench/bench_rewrite.py --old-python OLD_VENV/bin/python [--new-python PY] [--set dev]
        [--plans 3] [--seed 9] [--rounds 2] [--turns 2] [--max-mb 64] [--report FILE]

The shared objects of a wheel set (bench/fetch_wheels.py) are extracted once; for each, `--plans`
random plans are drawn (rename or remove DT_NEEDED entries, set or remove the SONAME, set RPATH or
RUNPATH, with names both shorter and longer than the old ones, so in-place writes, the new segment
and the moved .dynamic are all exercised). Each build's python runs this file as a worker over
every (object, plan): it records the SHA-256 of the output (or the error's class and message) and
the best of `--rounds` timings; the builds take `--turns` alternate turns, so a change in the
machine's load falls on both. The report gives the count of identical and different outputs,
every difference, and the median per file of each build with their ratio.

The worker imports `fastaudit` from the interpreter it runs in (never from this work tree), so
build each side into its own venv, e.g. `python -m venv /tmp/old && /tmp/old/bin/pip install
/path/to/main`.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _wheels(wheel_set: str) -> list[Path]:
    out = subprocess.run([sys.executable, str(HERE / "fetch_wheels.py"), "--set", wheel_set],
                         capture_output=True, text=True, check=True).stdout.split()
    return [Path(p) for p in out if not p.endswith("-any.whl")]


def extract_objects(wheels: list[Path], folder: Path, max_bytes: int) -> list[Path]:
    objects = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or not (name.endswith(".so") or ".so." in name) or info.file_size > max_bytes:
                    continue
                data = zf.read(info)
                if data[:4] != b"\x7fELF":
                    continue
                path = folder / f"{len(objects):05d}-{Path(name).name}"
                path.write_bytes(data)
                objects.append(path)
    return objects


def _name(rng: random.Random, length: int) -> str:
    return "lib" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(length)) + ".so"


def draw_plan(rng: random.Random, needed: list[str]) -> dict:
    """One edit plan as JSON: names shorter than the old ones may go in place, longer ones not."""
    renamed = [n for n in needed if rng.random() < 0.4]
    replace = {old: _name(rng, rng.choice([1, max(1, len(old) - 8), len(old) + 20])) for old in renamed}
    removable = [n for n in needed if n not in replace]
    remove = [n for n in removable if rng.random() < 0.15]
    soname = rng.choice([None, None, "", _name(rng, 4), _name(rng, 40)])
    entries = [rng.choice(["$ORIGIN", "$ORIGIN/../" + "x" * rng.randint(1, 60) + ".libs", "/opt/p"])
               for _ in range(rng.randint(0, 3))]
    kind = rng.choice(["rpath", "runpath", None])
    value = ":".join(entries)
    return {"replace_needed": replace, "remove_needed": remove, "soname": soname,
            "rpath": value if kind == "rpath" else None, "runpath": value if kind == "runpath" else None}


def make_jobs(objects: list[Path], plans: int, seed: int) -> list[dict]:
    from fastaudit.elf import WANT_DYNAMIC, read_elf
    from fastaudit.errors import ELFError
    rng = random.Random(seed)
    jobs = []
    for path in objects:
        try:
            needed = list(read_elf(path.read_bytes(), WANT_DYNAMIC).needed)
        except ELFError:
            needed = []
        jobs += [{"object": str(path), "plan": draw_plan(rng, needed)} for _ in range(plans)]
    return jobs


def worker(jobs_file: Path, results_file: Path, rounds: int) -> None:
    from fastaudit.elf import ElfEdits, rewrite_elf
    from fastaudit.errors import FastauditError
    jobs = json.loads(jobs_file.read_text())
    gc.freeze()   # the harness's own objects (the job list) stay out of the collections both builds pay for
    results = []
    cache: dict[str, bytes] = {}
    for job in jobs:
        data = cache.get(job["object"])
        if data is None:
            cache.clear()   # jobs come object by object: hold one at a time
            data = cache[job["object"]] = Path(job["object"]).read_bytes()
        p = job["plan"]
        edits = ElfEdits(replace_needed=p["replace_needed"], remove_needed=frozenset(p["remove_needed"]),
                         soname=p["soname"], rpath=p["rpath"], runpath=p["runpath"])
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            try:
                out = rewrite_elf(data, edits)
                outcome = hashlib.sha256(out).hexdigest()
            except FastauditError as e:
                outcome = f"{type(e).__name__}: {e}"
            best = min(best, time.perf_counter() - start)
        results.append({"outcome": outcome, "seconds": best})
    results_file.write_text(json.dumps(results))


def run_build(python: str, jobs_file: Path, out: Path, rounds: int) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([os.path.abspath(python), str(Path(__file__).resolve()), "--worker", str(jobs_file), str(out),
                    "--rounds", str(rounds)], check=True, env=env, cwd="/")
    return json.loads(out.read_text())


def merge_turn(results: list[dict], turn: list[dict]) -> None:
    if not results:
        results += turn
        return
    for kept, again in zip(results, turn):
        if kept["outcome"] != again["outcome"]:
            raise SystemExit(f"a build gave two outcomes for one job: {kept['outcome']} / {again['outcome']}")
        kept["seconds"] = min(kept["seconds"], again["seconds"])


def per_file_median(jobs: list[dict], results: list[dict]) -> float:
    by_file: dict[str, list[float]] = {}
    for job, result in zip(jobs, results):
        by_file.setdefault(job["object"], []).append(result["seconds"])
    return statistics.median(statistics.median(v) for v in by_file.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-python")
    ap.add_argument("--new-python", default=sys.executable)
    ap.add_argument("--set", default="dev")
    ap.add_argument("--plans", type=int, default=3)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=2, help="timed runs of each job per turn")
    ap.add_argument("--turns", type=int, default=2, help="times each build runs every job, alternately")
    ap.add_argument("--max-mb", type=float, default=64)
    ap.add_argument("--report", type=Path)
    ap.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.rounds)
        return
    if not args.old_python:
        ap.error("--old-python is required")
    with tempfile.TemporaryDirectory(prefix="bench-rewrite-") as tmp:
        folder = Path(tmp)
        objects = extract_objects(_wheels(args.set), folder, int(args.max_mb * 1e6))
        jobs = make_jobs(objects, args.plans, args.seed)
        jobs_file = folder / "jobs.json"
        jobs_file.write_text(json.dumps(jobs))
        # the builds take turns, so a change in the machine's load falls on both; each job keeps
        # its best time over the turns, and its outcome must be the same in every turn
        old: list[dict] = []
        new: list[dict] = []
        for turn in range(args.turns):
            for python, results in ((args.old_python, old), (args.new_python, new)):
                merge_turn(results, run_build(python, jobs_file, folder / "turn.json", args.rounds))
        differences = [(job, a["outcome"], b["outcome"]) for job, a, b in zip(jobs, old, new)
                       if a["outcome"] != b["outcome"]]
        old_median, new_median = per_file_median(jobs, old), per_file_median(jobs, new)
        lines = [
            f"{len(objects)} shared objects of the {args.set} set (at most {args.max_mb:g} MB each), "
            f"{len(jobs)} plans (seed {args.seed}), best of {args.rounds} runs x {args.turns} alternate turns each",
            f"identical outputs: {len(jobs) - len(differences)}, different: {len(differences)}",
            f"refused alike by both (an error, same class and message): "
            f"{sum(1 for a, b in zip(old, new) if a['outcome'] == b['outcome'] and ':' in a['outcome'])}",
            f"median per file: old {old_median * 1e3:.3f} ms, new {new_median * 1e3:.3f} ms, "
            f"new/old {new_median / old_median:.2f}",
        ]
        for job, a, b in differences:
            lines.append(f"DIFFERENT {Path(job['object']).name} {json.dumps(job['plan'])}\n  old: {a}\n  new: {b}")
        text = "\n".join(lines)
        print(text)
        if args.report:
            args.report.write_text(text + "\n")


if __name__ == "__main__":
    main()
