"""`fastaudit scan`: walk folders and bandersnatch mirrors, audit wheels in parallel, store results.

Paths go to the workers in batches (never file contents); results stream back and are committed
batch by batch, so a killed scan keeps everything it had committed and the next run continues.
Linux platform wheels are opened; pure and non-Linux wheels are counted from their file names; a
file name that is not a wheel name becomes an error row. In a scan no exception escapes one wheel.
"""
from __future__ import annotations

import concurrent.futures as cf
import ctypes
import os
import queue
import re
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastaudit import __version__
from fastaudit.errors import FastauditError, PathError, ScanWorkerError, WheelError
from fastaudit.files import not_regular, reading, sha256_of
from fastaudit.policy import POLICY_DATA_VERSION
from fastaudit.store import ResultRow, Store, StoreError, StoreLocation, WheelRow
from fastaudit.wheel import parse_wheel_name

if TYPE_CHECKING:
    from fastaudit.analyze import WheelReport
    from fastaudit.facts import ElfCache, WheelFacts

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
    stored_elf_cache: bool = True       # with elf_cache: also reuse (and keep) the facts of earlier runs
    elf_cache_max_bytes: int = 1 << 30  # of facts kept in the store, most recently used first
    stored_elf_cache_min_bytes: int = 1 << 20  # smaller members are read again, not stored
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
    elf_cache: dict[str, Any] = field(default_factory=dict)   # Store.elf_cache_usage of the run



@dataclass(frozen=True)
class Found:
    """A `.whl` path under the roots: a regular file with its stat, or a problem that becomes the
    path's error row (`error`), found without opening anything."""

    path: str  # text, not a Path: a walk of a mirror makes one per wheel
    stat: os.stat_result | None = None
    error: FastauditError | None = None


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:  # undecodable bytes, kept by surrogateescape
        return False


def discover(roots: Sequence[str | Path]) -> Iterator[Found]:
    """Every `.whl` path under the roots, in a stable order, each once.

    The walk keeps its own stack (no recursion, so any depth), lists each folder once and stats
    without following links: a FIFO, a device or a folder named `*.whl`, a name that is not UTF-8,
    a link that leaves its root and a folder that cannot be listed are each reported, not opened
    and not skipped silently. A symlinked folder is not entered; a link to a wheel inside the root
    counts only when the wheel itself is not found under its own name, so it is audited once.
    What the walk holds grows with the depth and the widest folder, not with the wheels found."""
    for root in roots:
        root_path = str(Path(root))  # normalized once; below, paths are text (a Path per entry costs more than listing)
        try:
            root_stat = os.stat(root_path)
        except OSError as e:
            yield Found(root_path, error=PathError(f"cannot read: {e.strerror or e}", path=root_path))
            continue
        if not stat.S_ISDIR(root_stat.st_mode):
            yield _check_file(root_path, root_stat)
            continue
        real_root = os.path.realpath(root_path)
        links: list[str] = []
        unlisted: list[str] = []  # real paths of folders that could not be listed
        folders = [root_path]
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as e:
                unlisted.append(os.path.realpath(folder))
                yield Found(folder, error=PathError(f"cannot list the folder: {e.strerror or e}", path=folder))
                continue
            subfolders = []
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    is_link = entry.is_symlink()
                except OSError:
                    is_dir = is_link = False
                    unlisted.append(os.path.realpath(entry.path))  # not entered either
                if is_dir:
                    subfolders.append(entry.path)
                if not entry.name.endswith(".whl"):
                    continue
                path = entry.path
                if is_link:
                    links.append(path)
                    continue
                try:
                    yield _check_file(path, entry.stat(follow_symlinks=False))
                except OSError as e:
                    yield Found(path, error=PathError(f"cannot read: {e.strerror or e}", path=path))
            folders.extend(reversed(subfolders))  # popped in name order
        inside = real_root.rstrip(os.sep) + os.sep
        linked: set[tuple[int, int]] = set()  # what the links yielded point at: O(links)
        for link in links:
            target = os.path.realpath(link)
            if not target.startswith(inside):
                yield Found(link, error=PathError(f"a link out of the scanned tree (to {target}): not followed",
                                                  path=str(link)))
                continue
            try:
                found = _check_file(link, os.stat(link))
            except OSError as e:  # a dangling link, a loop
                found = Found(link, error=PathError(f"a link to nothing readable: {e.strerror or e}", path=link))
            if found.stat is not None:
                identity = (found.stat.st_dev, found.stat.st_ino)
                if identity in linked or _walk_found(target, found.stat, unlisted):
                    continue  # the wheel it points at is audited under its own name, or through a link before
                linked.add(identity)
            yield found


