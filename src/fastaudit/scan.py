"""`fastaudit scan`: walk folders and bandersnatch mirrors, audit wheels in parallel, store results.

Paths go to the workers in batches (never file contents); results stream back and are committed
batch by batch, so a killed scan keeps everything it had committed and the next run continues.
Linux platform wheels are opened; pure and non-Linux wheels are counted from their file names; a
file name that is not a wheel name becomes an error row. In a scan no exception escapes one wheel.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastaudit import __version__
from fastaudit.errors import FastauditError, WheelError
from fastaudit.policy import POLICY_DATA_VERSION
from fastaudit.store import ResultRow, Store, WheelRow
from fastaudit.wheel import parse_wheel_name

# The analysis (numpy and the ELF extension) is imported by the workers that use it, not by the
# process that walks the tree: a re-scan that skips every wheel then costs little more than a walk.

# web/packages/<h[0:2]>/<h[2:4]>/<h[4:]>/<file>: the path is the file's BLAKE2b-256
_MIRROR_PATH = re.compile(r"(?:^|/)packages/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{60})/[^/]+$")

# Results of this analyzer are reused only by the same analyzer on the same policy data.
ANALYZER_VERSION = __version__


@dataclass(frozen=True)
class ScanOptions:
    jobs: int = os.cpu_count() or 1
    scheduler: str | None = None
    rescan: bool = False
    verify_hash: bool = False
    elf_cache: bool = True
    check_isa: bool = True
    verify_record: bool = False
    max_batch: int = 8


@dataclass
class ScanSummary:
    run_id: int
    seen: int = 0
    analyzed: int = 0
    skipped: int = 0
    not_analyzed: int = 0
    errors: int = 0
    over_promising: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    status: str = "completed"



def discover(roots: Sequence[str | Path]) -> Iterator[Path]:
    """Every `.whl` file under the roots, in a stable order. Links are not followed: a symlinked
    folder is not entered, and a symlinked file counts only if it stays inside its root."""
    for root in roots:
        root_path = Path(root)
        if root_path.is_file():
            yield root_path
            continue
        real_root = os.path.realpath(root_path)
        for folder, dirs, files in os.walk(root_path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(".whl"):
                    continue
                path = Path(folder, name)
                if path.is_symlink() and not os.path.realpath(path).startswith(real_root + os.sep):
                    continue
                yield path


def content_key(path: Path, verify_hash: bool) -> str:
    """What identifies a wheel's content without reading it, when possible."""
    if verify_hash:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return f"sha256:{digest.hexdigest()}"
    mirror = _MIRROR_PATH.search(path.as_posix())
    if mirror:
        return "blake2b_256:" + "".join(mirror.groups())
    stat = path.stat()
    return f"stat:{stat.st_size}:{stat.st_mtime_ns}:{path.resolve()}"


def wheel_row(path: Path, key: str) -> WheelRow:
    try:
        name = parse_wheel_name(path.name)
    except WheelError:
        return WheelRow(key, str(path), path.name, path.stat().st_size, None, None, None, None, None, "invalid")
    kind = "pure" if name.is_pure else "linux" if name.is_linux else "other"
    return WheelRow(key, str(path), path.name, path.stat().st_size, name.name, name.version,
                    ".".join(name.python_tags), ".".join(name.abi_tags), ".".join(name.platform_tags), kind)


def _vendored_rows(vendored) -> tuple[dict, ...]:
    return tuple(
        {"member": c.member, "library": c.project, "version": c.version, "evidence": c.evidence,
         "linkage": "static" if c.statically_linked else "shared", "detail": c.detail}
        for components in vendored.values() for c in components)


def _elf_facts(elves) -> tuple[dict, ...]:
    return tuple(
        {"member": member, "arch": info.arch, "soname": info.soname, "needed": list(info.needed),
         "isa_level": info.isa_level,
         "version_requirements": {k: sorted(v) for k, v in info.version_requirements.items()}}
        for member, info in sorted(elves.items()))


# One cache per worker process, kept across the batches it runs (an ElfCache).
_WORKER_CACHE = None


