#!/usr/bin/env python3
"""Time `fastaudit report` over a synthetic store of 100,000 wheels.

    python bench/bench_report.py [--wheels 100000] [--runs 5] [--repeat 5] [--db FILE] [--keep]

The store is written through the Store API (start_run, record_results, record_skipped,
finish_run), as a scan writes it, with a mirror-like mix: most wheels pure or for other
platforms, Linux wheels over six architectures and both libcs, the glibc versions their binaries
need spread from 2.2.5 to 2.39, a few per cent over-promising, a few hundred errors, grafted
libraries from a pool of common ones in a third of them. The first run holds about 94% of the
wheels; each later run adds new releases, withdraws a few and skips the rest, so the last run has
--wheels wheels and the report has a trend and a diff to draw.

Then, --repeat times, the whole report (figures, HTML, Markdown, JSON written to a temporary
folder, as `fastaudit report` does) is timed, and the median printed with the time of each step.
The store is kept at --db when given (and reused when it exists), else written to a temporary
folder and deleted.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastaudit.report.figures import compute_figures
from fastaudit.report.html import render_html
from fastaudit.report.markdown import render_markdown
from fastaudit.report.nightly import write_report
from fastaudit.store import ResultRow, Store, WheelRow

ANALYZER, POLICY = "bench", "bench-policy"
ARCHES = [("x86_64", 60), ("aarch64", 22), ("i686", 8), ("ppc64le", 4), ("s390x", 3), ("armv7l", 3)]
GLIBC = [("2.2.5", 6), ("2.3.4", 8), ("2.4", 6), ("2.7", 4), ("2.14", 12), ("2.17", 30), ("2.18", 3),
         ("2.27", 6), ("2.28", 16), ("2.29", 2), ("2.31", 2), ("2.34", 3), ("2.35", 1), ("2.39", 1)]
# the manylinux tag whose policy a glibc version first fits, by glibc minor version
POLICY_MINORS = (5, 12, 17, 24, 27, 28, 31, 34, 35, 39)
GRAFTED = ["libopenblas64_p-r0", "libgfortran", "libquadmath", "libgcc_s", "libstdc++", "libjpeg", "libpng16",
           "libz", "libcrypto", "libssl", "libffi", "liblzma", "libtiff", "libwebp", "libfreetype", "libharfbuzz",
           "libxml2", "libxslt", "libcurl", "libnghttp2", "libssh2", "libbz2", "libzstd", "liblz4", "libsqlite3",
           "libomp", "libgomp", "libarrow", "libprotobuf", "libuv"]
EXTERNAL = ["libGL.so.1", "libcuda.so.1", "libX11.so.6", "libpython3.so", "libmpi.so.40", "libnuma.so.1"]


def pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def policy_name(glibc: str) -> str:
    minor = int(glibc.split(".")[1])
    return f"manylinux_2_{next(m for m in POLICY_MINORS if m >= minor)}"


def _older(a: str, b: str) -> bool:
    """Whether tag a is at least as compatible as tag b (same family; linux is the least)."""
    return a != "linux" and tuple(map(int, a.split("_")[1:])) <= tuple(map(int, b.split("_")[1:]))


def linux_wheel(rng: random.Random, project: str, version: str, py: str) -> tuple[WheelRow, ResultRow]:
    arch = pick(rng, ARCHES)
    libc = "musl" if rng.random() < 0.15 else "glibc"
    versions: dict[str, list[str]] = {}
    external: list[str] = []
    if libc == "musl":  # musl has no symbol versions: most wheels say 1_2 and achieve 1_1
        declared, achieved = rng.choice(["musllinux_1_1", "musllinux_1_2", "musllinux_1_2"]), "musllinux_1_1"
    else:
        glibc = pick(rng, GLIBC)
        achieved = policy_name(glibc)
        minors = sorted({2, 3, 4, int(glibc.split(".")[1])})
        versions = {"libc.so.6": [f"GLIBC_2.{m}" for m in minors] + [f"GLIBC_{glibc}"],
                    "libm.so.6": ["GLIBC_2.2.5"], "libstdc++.so.6": ["GLIBCXX_3.4", "CXXABI_1.3"]}
        roll = rng.random()
        if roll < 0.02:  # needs a library no policy allows: satisfies only linux
            external, declared, achieved = rng.sample(EXTERNAL, 1), achieved, "linux"
        elif roll < 0.05:  # built on a too new system for the tag it claims
            declared = rng.choice([m for m in ("manylinux_2_5", "manylinux_2_17") if not _older(achieved, m)]
                                  or [achieved])
        elif roll < 0.30:  # a newer tag than needed
            declared = f"manylinux_2_{rng.choice([m for m in POLICY_MINORS if m >= int(achieved.split('_')[2])])}"
        else:
            declared = achieved
    over = [] if _older(achieved, declared) else [f"{declared} is not satisfied: the binaries need {achieved}"]
    members = [f"{project}/_core.cpython-{py[2:]}-{arch}-linux-gnu.so"]
    members += [f"{project}/_ext{i}.so" for i in range(rng.randint(0, 6))]
    if rng.random() < 0.33:
        members += [f"{project}.libs/{name}-{rng.getrandbits(32):08x}.so.{rng.randint(0, 9)}"
                    for name in rng.sample(GRAFTED, rng.randint(1, 5))]
    platform = f"{declared}_{arch}"
    filename = f"{project}-{version}-{py}-{py}-{platform}.whl"
    report: dict[str, Any] = {
        "version": 1, "wheel": filename, "pure": False, "overall_tag": f"{achieved}_{arch}",
        "sym_tag": f"{achieved}_{arch}", "pyfpe": False, "ucs2": False, "unsupported_isa": False,
        "versioned_symbols": versions, "external_libs": dict.fromkeys(external), "policy_upgrades": {},
        "fastaudit": {
            "schema_version": 1, "policy_data": POLICY, "declared_tags": [platform], "over_promises": bool(over),
            "over_promise_reasons": [{"criterion": "symbol_version", "member": members[0], "library": "libc.so.6",
                                      "detail": "", "message": m} for m in over],
            "ignored_members": [], "arch": arch, "libc": libc, "overall_aliases": [],
            "criteria": dict.fromkeys(("symbol_version", "external_library", "blacklisted_symbol", "isa", "pyfpe",
                                       "ucs2"), f"{achieved}_{arch}"),
            "reasons": [], "elf_members": members,
        },
    }
    facts = tuple({"member": m, "arch": arch, "soname": m.rsplit("/", 1)[-1], "needed": ["libc.so.6"],
                   "isa_level": 0, "version_requirements": versions} for m in members)
    wheel = WheelRow(filename, f"/mirror/{filename}", filename, rng.randint(10**5, 10**8), project, version, py, py,
                     platform, "linux")
    return wheel, ResultRow("ok", report, elapsed=0.01, elf_facts=facts)


def some_wheel(rng: random.Random, project: str, version: str, index: int) -> tuple[WheelRow, ResultRow]:
    py = f"cp3{8 + index % 6}"
    roll = rng.random()
    if roll < 0.20:
        filename = f"{project}-{version}-py3-none-any.whl"
        if index:  # one pure wheel per release
            filename = f"{project}-{version}-{py}-none-any.whl"
        report = {"version": 1, "wheel": filename, "pure": True}
        return (WheelRow(filename, f"/mirror/{filename}", filename, 10**5, project, version, py, "none", "any", "pure"),
                ResultRow("pure", report))
    if roll < 0.40:
        filename = f"{project}-{version}-{py}-{py}-win_amd64.whl"
        return (WheelRow(filename, f"/mirror/{filename}", filename, 10**6, project, version, py, py, "win_amd64",
                         "other"), ResultRow("not_linux"))
    if roll < 0.403:
        filename = f"{project}-{version}-{py}-{py}-manylinux_2_17_x86_64.whl"
        return (WheelRow(filename, f"/mirror/{filename}", filename, 10**6, project, version, py, py,
                         "manylinux_2_17_x86_64", "linux"),
                ResultRow("error", None, "ELFTruncatedError", f"{filename}: truncated ELF header",
                          f"{project}/_core.so"))
    return linux_wheel(rng, project, version, py)


def releases(rng: random.Random, count: int, start: int) -> list[tuple[str, str, int]]:
    """(project, version, wheels) tuples: half the releases from 300 busy projects, the rest
    spread over 20,000 (some 8,000 projects in a store of 100,000 wheels)."""
    out = []
    for i in range(start, start + count):
        project = f"project{rng.randrange(300) if rng.random() < 0.5 else rng.randrange(20000):05d}"
        out.append((project, f"{i // 9000}.{i % 9000}", rng.randint(1, 12)))
    return out


def build_store(path: Path, wheels: int, runs: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    withdraw = 40  # wheels withdrawn per later run
    first = int(wheels * 0.94)
    per_run = (wheels - first) // max(runs - 1, 1) + withdraw
    present: list[tuple[WheelRow, ResultRow]] = []
    release_index = 0
    with Store(path) as store:
        for night in range(runs):
            target = first if night == 0 else per_run
            if night == runs - 1:
                target = wheels - len(present) + withdraw
            fresh: dict[str, tuple[WheelRow, ResultRow]] = {}
            while len(fresh) < target:
                for project, version, n in releases(rng, 1, release_index):
                    for i in range(n):
                        wheel, result = some_wheel(rng, project, version, i)
                        fresh.setdefault(wheel.content_key, (wheel, result))
                release_index += 1
            new = list(fresh.values())[:target]
            withdrawn = set(rng.sample(range(len(present)), withdraw)) if night else set()
            present = [p for i, p in enumerate(present) if i not in withdrawn]
            run_id = store.start_run({"bench": night}, "bench", POLICY)
            skipped = store.known_results((w.content_key for w, _ in present), ANALYZER, POLICY)
            store.record_skipped(run_id, skipped.values())
            for start in range(0, len(new), 2000):
                store.record_results(run_id, ANALYZER, POLICY, new[start:start + 2000])
            store.finish_run(run_id, "completed", store.run_counts(run_id))
            present.extend(new)
            print(f"run {run_id}: {len(present)} wheels ({len(new)} new, {len(withdrawn)} withdrawn)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="Keep the store here (reused if it exists).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        if not db.exists():
            started = time.perf_counter()
            build_store(db, args.wheels, args.runs)
            print(f"store built in {time.perf_counter() - started:.1f} s: {db.stat().st_size / 1e6:.0f} MB",
                  file=sys.stderr)
        steps: dict[str, list[float]] = {"figures": [], "html": [], "markdown": [], "json": [], "total": []}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            write_report(db, Path(tmp) / "out")
            steps["total"].append(time.perf_counter() - t0)
            # the same work step by step, to see where the time goes
            t0 = time.perf_counter()
            with Store(db, readonly=True) as store:
                figures = compute_figures(store)
            t1 = time.perf_counter()
            render_html(figures)
            t2 = time.perf_counter()
            render_markdown(figures)
            t3 = time.perf_counter()
            json.dumps(figures, indent=1)
            t4 = time.perf_counter()
            for key, value in zip(("figures", "html", "markdown", "json"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3),
                                  strict=True):
                steps[key].append(value)
        head = figures["headline"]
        print(f"run {figures['run']['id']}: {head['wheels']} wheels ({head['linux']} audited,"
              f" {head['over_promising']} over-promising, {head['errors']} errors), {head['projects']} projects,"
              f" {len(figures['trend'])} runs in the trend")
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "out").iterdir()}
        print("files: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(sizes.items())))
        for key, values in steps.items():
            print(f"{key:9s} median {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f},"
                  f" {len(values)} runs)")


if __name__ == "__main__":
    main()
