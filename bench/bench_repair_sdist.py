#!/usr/bin/env python3
"""`fastaudit repair` against `auditwheel repair` on real projects built from sdist, side by side in one run.

    python bench/bench_repair_sdist.py [--repeat 5] [--only NAME ...] [--cache DIR] [--json FILE] [--phases]
                                       [--before DIR]

The wheels are the ones bench/build_sdist_wheels.py builds (pinned sdists compiled here against
Debian's -dev packages, so repair grafts the system libraries). Each tool runs as cibuildwheel's
default repair command runs it: its console script in a subprocess (`fastaudit repair -w DIR WHEEL`,
`auditwheel repair -w DIR WHEEL`, interpreter start-up included, no --plat), into an output folder
emptied before each run. The runs alternate between the tools, and which one goes first, so the
machine's load falls on both alike. Per project: the median wall time and the median CPU time
(user + sys of the command and its children, patchelf included) of each, and their ratios; then
the median ratio over the projects.

The outputs are compared on every project as part of the run: the same file name, the same
members, the same bytes for every member neither tool rewrites, the same WHEEL tags, and for every
ELF member (the rewritten extensions and the grafted libraries, whose names carry the hash of the
host file) the same DT_NEEDED, DT_SONAME and library search path. The rewritten bytes cannot be
compared: patchelf and fastaudit lay the edits out differently. A difference fails the run.

--before DIR adds a third command, `fastaudit repair` with DIR first on PYTHONPATH (another build
of the package, to compare with), in the same alternating turns.

--phases adds where fastaudit's CPU time goes, per project, in a fresh interpreter: its start,
the imports the command needs, plan_repair, apply_plan (its compression threads included) and,
apart, deflating the members apply_plan wrote anew, at the default level, in one thread.
"""
from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_sdist_wheels import PROJECTS, built_wheel, cache_dir  # noqa: E402
from fastaudit.elf import read_elf  # noqa: E402

VENV_BIN = Path(sys.executable).parent


class Timing(NamedTuple):
    wall: float
    cpu: float   # user + sys of the command and the children it waited for


def run_once(command: list[str], out: Path, env: dict[str, str]) -> Timing:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    written = list(out.glob("*.whl"))
    if len(written) != 1:
        raise RuntimeError(f"{' '.join(command)} wrote {len(written)} wheels, not one")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def elf_facts(data: bytes) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    info = read_elf(data)
    return info.needed, info.soname, tuple(info.runpath or info.rpath)


