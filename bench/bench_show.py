#!/usr/bin/env python3
"""Time fastaudit against auditwheel and against the inflate floor, wheel by wheel, in one run.

    python bench/bench_show.py [--set dev] [--repeat 5] [--aw-repeat 1] [--limit N]
                               [--cli-sample K] [--json FILE] [--profile K] [--no-auditwheel]

Per wheel, all in this process with the OS page cache warm for everyone (each wheel is read once
before anything is timed):

* fastaudit: ``audit_wheel(path)``, median of --repeat runs after one warm-up run;
* floor: plain ``zlib`` inflate of exactly the members fastaudit treats as ELF, median of --repeat;
* auditwheel: ``analyze_wheel_abi`` called as ``auditwheel show`` calls it, with its lru_cache
  cleared first, median of --aw-repeat runs (default 1: it takes up to ~10 s a wheel).

--cli-sample K also times ``auditwheel show`` and ``fastaudit show`` as subprocesses for K wheels
spread over the size range: what a user waits for, interpreter start-up included.
--profile K prints a cProfile of fastaudit (top 15 by cumtime) on the K wheels with most ELF bytes.
"""
from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import json
import logging
import pstats
import statistics
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastaudit.analyze import audit_wheel
from fastaudit.wheel import WheelArchive, parse_wheel_name

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = Path.home() / ".cache" / "fastaudit" / "wheels"
VENV_BIN = Path(sys.executable).parent
MB = 1 << 20
PURE = "pure"


@dataclass
class WheelTimes:
    wheel: str
    file_mb: float
    elf_mb: float  # uncompressed bytes of the ELF members
    elf_members: int
    fastaudit_s: list[float] = field(default_factory=list)
    floor_s: list[float] = field(default_factory=list)
    auditwheel_s: list[float] = field(default_factory=list)
    fastaudit_verdict: str | None = None
    auditwheel_verdict: str | None = None
    fastaudit_error: str | None = None
    auditwheel_error: str | None = None
    cli_auditwheel_s: float | None = None
    cli_fastaudit_s: float | None = None

    @property
    def fastaudit(self) -> float | None:
        return statistics.median(self.fastaudit_s) if self.fastaudit_s else None

    @property
    def floor(self) -> float | None:
        return statistics.median(self.floor_s) if self.floor_s else None

    @property
    def auditwheel(self) -> float | None:
        return statistics.median(self.auditwheel_s) if self.auditwheel_s else None

    @property
    def fastaudit_over_floor(self) -> float | None:
        # with no ELF member the floor is an empty loop: the ratio would say nothing
        if not self.elf_members or not self.fastaudit or not self.floor:
            return None
        return self.fastaudit / self.floor

    @property
    def auditwheel_over_fastaudit(self) -> float | None:
        if self.auditwheel is None or not self.fastaudit:
            return None
        return self.auditwheel / self.fastaudit

    @property
    def verdicts_equal(self) -> bool | None:
        if self.auditwheel_verdict is None and self.auditwheel_error is None:
            return None  # auditwheel not run
        return self.fastaudit_verdict == self.auditwheel_verdict


# ---------------------------------------------------------------- wheel list


def load_fetcher():
    """bench/fetch_wheels.py as a module, or None when it is not there."""
    path = BENCH_DIR / "fetch_wheels.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("fetch_wheels", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses/NamedTuple need the module registered
    spec.loader.exec_module(module)
    return module


def wheels_of_set(set_name: str) -> list[Path]:
    fetcher = load_fetcher()
    if fetcher is None:
        print(f"bench/fetch_wheels.py missing: using every wheel in {DEFAULT_CACHE}", file=sys.stderr)
        return sorted(DEFAULT_CACHE.glob("*.whl"))
    return [Path(p) for p in fetcher.fetch(set_name)]


def short_name(path: Path) -> str:
    try:
        name = parse_wheel_name(path.name)
    except Exception:
        return path.stem[:48]
    label = f"{name.name}-{name.version} {name.python_tags[0]} {name.platform_tags[0]}"
    return label if len(label) <= 56 else label[:55] + "~"


