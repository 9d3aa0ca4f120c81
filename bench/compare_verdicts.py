#!/usr/bin/env python3
"""Whether two builds give the same `show --json` object for every wheel: the installed build
against another source tree, each in its own interpreter, over the same wheels.

    python bench/compare_verdicts.py OTHER_SRC PATH... [--check-isa both]

PATH is a wheel or a folder searched for *.whl (Linux and pure wheels). OTHER_SRC is a folder
holding a `fastaudit` package (as for bench_scan_ab.py). Exits 1 and prints the first differing
wheels when any object differs (or one build fails on a wheel where the other does not).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def wheels(paths: list[str]) -> list[str]:
    found: list[str] = []
    for path in map(Path, paths):
        found.extend(sorted(map(str, path.rglob("*.whl"))) if path.is_dir() else [str(path)])
    return [p for p in found if "linux" in p.rsplit("-", 1)[-1] or p.endswith("-any.whl")]


def dump(paths_file: str, out: str) -> None:
    from fastaudit.analyze import audit_wheel
    from fastaudit.errors import FastauditError
    from fastaudit.results import to_json

    with open(out, "w") as sink:
        for path in Path(paths_file).read_text().split("\n"):
            row: dict[str, object] = {"path": path}
            for check_isa in (True, False):
                try:
                    row[f"isa={check_isa}"] = to_json(audit_wheel(path, check_isa=check_isa))
                except FastauditError as e:
                    row[f"isa={check_isa}"] = {"error": type(e).__name__, "message": str(e)}
            sink.write(json.dumps(row, sort_keys=True) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("other_src")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--dump", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        dump(*args.dump)
        return 0
    found = wheels(args.paths)
    with tempfile.TemporaryDirectory() as folder:
        paths_file = Path(folder, "paths.txt")
        paths_file.write_text("\n".join(found))
        outputs = {}
        for name, env in (("other", {"PYTHONPATH": args.other_src}), ("installed", {})):
            outputs[name] = Path(folder, f"{name}.jsonl")
            subprocess.run([sys.executable, __file__, args.other_src, "-", "--dump", str(paths_file),
                            str(outputs[name])], env={**os.environ, **env}, check=True)
        other = outputs["other"].read_text().splitlines()
        installed = outputs["installed"].read_text().splitlines()
    differing = [json.loads(a)["path"] for a, b in zip(other, installed) if a != b]
    print(f"{len(found)} wheels, each audited with and without the ISA check: "
          f"{len(found) - len(differing)} the same, {len(differing)} differ")
    for path in differing[:20]:
        print("differs:", path)
    return 1 if differing or len(other) != len(installed) else 0


if __name__ == "__main__":
    sys.exit(main())