def _walk_found(target: str, st: os.stat_result, unlisted: list[str]) -> bool:
    """Whether the walk yielded the file at `target` (a real path inside the root, no link on the
    way) as a wheel under its own name: a regular `.whl` with a UTF-8 name, in no folder that
    could not be listed. Decided from the path, so the walk keeps no set of every wheel it saw."""
    if not target.endswith(".whl") or _check_file(target, st).stat is None:
        return False
    return not any(target.startswith(folder.rstrip(os.sep) + os.sep) for folder in unlisted)


def _check_file(path: str, st: os.stat_result) -> Found:
    if not stat.S_ISREG(st.st_mode):
        return Found(path, error=not_regular(path, st.st_mode))
    if not _is_utf8(path):
        return Found(path, error=PathError("the file name is not UTF-8; rename it to audit it", path=path))
    return Found(path, st)


def content_key(path: str | Path, verify_hash: bool, st: os.stat_result | None = None) -> str:
    """What identifies a wheel's content without reading it, when possible."""
    if verify_hash:
        return f"sha256:{sha256_of(path)}"
    mirror = _MIRROR_PATH.search(os.fspath(path))
    if mirror:
        return "blake2b_256:" + "".join(mirror.groups())
    st = st or os.stat(path)
    return f"stat:{st.st_size}:{st.st_mtime_ns}:{Path(path).resolve()}"


def wheel_row(path: str | Path, key: str, size: int) -> WheelRow:
    path = os.fspath(path)
    filename = os.path.basename(path)
    try:
        name = parse_wheel_name(filename)
    except WheelError:
        return WheelRow(key, path, filename, size, None, None, None, None, None, "invalid")
    kind = "pure" if name.is_pure else "linux" if name.is_linux else "other"
    return WheelRow(key, path, filename, size, name.name, name.version,
                    ".".join(name.python_tags), ".".join(name.abi_tags), ".".join(name.platform_tags), kind)


def _vendored_rows(vendored) -> tuple[dict, ...]:
    return tuple(
        {"member": c.member, "library": c.project, "version": c.version, "evidence": c.evidence,
         "linkage": "static" if c.statically_linked else "shared", "detail": c.detail}
        for components in vendored.values() for c in components)


def _error_row(path: str, error: Exception) -> tuple[WheelRow, ResultRow]:
    """The row of a path that was never a wheel to open (a FIFO, a link out, an unlistable folder)."""
    row = WheelRow(f"error:{path}", path, os.path.basename(path), 0, None, None, None, None, None, "invalid")
    message = str(error) if isinstance(error, FastauditError) else f"{path}: {error}"
    return row, ResultRow("error", None, type(error).__name__, message, getattr(error, "member", None))


def _elf_facts(elves) -> tuple[dict, ...]:
    return tuple(
        {"member": member, "arch": info.arch, "soname": info.soname, "needed": list(info.needed),
         "isa_level": info.isa_level,
         "version_requirements": {k: sorted(v) for k, v in info.version_requirements.items()}}
        for member, info in sorted(elves.items()))


# One ELF cache per worker thread, kept across the batches it runs (an ElfCache).
_WORKER = threading.local()