# ---------------------------------------------------------------- contenders


def fastaudit_verdict(path: Path) -> str | None:
    report = audit_wheel(path)
    return PURE if report.pure else report.overall_tag


@dataclass(frozen=True)
class RawMember:
    offset: int  # of the compressed data in the file
    compressed_size: int
    deflated: bool


def elf_raw_members(path: Path) -> tuple[list[RawMember], int]:
    """Where the compressed bytes of fastaudit's ELF members lie, and their inflated total."""
    with WheelArchive(path) as archive:
        elf_names = {member.name for member in archive.elf_candidates()}
    raw: list[RawMember] = []
    total = 0
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            if info.filename not in elf_names:
                continue
            f.seek(info.header_offset + 26)  # name and extra lengths of the local header
            name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
            raw.append(RawMember(info.header_offset + 30 + name_len + extra_len, info.compress_size,
                                 info.compress_type == zipfile.ZIP_DEFLATED))
            total += info.file_size
    return raw, total


def inflate_floor(path: Path, members: list[RawMember]) -> int:
    """Read and inflate the given members with plain zlib: the least any auditor must do."""
    inflated = 0
    with open(path, "rb") as f:
        for m in members:
            f.seek(m.offset)
            data = f.read(m.compressed_size)
            if m.deflated:
                data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data)
            inflated += len(data)
    return inflated


def quiet_auditwheel() -> None:
    # auditwheel warns per ignored member; the table is what we want on screen
    logger = logging.getLogger("auditwheel")
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False


def auditwheel_show(path: Path) -> str:
    """The verdict of `auditwheel show`, computed as its main_show.execute computes it."""
    from auditwheel.error import NonPlatformWheelError, WheelToolsError
    from auditwheel.wheel_abi import analyze_wheel_abi, get_wheel_elfdata
    from auditwheel.wheeltools import get_wheel_architecture, get_wheel_libc

    get_wheel_elfdata.cache_clear()  # else a second call only measures an lru_cache hit
    is_pure = False
    try:
        arch = get_wheel_architecture(path.name)
    except (WheelToolsError, NonPlatformWheelError) as e:
        is_pure = isinstance(e, NonPlatformWheelError)
        arch = None
    try:
        libc = get_wheel_libc(path.name)
    except WheelToolsError:
        libc = None
    try:
        winfo = analyze_wheel_abi(libc, arch, path, frozenset(), disable_isa_ext_check=False,
                                  allow_graft=False, args_ldpaths=None)
    except NonPlatformWheelError:
        if is_pure:
            return PURE
        raise
    return winfo.overall_policy.name


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


# ---------------------------------------------------------------- measuring


def measure(path: Path, repeat: int, aw_repeat: int) -> WheelTimes:
    path.read_bytes()  # warm the page cache once, for every contender alike
    raw, elf_bytes = elf_raw_members(path)
    row = WheelTimes(short_name(path), path.stat().st_size / MB, elf_bytes / MB, len(raw))

    try:
        row.fastaudit_verdict = fastaudit_verdict(path)  # also the warm-up run
    except Exception as e:  # noqa: BLE001 - record and go on with the next contender
        row.fastaudit_error = type(e).__name__
    inflate_floor(path, raw)  # warm-up, like fastaudit's

    # alternate the two so a burst of load from elsewhere hits both alike
    for _ in range(repeat):
        if row.fastaudit_error is None:
            row.fastaudit_s.append(timed(lambda: audit_wheel(path)))
        row.floor_s.append(timed(lambda: inflate_floor(path, raw)))

    for _ in range(aw_repeat):
        start = time.perf_counter()
        try:
            row.auditwheel_verdict = auditwheel_show(path)
        except Exception as e:  # noqa: BLE001 - some wheels make auditwheel raise
            row.auditwheel_error = type(e).__name__
            row.auditwheel_verdict = f"raised {type(e).__name__}"
        row.auditwheel_s.append(time.perf_counter() - start)
    return row


