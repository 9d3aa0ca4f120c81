"""The store: runs whose process is gone read as abandoned (never a reused pid, never a live scan
on the same store, never one on another host), and text the file system gives is storable."""
from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from fastaudit.store import ResultRow, Store, WheelRow, _process_start

pytestmark = pytest.mark.skipif(_process_start(os.getpid()) is None, reason="needs /proc")


def set_process(db: Path, run_id: int, host: str, pid: int, process_start: str | None) -> None:
    with closing(sqlite3.connect(db)) as con:
        con.execute("UPDATE runs SET host=?, pid=?, process_start=? WHERE id=?", (host, pid, process_start, run_id))
        con.commit()


def a_dead_process() -> tuple[int, str]:
    """The pid and start of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    start = _process_start(child.pid)
    assert start is not None
    child.communicate(b"")
    return child.pid, start


def test_runs_whose_process_is_gone_read_as_abandoned(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    me = _process_start(os.getpid())
    dead_pid, dead_start = a_dead_process()
    cases = {  # run id -> (host, pid, start, what it must read as)
        1: (socket.gethostname(), os.getpid(), me, "running"),  # this very process: alive
        2: (socket.gethostname(), dead_pid, dead_start, "abandoned"),  # ended
        3: (socket.gethostname(), os.getpid(), "another-boot:123", "abandoned"),  # pid reused by us
        4: ("some-other-host", dead_pid, dead_start, "running"),  # cannot be told from here
        5: (socket.gethostname(), os.getpid(), None, "running"),  # an old run, no start recorded
    }
    with Store(db) as store:
        for run_id in cases:
            assert store.start_run({}, "v", "p") == run_id
        for run_id, (host, pid, start, _) in cases.items():
            set_process(db, run_id, host, pid, start)
        finished = store.start_run({}, "v", "p")
        store.finish_run(finished, "completed", {})

    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    with Store(db, readonly=True) as reader:
        seen = {r.id: r.status for r in reader.runs()}
        assert reader.run(2).status == "abandoned" and reader.run().id == finished
    assert seen == {**{i: c[3] for i, c in cases.items()}, finished: "completed"}
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # a reader only reads

    with Store(db) as store:
        assert store.mark_abandoned_runs() == [2, 3]
    with closing(sqlite3.connect(db)) as con:
        stored = dict(con.execute("SELECT id, status FROM runs"))
    assert stored == {1: "running", 2: "abandoned", 3: "abandoned", 4: "running", 5: "running", 6: "completed"}


def test_a_started_run_records_this_process(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        run_id = store.start_run({"roots": ["x"]}, "v", "p")
        row = store.db.execute("SELECT host, pid, process_start FROM runs WHERE id=?", (run_id,)).fetchone()
    assert row == (socket.gethostname(), os.getpid(), _process_start(os.getpid()))


def test_undecodable_file_names_are_stored_as_text(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9-1.0-py3-none-any.whl")
    wheel = WheelRow(f"error:/m/{name}", f"/m/{name}", name, 0, None, None, None, None, None, "invalid")
    with Store(tmp_path / "s.db") as store:
        run_id = store.start_run({"roots": [f"/m/{name}"]}, "v", "p")
        store.record_results(run_id, "v", "p", [(wheel, ResultRow("error", None, "PathError", f"/m/{name}: bad"))])
        path, message = store.db.execute(
            "SELECT w.path, r.error_message FROM wheels w JOIN results r ON r.wheel_id = w.id").fetchone()
    assert (path, message) == ("/m/caf\\udce9-1.0-py3-none-any.whl", "/m/caf\\udce9-1.0-py3-none-any.whl: bad")


def test_a_file_left_by_a_scan_killed_before_its_schema_is_taken_as_new(tmp_path: Path) -> None:
    """A scan killed between creating the file (the switch to WAL) and committing the schema
    leaves an SQLite file with no tables: not someone else's database, so the next scan uses it."""
    db = tmp_path / "s.db"
    with closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA journal_mode=WAL")
    with Store(db) as store:
        assert store.start_run({}, "v", "p") == 1
