#!/usr/bin/env python3
"""Time raw-deflate inflate backends on the ELF members of a wheel set.

    python bench/bench_inflate.py [--set dev] [--repeat 5] [--no-threads] [--json FILE]

The compressed bytes of every deflated ELF member of the set's wheels are copied into memory first,
so only inflate is timed. Each backend then inflates all of them with the exact output size the
zip central directory declares; a first untimed round checks that every backend's output is
byte-identical to zlib's. Per backend the table gives the median of --repeat totals, MB/s of
output, and the ratio to zlib's median (below 1 is faster). Rounds interleave the backends, in a
rotating order, so drift on a noisy machine hits them all alike.

Also timed, each as a median of --repeat totals:

* ``2 threads``: the same work split over two threads; near half the 1-thread time only when the
  backend releases the GIL while it inflates.
* ``head``: inflating just the first 4 bytes (the ELF magic test) of every deflated member that is
  not a ``.py`` file, from at most its first 1024 compressed bytes, for the backends that can stop
  early; libdeflate cannot, it only inflates whole streams.

Backends: zlib; zlib one-shot (``zlib.decompress`` with a buffer of the known size, which cannot
cap the output); zlib-ng; ISA-L through its zlib-like API and through igzip_lib; libdeflate
(``deflate``), whose result is a bytearray, also timed with the copy to bytes; and fastaudit's own
``inflate_raw`` with the backend it picked. A backend whose package is not installed is left out.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from fastaudit.inflate import BACKEND as INFLATE_BACKEND
from fastaudit.inflate import inflate_raw
from fastaudit.wheel import WheelArchive

BENCH_DIR = Path(__file__).resolve().parent
MB = 1e6
HEAD_SIZE = 4  # the ELF magic
HEAD_INPUT = 1024  # compressed bytes handed to a head inflate, as fastaudit.wheel does

Inflate = Callable[[bytes, int], bytes | bytearray]


@dataclass(frozen=True)
class Stream:
    data: bytes
    size: int


@dataclass
class Corpus:
    wheels: int
    elf: list[Stream]
    heads: list[bytes]  # first HEAD_INPUT compressed bytes of every magic-test candidate

    @property
    def output_bytes(self) -> int:
        return sum(s.size for s in self.elf)

    @property
    def compressed_bytes(self) -> int:
        return sum(len(s.data) for s in self.elf)


@dataclass
class Backend:
    name: str
    package: str
    inflate: Inflate
    head: Callable[[bytes], bytes] | None = None
    full_s: list[float] = field(default_factory=list)
    threads2_s: list[float] = field(default_factory=list)
    head_s: list[float] = field(default_factory=list)


def _load_fetch() -> Callable[[str], list[Path]]:
    spec = importlib.util.spec_from_file_location("fetch_wheels", BENCH_DIR / "fetch_wheels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fetch: Callable[[str], list[Path]] = module.fetch
    return fetch


def load_corpus(set_name: str) -> Corpus:
    elf: list[Stream] = []
    heads: list[bytes] = []
    paths = _load_fetch()(set_name)
    for path in paths:
        with WheelArchive(path) as archive:
            for member in archive.members:
                if member.name.endswith(".py") or member.compress_type != zipfile.ZIP_DEFLATED:
                    continue
                with archive._compressed(member) as data:  # released before the map closes
                    heads.append(bytes(data[:HEAD_INPUT]))
                    if archive.starts_with_elf_magic(member):
                        elf.append(Stream(bytes(data), member.size))
    return Corpus(len(paths), elf, heads)


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _zlib_like(module: ModuleType) -> tuple[Inflate, Callable[[bytes], bytes]]:
    """Capped inflate and head inflate through a zlib-compatible decompressobj."""
    def inflate(data: bytes, size: int) -> bytes:
        content: bytes = module.decompressobj(-15).decompress(data, size)
        return content

    def head(data: bytes) -> bytes:
        content: bytes = module.decompressobj(-15).decompress(data, HEAD_SIZE)
        return content

    return inflate, head


def available_backends() -> list[Backend]:
    inflate, head = _zlib_like(zlib)
    backends = [
        Backend("zlib", "zlib", inflate, head),
        Backend("zlib one-shot", "zlib", lambda data, size: zlib.decompress(data, -15, size)),
    ]
    if (zlib_ng := _import("zlib_ng.zlib_ng")) is not None:
        inflate, head = _zlib_like(zlib_ng)
        backends.append(Backend("zlib-ng", "zlib-ng", inflate, head))
    if (isal_zlib := _import("isal.isal_zlib")) is not None:
        inflate, head = _zlib_like(isal_zlib)
        backends.append(Backend("isal", "isal", inflate, head))
    if (igzip_lib := _import("isal.igzip_lib")) is not None:
        def igzip_decompressor() -> Any:
            return igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_DEFLATE)
        backends.append(Backend(
            "isal igzip_lib", "isal",
            lambda data, size: igzip_decompressor().decompress(data, size),
            lambda data: igzip_decompressor().decompress(data, HEAD_SIZE),
        ))
    if (deflate := _import("deflate")) is not None:
        backends.append(Backend("deflate", "deflate", deflate.deflate_decompress))
        backends.append(Backend("deflate +bytes()", "deflate",
                                lambda data, size: bytes(deflate.deflate_decompress(data, size))))
    backends.append(Backend(f"inflate_raw ({INFLATE_BACKEND})", "fastaudit", inflate_raw))
    return backends


def verify(corpus: Corpus, backends: list[Backend]) -> None:
    """Every backend's output must equal zlib's, and zlib's must be whole streams of the declared size."""
    for stream in corpus.elf:
        inflater = zlib.decompressobj(-15)
        expected = inflater.decompress(stream.data, stream.size)
        if len(expected) != stream.size or not inflater.eof:
            raise SystemExit(f"zlib: a member does not inflate to exactly its declared {stream.size} bytes")
        for backend in backends:
            if backend.inflate(stream.data, stream.size) != expected:
                raise SystemExit(f"{backend.name}: output differs from zlib's")
    for data in corpus.heads:
        expected = zlib.decompressobj(-15).decompress(data, HEAD_SIZE)
        for backend in backends:
            if backend.head is not None and backend.head(data) != expected:
                raise SystemExit(f"{backend.name}: head differs from zlib's")