def _worker_cache() -> ElfCache:
    from fastaudit.facts import ElfCache

    if getattr(_WORKER, "cache", None) is None:
        _WORKER.cache = ElfCache()
    return _WORKER.cache


class _StoreReader:
    """The store's facts of earlier runs, for one batch, through a read-only connection of the
    worker's own, opened at the batch's first lookup: members too small to be stored are not looked
    up, so a batch of small ones never opens the store (0.65 ms a batch). `why` says why this
    process cannot read the store (see StoreLocation), once it tried; the cache then neither looks
    up nor sends facts.

    A pool worker is forked by the scan between two of its transactions and never touches the
    scan's connection (SQLite's rule about fork): it opens its own, read-only, under WAL."""

    def __init__(self, cache: ElfCache, location: StoreLocation) -> None:
        self.cache, self.location = cache, location
        self.store: Store | None = None
        self.why: str | None = None
        self.version = ""
        self._tried = False

    def lookup(self, key: bytes) -> bytes | None:
        if not self._tried:
            from fastaudit.facts import facts_version

            self._tried, self.version = True, facts_version()
            self.store, self.why = self.location.open_reader()
            if self.store is None:
                self.cache.stored = None
        return self.store.stored_elf_facts(key, self.version) if self.store is not None else None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


@contextmanager
def _store_backing(cache: ElfCache, location: StoreLocation | None, min_size: int
                   ) -> Iterator[_StoreReader | None]:
    """For one batch, back the worker's cache by the store's facts of earlier runs (closed with
    the batch, so no worker holds the store open between scans)."""
    reader = _StoreReader(cache, location) if location is not None else None
    if reader is not None:
        cache.stored, cache.store_min_size = reader.lookup, min_size
    try:
        yield reader
    finally:
        cache.stored = None
        if reader is not None:
            reader.close()


def audit_path(path: str | Path, cache: ElfCache | None = None, check_isa: bool = True,
               verify_record: bool = False) -> tuple[WheelReport, WheelFacts]:
    """(WheelReport, WheelFacts) of the wheel at path, read only if it is a regular file (see
    files.reading); the one audit that `show` and the scan's workers share."""
    from fastaudit.analyze import analyze
    from fastaudit.facts import check_linux_wheel_name, read_wheel_facts

    name = check_linux_wheel_name(path)
    with reading(path) as readable:
        facts = read_wheel_facts(readable, cache, verify_record=verify_record)
    return analyze(name, facts.elves, check_isa=check_isa), facts


def audit_one(path: str, cache: ElfCache | None, check_isa: bool, verify_record: bool = False) -> ResultRow:
    """A wheel's result row; any failure to read it becomes an error row, never an exception.
    With a cache, ELF members seen before (by this worker, or in the store's earlier runs when the
    cache is backed by the store) are not read again, and the row carries what the cache did: its
    counts and the facts the store should keep."""
    from fastaudit.facts import facts_version
    from fastaudit.results import to_json

    started = time.perf_counter()
    try:
        report, facts = audit_path(path, cache, check_isa, verify_record)
        row = ResultRow("pure" if report.pure else "ok", to_json(report), elapsed=time.perf_counter() - started,
                        elf_facts=_elf_facts(facts.elves), vendored=_vendored_rows(facts.vendored()))
    except FastauditError as e:
        row = ResultRow("error", None, type(e).__name__, str(e), e.member, time.perf_counter() - started)
    except Exception as e:  # noqa: BLE001 - a bug on one wheel must not lose the others' results
        row = ResultRow("error", None, type(e).__name__, f"{path}: {e!r}", None, time.perf_counter() - started)
    if cache is None:
        return row
    traffic = cache.take_traffic()
    traffic.facts_version = facts_version()
    return replace(row, elf_cache=traffic)


