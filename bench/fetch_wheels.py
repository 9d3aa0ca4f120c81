#!/usr/bin/env python3
"""Download the real-wheel corpus into a local cache and print the wheel paths.

    python bench/fetch_wheels.py [--set ci|dev|all|recurring|mirror|full] [--cache DIR] [--jobs N]

The corpus lists live in bench/corpus/:

* ``dev-wheels.txt``, ``extra-wheels.txt``, ``recurring-wheels.txt`` and ``mirror-wheels.txt`` list wheels as
  ``<category> <file name>``; the ``.sha256`` file of the same name pins each one
  (``<sha256>  <file name>``).
* ``ci-wheels.txt`` names a small subset of those wheels, in the same format.

Sets: ``dev`` (the default) is dev-wheels.txt, ``all`` is dev + extra, ``ci`` is ci-wheels.txt,
``recurring`` is recurring-wheels.txt (wheels whose grafted libraries recur, for the ELF cache),
``mirror`` is mirror-wheels.txt (about 400 wheels of popular projects, chosen by
bench/select_corpus.py; not part of ``all``, whose figures bench/RESULTS.md records), ``xcache``
is xcache-wheels.txt (every Linux wheel of two consecutive releases of numpy, scipy and pillow,
for the cross-run ELF cache), ``full`` is every list.
The cache defaults to $FASTAUDIT_WHEEL_CACHE, else ~/.cache/fastaudit/wheels; --jobs (default 4)
sets how many downloads run at once.

Each wheel is fetched with ``pip download --no-deps --only-binary=:all:`` and the pip
arguments derived from its file name (see the header of dev-wheels.txt). The user's pip
configuration (index, certificates, proxies) applies. Wheels already in the cache with the
pinned sha256 are not fetched again; every file is checked against its pin.

Paths of the set's wheels go to stdout, one per line; progress goes to stderr. Tests can
load this file with importlib and call :func:`fetch` and :func:`cache_dir`; a failed
download (for instance PyPI unreachable) raises :class:`FetchError`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
SETS: dict[str, tuple[str, ...]] = {
    "ci": ("ci-wheels",),
    "dev": ("dev-wheels",),
    "all": ("dev-wheels", "extra-wheels"),
    "recurring": ("recurring-wheels",),
    "mirror": ("mirror-wheels",),
    "vendored": ("vendored-wheels",),
    "xcache": ("xcache-wheels",),
    "full": ("dev-wheels", "extra-wheels", "recurring-wheels", "mirror-wheels"),
}
# Lists whose sha256 pins are known; a ci-wheels.txt entry must be pinned in one of them.
PINNED_LISTS = ("dev-wheels", "extra-wheels", "recurring-wheels", "mirror-wheels", "xcache-wheels")
CACHE_ENV = "FASTAUDIT_WHEEL_CACHE"
DEFAULT_PY_VERSION = "3.12"  # for wheels tagged only py3 / py2.py3
PIP_TIMEOUT_S = 1800

_WHEEL_RE = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?"
    r"-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)
_PY_TAG_RE = re.compile(r"^(?P<impl>cp|pp)(?P<major>\d)(?P<minor>\d+)$")
# Phrases pip prints when it cannot reach the index (as opposed to "no such file there").
_NETWORK_ERRORS = (
    "NewConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "SSLError",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


class FetchError(RuntimeError):
    """A wheel could not be fetched or did not match its pinned sha256."""


class Wheel(NamedTuple):
    category: str
    filename: str
    sha256: str


def cache_dir() -> Path:
    """The default wheel cache: $FASTAUDIT_WHEEL_CACHE or ~/.cache/fastaudit/wheels."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".cache" / "fastaudit" / "wheels").resolve()


def _read_list(path: Path) -> list[tuple[str, str]]:
    """(category, file name) pairs of a ``<category> <file name>`` list."""
    entries = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].endswith(".whl"):
            raise FetchError(f"{path.name}:{lineno}: expected '<category> <wheel file name>'")
        entries.append((parts[0], parts[1]))
    return entries


def _read_pins(path: Path) -> dict[str, str]:
    """file name -> sha256 from a ``<sha256>  <file name>`` file."""
    pins = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise FetchError(f"{path.name}:{lineno}: expected '<sha256>  <wheel file name>'")
        pins[parts[1]] = parts[0]
    return pins


def load_set(set_name: str, corpus: Path = CORPUS_DIR) -> list[Wheel]:
    """The wheels of a set, in list order, each with its pinned sha256."""
    if set_name not in SETS:
        raise ValueError(f"unknown wheel set {set_name!r}; expected one of {sorted(SETS)}")
    pins: dict[str, str] = {}
    for stem in PINNED_LISTS:
        pin_file = corpus / f"{stem}.sha256"
        if pin_file.exists():
            pins.update(_read_pins(pin_file))
    wheels: list[Wheel] = []
    seen: set[str] = set()
    for stem in SETS[set_name]:
        for category, filename in _read_list(corpus / f"{stem}.txt"):
            if filename in seen:
                continue
            if filename not in pins:
                raise FetchError(f"{stem}.txt: {filename} has no sha256 pin")
            seen.add(filename)
            wheels.append(Wheel(category, filename, pins[filename]))
    return wheels