def _time_full(backend: Backend, streams: list[Stream]) -> float:
    inflate = backend.inflate
    start = time.perf_counter()
    for stream in streams:
        inflate(stream.data, stream.size)
    return time.perf_counter() - start


def _time_two_threads(backend: Backend, halves: tuple[list[Stream], list[Stream]]) -> float:
    with ThreadPoolExecutor(max_workers=2) as pool:
        start = time.perf_counter()
        list(pool.map(lambda half: _time_full(backend, half), halves))
        return time.perf_counter() - start


def _time_heads(backend: Backend, heads: list[bytes]) -> float:
    assert backend.head is not None
    head = backend.head
    start = time.perf_counter()
    for data in heads:
        head(data)
    return time.perf_counter() - start


def _split_by_size(streams: list[Stream]) -> tuple[list[Stream], list[Stream]]:
    """Two halves with about the same output, so two threads get equal work."""
    halves: tuple[list[Stream], list[Stream]] = ([], [])
    totals = [0, 0]
    for stream in sorted(streams, key=lambda s: s.size, reverse=True):
        lighter = 0 if totals[0] <= totals[1] else 1
        halves[lighter].append(stream)
        totals[lighter] += stream.size
    return halves


def run(corpus: Corpus, backends: list[Backend], repeat: int, threads: bool) -> None:
    halves = _split_by_size(corpus.elf)
    for round_no in range(repeat):
        shift = round_no % len(backends)
        for backend in backends[shift:] + backends[:shift]:
            backend.full_s.append(_time_full(backend, corpus.elf))
            if threads:
                backend.threads2_s.append(_time_two_threads(backend, halves))
            if backend.head is not None:
                backend.head_s.append(_time_heads(backend, corpus.heads))
        print(f"round {round_no + 1}/{repeat} done", file=sys.stderr, flush=True)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _version(package: str) -> str:
    if package == "zlib":
        return zlib.ZLIB_RUNTIME_VERSION
    return metadata.version(package)


def print_table(corpus: Corpus, backends: list[Backend], repeat: int) -> None:
    out_mb = corpus.output_bytes / MB
    print(f"{corpus.wheels} wheels, {len(corpus.elf)} ELF members: {corpus.compressed_bytes / MB:.1f} MB "
          f"compressed -> {out_mb:.1f} MB; head test on {len(corpus.heads)} members; "
          f"median of {repeat}; Python {platform.python_version()} {platform.machine()}")
    zlib_full = _median(backends[0].full_s)
    zlib_head = _median(backends[0].head_s)
    header = (f"{'backend':<26}{'version':<10}{'total s':>9}{'MB/s':>8}{'vs zlib':>9}"
              f"{'2 threads s':>13}{'speedup':>9}{'head ms':>9}{'vs zlib':>9}")
    print(header)
    print("-" * len(header))
    for backend in backends:
        full = _median(backend.full_s)
        assert full is not None and zlib_full is not None
        two = _median(backend.threads2_s)
        head = _median(backend.head_s)
        two_cols = f"{two:>13.3f}{full / two:>8.2f}x" if two else f"{'-':>13}{'-':>9}"
        head_cols = (f"{head * 1e3:>9.1f}{head / zlib_head:>9.2f}" if head and zlib_head
                     else f"{'n/a':>9}{'-':>9}")
        print(f"{backend.name:<26}{_version(backend.package):<10}{full:>9.3f}{out_mb / full:>8.0f}"
              f"{full / zlib_full:>9.2f}{two_cols}{head_cols}")


def write_json(path: Path, set_name: str, corpus: Corpus, backends: list[Backend]) -> None:
    report = {
        "set": set_name,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "wheels": corpus.wheels,
        "elf_members": len(corpus.elf),
        "compressed_bytes": corpus.compressed_bytes,
        "output_bytes": corpus.output_bytes,
        "head_members": len(corpus.heads),
        "backends": [
            {"name": b.name, "version": _version(b.package), "full_s": b.full_s,
             "threads2_s": b.threads2_s, "head_s": b.head_s}
            for b in backends
        ],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="set_name", default="dev", help="wheel set (default dev)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--no-threads", dest="threads", action="store_false",
                        help="skip the two-thread timing")
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    args = parser.parse_args(argv)

    corpus = load_corpus(args.set_name)
    backends = available_backends()
    print(f"verifying {len(backends)} backends against zlib...", file=sys.stderr, flush=True)
    verify(corpus, backends)  # also the warm-up round
    run(corpus, backends, args.repeat, args.threads)
    print_table(corpus, backends, args.repeat)
    if args.json:
        write_json(args.json, args.set_name, corpus, backends)
    return 0


if __name__ == "__main__":
    sys.exit(main())
