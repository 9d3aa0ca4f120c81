"""`fastaudit scan` and `export` as a user runs them: real processes, real SQLite files, signals
sent to the whole process group, two scans on one store, and a real Dask cluster on loopback.

The wheels are the gcc-built scenario wheels and the "ci" set of real PyPI wheels, linked (or
copied) into temporary folders: the shared download cache is never scanned itself. Every stored
report is compared with what `show --json` gives for the same wheel.
"""
from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fastaudit import errors
from fastaudit.analyze import audit_wheel
from fastaudit.results import to_json
from fastaudit.scan import content_key
from fastaudit.store import Store, StoreError
from tests import elfbuild

LINUX_TAG = elfbuild.DEFAULT_TAG
CLI_TIMEOUT = 120
GROUP_EXIT_TIMEOUT = 15.0


# ---- processes -----------------------------------------------------------------------------------

def fastaudit(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "fastaudit", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    return proc


def start_scan(db: Path, *args: str | Path) -> subprocess.Popen[str]:
    """A scan in its own session, so that a signal to its process group reaches its workers too."""
    return subprocess.Popen([sys.executable, "-m", "fastaudit", "scan", "--db", str(db), "--jobs", "2",
                             *map(str, args)], cwd=db.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def group_members(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def assert_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + GROUP_EXIT_TIMEOUT
    while (alive := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, f"processes of the scan's group still running: {alive}"


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + CLI_TIMEOUT
    while not condition():
        assert proc.poll() is None, f"the scan ended (exit {proc.returncode}) before {what}; " \
                                    "the folder holds too little work for this machine"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# ---- the store, read from outside ----------------------------------------------------------------

def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as con:
        return con.execute(sql, params).fetchall()


def progress(db: Path) -> tuple[int, int]:
    """(runs, results) as a concurrent reader sees them; (0, 0) before the schema exists."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
            results = con.execute("SELECT count(*) FROM results").fetchone()[0]
            return runs, results
    except sqlite3.OperationalError:  # no file yet, or no tables yet
        return 0, 0


def run_row(db: Path, run_id: int) -> dict[str, Any]:
    with closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    assert row is not None, f"no run {run_id}"
    return dict(row)


def assert_one_result_per_wheel(db: Path, wheels: Iterable[Path]) -> None:
    """Every wheel has exactly one result, nothing else has one, and the file is sound."""
    keys = {content_key(path, False) for path in wheels}
    per_wheel = dict(query(db, "SELECT w.content_key, count(r.id) FROM wheels w"
                               " LEFT JOIN results r ON r.wheel_id = w.id GROUP BY w.id"))
    assert per_wheel == dict.fromkeys(keys, 1)
    assert query(db, "SELECT count(*) FROM results") == [(len(keys),)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "PRAGMA foreign_key_check") == []


def assert_results_complete(db: Path) -> None:
    """Whatever was committed was committed whole: a result with its ELF facts and its run entry."""
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    if not query(db, "SELECT name FROM sqlite_master WHERE name='results'"):
        # killed between creating the file (the switch to WAL) and committing the schema: nothing
        # was committed, and the next scan creates the schema in this file
        assert query(db, "SELECT count(*) FROM sqlite_master") == [(0,)]
        return
    for result_id, status, report, facts, listed in query(
            db, "SELECT r.id, r.status, r.report,"
                " (SELECT count(*) FROM elf_facts f WHERE f.result_id = r.id),"
                " (SELECT count(*) FROM run_wheels rw WHERE rw.result_id = r.id AND rw.run_id = r.run_id)"
                " FROM results r"):
        assert listed == 1, f"result {result_id} is not listed in the run that made it"
        if status in ("ok", "pure"):
            assert json.loads(report)["wheel"], f"result {result_id} has no report"
        if status == "ok":
            assert facts >= len(json.loads(report)["fastaudit"]["elf_members"]) > 0, result_id


def stored_rows(db: Path) -> dict[str, dict[str, Any]]:
    """content key -> the result as stored, without its timing, plus its ELF facts."""
    with closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT w.content_key, r.* FROM results r JOIN wheels w ON w.id = r.wheel_id").fetchall()
        facts = con.execute("SELECT w.content_key, f.member, f.arch, f.soname, f.needed, f.isa_level,"
                            " f.version_requirements FROM elf_facts f JOIN results r ON r.id = f.result_id"
                            " JOIN wheels w ON w.id = r.wheel_id").fetchall()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        fields = {k: row[k] for k in row.keys() if k not in ("id", "wheel_id", "run_id", "elapsed", "content_key")}
        fields["report"] = json.loads(fields["report"]) if fields["report"] else None
        fields["elf_facts"] = set()
        out[row["content_key"]] = fields
    for key, *fact in facts:
        out[key]["elf_facts"].add(tuple(fact))
    return out


def reports_by_path(db: Path) -> dict[str, tuple[str, dict[str, Any] | None]]:
    return {path: (status, json.loads(report) if report else None) for path, status, report in query(
        db, "SELECT w.path, r.status, r.report FROM results r JOIN wheels w ON w.id = r.wheel_id")}


# ---- wheels ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Folder:
    root: Path
    wheels: tuple[Path, ...]


def place(source: Path, dest: Path) -> Path:
    """A hard link when the file system allows it, else a copy (which keeps the mtime)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)
    return dest


def json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def patch_declared_size(wheel: Path, member: str, size: int) -> None:
    """Make the local header and the central directory both declare `size` uncompressed bytes."""
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        header_offset = zf.getinfo(member).header_offset
        position = zf.start_dir
    assert data[header_offset:header_offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, header_offset + 22, size)
    while data[position:position + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, position + 28)
        if data[position + 46:position + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, position + 24, size)
            break
        position += 46 + name_len + extra_len + comment_len
    else:
        raise AssertionError(f"{member} not in the central directory of {wheel}")
    wheel.write_bytes(data)
    with zipfile.ZipFile(wheel) as zf:
        assert zf.getinfo(member).file_size == size


def garble_deflate(wheel: Path, member: str) -> None:
    """Overwrite 20 bytes of a member's deflate stream, past its first block header."""
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        offset = zf.getinfo(member).header_offset
    name_len, extra_len = struct.unpack_from("<HH", data, offset + 26)
    start = offset + 30 + name_len + extra_len
    data[start + 40:start + 60] = b"\xff" * 20
    wheel.write_bytes(data)


def extension_of(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(".so")))


# ---- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def expected_reports(scenarios: dict[str, elfbuild.Scenario], ci_wheels: list[Path]) -> dict[str, dict[str, Any]]:
    """wheel file name -> the `show --json` object, computed in this process."""
    sources = [s.wheel for s in scenarios.values()] + ci_wheels
    assert len({p.name for p in sources}) == len(sources)
    return {p.name: json_roundtrip(to_json(audit_wheel(p))) for p in sources}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, scenarios: dict[str, elfbuild.Scenario],
          ci_wheels: list[Path]) -> Folder:
    root = tmp_path_factory.mktemp("mixed") / "wheels"
    wheels = [place(s.wheel, root / "gcc" / s.wheel.name) for s in scenarios.values()]
    wheels += [place(w, root / "pypi" / w.name) for w in ci_wheels]
    return Folder(root, tuple(wheels))


@dataclass(frozen=True)
class Scanned:
    folder: Folder
    db: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    first_jsonl: Path
    second_jsonl: Path


@pytest.fixture(scope="module")
def scanned(mixed: Folder) -> Scanned:
    """The mixed folder scanned twice into one store, each run writing its --jsonl."""
    work = mixed.root.parent
    db, first_jsonl, second_jsonl = work / "store.db", work / "first.jsonl", work / "second.jsonl"
    first = fastaudit("scan", "--db", db, "--jobs", "2", "--jsonl", first_jsonl, mixed.root, cwd=work)
    second = fastaudit("scan", "--db", db, "--jobs", "2", "--jsonl", second_jsonl, mixed.root, cwd=work)
    return Scanned(mixed, db, first, second, first_jsonl, second_jsonl)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory, ci_wheels: list[Path]) -> Folder:
    """224 wheels: the ci wheels linked into sixteen folders, some nested. Their content keys
    differ (path, size and mtime), so each is a wheel of its own to the store: enough work that
    a scan without the ELF cache runs for a few seconds on two cores."""
    root = tmp_path_factory.mktemp("many") / "wheels"
    folders = ["a", "b", "c/d", "c/e", "f", "g/h/i", "j", "k", "l/m", "n", "o", "p/q", "r", "s", "t/u", "v"]
    wheels = [place(w, root / folder / w.name) for folder in folders for w in ci_wheels]
    return Folder(root, tuple(wheels))


