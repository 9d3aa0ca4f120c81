#!/usr/bin/env python3
"""What the ELF cache's key costs against what a hit saves, on the ELF members of real wheels.

    python bench/bench_cache_key.py [--set recurring] [--repeat 5] [--json FILE]

The compressed bytes of every ELF member of the set's wheels (the members `fastaudit scan` reads)
are copied into memory first, so the disk is out of the comparison. Then, per round, over all of
them: sha256 and BLAKE2b of the compressed bytes (the content key the cache may compute), the
CRC-32 check of the inflated content, inflate (fastaudit's `inflate_raw`, the backend it picked),
and the ELF reader on the inflated bytes. Rounds interleave the contenders; the median of --repeat
totals of CPU time (time.process_time: a loaded machine inflates it less than wall time) is
printed side by side, in ms and as a ratio to the inflate.

A cache hit saves inflate + CRC + read; a key that must be computed for every member costs the
hash on every miss too, so the hash only pays off when it is well below inflate + read times the
share of members that miss.

Then, end to end: `read_wheel_elves` over every wheel of the set, in file-name order, in this one
process, without a cache and with a fresh ElfCache, interleaved, median of --repeat: CPU time
and the cache's hits.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastaudit.elf import read_elf
from fastaudit.facts import ElfCache, read_wheel_elves
from fastaudit.inflate import BACKEND as INFLATE_BACKEND
from fastaudit.inflate import crc32, inflate_raw
from fastaudit.wheel import WheelArchive

BENCH_DIR = Path(__file__).resolve().parent
MB = 1e6


@dataclass(frozen=True)
class ElfMember:
    compressed: bytes
    method: int
    size: int


def load_fetcher():
    spec = importlib.util.spec_from_file_location("fetch_wheels", BENCH_DIR / "fetch_wheels.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def elf_members(paths: list[Path]) -> list[ElfMember]:
    found = []
    for path in paths:
        with WheelArchive(path) as archive:
            for member in archive.elf_candidates():
                found.append(ElfMember(archive.compressed(member), member.compress_type, member.size))
    return found


def content(member: ElfMember) -> bytes | bytearray:
    if member.method == zipfile.ZIP_STORED:
        return member.compressed
    return inflate_raw(member.compressed, member.size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="recurring")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    paths = [Path(p) for p in load_fetcher().fetch(args.set)]
    members = elf_members(paths)
    inflated = [bytes(content(m)) for m in members]
    compressed_bytes = sum(len(m.compressed) for m in members)
    inflated_bytes = sum(m.size for m in members)

    def over_compressed(hash_name: str) -> Callable[[], None]:
        def run() -> None:
            for m in members:
                hashlib.new(hash_name, m.compressed).digest()
        return run

    def inflate_all() -> None:
        for m in members:
            content(m)

    def crc_all() -> None:
        for data in inflated:
            crc32(data)

    def read_all() -> None:
        for data in inflated:
            read_elf(data)

    contenders: dict[str, Callable[[], None]] = {
        "sha256 of the compressed bytes": over_compressed("sha256"),
        "blake2b of the compressed bytes": over_compressed("blake2b"),
        f"inflate ({INFLATE_BACKEND})": inflate_all,
        "CRC-32 of the content": crc_all,
        "read_elf of the content": read_all,
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(args.repeat):
        names = list(contenders)
        names = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in names:
            started = time.process_time()
            contenders[name]()
            times[name].append(time.process_time() - started)

    medians = {name: statistics.median(t) for name, t in times.items()}
    inflate_ms = medians[f"inflate ({INFLATE_BACKEND})"] * 1e3
    print(f"{len(paths)} wheels of --set {args.set}: {len(members)} ELF members, "
          f"{compressed_bytes / MB:.1f} MB compressed, {inflated_bytes / MB:.1f} MB inflated; "
          f"median of {args.repeat}")
    print(f"{'':36} {'ms':>9} {'MB/s in':>9} {'x inflate':>10}")
    for name, seconds in medians.items():
        source = compressed_bytes if "compressed" in name or "inflate" in name else inflated_bytes
        print(f"{name:36} {seconds * 1e3:9.1f} {source / MB / seconds:9.0f} {seconds * 1e3 / inflate_ms:10.2f}")
    saved = medians[f"inflate ({INFLATE_BACKEND})"] + medians["CRC-32 of the content"] + \
        medians["read_elf of the content"]
    print(f"{'a hit saves (inflate + CRC + read)':36} {saved * 1e3:9.1f}")

    ordered = sorted(paths, key=lambda p: p.name)
    end_to_end: dict[str, list[float]] = {"read_wheel_elves, no cache": [], "read_wheel_elves, ElfCache": []}
    hits = 0
    for round_ in range(args.repeat):
        for name in sorted(end_to_end, reverse=bool(round_ % 2)):
            cache = ElfCache() if name.endswith("ElfCache") else None
            started = time.process_time()
            for path in ordered:
                read_wheel_elves(path, cache)
            end_to_end[name].append(time.process_time() - started)
            hits = cache.hits if cache is not None else hits
    print(f"end to end, CPU s, median of {args.repeat}:")
    for name, seconds_list in end_to_end.items():
        print(f"{name:36} {statistics.median(seconds_list):9.2f}")
    off, on = (statistics.median(v) for v in end_to_end.values())
    print(f"{'cache hits':36} {hits:9d}   speed-up {off / on:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"set": args.set, "members": len(members),
                                         "compressed_bytes": compressed_bytes, "inflated_bytes": inflated_bytes,
                                         "seconds": times, "end_to_end_cpu_seconds": end_to_end, "hits": hits},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