def audit_one(path: str, use_cache: bool, check_isa: bool, verify_record: bool = False) -> ResultRow:
    """A wheel's result row; any failure to read it becomes an error row, never an exception."""
    from fastaudit.analyze import analyze
    from fastaudit.facts import ElfCache, check_linux_wheel_name, read_wheel_facts
    from fastaudit.results import to_json

    global _WORKER_CACHE
    if use_cache and _WORKER_CACHE is None:
        _WORKER_CACHE = ElfCache()
    started = time.perf_counter()
    try:
        name = check_linux_wheel_name(path)
        facts = read_wheel_facts(path, _WORKER_CACHE if use_cache else None, verify_record=verify_record)
        elves = facts.elves
        report = analyze(name, elves, check_isa=check_isa)
        return ResultRow("pure" if report.pure else "ok", to_json(report), elapsed=time.perf_counter() - started,
                         elf_facts=_elf_facts(elves), vendored=_vendored_rows(facts.vendored()))
    except FastauditError as e:
        return ResultRow("error", None, type(e).__name__, str(e), e.member, time.perf_counter() - started)
    except Exception as e:  # noqa: BLE001 - a bug on one wheel must not lose the others' results
        return ResultRow("error", None, type(e).__name__, f"{path}: {e!r}", None, time.perf_counter() - started)


def audit_batch(paths: Sequence[str], use_cache: bool, check_isa: bool, verify_record: bool = False) -> list[ResultRow]:
    return [audit_one(path, use_cache, check_isa, verify_record) for path in paths]


def make_batches(wheels: list[WheelRow], max_batch: int) -> list[list[WheelRow]]:
    """Batches of one release's wheels each (up to max_batch), largest first.

    The wheels of a release (one per CPython version) carry byte-identical grafted libraries, so
    keeping them together lets one worker's ELF cache serve them all; sending the largest batches
    first keeps every worker busy to the end (longest-processing-time-first).
    """
    ordered = sorted(wheels, key=lambda w: (w.project or "", w.version or "", w.filename))
    batches: list[list[WheelRow]] = []
    for wheel in ordered:
        last = batches[-1][-1] if batches else None
        if last and len(batches[-1]) < max_batch and (last.project, last.version) == (wheel.project, wheel.version):
            batches[-1].append(wheel)
        else:
            batches.append([wheel])
    return sorted(batches, key=lambda b: sum(w.size for w in b), reverse=True)


def _row_without_opening(wheel: WheelRow) -> ResultRow:
    if wheel.kind == "invalid":
        return ResultRow("error", None, "WheelError", f"{wheel.path}: not a valid wheel file name (PEP 427)")
    if wheel.kind == "pure":
        from fastaudit.analyze import analyze
        from fastaudit.results import to_json

        return ResultRow("pure", to_json(analyze(parse_wheel_name(wheel.filename), {})))
    return ResultRow("not_linux", None)