def wheel_tags(zf: zipfile.ZipFile) -> list[str]:
    (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/WHEEL") and n.count("/") == 1]
    return sorted(email.parser.BytesParser().parsebytes(zf.read(name)).get_all("Tag", []))


def differences(ours: Path, theirs: Path) -> list[str]:
    """What tells the two repaired wheels apart (empty when they agree)."""
    found = []
    if ours.name != theirs.name:
        found.append(f"name {ours.name} != {theirs.name}")
    with zipfile.ZipFile(ours) as a, zipfile.ZipFile(theirs) as b:
        # RECORD differs by construction (its hashes of rewritten files); each tool writes its own SBOM
        ignored = (".dist-info/RECORD", ".dist-info/sboms/fastaudit.cdx.json", ".dist-info/sboms/auditwheel.cdx.json")
        names_a = {n for n in a.namelist() if not n.endswith(ignored) and not n.endswith("/")}
        names_b = {n for n in b.namelist() if not n.endswith(ignored) and not n.endswith("/")}
        if names_a != names_b:
            found.append(f"members only in fastaudit's: {sorted(names_a - names_b)}, "
                         f"only in auditwheel's: {sorted(names_b - names_a)}")
        if wheel_tags(a) != wheel_tags(b):
            found.append(f"tags {wheel_tags(a)} != {wheel_tags(b)}")
        for name in sorted(names_a & names_b):
            if name.endswith(".dist-info/WHEEL"):
                continue  # its tags are compared above; the Generator line is each tool's own
            data_a, data_b = a.read(name), b.read(name)
            if data_a[:4] == b"\x7fELF" and data_b[:4] == b"\x7fELF":
                if elf_facts(data_a) != elf_facts(data_b):
                    found.append(f"{name}: {elf_facts(data_a)} != {elf_facts(data_b)}")
            elif hashlib.sha256(data_a).digest() != hashlib.sha256(data_b).digest():
                found.append(f"{name}: contents differ")
    return found


# Run in a fresh interpreter, as the command is: caches (policies, patterns) start cold.
_PHASES = """
import json, resource, sys, time, zipfile
from pathlib import Path
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
started = cpu()
import fastaudit.cli, fastaudit.repair
from fastaudit.inflate import deflate_raw
imported = cpu()
plan = fastaudit.repair.plan_repair(sys.argv[1])
planned = cpu()
written = fastaudit.repair.apply_plan(plan, Path(sys.argv[2])).output
applied = cpu()
with zipfile.ZipFile(written) as zf, zipfile.ZipFile(sys.argv[1]) as zin:
    old = {i.filename: i.CRC for i in zin.infolist()}
    new = [zf.read(i) for i in zf.infolist() if old.get(i.filename) != i.CRC]
before = cpu()
for data in new:
    deflate_raw(data, -1)
print(json.dumps({"interpreter": started, "imports": imported - started, "plan": planned - imported,
                  "apply": applied - planned, "deflate_alone": cpu() - before}))
"""


def phases(wheel: Path, out: Path, env: dict[str, str]) -> dict[str, float]:
    """CPU seconds of fastaudit's steps on one wheel, each the median of three fresh runs (see --phases)."""
    runs = []
    for _ in range(3):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        result = subprocess.run([sys.executable, "-c", _PHASES, str(wheel), str(out)], capture_output=True,
                                text=True, check=True, env=env)
        runs.append(json.loads(result.stdout))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def grafted(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return sorted(n for n in zf.namelist() if ".libs/" in n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each tool per project (default 5)")
    parser.add_argument("--only", nargs="*", default=None, help="these projects only")
    parser.add_argument("--cache", type=Path, default=None, help="the built wheels (default: the build script's)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--phases", action="store_true", help="also where fastaudit's CPU time goes")
    parser.add_argument("--before", type=Path, help="also fastaudit with this folder first on PYTHONPATH")
    args = parser.parse_args(argv)
    cache = args.cache or cache_dir()
    wheels = [(p.name, built_wheel(p, cache)) for p in PROJECTS if args.only is None or p.name in args.only]
    missing = [name for name, wheel in wheels if wheel is None]
    if missing:
        print(f"not built (bench/build_sdist_wheels.py): {', '.join(missing)}", file=sys.stderr)
    wheels = [(name, wheel) for name, wheel in wheels if wheel is not None]
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    for variable in ("LD_LIBRARY_PATH", "AUDITWHEEL_PLAT", "AUDITWHEEL_ZIP_COMPRESSION_LEVEL"):
        env.pop(variable, None)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{args.repeat} alternating runs of each tool per project", flush=True)
    rows = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="fastaudit-bench-sdist-") as tmp:
        for name, wheel in wheels:
            commands = {
                "fastaudit": [str(VENV_BIN / "fastaudit"), "repair", "-w", f"{tmp}/fastaudit", str(wheel)],
                "auditwheel": [str(VENV_BIN / "auditwheel"), "repair", "-w", f"{tmp}/auditwheel", str(wheel)],
            }
            if args.before:
                commands["before"] = [str(VENV_BIN / "fastaudit"), "repair", "-w", f"{tmp}/before", str(wheel)]
            envs = {tool: env for tool in commands}
            envs["before"] = {**env, "PYTHONPATH": str(args.before)}
            timings: dict[str, list[Timing]] = {tool: [] for tool in commands}
            for turn in range(args.repeat):
                order = list(commands) if turn % 2 == 0 else list(commands)[::-1]
                for tool in order:
                    timings[tool].append(run_once(commands[tool], Path(tmp) / tool, envs[tool]))
            (ours,) = Path(tmp, "fastaudit").glob("*.whl")
            (theirs,) = Path(tmp, "auditwheel").glob("*.whl")
            diff = differences(ours, theirs)
            failed |= bool(diff)
            medians = {tool: Timing(statistics.median(t.wall for t in runs), statistics.median(t.cpu for t in runs))
                       for tool, runs in timings.items()}
            fa, aw = medians["fastaudit"], medians["auditwheel"]
            row = {"project": name, "wheel": wheel.name, "output": ours.name, "grafted": len(grafted(ours)),
                   "grafted_mb": sum(i.file_size for i in zipfile.ZipFile(ours).infolist() if ".libs/" in i.filename)
                   / 1e6, "fastaudit_wall": fa.wall, "fastaudit_cpu": fa.cpu, "auditwheel_wall": aw.wall,
                   "auditwheel_cpu": aw.cpu, "ratio_wall": aw.wall / fa.wall, "ratio_cpu": aw.cpu / fa.cpu,
                   "same_output": not diff, "differences": diff}
            if args.before:
                row.update(before_wall=medians["before"].wall, before_cpu=medians["before"].cpu)
            if args.phases:
                row["phases"] = phases(wheel, Path(tmp) / "phases", env)
            rows.append(row)
            print(f"{name:14} {row['grafted']:2} grafted ({row['grafted_mb']:5.1f} MB)  fastaudit {fa.wall:5.2f} s "
                  f"(cpu {fa.cpu:5.2f})  auditwheel {aw.wall:5.2f} s (cpu {aw.cpu:5.2f})  "
                  f"x{row['ratio_wall']:5.1f} wall  x{row['ratio_cpu']:5.1f} cpu  "
                  f"{'same output' if not diff else 'DIFFERENT: ' + '; '.join(diff)}", flush=True)
            if args.before:
                print(f"    before: {row['before_wall']:5.2f} s (cpu {row['before_cpu']:5.2f})", flush=True)
            if args.phases:
                print("    fastaudit cpu: " + ", ".join(f"{k} {v:.3f} s" for k, v in row["phases"].items()), flush=True)
    if rows:
        print(f"median ratio over {len(rows)} projects: x{statistics.median(r['ratio_wall'] for r in rows):.1f} wall, "
              f"x{statistics.median(r['ratio_cpu'] for r in rows):.1f} cpu; min x"
              f"{min(r['ratio_wall'] for r in rows):.1f} wall")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