def pip_args(filename: str) -> list[str]:
    """The ``pip download`` arguments that select exactly this wheel file."""
    m = _WHEEL_RE.match(filename)
    if m is None:
        raise FetchError(f"not a wheel file name: {filename}")
    impl, py_version = "cp", DEFAULT_PY_VERSION
    for tag in m["py"].split("."):
        tm = _PY_TAG_RE.match(tag)
        if tm:
            impl, py_version = tm["impl"], f"{tm['major']}.{tm['minor']}"
            break
    args = [
        f"{m['name']}=={m['version']}",
        "--implementation",
        impl,
        "--python-version",
        py_version,
    ]
    for abi in m["abi"].split("."):
        args += ["--abi", abi]
    for plat in m["plat"].split("."):
        args += ["--platform", plat]
    return args


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _download(wheel: Wheel, cache: Path) -> None:
    """Fetch one wheel into ``cache`` via a temporary directory, checking its sha256."""
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            # the file name selects the wheel; its Requires-Python may exclude the X.Y.0 that
            # --python-version X.Y stands for (cryptography's !=3.9.0,!=3.9.1 for cp39-abi3)
            "--ignore-requires-python",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--retries",
            "2",
            "--dest",
            tmp,
            *pip_args(wheel.filename),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise FetchError(f"{wheel.filename}: pip download timed out") from exc
        if proc.returncode != 0:
            lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            tail = lines[-1] if lines else f"pip exited {proc.returncode}"
            if any(marker in proc.stderr for marker in _NETWORK_ERRORS):
                raise FetchError(f"{wheel.filename}: package index unreachable (offline?): {tail}")
            raise FetchError(f"{wheel.filename}: pip download failed: {tail}")
        saved = sorted(p.name for p in Path(tmp).iterdir())
        if saved != [wheel.filename]:
            raise FetchError(f"{wheel.filename}: pip saved {saved} instead")
        got = sha256_of(Path(tmp) / wheel.filename)
        if got != wheel.sha256:
            raise FetchError(f"{wheel.filename}: sha256 {got} does not match pin {wheel.sha256}")
        os.replace(Path(tmp) / wheel.filename, cache / wheel.filename)


def fetch(set_name: str, cache: Path | None = None, jobs: int = 4) -> list[Path]:
    """Make sure every wheel of ``set_name`` is in the cache; return their absolute paths.

    Raises FetchError when a wheel cannot be downloaded or does not match its pin.
    """
    wheels = load_set(set_name)
    cache = (cache if cache is not None else cache_dir()).expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)

    missing: list[Wheel] = []
    for wheel in wheels:
        path = cache / wheel.filename
        if path.is_file() and sha256_of(path) == wheel.sha256:
            continue
        if path.exists():
            _log(f"sha256 mismatch, fetching again: {wheel.filename}")
            path.unlink()
        missing.append(wheel)
    _log(
        f"{set_name}: {len(wheels)} wheels, {len(wheels) - len(missing)} cached, "
        f"{len(missing)} to fetch into {cache}"
    )

    if missing:
        failed = threading.Event()
        done = 0
        lock = threading.Lock()

        def task(wheel: Wheel) -> None:
            nonlocal done
            if failed.is_set():  # stop early once one download failed (e.g. offline)
                return
            try:
                _download(wheel, cache)
            except BaseException:
                failed.set()
                raise
            with lock:
                done += 1
                _log(f"[{done}/{len(missing)}] {wheel.filename}")

        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures: list[Future[None]] = [pool.submit(task, w) for w in missing]
            for future in futures:
                exc = future.exception()
                if exc is not None:
                    errors.append(str(exc))
        if errors:
            more = f" (and {len(errors) - 1} more failures)" if len(errors) > 1 else ""
            raise FetchError(errors[0] + more)
    return [cache / wheel.filename for wheel in wheels]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--set",
        dest="set_name",
        choices=sorted(SETS),
        default="dev",
        help="wheel set (default dev)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"cache directory (default: ${CACHE_ENV} or ~/.cache/fastaudit/wheels)",
    )
    parser.add_argument("--jobs", type=int, default=4, help="parallel downloads (default 4)")
    args = parser.parse_args(argv)
    try:
        paths = fetch(args.set_name, args.cache, jobs=args.jobs)
    except (FetchError, OSError) as exc:
        print(f"fetch_wheels: error: {exc}", file=sys.stderr)
        return 1
    try:
        for path in paths:
            print(path)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
