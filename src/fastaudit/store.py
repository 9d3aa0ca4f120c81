"""The SQLite store: runs, wheels, one result per wheel and analyzer, ELF facts; exports.

One file (WAL mode, so readers never block the scanner and a killed scan loses nothing it had
committed). The schema is versioned and every migration lives in `_MIGRATIONS`, applied in order.
A result is unique per (wheel content, analyzer version, policy data version): re-running a scan
cannot duplicate it, and a scan that was killed continues where its last commit ended.
"""
from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastaudit.errors import FastauditError

if TYPE_CHECKING:
    from fastaudit.facts import CacheTraffic

SCHEMA_VERSION = 4

_RUN_STATUSES = "'running', 'completed', 'interrupted', 'failed', 'abandoned'"

_MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL,
        arguments TEXT NOT NULL,
        fastaudit_version TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'interrupted', 'failed')),
        seen INTEGER NOT NULL DEFAULT 0,
        analyzed INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        not_analyzed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE wheels (
        id INTEGER PRIMARY KEY,
        content_key TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        filename TEXT NOT NULL,
        size INTEGER NOT NULL,
        project TEXT,
        version TEXT,
        python_tags TEXT,
        abi_tags TEXT,
        platform_tags TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('linux', 'pure', 'other', 'invalid'))
    );
    CREATE TABLE results (
        id INTEGER PRIMARY KEY,
        wheel_id INTEGER NOT NULL REFERENCES wheels(id),
        analyzer_version TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        status TEXT NOT NULL CHECK (status IN ('ok', 'pure', 'not_linux', 'error')),
        overall_tag TEXT,
        sym_tag TEXT,
        external_tag TEXT,
        blacklist_tag TEXT,
        isa_tag TEXT,
        arch TEXT,
        libc TEXT,
        over_promises INTEGER,
        declared_tags TEXT,
        report TEXT,
        error_type TEXT,
        error_message TEXT,
        error_member TEXT,
        elapsed REAL,
        UNIQUE (wheel_id, analyzer_version, policy_version)
    );
    CREATE TABLE run_wheels (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        wheel_id INTEGER NOT NULL REFERENCES wheels(id),
        result_id INTEGER NOT NULL REFERENCES results(id),
        outcome TEXT NOT NULL CHECK (outcome IN ('analyzed', 'skipped')),
        PRIMARY KEY (run_id, wheel_id)
    );
    CREATE TABLE elf_facts (
        result_id INTEGER NOT NULL REFERENCES results(id),
        member TEXT NOT NULL,
        arch TEXT,
        soname TEXT,
        needed TEXT NOT NULL,
        isa_level INTEGER NOT NULL,
        version_requirements TEXT NOT NULL,
        PRIMARY KEY (result_id, member)
    );
    CREATE INDEX results_by_run ON results(run_id);
    CREATE INDEX results_by_tag ON results(overall_tag);
    CREATE INDEX results_over_promising ON results(over_promises) WHERE over_promises = 1;
    CREATE INDEX results_by_status ON results(status);
    CREATE INDEX wheels_by_project ON wheels(project, version);
    CREATE INDEX run_wheels_by_result ON run_wheels(result_id);
    """,
    # 2: a run records the process that runs it (host, pid and the process's start time, so a
    # reused pid is not taken for it), and a run whose process is gone is 'abandoned'. SQLite
    # cannot alter a CHECK constraint: the table is rebuilt (foreign keys are off while migrating).
    f"""
    CREATE TABLE runs_v2 (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL,
        arguments TEXT NOT NULL,
        fastaudit_version TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({_RUN_STATUSES})),
        seen INTEGER NOT NULL DEFAULT 0,
        analyzed INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        not_analyzed INTEGER NOT NULL DEFAULT 0,
        host TEXT,
        pid INTEGER,
        process_start TEXT
    );
    INSERT INTO runs_v2 (id, started_at, finished_at, arguments, fastaudit_version, policy_version, status, seen,
                         analyzed, skipped, errors, not_analyzed)
        SELECT id, started_at, finished_at, arguments, fastaudit_version, policy_version, status, seen,
               analyzed, skipped, errors, not_analyzed FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_v2 RENAME TO runs;
    """,
    # 3: the third-party native libraries each ELF member is or carries (vendored.py)
    """
    CREATE TABLE vendored_libraries (
        result_id INTEGER NOT NULL REFERENCES results(id),
        member TEXT NOT NULL,
        library TEXT NOT NULL,
        version TEXT,
        evidence TEXT NOT NULL,
        linkage TEXT NOT NULL CHECK (linkage IN ('shared', 'static')),
        detail TEXT NOT NULL
    );
    CREATE INDEX vendored_by_library ON vendored_libraries(library, version);
    CREATE INDEX vendored_by_result ON vendored_libraries(result_id);
    """,
    # 4: the cross-run ELF cache: the facts of every ELF member read, by the member's content key
    # (facts.ElfCache) and the version of what computed them, so a later run reuses them without
    # inflating the member; and what the cache did in each run
    """
    CREATE TABLE elf_cache (
        id INTEGER PRIMARY KEY,
        member_key BLOB NOT NULL,
        facts_version TEXT NOT NULL,
        member_size INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        last_used_run INTEGER NOT NULL,
        UNIQUE (member_key, facts_version)
    );
    CREATE INDEX elf_cache_by_use ON elf_cache(last_used_run);
    -- the facts apart from the row a hit updates: marking a row used, or summing the sizes for
    -- eviction, never reads or rewrites the facts themselves
    CREATE TABLE elf_cache_facts (
        id INTEGER PRIMARY KEY REFERENCES elf_cache(id) ON DELETE CASCADE,
        facts BLOB NOT NULL
    );
    CREATE TABLE elf_cache_runs (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        members_from_store INTEGER NOT NULL DEFAULT 0,
        bytes_from_store INTEGER NOT NULL DEFAULT 0,
        members_from_memory INTEGER NOT NULL DEFAULT 0,
        bytes_from_memory INTEGER NOT NULL DEFAULT 0,
        members_read INTEGER NOT NULL DEFAULT 0,
        bytes_read INTEGER NOT NULL DEFAULT 0,
        rows_stored INTEGER NOT NULL DEFAULT 0,     -- facts received (two workers may send one member's)
        rows_rejected INTEGER NOT NULL DEFAULT 0,
        rows_evicted INTEGER NOT NULL DEFAULT 0,
        wheels_without_store INTEGER NOT NULL DEFAULT 0,
        notes TEXT NOT NULL DEFAULT ''
    );
    """,
)

_TABLES = {"runs", "wheels", "results", "run_wheels", "elf_facts"}
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _process_start(pid: int) -> str | None:
    """What tells this process from a later one with the same pid: the boot and the start time
    in clock ticks since boot (field 22 of /proc/PID/stat). None when it cannot be read (no such
    process, or no procfs)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return f"{boot}:{fields[19]}"


def _storable(text: str | None) -> str | None:
    """Text SQLite can hold: undecodable bytes of a file name (surrogates) as `\\udcff`, never an
    encoding error that would lose the batch."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")



class StoreError(FastauditError):
    """The store file cannot be opened, or was written by a newer fastaudit."""


@dataclass(frozen=True)
class WheelRow:
    content_key: str
    path: str
    filename: str
    size: int
    project: str | None
    version: str | None
    python_tags: str | None
    abi_tags: str | None
    platform_tags: str | None
    kind: str


@dataclass(frozen=True)
class ResultRow:
    """What a worker sends back for one wheel; `report` is the `show --json` object."""

    status: str
    report: Mapping[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_member: str | None = None
    elapsed: float = 0.0
    elf_facts: tuple[Mapping[str, Any], ...] = ()
    # one per (member, library found in it): member, library, version, evidence, linkage, detail
    vendored: tuple[Mapping[str, Any], ...] = ()
    elf_cache: CacheTraffic | None = None   # what the cross-run ELF cache did for this wheel


_MAX_CACHE_NOTES = 4096  # characters of notes kept per run
# What elf_cache_runs counts, from each wheel's CacheTraffic
_CACHE_COUNTS = ("members_from_store", "bytes_from_store", "members_from_memory", "bytes_from_memory",
                 "members_read", "bytes_read")


@dataclass(frozen=True)
class StoreLocation:
    """Where a scan's workers find the store, to read its ELF cache: the file, the host, and the
    file's device and inode, which tell a worker that it sees the very file the scan writes.

    SQLite's WAL needs the readers and the writer on one host (they share the -shm index in
    memory), so a worker elsewhere (a Dask worker on another machine, even one seeing the same
    path over NFS) or one that sees another file there does without the store's cache."""

    path: str
    host: str
    device: int
    inode: int

    def open_reader(self) -> tuple[Store | None, str | None]:
        """(a read-only Store, None), or (None, why this process cannot read it)."""
        if socket.gethostname() != self.host:
            return None, f"the store is on {self.host}, this worker on {socket.gethostname()}"
        try:
            st = os.stat(self.path)
        except OSError as e:
            return None, f"cannot see the store: {e.strerror or e}"
        if (st.st_dev, st.st_ino) != (self.device, self.inode):
            return None, "the store's path names another file here"
        try:
            return Store(self.path, readonly=True), None
        except StoreError as e:
            return None, str(e)