def audit_batch(paths: Sequence[str], use_cache: bool, check_isa: bool, verify_record: bool = False,
                store: StoreLocation | None = None, store_min_size: int = 0) -> list[ResultRow]:
    """What a worker runs: the rows of a batch of wheels, with its ELF cache when use_cache, backed
    by the store's facts of earlier runs when `store` says where the store is."""
    if not use_cache:
        return [audit_one(path, None, check_isa, verify_record) for path in paths]
    cache = _worker_cache()
    rows = []
    with _store_backing(cache, store, store_min_size) as reader:
        for path in paths:
            row = audit_one(path, cache, check_isa, verify_record)
            if reader is not None and row.elf_cache is not None:
                row.elf_cache.without_store = reader.why  # known once a member was looked up there
            rows.append(row)
    return rows


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


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _init_worker(scan_pid: int) -> None:
    """Run in each worker as it starts: ignore Ctrl-C (it reaches the whole process group; only
    the scan stops, cleanly) and die with the scan. A scan killed with SIGKILL cannot stop its
    workers, so the kernel is asked to: PR_SET_PDEATHSIG sends SIGKILL to this worker when the
    process that forked it ends. A scan that died before the request was made is checked after."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != scan_pid and not _alive(scan_pid):  # forked by a fork server, or the scan is gone
        os._exit(1)


def _alive(pid: int) -> bool:
    """Whether the process runs: a scan killed before its worker asked for the death signal is a
    zombie until its parent reaps it, and signal 0 still reaches a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]  # the name before ")" may hold anything
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: signal 0 is the best left
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in (b"Z", b"X")


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
    pool = cf.ProcessPoolExecutor(max_workers=max(1, options.jobs), initializer=_init_worker,
                                  initargs=(os.getpid(),))
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
    store.mark_abandoned_runs()
    run_id = store.start_run({"roots": [str(r) for r in roots], "jobs": options.jobs,
                              "scheduler": options.scheduler, "rescan": options.rescan,
                              "verify_hash": options.verify_hash, "elf_cache": options.elf_cache,
                              "verify_record": options.verify_record},
                             __version__, POLICY_DATA_VERSION)
    summary = ScanSummary(run_id)
    stored_cache = options.elf_cache and options.stored_elf_cache
    workers = _Workers(options, store.location() if stored_cache else None)
    bar: _Progress | None = None
    lineage = None if options.rescan else store.lineage(_lineage_key(roots, options))
    try:
        opened = _discover_into(store, run_id, summary, roots, options, lineage, stop)
        bar = _Progress(len(opened)) if progress and opened else None
        if opened:
            # load the analysis before the pool forks, so each worker does not import it again
            import fastaudit.analyze  # noqa: F401
            import fastaudit.results  # noqa: F401
        done = 0
        for batch, rows in workers.run(make_batches(opened, options.max_batch), stop):
            _record(store, run_id, summary, list(zip(batch, rows)))
            done += len(batch)
            if bar:
                bar.update(done, summary.errors)
    except KeyboardInterrupt:
        summary.status = "interrupted"
    except BaseException:
        # a full disk, a lost cluster: the run did not complete
        summary.status = "failed"
        raise
    finally:
        if bar:
            bar.close()
        workers.close(summary.status != "interrupted")
        if stored_cache and summary.status != "failed":
            store.evict_elf_cache(run_id, options.elf_cache_max_bytes)
        summary.seconds = time.monotonic() - started
        unsettled = _settle(store, run_id, lineage, summary)
        # counted from the store: a second Ctrl-C may land between a batch's commit and any counter here
        counts = store.run_counts(run_id)
        summary.analyzed, summary.skipped = counts["analyzed"], counts["skipped"]
        summary.errors, summary.not_analyzed = counts["errors"], counts["not_analyzed"]
        store.finish_run(run_id, summary.status, {"seen": summary.seen, **counts})
    if unsettled is not None:
        raise unsettled
    summary.verdicts, summary.over_promising = store.verdict_counts(run_id)
    summary.elf_cache = store.elf_cache_usage(run_id)
    return summary