@pytest.fixture
def scans() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """start_scan, and at teardown the process group of any scan a failed test left running is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(db: Path, *args: str | Path) -> subprocess.Popen[str]:
        started.append(start_scan(db, *args))
        return started[-1]

    yield start
    for proc in started:
        if group_members(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.communicate(timeout=CLI_TIMEOUT)


# ---- 1. one result per wheel, equal to show --json; the second run skips everything ---------------

def test_scan_stores_one_result_per_wheel_equal_to_show_json(
        scanned: Scanned, scenarios: dict[str, elfbuild.Scenario], expected_reports: dict[str, dict[str, Any]]) -> None:
    assert scanned.first.returncode == 0, scanned.first.stderr
    assert_one_result_per_wheel(scanned.db, scanned.folder.wheels)
    stored = reports_by_path(scanned.db)
    assert set(stored) == {str(p) for p in scanned.folder.wheels}
    for path in scanned.folder.wheels:
        status, report = stored[str(path)]
        expected = expected_reports[path.name]
        assert status == ("pure" if expected["pure"] else "ok"), path.name
        assert report == expected, path.name
    for scenario in scenarios.values():  # and the verdict is auditwheel's
        assert stored[str(scanned.folder.root / "gcc" / scenario.wheel.name)][1]["overall_tag"] == scenario.overall_tag
    assert [row[0] for row in query(scanned.db, "SELECT status FROM runs ORDER BY id")] == ["completed", "completed"]


def test_show_json_cli_prints_the_stored_reports(scanned: Scanned, scenarios: dict[str, elfbuild.Scenario]) -> None:
    root = scanned.folder.root
    chosen = [root / "gcc" / scenarios[name].wheel.name for name in ("glibc_2_34", "external_libfoo", "isa_v3")]
    chosen += [p for p in scanned.folder.wheels if p.name.startswith(("Pillow-8.0.1", "pydantic_core", "six-"))]
    assert len(chosen) == 6
    proc = fastaudit("show", "--json", *chosen, cwd=root.parent)
    assert proc.returncode in (0, 1) and proc.stderr == "", proc.stderr  # 1: some of them over-promise
    shown = [json.loads(line) for line in proc.stdout.splitlines()]
    stored = reports_by_path(scanned.db)
    assert shown == [stored[str(p)][1] for p in chosen]


def test_second_scan_skips_every_wheel_and_its_jsonl_lists_them_all(scanned: Scanned) -> None:
    assert scanned.second.returncode == 0, scanned.second.stderr
    count = len(scanned.folder.wheels)
    second = run_row(scanned.db, 2)
    assert (second["status"], second["seen"], second["analyzed"], second["skipped"], second["errors"],
            second["not_analyzed"]) == ("completed", count, 0, count, 0, 0)
    outcomes = query(scanned.db, "SELECT outcome, count(*) FROM run_wheels WHERE run_id=2 GROUP BY 1")
    assert outcomes == [("skipped", count)]
    assert query(scanned.db, "SELECT DISTINCT run_id FROM results") == [(1,)]

    first_lines = [json.loads(line) for line in scanned.first_jsonl.read_text().splitlines()]
    second_lines = [json.loads(line) for line in scanned.second_jsonl.read_text().splitlines()]
    assert sorted(line["path"] for line in second_lines) == sorted(str(p) for p in scanned.folder.wheels)
    assert {line["scan"]["outcome"] for line in first_lines} == {"analyzed"}
    assert {line["scan"]["outcome"] for line in second_lines} == {"skipped"}
    for line in first_lines:
        line["scan"]["outcome"] = "skipped"
    assert second_lines == first_lines


# ---- 7. export ---------------------------------------------------------------------------------------

def test_export_csv_and_jsonl_match_the_run(scanned: Scanned) -> None:
    work, db = scanned.db.parent, scanned.db
    for run_id, scan_jsonl in ((1, scanned.first_jsonl), (2, scanned.second_jsonl)):
        exported = fastaudit("export", "--db", db, "--run", str(run_id), "--format", "jsonl", cwd=work)
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.splitlines() == scan_jsonl.read_text().splitlines()
        assert len(exported.stdout.splitlines()) == len(scanned.folder.wheels)

        table = fastaudit("export", "--db", db, "--run", str(run_id), "--format", "csv", cwd=work)
        assert table.returncode == 0, table.stderr
        rows = list(csv.DictReader(io.StringIO(table.stdout)))
        assert len(rows) == len(scanned.folder.wheels)
        lines = {line["path"]: line for line in map(json.loads, scan_jsonl.read_text().splitlines())}
        assert {row["path"] for row in rows} == set(lines)
        for row in rows:
            line = lines[row["path"]]
            assert (row["wheel"], row["status"], row["overall_tag"], row["declared_tags"]) == (
                line["wheel"], line["scan"]["status"], line.get("overall_tag", ""),
                " ".join(line["fastaudit"]["declared_tags"]))
    latest = fastaudit("export", "--db", db, "--format", "jsonl", "-o", work / "latest.jsonl", cwd=work)
    assert latest.returncode == 0, latest.stderr
    assert (work / "latest.jsonl").read_text() == scanned.second_jsonl.read_text()


# ---- 2. hostile inputs ---------------------------------------------------------------------------------

MEMBER_LIMIT = 1 << 20


def test_hostile_inputs_become_error_rows(tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    good = scenarios["glibc_2_17"].wheel
    tree = tmp_path / "tree"
    rng = random.Random(1427)
    place(good, tree / good.name)
    (tree / "broken").mkdir()
    corrupt = tree / "broken" / f"corrupt-1.0-{LINUX_TAG}.whl"
    corrupt.write_bytes(rng.randbytes(4096))
    truncated = tree / "broken" / f"truncated-1.0-{LINUX_TAG}.whl"
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size * 2 // 3])
    cut = elfbuild.pack_wheel(tree / "broken", "cutelf", "1.0", LINUX_TAG,
                              {"cutelf/_core.so": extension_of(good)[:200]})
    garbled = elfbuild.pack_wheel(tree / "broken", "garbled", "1.0", LINUX_TAG,
                                  {"garbled/_core.so": b"\x7fELF" + bytes(range(256)) * 64})
    garble_deflate(garbled, "garbled/_core.so")
    # inflates to 16 MiB; both headers say 4 KiB
    bomb = elfbuild.pack_wheel(tree / "bombs", "bomb", "1.0", LINUX_TAG,
                               {"bomb/_core.so": b"\x7fELF" + bytes(16 << 20)})
    patch_declared_size(bomb, "bomb/_core.so", 4096)
    assert bomb.stat().st_size < 100_000
    # declares 3.75 GiB, above the limit the scan is given through its environment
    huge = elfbuild.pack_wheel(tree / "bombs", "huge", "1.0", LINUX_TAG,
                               {"huge/_core.so": b"\x7fELF" + bytes(4096)})
    patch_declared_size(huge, "huge/_core.so", 0xF000_0000)
    invalid = place(good, tree / "not_a_wheel.whl")
    # named as pure or macOS, but not even zips: counted from the name, never opened
    pure = tree / "junkpure-1.0-py3-none-any.whl"
    pure.write_bytes(rng.randbytes(512))
    macos = tree / "junkmac-1.0-cp311-cp311-macosx_11_0_arm64.whl"
    macos.write_bytes(rng.randbytes(512))
    # links out of the tree: neither the file nor the folder may be followed; the file is an error row
    outside = tmp_path / "outside"
    place(good, outside / f"escaped-1.0-{LINUX_TAG}.whl")
    link = tree / f"link-1.0-{LINUX_TAG}.whl"
    link.symlink_to(outside / f"escaped-1.0-{LINUX_TAG}.whl")
    (tree / "linked_folder").symlink_to(outside, target_is_directory=True)

    env = {**os.environ, "FASTAUDIT_MAX_MEMBER_SIZE": str(MEMBER_LIMIT)}
    db = tmp_path / "hostile.db"
    proc = fastaudit("scan", "--db", db, "--jobs", "2", "--jsonl", tmp_path / "hostile.jsonl", tree,
                     cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr

    expected_errors = {  # wheel -> (the member named, a phrase of the message)
        corrupt: (None, "not a readable zip file"),
        truncated: (None, "not a readable zip file"),
        cut: ("cutelf/_core.so", "truncated"),
        garbled: ("garbled/_core.so", "corrupt deflate data"),
        bomb: ("bomb/_core.so", "inflates to more than"),
        huge: ("huge/_core.so", f"above the {MEMBER_LIMIT}-byte limit"),
        invalid: (None, "not a valid wheel file name"),
        link: (None, "a link out of the scanned tree"),
    }
    rows = {Path(path): (status, error_type, message, member) for path, status, error_type, message, member in query(
        db, "SELECT w.path, r.status, r.error_type, r.error_message, r.error_member"
            " FROM results r JOIN wheels w ON w.id = r.wheel_id")}
    assert set(rows) == {tree / good.name, pure, macos, *expected_errors}  # no link followed, the file one named
    assert rows[tree / good.name][0] == "ok"
    assert rows[pure][0] == "pure" and rows[macos][0] == "not_linux"
    for wheel, (member, phrase) in expected_errors.items():
        status, error_type, message, error_member = rows[wheel]
        assert status == "error", wheel.name
        error_class = getattr(errors, error_type, None)  # a deliberate error, not a bug caught by the net
        assert isinstance(error_class, type) and issubclass(error_class, errors.FastauditError), (
            wheel.name, error_type, message)
        assert wheel.name in message and phrase in message, (wheel.name, message)
        assert error_member == member, (wheel.name, error_member)
    run = run_row(db, 1)
    assert (run["status"], run["seen"], run["analyzed"], run["errors"], run["not_analyzed"]) == (
        "completed", 11, 1, len(expected_errors), 2)

    # the error lines of the run are auditwheel's error objects, as `show --json` prints them
    lines = {line["path"]: line for line in map(json.loads, (tmp_path / "hostile.jsonl").read_text().splitlines())}
    opened = [corrupt, truncated, cut, garbled, bomb, huge]
    shown = fastaudit("show", "--json", *opened, cwd=tmp_path, env=env)
    assert shown.returncode == 2
    for wheel, line in zip(opened, shown.stdout.splitlines(), strict=True):
        ours = {k: v for k, v in lines[str(wheel)].items() if k not in ("path", "scan")}
        assert ours == json.loads(line), wheel.name


# ---- 3. SIGKILL at random points -------------------------------------------------------------------------

KILL_ROUNDS = ("early", "early", "results", "results", "results")


def test_sigkill_at_random_points_then_a_rerun_completes(
        tmp_path: Path, many: Folder, expected_reports: dict[str, dict[str, Any]],
        scans: Callable[..., subprocess.Popen[str]]) -> None:
    rng = random.Random(20240917)
    db = tmp_path / "killed.db"
    kills: list[tuple[str, float, int]] = []  # (kind, delay, results stored after the kill)
    # --no-elf-cache throughout: every wheel is real work, so the scans last long enough to be hit
    for kind in rng.sample(KILL_ROUNDS, len(KILL_ROUNDS)):
        runs_before, results_before = progress(db)
        proc = scans(db, "--no-elf-cache", many.root)
        if kind == "early":  # during start-up, migration, discovery or the first batches
            delay = rng.uniform(0.05, 0.35)
            time.sleep(delay)
        else:  # once this run has committed some results, a little later
            target, delay = rng.randint(1, 16), rng.uniform(0.0, 0.12)
            wait_until(lambda: progress(db)[0] > runs_before and progress(db)[1] >= results_before + target,
                       proc, f"{target} results of this run")
            time.sleep(delay)
        assert proc.poll() is None, f"the scan finished before the {kind} kill after {delay:.2f} s: {kills}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=CLI_TIMEOUT)
        assert proc.returncode == -signal.SIGKILL
        assert_group_gone(proc.pid)
        if db.exists():
            assert_results_complete(db)
        kills.append((kind, round(delay, 3), progress(db)[1]))

    committed = progress(db)[1]
    assert 0 < committed < len(many.wheels), kills  # the kills landed mid-scan, with work done and left
    final = scans(db, "--no-elf-cache", many.root)
    out, err = final.communicate(timeout=CLI_TIMEOUT)
    assert final.returncode == 0, err
    assert_one_result_per_wheel(db, many.wheels)
    assert_results_complete(db)
    last = run_row(db, query(db, "SELECT max(id) FROM runs")[0][0])
    assert last["status"] == "completed" and last["skipped"] == committed
    assert last["analyzed"] + last["not_analyzed"] + last["errors"] == len(many.wheels) - committed
    assert query(db, "SELECT count(*) FROM run_wheels WHERE run_id=?", last["id"]) == [(len(many.wheels),)]
    for path, (_, report) in reports_by_path(db).items():
        assert report == expected_reports[Path(path).name], path


# ---- 5. SIGINT ---------------------------------------------------------------------------------------------

def test_sigint_stops_a_scan_cleanly_and_a_rerun_completes_the_rest(
        tmp_path: Path, many: Folder, expected_reports: dict[str, dict[str, Any]],
        scans: Callable[..., subprocess.Popen[str]]) -> None:
    db = tmp_path / "interrupted.db"
    proc = scans(db, "--no-elf-cache", many.root)
    unopened = sum(1 for p in many.wheels if p.name.endswith("-any.whl"))
    wait_until(lambda: progress(db)[1] >= unopened + 1, proc, "a first batch of opened wheels")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=CLI_TIMEOUT)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "interrupted" in out
    assert_group_gone(proc.pid)

    run = run_row(db, 1)
    committed = progress(db)[1]
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    assert 0 < committed < len(many.wheels)
    assert run["analyzed"] + run["not_analyzed"] + run["errors"] == committed
    assert_results_complete(db)

    again = fastaudit("scan", "--db", db, "--jobs", "2", "--no-elf-cache", many.root, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rerun = run_row(db, 2)
    assert rerun["status"] == "completed" and rerun["skipped"] == committed
    assert rerun["analyzed"] + rerun["not_analyzed"] + rerun["errors"] == len(many.wheels) - committed
    assert_one_result_per_wheel(db, many.wheels)
    for path, (_, report) in reports_by_path(db).items():
        assert report == expected_reports[Path(path).name], path


def test_sigint_at_random_moments_always_closes_the_run(
        tmp_path: Path, many: Folder, scans: Callable[..., subprocess.Popen[str]]) -> None:
    """Ctrl-C at seeded moments, from discovery to the last batches: the run is always closed."""
    rng = random.Random(20261125)
    db = tmp_path / "poked.db"
    interrupted = 0
    for round_number in range(1, 7):
        _, results_before = progress(db)
        proc = scans(db, "--rescan", "--no-elf-cache", many.root)
        wait_until(lambda: progress(db)[0] >= round_number, proc, f"run {round_number} to start")
        if round_number % 2:  # during discovery or the first batches
            time.sleep(rng.uniform(0.0, 0.2))
        else:  # once some results of this run are in
            target = rng.randint(1, 12)
            wait_until(lambda: query(db, "SELECT count(*) FROM run_wheels WHERE run_id=?", round_number)[0][0]
                       >= target, proc, f"{target} results of run {round_number}")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        run = run_row(db, round_number)
        assert "Traceback" not in err, err
        if proc.returncode == 0:  # the scan won the race
            assert run["status"] == "completed", run
        else:
            assert proc.returncode == 130 and "interrupted" in out, (proc.returncode, out, err)
            assert run["status"] == "interrupted", run
            interrupted += 1
        assert run["finished_at"] is not None, run
        assert_group_gone(proc.pid)
        assert_results_complete(db)
        assert not query(db, "SELECT count(*) FROM runs WHERE status='running'")[0][0]
    assert interrupted >= 4  # most rounds must land mid-scan, or this tests nothing


def _file_size_limit(limit: int) -> Callable[[], None]:
    """preexec_fn: writes past `limit` bytes fail with EFBIG, as on a full disk (SIGXFSZ ignored
    so the write returns the error instead of killing the process)."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_fails_the_scan_cleanly_and_a_rerun_completes(
        tmp_path: Path, many: Folder, expected_reports: dict[str, dict[str, Any]]) -> None:
    db = tmp_path / "full.db"
    cut = subprocess.run([sys.executable, "-m", "fastaudit", "scan", "--db", db, "--jobs", "2", many.root],
                         cwd=tmp_path, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                         preexec_fn=_file_size_limit(256 << 10))
    assert cut.returncode == 2, (cut.returncode, cut.stderr[-2000:])
    assert cut.stderr.splitlines() == [f"fastaudit: {db}: cannot write the store: disk I/O error"], cut.stderr
    assert run_row(db, 1)["status"] == "failed"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert_results_complete(db)
    committed = progress(db)[1]
    assert committed < len(many.wheels)

    again = fastaudit("scan", "--db", db, "--jobs", "2", many.root, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert run_row(db, 2)["status"] == "completed" and run_row(db, 2)["skipped"] == committed
    assert_one_result_per_wheel(db, many.wheels)
    for path, (_, report) in reports_by_path(db).items():
        assert report == expected_reports[Path(path).name], path


# ---- 4. two scans at once ------------------------------------------------------------------------------

def test_two_scans_at_once_on_one_store(tmp_path: Path, many: Folder, scenarios: dict[str, elfbuild.Scenario],
                                        scans: Callable[..., subprocess.Popen[str]]) -> None:
    shared = [many.root / folder for folder in ("a", "b", "c")]
    only_a = [place(s.wheel, tmp_path / "only_a" / s.wheel.name) for s in scenarios.values()]
    only_b = [place(s.wheel, tmp_path / "only_b" / s.wheel.name) for s in scenarios.values()]
    shared_wheels = [p for p in many.wheels if any(folder in p.parents for folder in shared)]
    db = tmp_path / "shared.db"

    first = scans(db, *shared, tmp_path / "only_a")
    second = scans(db, *shared, tmp_path / "only_b")
    for proc in (first, second):
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    runs = {row["id"]: row for row in (run_row(db, 1), run_row(db, 2))}
    assert all(r["status"] == "completed" for r in runs.values())
    assert runs[1]["started_at"] < runs[2]["finished_at"] and runs[2]["started_at"] < runs[1]["finished_at"]

    assert_one_result_per_wheel(db, [*shared_wheels, *only_a, *only_b])
    assert_results_complete(db)
    listed = dict(query(db, "SELECT run_id, count(*) FROM run_wheels GROUP BY run_id"))
    assert listed == {1: len(shared_wheels) + len(only_a), 2: len(shared_wheels) + len(only_b)}
    # a shared wheel points to the same result from both runs
    assert query(db, "SELECT count(*) FROM (SELECT wheel_id FROM run_wheels GROUP BY wheel_id"
                     " HAVING count(*) = 2 AND count(DISTINCT result_id) = 1)") == [(len(shared_wheels),)]


def _open_fresh_stores(folder: str, count: int, barrier: Any) -> None:
    failures = 0
    for i in range(count):
        barrier.wait()
        try:
            Store(Path(folder, f"{i}.db")).close()
        except StoreError:
            failures += 1
    sys.exit(failures)


def test_a_fresh_store_opened_by_two_processes_at_once(tmp_path: Path) -> None:
    """Two scans started together on a new store file must both open it (the busy timeout applies)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_open_fresh_stores, args=(str(tmp_path), 40, barrier)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=CLI_TIMEOUT)
        if proc.is_alive():
            proc.kill()
    assert [proc.exitcode for proc in procs] == [0, 0], "opens that failed, per process"


def test_opening_a_store_waits_for_a_writer_instead_of_failing(tmp_path: Path) -> None:
    """The state the race above passes through, made to last: a connection holds the write lock of a
    new file still in rollback mode (as another opener does while it switches the file to WAL). A
    Store opened meanwhile must wait for it, within its busy timeout, not fail at once."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: (holder.execute("COMMIT"), holder.close()))
    release.start()
    started = time.monotonic()
    try:
        with Store(path) as store:
            assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        release.join()
    assert time.monotonic() - started >= 0.4  # it waited for the holder


# ---- 6. Dask ---------------------------------------------------------------------------------------------------

def test_dask_cluster_gives_the_same_rows_as_the_local_pool(scanned: Scanned, tmp_path: Path) -> None:
    from distributed import LocalCluster

    db = tmp_path / "dask.db"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        proc = fastaudit("scan", "--db", db, "--scheduler", address, scanned.folder.root, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        # how many audit_batch tasks reached each state, on the cluster's workers
        batches = dict(cluster.scheduler.task_prefixes["audit_batch"].state_counts)
    assert batches["memory"] > 0 and batches.get("erred", 0) == 0, batches
    assert multiprocessing.active_children() == []

    arguments = json.loads(run_row(db, 1)["arguments"])
    assert arguments["scheduler"] == address
    on_dask, local = stored_rows(db), stored_rows(scanned.db)
    assert set(on_dask) == {content_key(p, False) for p in scanned.folder.wheels}
    assert on_dask == local