@dataclass(frozen=True)
class RunRow:
    id: int
    started_at: float
    finished_at: float | None
    status: str
    fastaudit_version: str
    policy_version: str


@dataclass(frozen=True)
class RunWheel:
    """One wheel of a run as a report needs it. The JSON fields are the raw text of parts of the
    stored `show --json` object, None when the result has no report (errors, non-Linux wheels)."""

    filename: str
    project: str | None
    version: str | None
    status: str
    overall_tag: str | None
    arch: str | None
    libc: str | None
    over_promises: bool
    declared_tags: str | None
    error_type: str | None
    error_message: str | None
    error_member: str | None
    versioned_symbols_json: str | None
    external_libs_json: str | None
    over_promise_reasons_json: str | None  # only for over-promising wheels


class Store:
    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        """Open (creating or migrating) a store; `readonly` opens an existing one of this schema
        without ever writing to it, for readers such as `fastaudit report` and `export`. A file
        that is not a fastaudit store, or has a newer schema, is refused before anything is
        written to it, by every command."""
        self.path = Path(path)
        existed = self.path.exists()
        try:
            if readonly:
                self.db = self._connect_readonly()
            else:
                self._refuse_foreign()
                # isolation_level=None: transactions are explicit, one per batch of results
                self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
                self._set_wal()
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()  # foreign keys off: migration 2 rebuilds a referenced table
                self.db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            if not existed and self.path.is_file() and self.path.stat().st_size == 0:
                self.path.unlink()  # created for nothing (a full disk): leave no empty store behind
            raise StoreError(f"cannot open the store: {e}", path=str(self.path)) from e

    def _open_ro(self, probe: bool = False) -> sqlite3.Connection:
        """A read-only connection. A WAL file needs its -shm beside it, which SQLite creates even
        for a reader; a `probe` (who is this file?) of a WAL file with no -wal beside it, whose
        content is therefore all in the file, opens it immutable, so nothing is created beside a
        file that may turn out to be someone else's."""
        try:
            with open(self.path, "rb") as f:
                header = f.read(100)
        except OSError as e:
            raise StoreError(f"cannot read the store: {e.strerror or e}", path=str(self.path)) from e
        if not header.startswith(_SQLITE_MAGIC):
            raise StoreError("cannot open the store: not an SQLite file (left untouched)", path=str(self.path))
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        if probe and header[18:19] == b"\x02" and not Path(f"{self.path}-wal").exists():
            uri += "&immutable=1"
        return sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)

    def _schema(self, db: sqlite3.Connection) -> tuple[int, set[str]]:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return version, tables

    def _refuse_unknown(self, version: int, tables: set[str]) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(f"the store has schema {version}; this fastaudit knows up to {SCHEMA_VERSION}",
                             path=str(self.path))
        if version == 0 and tables or version > 0 and not _TABLES <= tables:
            raise StoreError("not a fastaudit store: an SQLite file with other tables (left untouched)",
                             path=str(self.path))

    def _refuse_foreign(self) -> None:
        """Before a writer opens it: an existing non-empty file must be a fastaudit store of a
        schema this fastaudit knows, read through a read-only connection."""
        if not self.path.exists() or self.path.is_file() and self.path.stat().st_size == 0:
            return  # a new store
        db = self._open_ro(probe=True)
        try:
            self._refuse_unknown(*self._schema(db))
        finally:
            db.close()

    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise StoreError("no such store file", path=str(self.path))
        self._refuse_foreign()
        db = self._open_ro()
        try:
            version, tables = self._schema(db)
            self._refuse_unknown(version, tables)
            if version == 0:
                raise StoreError("not a fastaudit store (an empty SQLite file)", path=str(self.path))
            if version < SCHEMA_VERSION:
                raise StoreError(f"the store has the older schema {version}; open it once with `fastaudit scan`"
                                 " to migrate it", path=str(self.path))
        except BaseException:
            db.close()
            raise
        return db

    def _set_wal(self, timeout: float = 60.0) -> None:
        """Switch to WAL, waiting while another connection holds the lock. SQLite does not call the
        busy handler here (a shared lock cannot wait for a reserved one without risking deadlock),
        so two processes opening a new store at once would otherwise fail at once with "locked"."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: all of it is committed or, on any exception, none of it."""
        try:  # BEGIN inside: an interrupt just after it still rolls it back
            self.db.execute("BEGIN IMMEDIATE")
            yield
            self.db.execute("COMMIT")
        except BaseException as e:
            if self.db.in_transaction:  # Ctrl-C may land just after COMMIT
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolls back itself when a write fails; nothing is committed either way
            if isinstance(e, sqlite3.Error):  # a full disk, a read-only file: the batch is not stored
                raise StoreError(f"cannot write the store: {e}", path=str(self.path)) from e
            raise

    def _write(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        """One statement outside a batch; a failure to write is a StoreError, not a traceback."""
        try:
            return self.db.execute(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"cannot write the store: {e}", path=str(self.path)) from e

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same state of the store, even while a
        scan commits batches (WAL keeps the snapshot), so figures read by several queries agree."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("ROLLBACK")  # nothing was written

    def _migrate(self) -> None:
        with self._transaction():
            current, tables = self._schema(self.db)
            self._refuse_unknown(current, tables)  # again: another process may have written it since
            for version in range(current, SCHEMA_VERSION):
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={version + 1}")

    def location(self) -> StoreLocation:
        st = os.stat(self.path)
        return StoreLocation(str(self.path.resolve()), socket.gethostname(), st.st_dev, st.st_ino)

    # --- the cross-run ELF cache ------------------------------------------------------------

    def stored_elf_facts(self, member_key: bytes, facts_version: str) -> bytes | None:
        """The stored facts of a member (facts.encode_member_facts), None when none are stored
        or the store cannot be read now (a reader never fails a wheel for the cache's sake)."""
        try:
            row = self.db.execute("SELECT f.facts FROM elf_cache c JOIN elf_cache_facts f ON f.id = c.id"
                                  " WHERE c.member_key=? AND c.facts_version=?", (member_key, facts_version)).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def _record_elf_cache(self, run_id: int, results: Sequence[ResultRow]) -> None:
        """Within a batch's transaction: store the facts its wheels read, mark the rows they
        reused as used by this run, and add to the run's counts."""
        traffic = [r.elf_cache for r in results if r.elf_cache is not None]
        if not traffic:
            return
        for t in traffic:
            for key, size, blob in t.new:  # a row read again (another worker, a damaged row) is replaced
                self.db.execute(
                    "INSERT INTO elf_cache (member_key, facts_version, member_size, stored_bytes, last_used_run)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (member_key, facts_version) DO UPDATE SET"
                    " stored_bytes=excluded.stored_bytes, last_used_run=excluded.last_used_run",
                    (key, t.facts_version, size, len(blob), run_id))
                (row_id,) = self.db.execute("SELECT id FROM elf_cache WHERE member_key=? AND facts_version=?",
                                            (key, t.facts_version)).fetchone()
                self.db.execute("INSERT OR REPLACE INTO elf_cache_facts (id, facts) VALUES (?, ?)", (row_id, blob))
        self.db.executemany("UPDATE elf_cache SET last_used_run=? WHERE member_key=? AND facts_version=?",
                            [(run_id, key, t.facts_version) for t in traffic for key in t.reused])
        self.db.execute("INSERT INTO elf_cache_runs (run_id) VALUES (?) ON CONFLICT (run_id) DO NOTHING", (run_id,))
        counts = [sum(getattr(t, name) for t in traffic) for name in _CACHE_COUNTS]
        self.db.execute(
            "UPDATE elf_cache_runs SET " + ", ".join(f"{name}={name}+?" for name in _CACHE_COUNTS) +
            ", rows_stored=rows_stored+?, rows_rejected=rows_rejected+?, wheels_without_store=wheels_without_store+?"
            " WHERE run_id=?",
            (*counts, sum(len(t.new) for t in traffic), sum(len(t.rejected) for t in traffic),
             sum(t.without_store is not None for t in traffic), run_id))
        notes = sorted({f"a stored row ignored ({key.hex()[:16]}...): {why}"
                        for t in traffic for key, why in t.rejected}
                       | {f"a worker without the store's cache: {why}" for t in traffic if (why := t.without_store)})
        # each note once per run, and a few kilobytes of them at most
        self.db.executemany(
            "UPDATE elf_cache_runs SET notes = notes || CASE WHEN notes = '' THEN '' ELSE char(10) END || ?"
            " WHERE run_id=? AND instr(notes, ?) = 0 AND length(notes) < ?",
            [(_storable(note), run_id, _storable(note), _MAX_CACHE_NOTES) for note in notes])

    def evict_elf_cache(self, run_id: int, max_bytes: int) -> int:
        """Keep the most recently used rows of the ELF cache within max_bytes of stored facts
        (rows of another fastaudit are no longer used, so they go first); the rows removed."""
        (total,) = self.db.execute("SELECT coalesce(sum(stored_bytes), 0) FROM elf_cache").fetchone()
        if total <= max_bytes:
            return 0
        with self._transaction():
            for table in ("elf_cache_facts", "elf_cache"):  # the facts first: they refer to their rows
                evicted = self.db.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM (SELECT id, sum(stored_bytes) OVER"
                    " (ORDER BY last_used_run DESC, id DESC) AS kept FROM elf_cache) WHERE kept > ?)",
                    (max_bytes,)).rowcount
            self.db.execute("INSERT INTO elf_cache_runs (run_id) VALUES (?) ON CONFLICT (run_id) DO NOTHING",
                            (run_id,))
            self.db.execute("UPDATE elf_cache_runs SET rows_evicted=rows_evicted+? WHERE run_id=?", (evicted, run_id))
        return evicted

    def elf_cache_usage(self, run_id: int) -> dict[str, Any]:
        """What the ELF cache did in a run (zeros for a run that did not use it), and its size now."""
        cur = self.db.execute("SELECT * FROM elf_cache_runs WHERE run_id=?", (run_id,))
        row = cur.fetchone()
        usage: dict[str, Any] = {name: 0 for name in (*_CACHE_COUNTS, "rows_stored", "rows_rejected",
                                                       "rows_evicted", "wheels_without_store")}
        usage["notes"] = ""
        if row is not None:
            usage.update((d[0], value) for d, value in zip(cur.description, row) if d[0] != "run_id")
        usage["rows"], usage["stored_bytes"] = self.db.execute(
            "SELECT count(*), coalesce(sum(stored_bytes), 0) FROM elf_cache").fetchone()
        return usage

    # --- runs -------------------------------------------------------------------------------

    def start_run(self, arguments: Mapping[str, Any], fastaudit_version: str, policy_version: str) -> int:
        pid = os.getpid()
        cur = self._write(
            "INSERT INTO runs (started_at, arguments, fastaudit_version, policy_version, status, host, pid,"
            " process_start) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
            (time.time(), _storable(json.dumps(arguments, sort_keys=True)), fastaudit_version, policy_version,
             socket.gethostname(), pid, _process_start(pid)))
        return int(cur.lastrowid)

    def _gone(self, host: str | None, pid: int | None, process_start: str | None) -> bool:
        """Whether a 'running' run's process has ended. Only a run started on this host, with a
        known process start, can be judged; a run on another host sharing the store (NFS) is
        left as it is."""
        if host != socket.gethostname() or pid is None or process_start is None:
            return False
        if _process_start(os.getpid()) is None:
            return False  # no procfs here: nothing can be told
        return _process_start(pid) != process_start

    def _status(self, status: str, host: str | None, pid: int | None, process_start: str | None) -> str:
        return "abandoned" if status == "running" and self._gone(host, pid, process_start) else status

    def mark_abandoned_runs(self) -> list[int]:
        """Mark every 'running' run whose process is gone (killed, crashed, the machine rebooted)
        as 'abandoned'; the ids marked. Live scans sharing the store are left running."""
        rows = self.db.execute("SELECT id, host, pid, process_start FROM runs WHERE status='running'").fetchall()
        gone = [run_id for run_id, *process in rows if self._gone(*process)]
        if gone:
            with self._transaction():
                self.db.executemany("UPDATE runs SET status='abandoned' WHERE id=? AND status='running'",
                                    [(run_id,) for run_id in gone])
        return gone

    def finish_run(self, run_id: int, status: str, counts: Mapping[str, int]) -> None:
        if self.db.in_transaction:
            # a second Ctrl-C between BEGIN and its try left a batch half written: drop it, so the
            # run's status does not join it in an open transaction that closing would roll back
            self.db.execute("ROLLBACK")
        self._write(
            "UPDATE runs SET finished_at=?, status=?, seen=?, analyzed=?, skipped=?, errors=?, not_analyzed=?"
            " WHERE id=?",
            (time.time(), status, counts.get("seen", 0), counts.get("analyzed", 0), counts.get("skipped", 0),
             counts.get("errors", 0), counts.get("not_analyzed", 0), run_id))

    def run_counts(self, run_id: int) -> dict[str, int]:
        """What a run did, read from what it committed (so an interrupted run's counts stay true)."""
        counts = {"analyzed": 0, "skipped": 0, "errors": 0, "not_analyzed": 0}
        for outcome, status, count in self.db.execute(
                "SELECT rw.outcome, r.status, count(*) FROM run_wheels rw JOIN results r ON r.id = rw.result_id"
                " WHERE rw.run_id=? GROUP BY 1, 2", (run_id,)):
            if outcome == "skipped":
                counts["skipped"] += count
            elif status == "error":
                counts["errors"] += count
            elif status == "ok":
                counts["analyzed"] += count
            else:
                counts["not_analyzed"] += count
        return counts

    def verdict_counts(self, run_id: int) -> tuple[dict[str, int], int]:
        """Wheels of a run per overall tag (or status, when there is none), and how many over-promise."""
        rows = self.db.execute(
            "SELECT coalesce(r.overall_tag, r.status), count(*) FROM run_wheels rw"
            " JOIN results r ON r.id = rw.result_id WHERE rw.run_id=? GROUP BY 1 ORDER BY 2 DESC",
            (run_id,)).fetchall()
        over = self.db.execute(
            "SELECT count(*) FROM run_wheels rw JOIN results r ON r.id = rw.result_id"
            " WHERE rw.run_id=? AND r.over_promises=1", (run_id,)).fetchone()[0]
        return dict(rows), over

    def run(self, run_id: int | None = None) -> RunRow | None:
        """A run (default: the latest), its status as `runs` tells it."""
        runs = self.runs(run_id) if run_id is not None else self.runs(latest=True)
        return runs[-1] if runs else None

    def runs(self, run_id: int | None = None, *, latest: bool = False) -> list[RunRow]:
        """Every run, oldest first (or the one named, or the latest). A 'running' run whose process
        is gone reads as 'abandoned', even to a reader that cannot write the store."""
        sql = "SELECT id, started_at, finished_at, status, fastaudit_version, policy_version, host, pid," \
              " process_start FROM runs"
        if run_id is not None:
            rows = self.db.execute(sql + " WHERE id=?", (run_id,))
        elif latest:
            rows = self.db.execute(sql + " ORDER BY id DESC LIMIT 1")
        else:
            rows = self.db.execute(sql + " ORDER BY id")
        return [RunRow(*row[:3], self._status(row[3], *row[6:]), *row[4:6]) for row in rows]

    def run_outcome_counts(self, run_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """run id -> wheels per result status ('ok', 'pure', 'not_linux', 'error'), plus
        'over_promising'; one query for a whole trend."""
        ids = list(run_ids)
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        marks = ",".join("?" * len(ids))
        for run_id, status, over, count in self.db.execute(
                "SELECT rw.run_id, r.status, coalesce(r.over_promises, 0), count(*) FROM run_wheels rw"
                f" JOIN results r ON r.id = rw.result_id WHERE rw.run_id IN ({marks}) GROUP BY 1, 2, 3", ids):
            counts[run_id][status] = counts[run_id].get(status, 0) + count
            if over:
                counts[run_id]["over_promising"] = counts[run_id].get("over_promising", 0) + count
        return counts

    def run_wheels(self, run_id: int) -> Iterator[RunWheel]:
        """The wheels of a run with what a report shows of them, in file name order. The parts of
        the report are cut out by SQLite (which parses each report once per row), so Python
        decodes only the small pieces."""
        for row in self.db.execute(
                "SELECT w.filename, w.project, w.version, r.status, r.overall_tag, r.arch, r.libc,"
                " coalesce(r.over_promises, 0), r.declared_tags, r.error_type, r.error_message, r.error_member,"
                " json_extract(r.report, '$.versioned_symbols'), json_extract(r.report, '$.external_libs'),"
                " CASE WHEN r.over_promises = 1"
                "  THEN json_extract(r.report, '$.fastaudit.over_promise_reasons') END"
                " FROM run_wheels rw JOIN wheels w ON w.id = rw.wheel_id JOIN results r ON r.id = rw.result_id"
                " WHERE rw.run_id=? ORDER BY w.filename, w.path", (run_id,)):
            yield RunWheel(*row[:7], bool(row[7]), *row[8:])

    def run_abi3(self, run_id: int) -> Iterator[tuple[str, str | None, str | None, str | None, bool, str, str, str]]:
        """(file name, project, baseline, computed, over-promises, and as JSON non_abi3_symbols,
        future_abi3_objects, problems) of each abi3-tagged wheel of a run that has an abi3 criterion
        (results stored before the criterion existed have none)."""
        for filename, project, baseline, computed, over, symbols, future, problems in self.db.execute(
                "SELECT w.filename, w.project, json_extract(r.report, '$.fastaudit.abi3.baseline'),"
                " json_extract(r.report, '$.fastaudit.abi3.computed'),"
                " json_extract(r.report, '$.fastaudit.abi3.over_promises'),"
                " json_extract(r.report, '$.fastaudit.abi3.non_abi3_symbols'),"
                " json_extract(r.report, '$.fastaudit.abi3.future_abi3_objects'),"
                " json_extract(r.report, '$.fastaudit.abi3.problems')"
                " FROM run_wheels rw JOIN wheels w ON w.id = rw.wheel_id JOIN results r ON r.id = rw.result_id"
                " WHERE rw.run_id=? AND r.status='ok' AND ('.' || w.abi_tags || '.') GLOB '*.abi3*'"
                " AND json_type(r.report, '$.fastaudit.abi3') = 'object' ORDER BY w.filename", (run_id,)):
            yield filename, project, baseline, computed, bool(over), symbols, future, problems

    def run_states(self, run_id: int) -> Iterator[tuple[str, str, bool]]:
        """(file name, result status, over-promises) for each wheel of a run: what a comparison
        between two runs needs, without the reports."""
        for filename, status, over in self.db.execute(
                "SELECT w.filename, r.status, coalesce(r.over_promises, 0) FROM run_wheels rw"
                " JOIN wheels w ON w.id = rw.wheel_id JOIN results r ON r.id = rw.result_id WHERE rw.run_id=?",
                (run_id,)):
            yield filename, status, bool(over)

    def run_load_findings(self, run_id: int) -> Iterator[tuple[str, str | None, str | None, str | None]]:
        """(file name, project, executable_stack and rebuild_image as JSON) of each audited wheel of a
        run that has either, or that was stored before the executable-stack check existed (its
        executable_stack is then None: not checked)."""
        yield from self.db.execute(
            "SELECT w.filename, w.project, json_extract(r.report, '$.fastaudit.executable_stack'),"
            " json_extract(r.report, '$.fastaudit.rebuild_image')"
            " FROM run_wheels rw JOIN wheels w ON w.id = rw.wheel_id JOIN results r ON r.id = rw.result_id"
            " WHERE rw.run_id=? AND r.status='ok' AND (json_type(r.report, '$.fastaudit.executable_stack') IS NULL"
            "  OR json_array_length(r.report, '$.fastaudit.executable_stack') > 0"
            "  OR json_type(r.report, '$.fastaudit.rebuild_image') = 'object') ORDER BY w.filename", (run_id,))

    def grafted_members(self, run_id: int) -> Iterator[tuple[str, str]]:
        """(wheel file name, member) for each ELF member in a top-level `*.libs/` folder of a
        wheel of the run: where auditwheel puts the libraries it grafts."""
        yield from self.db.execute(
            "SELECT w.filename, f.member FROM run_wheels rw JOIN wheels w ON w.id = rw.wheel_id"
            " JOIN elf_facts f ON f.result_id = rw.result_id"
            " WHERE rw.run_id=? AND f.member GLOB '*.libs/*' AND f.member NOT GLOB '*/*/*'", (run_id,))

    def vendored_libraries(self, run_id: int) -> Iterator[tuple[str, str | None, str, str, str, str, str]]:
        """(library, version, wheel file name, wheel's project, member, evidence, linkage) for every
        vendored library found in the wheels of a run."""
        yield from self.db.execute(
            "SELECT v.library, v.version, w.filename, coalesce(w.project, ''), v.member, v.evidence, v.linkage"
            " FROM run_wheels rw JOIN wheels w ON w.id = rw.wheel_id"
            " JOIN vendored_libraries v ON v.result_id = rw.result_id WHERE rw.run_id=?"
            " ORDER BY v.library, v.version, w.filename, v.member", (run_id,))

    # --- wheels and results -----------------------------------------------------------------

    def known_results(self, content_keys: Iterable[str], analyzer_version: str,
                      policy_version: str) -> dict[str, tuple[int, int]]:
        """content key -> (wheel id, result id) for the wheels already judged by this analyzer."""
        keys = list(content_keys)
        found: dict[str, tuple[int, int]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, wheel_id, result_id in self.db.execute(
                    f"SELECT w.content_key, w.id, r.id FROM wheels w JOIN results r ON r.wheel_id = w.id"
                    f" WHERE w.content_key IN ({marks}) AND r.analyzer_version=? AND r.policy_version=?",
                    (*chunk, analyzer_version, policy_version)):
                found[key] = (wheel_id, result_id)
        return found

    def record_skipped(self, run_id: int, known: Iterable[tuple[int, int]]) -> None:
        with self._transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO run_wheels (run_id, wheel_id, result_id, outcome) VALUES (?, ?, ?, 'skipped')",
                [(run_id, wheel_id, result_id) for wheel_id, result_id in known])

    def record_results(self, run_id: int, analyzer_version: str, policy_version: str,
                       batch: Iterable[tuple[WheelRow, ResultRow]]) -> None:
        """Store a batch of results in one transaction: all of it or, if killed, none of it."""
        rows = list(batch)
        with self._transaction():
            for wheel, result in rows:
                self._record_one(run_id, analyzer_version, policy_version, wheel, result)
            self._record_elf_cache(run_id, [result for _, result in rows])

    def _record_one(self, run_id: int, analyzer_version: str, policy_version: str,
                    wheel: WheelRow, result: ResultRow) -> None:
        self.db.execute(
            "INSERT INTO wheels (content_key, path, filename, size, project, version, python_tags, abi_tags,"
            " platform_tags, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (content_key) DO UPDATE SET path=excluded.path",
            (_storable(wheel.content_key), _storable(wheel.path), _storable(wheel.filename), wheel.size,
             wheel.project, wheel.version, wheel.python_tags, wheel.abi_tags, wheel.platform_tags, wheel.kind))
        wheel_id = self.db.execute("SELECT id FROM wheels WHERE content_key=?",
                                   (_storable(wheel.content_key),)).fetchone()[0]
        report = result.report or {}
        ours = report.get("fastaudit", {})
        criteria = ours.get("criteria", {})
        # a concurrent scan may have judged the same wheel: keep the first result, never two
        cur = self.db.execute(
            "INSERT INTO results (wheel_id, analyzer_version, policy_version, run_id, status, overall_tag,"
            " sym_tag, external_tag, blacklist_tag, isa_tag, arch, libc, over_promises, declared_tags, report,"
            " error_type, error_message, error_member, elapsed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (wheel_id, analyzer_version, policy_version) DO NOTHING",
            (wheel_id, analyzer_version, policy_version, run_id, result.status, report.get("overall_tag"),
             report.get("sym_tag"), criteria.get("external_library"), criteria.get("blacklisted_symbol"),
             criteria.get("isa"), ours.get("arch"), ours.get("libc"),
             int(ours["over_promises"]) if "over_promises" in ours else None,
             wheel.platform_tags, json.dumps(report) if report else None, result.error_type,
             _storable(result.error_message), _storable(result.error_member), result.elapsed))
        if cur.rowcount == 0:
            result_id = self.db.execute(
                "SELECT id FROM results WHERE wheel_id=? AND analyzer_version=? AND policy_version=?",
                (wheel_id, analyzer_version, policy_version)).fetchone()[0]
            outcome = "skipped"
        else:
            result_id = int(cur.lastrowid)
            outcome = "analyzed"
            self.db.executemany(
                "INSERT INTO elf_facts (result_id, member, arch, soname, needed, isa_level, version_requirements)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(result_id, _storable(f["member"]), f["arch"], _storable(f["soname"]), json.dumps(f["needed"]),
                  f["isa_level"],
                  json.dumps(f["version_requirements"], sort_keys=True)) for f in result.elf_facts])
            self.db.executemany(
                "INSERT INTO vendored_libraries (result_id, member, library, version, evidence, linkage, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(result_id, v["member"], v["library"], v["version"], v["evidence"], v["linkage"], v["detail"])
                 for v in result.vendored])
        self.db.execute(
            "INSERT OR IGNORE INTO run_wheels (run_id, wheel_id, result_id, outcome) VALUES (?, ?, ?, ?)",
            (run_id, wheel_id, result_id, outcome))

    # --- exports ------------------------------------------------------------------------------

    def run_lines(self, run_id: int) -> Iterator[dict[str, Any]]:
        """One object per wheel of a run, skipped ones included: the `show --json` object (or
        auditwheel's error object) plus the wheel's path and how the run treated it."""
        rows = self.db.execute(
            "SELECT w.path, w.filename, w.kind, r.status, r.report, r.error_type, r.error_message,"
            " r.error_member, rw.outcome"
            " FROM run_wheels rw JOIN wheels w ON w.id = rw.wheel_id JOIN results r ON r.id = rw.result_id"
            " WHERE rw.run_id=? ORDER BY w.path", (run_id,))
        for path, filename, kind, status, report, error_type, error_message, error_member, outcome in rows:
            if report:
                line = json.loads(report)
            else:
                line = {"version": 1, "wheel": filename, "error": error_message or status}
            line["path"] = path
            line["scan"] = {"outcome": outcome, "status": status, "kind": kind, "error_type": error_type,
                            "error_member": error_member}
            yield line


CSV_COLUMNS = ("path", "wheel", "status", "overall_tag", "sym_tag", "over_promises", "arch", "libc",
               "declared_tags", "external_libs", "error")


def to_csv(lines: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        ours = line.get("fastaudit", {})
        writer.writerow([
            line["path"], line["wheel"], line["scan"]["status"], line.get("overall_tag", ""),
            line.get("sym_tag", ""), ours.get("over_promises", ""), ours.get("arch", ""), ours.get("libc", ""),
            " ".join(ours.get("declared_tags", [])), " ".join(line.get("external_libs", {})),
            line.get("error", ""),
        ])
    return out.getvalue()