def _settle(store: Store, run_id: int, lineage: int | None, summary: ScanSummary) -> StoreError | None:
    """Make the run's list of wheels whole. If that cannot be written (a full disk), the run that
    was completing is marked failed rather than completed with a partial list, and the error is
    returned to be raised once the run is closed."""
    try:
        store.settle_run(run_id, lineage, summary.status == "completed")
    except StoreError as e:
        if summary.status != "completed":
            return None  # the run already failed or stopped; its own error, if any, is the one to see
        summary.status = "failed"
        return e
    return None


# How many discovered paths are looked up in the store at once: the client holds one chunk of
# the walk (plus the Linux wheels still to audit), not the whole mirror.
DISCOVERY_CHUNK = 2000


def _lineage_key(roots: Sequence[str | Path], options: ScanOptions) -> str:
    """What makes runs comparable wheel for wheel: the same roots, analyzer, policy data and kind
    of content key. (Only how much a run writes depends on it, never what it lists.)"""
    import json

    return json.dumps({"roots": sorted(os.path.abspath(r) for r in roots), "analyzer": ANALYZER_VERSION,
                       "policy": POLICY_DATA_VERSION, "verify_hash": options.verify_hash}, sort_keys=True)


def _chunks(found: Iterator[Found], size: int) -> Iterator[list[Found]]:
    chunk: list[Found] = []
    for item in found:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _discover_into(store: Store, run_id: int, summary: ScanSummary, roots: Sequence[str | Path],
                   options: ScanOptions, lineage: int | None, stop: threading.Event) -> list[WheelRow]:
    """Walk the roots chunk by chunk: list what the store already judged (by reference when the
    lineage's last run listed it alike), record the paths that are errors and the wheels that are
    not opened; the Linux wheels still to audit, each once."""
    opened: list[WheelRow] = []
    listed: set[str] = set()  # keys listed explicitly (O(wheels to audit)): a path found twice counts once
    for chunk in _chunks(discover(roots), DISCOVERY_CHUNK):
        if stop.is_set():
            raise KeyboardInterrupt
        keyed: dict[str, Found] = {}
        for found in chunk:
            try:
                if found.error is not None:
                    raise found.error
                keyed[content_key(found.path, options.verify_hash, found.stat)] = found
            except (OSError, FastauditError) as e:  # unreadable, or changed between listing and stat
                _record(store, run_id, summary, [_error_row(found.path, e)])
                summary.seen += 1
        known = {} if options.rescan else store.known_results(keyed, ANALYZER_VERSION, POLICY_DATA_VERSION, lineage)
        summary.seen += store.inherit(k for k in known.values() if k.inherited)
        explicit = {key: k for key, k in known.items() if not k.inherited and key not in listed}
        store.record_skipped(run_id, explicit.values())
        listed.update(explicit)
        summary.seen += len(explicit)
        unopened = []
        for key, found in keyed.items():
            if key in known or key in listed:
                continue
            listed.add(key)
            summary.seen += 1
            wheel = wheel_row(found.path, key, found.stat.st_size if found.stat else 0)
            (opened if wheel.kind == "linux" else unopened).append(wheel)
        _record(store, run_id, summary, [(w, _row_without_opening(w)) for w in unopened])
    return opened