class _Progress:
    """A progress bar (tqdm: counts, rate, ETA) on a terminal; a plain line every 10 s otherwise,
    so a nightly log gets a few lines, not a bar redrawn ten times a second."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.started = time.monotonic()
        self.last = 0.0
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm  # only a terminal needs it

            self.bar = tqdm(total=total, file=stream, unit="wheel", desc="scan", dynamic_ncols=True)

    def update(self, done: int, errors: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix(errors=errors, refresh=False)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last < 10 and done < self.total:
            return
        self.last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        self.stream.write(f"scanned {done}/{self.total}  errors {errors}  {rate:.1f} wheels/s  ETA {eta:.0f} s\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; only the parent stops the scan, cleanly
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _executor(options: ScanOptions) -> tuple[cf.Executor, Callable[[bool], None]]:
    """The executor batches go to, and how to shut it down (waiting for running batches or not)."""
    if options.scheduler:
        from dask.distributed import Client  # optional: only scans sent to a cluster need it

        client = Client(options.scheduler)
        executor = client.get_executor()

        def close_client(wait: bool) -> None:
            executor.shutdown(wait=wait)
            client.close()
        return executor, close_client
    pool = cf.ProcessPoolExecutor(max_workers=max(1, options.jobs), initializer=_ignore_sigint)
    return pool, lambda wait: pool.shutdown(wait=wait, cancel_futures=True)


@contextmanager
def _sigint_as_request() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C into a stop request the scan checks at safe points.

    A KeyboardInterrupt raised at an arbitrary bytecode can land between BEGIN and the try that
    would roll it back, leaving the run's last write uncommitted; a flag cannot. A second Ctrl-C
    gets the previous handler back, for a user who does not want to wait.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals only reach the main thread; a library caller stops its own way
        return
    previous = signal.getsignal(signal.SIGINT)

    def request_stop(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)
    signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def scan(roots: Sequence[str | Path], store: Store, options: ScanOptions,
         progress: bool = True) -> ScanSummary:
    with _sigint_as_request() as stop:
        return _scan(roots, store, options, progress, stop)


def _scan(roots: Sequence[str | Path], store: Store, options: ScanOptions, progress: bool,
          stop: threading.Event) -> ScanSummary:
    started = time.monotonic()
    run_id = store.start_run({"roots": [str(r) for r in roots], "jobs": options.jobs,
                              "scheduler": options.scheduler, "rescan": options.rescan,
                              "verify_hash": options.verify_hash, "elf_cache": options.elf_cache,
                              "verify_record": options.verify_record},
                             __version__, POLICY_DATA_VERSION)
    summary = ScanSummary(run_id)
    close: Callable[[bool], None] | None = None
    pending: dict[cf.Future, list[WheelRow]] = {}
    bar: _Progress | None = None
    try:
        wheels = {}
        for path in discover(roots):
            if stop.is_set():
                raise KeyboardInterrupt
            try:
                key = content_key(path, options.verify_hash)
                wheels[key] = wheel_row(path, key)
            except OSError as e:  # vanished or unreadable between listing and stat
                row = WheelRow(f"error:{path}", str(path), path.name, 0, None, None, None, None, None, "invalid")
                store.record_results(run_id, ANALYZER_VERSION, POLICY_DATA_VERSION,
                                     [(row, ResultRow("error", None, type(e).__name__, f"{path}: {e}"))])
                summary.errors += 1
        summary.seen = len(wheels) + summary.errors

        known = {} if options.rescan else store.known_results(wheels, ANALYZER_VERSION, POLICY_DATA_VERSION)
        store.record_skipped(run_id, known.values())
        todo = [w for key, w in wheels.items() if key not in known]
        opened = [w for w in todo if w.kind == "linux"]
        unopened = [w for w in todo if w.kind != "linux"]
        _record(store, run_id, summary, [(w, _row_without_opening(w)) for w in unopened])

        bar = _Progress(len(opened)) if progress and opened else None
        if opened:
            # load the analysis before the pool forks, so each worker does not import it again
            import fastaudit.analyze  # noqa: F401
            import fastaudit.results  # noqa: F401
        executor, close = _executor(options)
        pending = {executor.submit(audit_batch, [w.path for w in batch], options.elf_cache, options.check_isa,
                                   options.verify_record): batch
                   for batch in make_batches(opened, options.max_batch)}
        done = 0
        while pending:
            if stop.is_set():
                raise KeyboardInterrupt
            finished, _ = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                batch = pending.pop(future)
                _record(store, run_id, summary, list(zip(batch, future.result())))
                done += len(batch)
                if bar:
                    bar.update(done, summary.errors)
    except KeyboardInterrupt:
        summary.status = "interrupted"
        for future in pending:
            future.cancel()
    except BaseException:
        # a worker killed from outside, a full disk, a lost cluster: the run did not complete
        summary.status = "failed"
        raise
    finally:
        if bar:
            bar.close()
        if close:
            close(summary.status != "interrupted")
        summary.seconds = time.monotonic() - started
        # counted from the store: a second Ctrl-C may land between a batch's commit and any counter here
        counts = store.run_counts(run_id)
        summary.analyzed, summary.skipped = counts["analyzed"], counts["skipped"]
        summary.errors, summary.not_analyzed = counts["errors"], counts["not_analyzed"]
        store.finish_run(run_id, summary.status, {"seen": summary.seen, **counts})
    summary.verdicts, summary.over_promising = store.verdict_counts(run_id)
    return summary


def _record(store: Store, run_id: int, summary: ScanSummary, rows: list[tuple[WheelRow, ResultRow]]) -> None:
    if not rows:
        return
    store.record_results(run_id, ANALYZER_VERSION, POLICY_DATA_VERSION, rows)
    summary.errors += sum(result.status == "error" for _, result in rows)  # for the progress line