def time_cli(rows: list[WheelTimes], paths: list[Path], sample: int) -> None:
    """`auditwheel show` and `fastaudit show` as a user runs them, on wheels spread over the sizes."""
    by_size = sorted(range(len(rows)), key=lambda i: rows[i].elf_mb)
    step = max(1, len(by_size) // sample)
    for i in by_size[::step][:sample]:
        for tool, attr in (("auditwheel", "cli_auditwheel_s"), ("fastaudit", "cli_fastaudit_s")):
            start = time.perf_counter()
            subprocess.run([str(VENV_BIN / tool), "show", str(paths[i])], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            setattr(rows[i], attr, time.perf_counter() - start)
        print(f"cli {rows[i].wheel}: auditwheel {rows[i].cli_auditwheel_s:.2f} s, "
              f"fastaudit {rows[i].cli_fastaudit_s:.2f} s", file=sys.stderr, flush=True)


def inflate_share(stats: pstats.Stats) -> float:
    """Own time of zlib's decompress calls over the whole profiled time."""
    entries = stats.stats  # type: ignore[attr-defined]  # (file, line, func) -> (cc, nc, tt, ct, callers)
    inflate = sum(tt for (_, _, func), (_, _, tt, _, _) in entries.items() if "decompress" in func)
    return inflate / stats.total_tt if stats.total_tt else 0.0  # type: ignore[attr-defined]


def profile_largest(rows: list[WheelTimes], paths: list[Path], count: int) -> str:
    out = io.StringIO()
    largest = sorted(range(len(rows)), key=lambda i: rows[i].elf_mb, reverse=True)[:count]
    for i in largest:
        profiler = cProfile.Profile()
        profiler.runcall(audit_wheel, paths[i])
        stats = pstats.Stats(profiler, stream=out)
        out.write(f"\n=== cProfile fastaudit {paths[i].name} ({rows[i].elf_mb:.0f} MB ELF): "
                  f"zlib inflate is {inflate_share(stats):.0%} of the time\n")
        stats.sort_stats("cumulative").print_stats(15)
    return out.getvalue()


# ---------------------------------------------------------------- reporting


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def median_of(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summary(rows: list[WheelTimes]) -> dict[str, object]:
    fa = sum(r.fastaudit or 0 for r in rows)
    floor = sum(r.floor or 0 for r in rows)
    timed_aw = [r for r in rows if r.auditwheel is not None and r.fastaudit]
    aw = sum(r.auditwheel for r in timed_aw)  # type: ignore[misc]
    fa_where_aw = sum(r.fastaudit for r in timed_aw)  # type: ignore[misc]
    compared = [r for r in rows if r.verdicts_equal is not None]
    return {
        "wheels": len(rows),
        "elf_mb": sum(r.elf_mb for r in rows),
        "file_mb": sum(r.file_mb for r in rows),
        "fastaudit_total_s": fa,
        "floor_total_s": floor,
        "auditwheel_total_s": aw if timed_aw else None,
        "fastaudit_over_floor_total": fa / floor if floor else None,
        "auditwheel_over_fastaudit_total": aw / fa_where_aw if timed_aw and fa_where_aw else None,
        "fastaudit_over_floor_median": median_of([r.fastaudit_over_floor for r in rows]),
        "auditwheel_over_fastaudit_median": median_of([r.auditwheel_over_fastaudit for r in rows]),
        "verdicts_compared": len(compared),
        "verdicts_equal": sum(1 for r in compared if r.verdicts_equal),
        "auditwheel_raised": sum(1 for r in rows if r.auditwheel_error),
        "fastaudit_raised": sum(1 for r in rows if r.fastaudit_error),
    }


def print_table(rows: list[WheelTimes], totals: dict[str, object]) -> None:
    header = (f"{'wheel':56} {'ELF MB':>7} {'fa ms':>8} {'floor ms':>9} {'aw ms':>9} "
              f"{'fa/floor':>8} {'aw/fa':>7}  same")
    print(header)
    print("-" * len(header))
    for r in rows:
        same = {None: "-", True: "yes", False: "NO"}[r.verdicts_equal]
        print(f"{r.wheel:56} {r.elf_mb:7.1f} {ms(r.fastaudit):>8} {ms(r.floor):>9} {ms(r.auditwheel):>9} "
              f"{ratio(r.fastaudit_over_floor):>8} {ratio(r.auditwheel_over_fastaudit):>7}  {same}")
    print("-" * len(header))
    t = totals
    print(f"{'TOTAL (' + str(t['wheels']) + ' wheels)':56} {t['elf_mb']:7.1f} "
          f"{ms(t['fastaudit_total_s']):>8} {ms(t['floor_total_s']):>9} "
          f"{ms(t['auditwheel_total_s']):>9} {ratio(t['fastaudit_over_floor_total']):>8} "
          f"{ratio(t['auditwheel_over_fastaudit_total']):>7}")
    print(f"{'MEDIAN of per-wheel ratios':56} {'':7} {'':>8} {'':>9} {'':>9} "
          f"{ratio(t['fastaudit_over_floor_median']):>8} {ratio(t['auditwheel_over_fastaudit_median']):>7}")
    print(f"verdicts equal: {t['verdicts_equal']}/{t['verdicts_compared']}; "
          f"auditwheel raised on {t['auditwheel_raised']}, fastaudit on {t['fastaudit_raised']}")
    for r in rows:
        if r.verdicts_equal is False or r.fastaudit_error:
            fa = r.fastaudit_verdict or f"raised {r.fastaudit_error}"
            print(f"  differs: {r.wheel}: fastaudit {fa} / auditwheel {r.auditwheel_verdict}")
    cli = [r for r in rows if r.cli_auditwheel_s is not None]
    if cli:
        print("\nCLI wall time (subprocess, interpreter start-up included):")
        for r in cli:
            print(f"  {r.wheel:56} {r.elf_mb:7.1f} MB  auditwheel show {r.cli_auditwheel_s:6.2f} s  "
                  f"fastaudit show {r.cli_fastaudit_s:6.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="dev", help="wheel set of bench/fetch_wheels.py (ci, dev, all)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of fastaudit and the floor")
    parser.add_argument("--aw-repeat", type=int, default=1, help="timed runs of auditwheel (0: skip it)")
    parser.add_argument("--no-auditwheel", action="store_true", help="same as --aw-repeat 0")
    parser.add_argument("--limit", type=int, help="only the first N wheels of the set")
    parser.add_argument("--cli-sample", type=int, default=0, help="time the CLIs as subprocesses on K wheels")
    parser.add_argument("--profile", type=int, default=0, help="cProfile fastaudit on the K largest wheels")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args(argv)
    aw_repeat = 0 if args.no_auditwheel else args.aw_repeat

    paths = wheels_of_set(args.set)[: args.limit]
    if not paths:
        print("no wheels", file=sys.stderr)
        return 1
    quiet_auditwheel()
    if aw_repeat:
        # one untimed auditwheel run so its imports are not charged to the first wheel
        smallest = min(paths, key=lambda p: p.stat().st_size)
        try:
            auditwheel_show(smallest)
        except Exception:  # noqa: BLE001 - only the imports matter here
            pass

    rows: list[WheelTimes] = []
    for n, path in enumerate(paths, 1):
        row = measure(path, args.repeat, aw_repeat)
        rows.append(row)
        print(f"[{n}/{len(paths)}] {row.wheel}: fa {ms(row.fastaudit)} ms, floor {ms(row.floor)} ms, "
              f"aw {ms(row.auditwheel)} ms", file=sys.stderr, flush=True)
    if args.cli_sample:
        time_cli(rows, paths, args.cli_sample)

    totals = summary(rows)
    print_table(rows, totals)
    profile_text = profile_largest(rows, paths, args.profile) if args.profile else ""
    print(profile_text, end="")

    if args.json:
        record = {
            "set": args.set, "repeat": args.repeat, "aw_repeat": aw_repeat, "python": sys.version,
            "totals": totals,
            "wheels": [asdict(r) | {"path": str(p)} for r, p in zip(rows, paths)],
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