class _Workers:
    """The executor batches go to, kept a few batches ahead of the workers (not the whole scan:
    a dead worker then fails only the batches in flight), replaced when a worker dies.

    A worker that dies (a signal, the out-of-memory killer, a crash in native code) breaks the
    whole process pool and every batch in flight with it, not only the one that killed it. Those
    batches are audited again one wheel at a time in a new pool; a wheel whose worker dies while it
    is the only one in flight is the culprit and gets an error row; the scan goes on."""

    def __init__(self, options: ScanOptions, store_location: StoreLocation | None = None) -> None:
        self.options = options
        self.store_location = store_location  # where workers read the store's ELF cache, if they may
        self.executor: cf.Executor | None = None
        self._close: Callable[[bool], None] | None = None
        # a cluster schedules batches itself; a local pool needs only enough to keep its workers busy
        self.in_flight = sys.maxsize if options.scheduler else 2 * max(1, options.jobs)
        self._done: queue.SimpleQueue[cf.Future] = queue.SimpleQueue()

    def _submit(self, batch: list[WheelRow]) -> cf.Future:
        if self.executor is None:
            self.executor, self._close = _executor(self.options)
        o = self.options
        future = self.executor.submit(audit_batch, [w.path for w in batch], o.elf_cache, o.check_isa,
                                      o.verify_record, self.store_location, o.stored_elf_cache_min_bytes)
        future.add_done_callback(self._done.put)
        return future

    def _finished(self, pending: dict[cf.Future, list[WheelRow]]) -> list[cf.Future]:
        """The futures of `pending` that finished, waiting up to 0.2 s for a first one. Each future
        reports itself once, through its done callback, so a turn costs O(what finished), not
        O(what is in flight) as `cf.wait` does (it installs a waiter on every pending future)."""
        finished = []
        try:
            future = self._done.get(timeout=0.2)
            while True:
                if future in pending:  # not one given up on when the pool broke
                    finished.append(future)
                future = self._done.get_nowait()
        except queue.Empty:
            return finished

    def close(self, wait: bool) -> None:
        if self._close is not None:
            self._close(wait)
        self.executor = self._close = None

    def run(self, batches: list[list[WheelRow]], stop: threading.Event
            ) -> Iterator[tuple[list[WheelRow], list[ResultRow]]]:
        """(batch, its result rows) as batches finish, the culprits of dead workers included."""
        waiting = list(reversed(batches))  # popped from the end: largest first
        suspects: list[WheelRow] = []  # wheels of batches in flight when a worker died
        pending: dict[cf.Future, list[WheelRow]] = {}
        lone: cf.Future | None = None  # the one suspect in flight, audited alone
        while waiting or suspects or pending:
            if stop.is_set():
                for future in pending:
                    future.cancel()
                raise KeyboardInterrupt
            if suspects and not pending:
                wheel = suspects.pop()
                lone = self._submit([wheel])
                pending[lone] = [wheel]
            while not suspects and lone is None and waiting and len(pending) < self.in_flight:
                batch = waiting.pop()
                pending[self._submit(batch)] = batch
            broken: list[list[WheelRow]] = []
            dead = False
            for future in self._finished(pending):
                batch = pending.pop(future)
                try:
                    rows = future.result()
                except BrokenProcessPool:
                    dead = True
                    if future is lone:
                        rows = [_died(batch[0])]
                    else:
                        broken.append(batch)
                        continue
                finally:
                    if future is lone:
                        lone = None
                yield batch, rows
            if not dead:
                continue
            for future, batch in pending.items():  # the pool is broken: the rest fail too, or finished
                try:
                    rows = future.result()
                except BrokenProcessPool:
                    broken.append(batch)
                    continue
                yield batch, rows
            pending.clear()
            self.close(False)
            suspects.extend(wheel for batch in reversed(broken) for wheel in reversed(batch))


def _died(wheel: WheelRow) -> ResultRow:
    error = ScanWorkerError("the worker process died while auditing it alone (killed by a signal or out of"
                            " memory); the scan went on without it", path=wheel.path)
    return ResultRow("error", None, type(error).__name__, str(error))


def _record(store: Store, run_id: int, summary: ScanSummary, rows: list[tuple[WheelRow, ResultRow]]) -> None:
    if not rows:
        return
    store.record_results(run_id, ANALYZER_VERSION, POLICY_DATA_VERSION, rows)
    summary.errors += sum(result.status == "error" for _, result in rows)  # for the progress line
