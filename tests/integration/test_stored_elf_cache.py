"""The store's cross-run ELF cache as `fastaudit scan` uses it: real processes, real SQLite files,
the real ci wheels and gcc-built wheels, a real Dask cluster on loopback, and Dask workers that
cannot see the store (another host name, the store's folder hidden), made real with Linux
namespaces.

The wheels are scanned once from one folder, then again from another folder holding the same
files (new wheels to the store, with the same ELF members): the second scan reads every member's
facts from the store, and must store exactly what a scan without any cache stores.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import elfbuild
from tests.integration.test_scan import fastaudit, place, query

# The tests store every member's facts, the gcc-built wheels' small ones too; by default a scan
# keeps only members of 1 MiB and more (test_small_members_are_read_again_not_stored).
EVERY_MEMBER = ("--stored-elf-cache-min-kb", "0")


@dataclass(frozen=True)
class Cached:
    root: Path
    names: tuple[str, ...]     # the wheel file names in every folder
    store: Path                # after scanning `first`: the cache holds every member's facts
    plain: Path                # `second` scanned with no ELF cache at all
    members: int               # ELF members in the wheels (each read once by the first scan)


def folder(root: Path, name: str, sources: list[Path]) -> Path:
    for source in sources:
        place(source, root / name / source.name)
    return root / name


def usage(db: Path, run_id: int) -> dict[str, Any]:
    with closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM elf_cache_runs WHERE run_id=?", (run_id,)).fetchone()
    assert row is not None, f"no ELF cache figures for run {run_id}"
    return dict(row)


def stored_by_name(db: Path, folder_name: str) -> dict[str, dict[str, Any]]:
    """file name -> the stored result (the report as its stored text), its ELF facts and its vendored
    libraries, for the wheels scanned from one folder; ids, runs and timings left out."""
    out: dict[str, dict[str, Any]] = {}
    with closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        for row in con.execute("SELECT w.filename, r.* FROM results r JOIN wheels w ON w.id = r.wheel_id"
                               " WHERE w.path GLOB ?", (f"*/{folder_name}/*",)):
            fields = {k: row[k] for k in row.keys() if k not in ("id", "wheel_id", "run_id", "elapsed", "filename")}
            fields["elf_facts"] = sorted(map(tuple, con.execute(
                "SELECT member, arch, soname, needed, isa_level, version_requirements FROM elf_facts"
                " WHERE result_id=?", (row["id"],))))
            fields["vendored"] = sorted(map(tuple, con.execute(
                "SELECT member, library, version, evidence, linkage, detail FROM vendored_libraries"
                " WHERE result_id=?", (row["id"],))))
            out[row["filename"]] = fields
    return out


def copy_store(source: Path, dest: Path) -> Path:
    with closing(sqlite3.connect(source)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy2(source, dest)
    return dest


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, ci_wheels: list[Path],
           scenarios: dict[str, elfbuild.Scenario]) -> Cached:
    root = tmp_path_factory.mktemp("xcache")
    sources = [w for w in ci_wheels if not w.name.endswith("-none-any.whl")] + [s.wheel for s in scenarios.values()]
    for name in ("first", "second", "third", "fourth"):
        folder(root / "wheels", name, sources)
    store, plain = root / "store" / "cached.db", root / "plain.db"
    store.parent.mkdir()
    proc = fastaudit("scan", *EVERY_MEMBER, "--db", store, "--jobs", "2", root / "wheels" / "first", cwd=root)
    assert proc.returncode == 0, proc.stderr
    proc = fastaudit("scan", "--db", plain, "--jobs", "2", "--no-elf-cache", root / "wheels" / "second", cwd=root)
    assert proc.returncode == 0, proc.stderr
    first = usage(store, 1)
    members = first["members_read"] + first["members_from_memory"]
    assert first["members_from_store"] == 0 and first["rows_stored"] == first["members_read"] > 100
    return Cached(root, tuple(sorted(p.name for p in sources)), store, plain, members)


def assert_same_as_without_cache(cached: Cached, db: Path, folder_name: str) -> None:
    got, expected = stored_by_name(db, folder_name), stored_by_name(cached.plain, "second")
    assert sorted(got) == sorted(expected) == list(cached.names)
    for name in cached.names:
        assert got[name] == expected[name], name


# ---- 1. the same stored results, without inflating ------------------------------------------------

def test_a_scan_through_the_stored_cache_stores_exactly_what_a_scan_without_a_cache_stores(
        cached: Cached, tmp_path: Path) -> None:
    db = copy_store(cached.store, tmp_path / "s.db")
    proc = fastaudit("scan", *EVERY_MEMBER, "--db", db, "--jobs", "2", cached.root / "wheels" / "second", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    second = usage(db, 2)
    assert second["members_read"] == 0 and second["bytes_read"] == 0  # nothing inflated
    assert second["members_from_store"] + second["members_from_memory"] == cached.members
    # every member the first run stored came from the store at least once (the worker that met it first)
    assert second["members_from_store"] >= query(db, "SELECT count(*) FROM elf_cache")[0][0]
    assert second["rows_rejected"] == second["wheels_without_store"] == 0 and second["notes"] == ""
    assert "ELF cache:" in proc.stdout and " 0 (0.0 MiB) inflated" in proc.stdout
    assert_same_as_without_cache(cached, db, "second")


def test_one_worker_reuses_every_stored_member(cached: Cached, tmp_path: Path) -> None:
    db = copy_store(cached.store, tmp_path / "s.db")
    assert fastaudit("scan", *EVERY_MEMBER, "--db", db, "--jobs", "1", cached.root / "wheels" / "second",
                     cwd=tmp_path).returncode == 0
    second = usage(db, 2)
    assert second["members_from_store"] == query(db, "SELECT count(*) FROM elf_cache")[0][0]
    assert second["members_read"] == 0
    assert_same_as_without_cache(cached, db, "second")


def test_without_the_stored_cache_every_member_is_read_again(cached: Cached, tmp_path: Path) -> None:
    db = copy_store(cached.store, tmp_path / "s.db")
    rows_before = query(db, "SELECT count(*), sum(stored_bytes) FROM elf_cache")
    assert fastaudit("scan", "--db", db, "--jobs", "2", "--no-stored-elf-cache", cached.root / "wheels" / "second",
                     cwd=tmp_path).returncode == 0
    second = usage(db, 2)
    assert second["members_from_store"] == 0 and second["rows_stored"] == 0
    assert second["members_read"] >= usage(db, 1)["members_read"]
    assert query(db, "SELECT count(*), sum(stored_bytes) FROM elf_cache") == rows_before
    assert_same_as_without_cache(cached, db, "second")


def test_facts_of_another_fastaudit_are_not_reused(cached: Cached, tmp_path: Path) -> None:
    db = copy_store(cached.store, tmp_path / "s.db")
    rows = query(db, "SELECT count(*) FROM elf_cache")[0][0]
    with closing(sqlite3.connect(db)) as con:
        con.execute("UPDATE elf_cache SET facts_version = '0.2.0+0123456789abcdef'")
        con.commit()
    assert fastaudit("scan", *EVERY_MEMBER, "--db", db, "--jobs", "1", cached.root / "wheels" / "second",
                     cwd=tmp_path).returncode == 0
    second = usage(db, 2)
    assert second["members_from_store"] == 0 and second["members_read"] == rows
    assert query(db, "SELECT facts_version LIKE '0.2.0+%', count(*) FROM elf_cache GROUP BY 1 ORDER BY 1") == \
        [(0, rows), (1, rows)]
    assert_same_as_without_cache(cached, db, "second")


# ---- 2. damaged rows, growth, read-only commands --------------------------------------------------

def test_damaged_rows_are_ignored_with_a_note_and_replaced(cached: Cached, tmp_path: Path) -> None:
    """Every stored row damaged one of three ways (cut short, one bit flipped, replaced by text):
    the scan reads those members from their bytes, notes the rows it ignored, stores good facts in
    their place, and the next scan reuses them."""
    db = copy_store(cached.store, tmp_path / "s.db")
    with closing(sqlite3.connect(db)) as con:
        con.execute("UPDATE elf_cache_facts SET facts = CASE id % 3 WHEN 0 THEN substr(facts, 1, length(facts) / 2)"
                    " WHEN 1 THEN CAST(substr(facts, 1, 40) || zeroblob(1) || substr(facts, 42) AS BLOB)"
                    " ELSE 'a row of text' END")
        con.commit()
    rows = query(db, "SELECT count(*) FROM elf_cache")[0][0]
    proc = fastaudit("scan", *EVERY_MEMBER, "--db", db, "--jobs", "1", cached.root / "wheels" / "second", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    second = usage(db, 2)
    assert second["rows_rejected"] == rows and second["members_from_store"] == 0
    assert second["members_read"] == rows == second["rows_stored"]
    assert "a stored row ignored" in second["notes"] and "ELF cache note: a stored row ignored" in proc.stdout
    assert_same_as_without_cache(cached, db, "second")
    assert fastaudit("scan", *EVERY_MEMBER, "--db", db, "--jobs", "1", cached.root / "wheels" / "third",
                     cwd=tmp_path).returncode == 0
    assert usage(db, 3)["members_from_store"] == rows and usage(db, 3)["rows_rejected"] == 0


def test_the_cache_stays_within_its_bound(cached: Cached, tmp_path: Path) -> None:
    db = copy_store(cached.store, tmp_path / "s.db")
    total = query(db, "SELECT sum(stored_bytes) FROM elf_cache")[0][0]
    assert fastaudit("scan", *EVERY_MEMBER, "--db", db, "--jobs", "1", "--elf-cache-max-mb", "0",
                     cached.root / "wheels" / "second", cwd=tmp_path).returncode == 0
    assert query(db, "SELECT count(*) FROM elf_cache") == query(db, "SELECT count(*) FROM elf_cache_facts") == [(0,)]
    assert usage(db, 2)["rows_evicted"] > 0 and total > 0
    # a bound of 1 MiB keeps what fits of the most recently used rows
    assert fastaudit("scan", *EVERY_MEMBER, "--db", db, "--jobs", "1", "--elf-cache-max-mb", "1",
                     cached.root / "wheels" / "third", cwd=tmp_path).returncode == 0
    kept = query(db, "SELECT count(*), sum(stored_bytes), min(last_used_run) FROM elf_cache")[0]
    assert 0 < kept[1] <= 1 << 20 and kept[2] == 3


def test_read_only_commands_leave_a_store_with_a_cache_byte_identical(cached: Cached, tmp_path: Path) -> None:
    """export and report read the store (a WAL reader needs the -shm index beside it, which SQLite
    creates) and write nothing: the file is byte-identical and no WAL frame is written."""
    db = copy_store(cached.store, tmp_path / "s.db")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert fastaudit("export", "--db", db, "--format", "jsonl", "-o", tmp_path / "out.jsonl",
                     cwd=tmp_path).returncode == 0
    assert fastaudit("report", "--db", db, "-o", tmp_path / "report", "--format", "json",
                     cwd=tmp_path).returncode == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0


# ---- 3. Dask ----------------------------------------------------------------------------------------

def test_dask_workers_on_this_host_read_the_store(cached: Cached, tmp_path: Path) -> None:
    from distributed import LocalCluster

    db = copy_store(cached.store, tmp_path / "s.db")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        proc = fastaudit("scan", *EVERY_MEMBER, "--db", db, "--scheduler", cluster.scheduler_address,
                         cached.root / "wheels" / "second", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    second = usage(db, 2)
    assert second["members_read"] == 0 and second["members_from_store"] > 0
    assert second["wheels_without_store"] == 0
    assert_same_as_without_cache(cached, db, "second")


def _namespaced_worker(how: str, address: str, store_folder: Path, log: Path) -> subprocess.Popen[str]:
    """A Dask worker in its own Linux namespace: another host name (UTS), or the store's folder
    hidden under an empty tmpfs (mount): what a worker on another machine sees of the store."""
    worker = f"exec {sys.executable} -m distributed.cli.dask_worker {address} --nthreads 1 --no-nanny" \
             " --no-dashboard"
    setup = {"another host": "hostname fastaudit-elsewhere", "store hidden": f"mount -t tmpfs none {store_folder}"}
    flags = {"another host": "-u", "store hidden": "-m"}
    probe = subprocess.run(["unshare", flags[how], "sh", "-c", setup[how]], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a namespace here ({probe.stderr.strip()})")
    with log.open("w") as out:  # a file, not a pipe nobody reads while the worker runs
        return subprocess.Popen(["unshare", flags[how], "sh", "-c", f"{setup[how]} && {worker}"],
                                stdout=out, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("how,why", [("another host", "the store is on"), ("store hidden", "cannot see the store")])
def test_a_dask_worker_that_cannot_see_the_store_scans_without_its_cache(
        how: str, why: str, cached: Cached, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    store_folder = tmp_path / "store"
    store_folder.mkdir()
    db = copy_store(cached.store, store_folder / "s.db")
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as cluster:
        worker = _namespaced_worker(how, cluster.scheduler_address, store_folder, tmp_path / "worker.log")
        try:
            with Client(cluster.scheduler_address) as client:
                client.wait_for_workers(1, timeout=60)
                if how == "store hidden":  # the worker sees the wheels, not the store
                    assert client.submit(Path.exists, db).result() is False
                    assert client.submit(Path.exists, cached.root / "wheels" / "second").result() is True
            proc = fastaudit("scan", *EVERY_MEMBER, "--db", db, "--scheduler", cluster.scheduler_address,
                             cached.root / "wheels" / "second", cwd=tmp_path)
        finally:
            worker.terminate()
            worker.communicate(timeout=30)
    assert proc.returncode == 0, proc.stderr
    second = usage(db, 2)
    assert second["members_from_store"] == 0 and second["rows_stored"] == 0
    assert second["wheels_without_store"] == len(cached.names) and second["members_read"] > 0
    assert f"a worker without the store's cache: {why}" in second["notes"]
    assert "ELF cache note: a worker without the store's cache" in proc.stdout
    assert_same_as_without_cache(cached, db, "second")


def test_two_runs_through_dask_leave_facts_only_once(cached: Cached, tmp_path: Path) -> None:
    """Facts written by one run are reused by the next on the same cluster, and the table holds one
    row per member and facts version, whatever number of workers stored it."""
    from distributed import LocalCluster

    db = tmp_path / "s.db"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        for name in ("third", "fourth"):
            assert fastaudit("scan", *EVERY_MEMBER, "--db", db, "--scheduler", cluster.scheduler_address,
                             cached.root / "wheels" / name, cwd=tmp_path).returncode == 0
    first, second = usage(db, 1), usage(db, 2)
    assert first["members_read"] > 0 and second["members_read"] == 0
    assert query(db, "SELECT count(*) = count(DISTINCT member_key || facts_version) FROM elf_cache") == [(1,)]
    rows = query(cached.store, "SELECT count(*) FROM elf_cache")
    assert query(db, "SELECT count(*) FROM elf_cache") == rows
    assert json.loads(query(db, "SELECT arguments FROM runs WHERE id=2")[0][0])["elf_cache"] is True


# ---- the size below which a member is read again rather than stored -----------------------------

def test_small_members_are_read_again_not_stored(cached: Cached, tmp_path: Path) -> None:
    db = tmp_path / "default.db"
    assert fastaudit("scan", "--db", db, "--jobs", "1", cached.root / "wheels" / "first", cwd=tmp_path).returncode == 0
    sizes = [size for (size,) in query(db, "SELECT member_size FROM elf_cache")]
    large = {size for (size,) in query(cached.store, "SELECT member_size FROM elf_cache") if size >= 1 << 20}
    assert large, "the wheels hold no member of 1 MiB or more: the threshold was not tested"
    assert sizes and min(sizes) >= 1 << 20 and set(sizes) == large
    proc = fastaudit("scan", "--db", db, "--jobs", "1", cached.root / "wheels" / "second", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    second = usage(db, 2)
    assert second["members_from_store"] == len(sizes)   # every large member, from the store
    assert 0 < second["members_read"] < cached.members  # the small ones, read again
    assert_same_as_without_cache(cached, db, "second")
