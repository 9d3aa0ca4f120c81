"""The file system as a hostile uploader or an unlucky operator leaves it, and outputs that cannot
be written: each case is one typed error row (scan) or one line (every other command), the rest of
the work completes, nothing is written outside the outputs, and no call takes more than
HANG_LIMIT seconds or MAX_RSS of memory on these small inputs.

Real processes throughout (`python -m fastaudit`), real FIFOs, devices, links and permissions.
Permission cases run the command as an unprivileged user when the tests run as root (root reads a
chmod 000 file).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastaudit import errors
from fastaudit.store import _MIGRATIONS, Store
from tests import elfbuild

TAG = elfbuild.DEFAULT_TAG
HANG_LIMIT = 5.0  # seconds: the bound for one call on an input under 10 MB
MAX_RSS = 500 << 20  # bytes, likewise
# root reads a chmod 000 file: drop the capabilities that let it (root's own venv stays readable)
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


# Runs the command and records the peak RSS of it and the workers it waited for. The command is
# started from this small process, not from pytest: a child's peak RSS counts what it inherits at
# fork, and pytest may hold hundreds of MB by then.
MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss: int  # bytes, of the command and the workers it waited for


def fastaudit(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
              preexec: Callable[[], None] | None = None, limit: float = HANG_LIMIT,
              unprivileged: bool = False) -> Ran:
    """Run the command; fail on a hang (killed after `limit` seconds), a traceback or too much
    memory. `unprivileged`: as root without the capabilities that override file permissions."""
    prefix = UNPRIVILEGED if unprivileged and os.geteuid() == 0 else []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss_file:
        started = time.monotonic()
        proc = subprocess.Popen([*prefix, sys.executable, "-c", MEASURE, rss_file.name, sys.executable, "-m",
                                 "fastaudit", *map(str, args)], cwd=cwd, env=env,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, preexec_fn=preexec,
                                start_new_session=True)
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > limit:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                raise AssertionError(f"fastaudit {' '.join(map(str, args))} still running after {limit} s")
            time.sleep(0.01)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        ran = Ran(proc.returncode, out.read().decode("utf-8", "surrogateescape"),
                  err.read().decode("utf-8", "surrogateescape"), seconds, int(rss_file.read()) * 1024)
    assert "Traceback" not in ran.stderr and "Exception ignored" not in ran.stderr, ran.stderr
    assert ran.max_rss < MAX_RSS, f"{ran.max_rss >> 20} MB"
    return ran


def one_line(ran: Ran, *phrases: str) -> str:
    """The single stderr line of a failed command (beside a scan's progress lines), which names
    every phrase."""
    lines = [line for line in ran.stderr.splitlines() if not re.match(r"scanned \d+/\d+ ", line)]
    assert len(lines) == 1 and lines[0].startswith("fastaudit: "), ran.stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


def rows(db: Path) -> dict[str, tuple[str, str | None, str | None]]:
    """path -> (status, error type, error message) of every stored result."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        return {path: (status, error_type, message) for path, status, error_type, message in con.execute(
            "SELECT w.path, r.status, r.error_type, r.error_message FROM results r JOIN wheels w ON w.id = r.wheel_id")}


def committed(db: Path) -> bool:
    """Whether a scan has committed a first result (False before the file or its tables exist)."""
    try:
        return bool(rows(db))
    except sqlite3.OperationalError:
        return False


def assert_typed(error_type: str | None) -> None:
    error_class = getattr(errors, error_type or "", None)
    assert isinstance(error_class, type) and issubclass(error_class, errors.FastauditError), error_type


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under folder with its content (None for what is not a regular file)."""
    found: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            found[str(path.relative_to(folder))] = None
        else:
            found[str(path.relative_to(folder))] = path.read_bytes()
    return found


def extension_of(wheel: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(".so")))


def deep_tree(root: Path, depth: int, name: str) -> list[str]:
    """depth nested folders named `name` under root, made through folder descriptors (the path
    may be longer than PATH_MAX); the components, for the caller to build the path."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    return [name] * depth


def remove_deep(root: Path) -> None:
    """Remove a tree of any depth without recursion (shutil.rmtree recurses per level) and
    without long paths: through folder descriptors, children before their parents."""
    if not root.exists():
        return
    stack = [(os.open(root, os.O_RDONLY | os.O_DIRECTORY), "")]  # (descriptor, name in the parent)
    while stack:
        fd, _ = stack[-1]
        folders = []
        for name in os.listdir(fd):
            if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                folders.append(name)
            else:
                os.unlink(name, dir_fd=fd)
        if folders:
            stack.append((os.open(folders[0], os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), folders[0]))
            continue
        os.close(fd)
        _, name = stack.pop()
        if stack:
            os.rmdir(name, dir_fd=stack[-1][0])
    os.rmdir(root)


# ---- 3. the file system -------------------------------------------------------------------------------------

@dataclass
class HostileTree:
    root: Path
    good: list[Path]  # wheels that must be audited (ok rows)
    bad: dict[Path, tuple[str, str]]  # path -> (error type, phrase of the message)
    skipped: list[Path]  # paths that must have no row at all (a link to a wheel found under its name)


def build_hostile_tree(root: Path, wheels: list[Path], *, with_devices: bool = True) -> HostileTree:
    """Every case of class 3 in one tree, beside four distinct good wheels (distinct content, so
    that --verify-hash, which identifies wheels by content, stores each)."""
    good_wheel, inside_wheel, bottom_wheel, other_wheel = wheels
    root.mkdir(parents=True, exist_ok=True)
    good = [root / good_wheel.name]
    shutil.copy2(good_wheel, good[0])
    bad: dict[Path, tuple[str, str]] = {}

    fifo = root / f"fifo-1.0-{TAG}.whl"
    os.mkfifo(fifo)
    bad[fifo] = ("PathError", "a FIFO, not a regular file")
    if with_devices and os.geteuid() == 0:
        device = root / f"device-1.0-{TAG}.whl"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 5))  # /dev/zero: reading it never ends
        bad[device] = ("PathError", "a character device")
    sock_dir = Path(tempfile.mkdtemp(prefix="fa-sock-"))  # a socket path must be short
    try:
        import socket

        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(sock_dir / "s"))
            (sock_dir / "s").rename(root / f"socket-1.0-{TAG}.whl")
        bad[root / f"socket-1.0-{TAG}.whl"] = ("PathError", "a socket")
    finally:
        shutil.rmtree(sock_dir)

    folder_wheel = root / f"folder-1.0-{TAG}.whl"
    folder_wheel.mkdir()
    bad[folder_wheel] = ("PathError", "a directory, not a regular file")
    inside = folder_wheel / inside_wheel.name  # a wheel inside it is still found
    shutil.copy2(inside_wheel, inside)
    good.append(inside)

    outside = root.parent / f"{root.name}-outside"
    outside.mkdir(exist_ok=True)
    shutil.copy2(good_wheel, outside / f"escaped-1.0-{TAG}.whl")
    out_link = root / f"out-1.0-{TAG}.whl"
    out_link.symlink_to(outside / f"escaped-1.0-{TAG}.whl")
    bad[out_link] = ("PathError", "a link out of the scanned tree")
    etc_link = root / f"etc-1.0-{TAG}.whl"
    etc_link.symlink_to("../" * 40 + "etc/passwd")
    bad[etc_link] = ("PathError", "a link out of the scanned tree")
    dangling = root / f"dangling-1.0-{TAG}.whl"
    dangling.symlink_to(f"nothing-1.0-{TAG}.whl")
    bad[dangling] = ("PathError", "a link to nothing readable")
    loop = root / f"loop-1.0-{TAG}.whl"
    loop.symlink_to(loop.name)
    bad[loop] = ("PathError", "a link to nothing readable")
    in_link = root / f"alias-1.0-{TAG}.whl"
    in_link.symlink_to(good_wheel.name)  # the same wheel: audited once, under its own name
    (root / "folder_link").symlink_to(outside, target_is_directory=True)  # never entered

    not_utf8 = Path(os.fsdecode(bytes(root) + b"/caf\xe9-1.0-" + TAG.encode() + b".whl"))
    shutil.copy2(other_wheel, not_utf8)
    bad[not_utf8] = ("PathError", "not UTF-8")

    shallow = root / "deep"
    shallow.mkdir()
    parts = deep_tree(shallow, sys.getrecursionlimit() + 100, "d")  # deeper than Python recurses
    bottom = Path(shallow, *parts, bottom_wheel.name)
    shutil.copy2(bottom_wheel, bottom)
    good.append(bottom)
    too_deep = root / "too_deep"
    too_deep.mkdir()
    parts = deep_tree(too_deep, 20, "x" * 250)  # past PATH_MAX: the folder cannot be listed by name
    first_too_long = next(Path(too_deep, *parts[:k]) for k in range(len(parts))
                          if len(os.fsencode(Path(too_deep, *parts[:k]))) >= 4096)
    bad[first_too_long] = ("PathError", "cannot list the folder")
    return HostileTree(root, good, bad, [in_link])


def scan_rows_match(tree: HostileTree, db: Path, extra_bad: dict[Path, tuple[str, str]] | None = None) -> None:
    stored = rows(db)
    bad = {**tree.bad, **(extra_bad or {})}
    expected = {str(p) for p in tree.good} | set(map(_stored_path, bad))
    assert set(stored) == expected, set(stored) ^ expected
    for path in tree.good:
        assert stored[str(path)][0] == "ok", (path, stored[str(path)])
    for path, (error_type, phrase) in bad.items():
        status, stored_type, message = stored[_stored_path(path)]
        assert (status, stored_type) == ("error", error_type), (path, stored[_stored_path(path)])
        assert_typed(stored_type)
        assert phrase in message, (path, message)


def _stored_path(path: Path) -> str:
    """A path as the store holds it: undecodable bytes of a name as `\\udcXX` text."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def good_four(scenarios: dict[str, elfbuild.Scenario]) -> list[Path]:
    return [scenarios[name].wheel for name in ("glibc_2_17", "glibc_2_34", "origin_chain", "isa_v3")]


@pytest.fixture
def hostile(tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> Iterator[HostileTree]:
    tree = build_hostile_tree(tmp_path / "tree", good_four(scenarios))
    yield tree
    remove_deep(tree.root / "too_deep")
    remove_deep(tree.root / "deep")


@pytest.mark.parametrize("verify_hash", [False, True], ids=["stat", "verify-hash"])
def test_scan_gives_each_hostile_path_its_own_error_row(hostile: HostileTree, tmp_path: Path,
                                                        verify_hash: bool) -> None:
    db = tmp_path / "scan.db"
    before = snapshot(tmp_path / "tree-outside")
    flags = ["--verify-hash"] if verify_hash else []
    ran = fastaudit("scan", "--db", db, "--jobs", "2", *flags, "--jsonl", tmp_path / "run.jsonl", hostile.root,
                    cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    scan_rows_match(hostile, db)
    summary = ran.stdout
    assert f"analyzed {len(hostile.good)}" in summary and f"errors {len(hostile.bad)}" in summary, summary
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert len(lines) == len(hostile.good) + len(hostile.bad)
    assert snapshot(tmp_path / "tree-outside") == before  # nothing written outside the outputs
    written = {p.name for p in tmp_path.iterdir()} - {"scan.db-wal", "scan.db-shm"}
    assert written == {"tree", "tree-outside", "scan.db", "run.jsonl"}
    # a second scan finds the same rows and changes none
    again = fastaudit("scan", "--db", db, "--jobs", "2", *flags, hostile.root, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    scan_rows_match(hostile, db)


def test_unreadable_files_and_folders_are_error_rows_not_silence(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    good = scenarios["glibc_2_17"].wheel
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy2(good, tree / good.name)
    locked_file = tree / f"locked-1.0-{TAG}.whl"
    shutil.copy2(good, locked_file)
    locked_file.chmod(0)
    locked_folder = tree / "locked"
    locked_folder.mkdir()
    shutil.copy2(good, locked_folder / f"hidden-1.0-{TAG}.whl")
    locked_folder.chmod(0)
    blind_folder = tree / "blind"  # listable, but its files cannot be reached (no x bit)
    blind_folder.mkdir()
    shutil.copy2(good, blind_folder / f"blind-1.0-{TAG}.whl")
    blind_folder.chmod(0o644)
    db = tmp_path / "perm.db"
    ran = fastaudit("scan", "--db", db, "--jobs", "2", tree, cwd=tmp_path, unprivileged=True)
    assert ran.returncode == 0, ran.stderr
    stored = rows(db)
    assert stored[str(tree / good.name)][0] == "ok"
    for path, phrase in ((locked_file, "cannot open: Permission denied"),
                         (locked_folder, "cannot list the folder: Permission denied"),
                         (blind_folder / f"blind-1.0-{TAG}.whl", "Permission denied")):
        status, error_type, message = stored[str(path)]
        assert status == "error" and phrase in message, (path, stored[str(path)])
        assert_typed(error_type)
    assert len(stored) == 4


def test_show_audits_the_readable_wheels_beside_bad_arguments(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    good = [scenarios["glibc_2_17"].wheel, scenarios["origin_chain"].wheel]
    folder = tmp_path / "args"
    folder.mkdir()
    for wheel in good:
        shutil.copy2(wheel, folder / wheel.name)
    fifo = folder / f"fifo-1.0-{TAG}.whl"
    os.mkfifo(fifo)
    directory = folder / f"dir-1.0-{TAG}.whl"
    directory.mkdir()
    locked = folder / f"locked-1.0-{TAG}.whl"
    shutil.copy2(good[0], locked)
    locked.chmod(0)
    missing = folder / f"missing-1.0-{TAG}.whl"
    bad = {fifo: "a FIFO", directory: "a directory", locked: "Permission denied", missing: "No such file"}
    if os.geteuid() == 0:
        device = folder / f"zero-1.0-{TAG}.whl"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 5))
        bad[device] = "a character device"
    arguments = [fifo, folder / good[0].name, directory, locked, missing, folder / good[1].name, *bad.keys() - {
        fifo, directory, locked, missing}]
    for as_json in (False, True):
        ran = fastaudit("show", *(["--json"] if as_json else []), *arguments, cwd=tmp_path,
                        unprivileged=True)
        assert ran.returncode == 2, ran.stderr
        errors_seen = ran.stderr.splitlines()
        assert len(errors_seen) == len(bad), ran.stderr
        for path, phrase in bad.items():
            assert sum(str(path) in line and phrase in line for line in errors_seen) == 1, (path, ran.stderr)
        if as_json:
            objects = [json.loads(line) for line in ran.stdout.splitlines()]
            assert [o["wheel"] for o in objects] == [Path(a).name for a in arguments]
            assert [o.get("overall_tag") for o in objects if "error" not in o] == \
                [scenarios["glibc_2_17"].overall_tag, scenarios["origin_chain"].overall_tag]
        else:
            assert ran.stdout.count("satisfies:") == 2 and all(w.name in ran.stdout for w in good)


def test_a_file_swapped_for_a_fifo_after_the_check_is_not_waited_on(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    """The reader opens the very file that was checked (its descriptor), not what the name later
    names: a mirror sync (or an attacker) replacing the wheel by a FIFO mid-audit cannot hang it."""
    from fastaudit.files import reading
    from fastaudit.scan import audit_path

    wheel = tmp_path / scenarios["glibc_2_17"].wheel.name
    shutil.copy2(scenarios["glibc_2_17"].wheel, wheel)
    expected, _ = audit_path(wheel)
    with reading(wheel) as readable:
        wheel.rename(tmp_path / "moved.whl")
        os.mkfifo(wheel)
        from fastaudit.analyze import read_wheel_elves

        elves = read_wheel_elves(readable)
    assert set(elves) == set(expected.elf_members)
    with pytest.raises(errors.PathError, match="a FIFO"):
        audit_path(wheel)


def holders_of(path: Path, sid: int) -> list[int]:
    """Processes of a session that have `path` open."""
    found = []
    for pid in processes_of_session(sid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def test_a_worker_that_dies_is_an_error_row_and_the_scan_goes_on(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    """A worker killed by a signal (here SIGKILL whenever a worker holds one wheel open, as the
    out-of-memory killer picks the worker with the largest wheel) breaks the pool and every batch
    in flight: the wheel whose worker dies while it is audited alone gets an error row, the others
    are audited again in a new pool, and the scan completes."""
    tree = tmp_path / "tree"
    tree.mkdir()
    good = []
    for name in ("glibc_2_17", "glibc_2_34", "origin_chain", "external_libfoo", "isa_v3", "zlib_blacklist_all"):
        good.append(tree / scenarios[name].wheel.name)
        shutil.copy2(scenarios[name].wheel, good[-1])
    # a real extension and 256 MiB of zeros (256 KB compressed), spooled to a sparse file: a
    # fraction of a second of inflating, long enough to be seen holding the wheel open
    culprit = elfbuild.pack_wheel(tree, "fa_large", "1.0", TAG, {"fa_large/_core.so": extension_of(good[0])})
    big = tmp_path / "big.so"
    with big.open("wb") as f:
        f.write(extension_of(good[0]))
        f.truncate(256 << 20)
    culprit.unlink()
    culprit = elfbuild.pack_wheel(tree, "fa_large", "1.0", TAG, {"fa_large/_core.so": big})
    big.unlink()
    env = {**os.environ, "FASTAUDIT_SPOOL_SIZE": str(16 << 20), "FASTAUDIT_MAX_RATIO": "100000"}
    db = tmp_path / "died.db"
    proc = subprocess.Popen([sys.executable, "-m", "fastaudit", "scan", "--db", str(db), "--jobs", "2",
                             "--no-elf-cache", str(tree)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    kills = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the scan did not end"
        for pid in holders_of(culprit, proc.pid):
            if pid != proc.pid:
                os.kill(pid, signal.SIGKILL)
                kills += 1
        time.sleep(0.005)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert kills >= 2  # in its batch, then alone
    stored = rows(db)
    assert set(stored) == {str(p) for p in good} | {str(culprit)}
    assert all(stored[str(p)][0] == "ok" for p in good), stored
    status, error_type, message = stored[str(culprit)]
    assert (status, error_type) == ("error", "ScanWorkerError") and culprit.name in message, stored[str(culprit)]
    assert "run 1 completed" in out and "errors 1" in out, out
    assert not processes_of_session(proc.pid)


# ---- 4. a killed scan ------------------------------------------------------------------------------------------

def processes_of_session(sid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path("/proc", entry, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def busy_tree(tmp_path_factory: pytest.TempPathFactory, ci_wheels: list[Path]) -> Path:
    """Enough real work (the ci wheels, four copies each) for a scan to be killed in the middle."""
    root = tmp_path_factory.mktemp("busy")
    for copy in range(4):
        for wheel in ci_wheels:
            (root / str(copy)).mkdir(exist_ok=True)
            os.link(wheel, root / str(copy) / wheel.name)
    return root


def start_scan(db: Path, tree: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "fastaudit", "scan", "--db", str(db), "--jobs", "2",
                             "--no-elf-cache", *args, str(tree)], cwd=db.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def process_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return None


def run_statuses(db: Path) -> dict[int, str]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        return dict(con.execute("SELECT id, status FROM runs"))


def test_workers_die_with_a_killed_scan_and_the_run_reads_as_abandoned(tmp_path: Path, busy_tree: Path) -> None:
    db = tmp_path / "killed.db"
    proc = start_scan(db, busy_tree)
    wait_for(lambda: len(processes_of_session(proc.pid)) >= 3, "the scan's workers")  # the scan and 2 workers
    wait_for(lambda: committed(db), "a first committed batch")
    os.kill(proc.pid, signal.SIGKILL)  # the scan only: nobody signals its workers
    proc.communicate(timeout=30)
    started = time.monotonic()
    wait_for(lambda: not processes_of_session(proc.pid), "the workers to die with the scan", timeout=5)
    assert time.monotonic() - started < 5
    assert run_statuses(db) == {1: "running"}  # as the killed process left it

    # readers cannot write: they read it as abandoned, and the file is left as it was
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    ran = fastaudit("report", "--db", db, "-o", tmp_path / "report", "--run", "1", "--format", "json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads((tmp_path / "report" / "report.json").read_text())["run"]["status"] == "abandoned"
    ran = fastaudit("export", "--db", db, "--format", "csv", cwd=tmp_path)
    assert ran.returncode == 0 and ran.stdout.startswith("path,wheel,status"), ran.stderr
    assert ran.stderr == "fastaudit: warning: run 1 is abandoned: its results are partial\n"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest

    # the next scan marks it, and completes the rest
    ran = fastaudit("scan", "--db", db, "--jobs", "2", busy_tree, cwd=tmp_path, limit=120)
    assert ran.returncode == 0, ran.stderr
    assert run_statuses(db) == {1: "abandoned", 2: "completed"}


# A worker forked just before the scan is killed asks for its death signal too late: the scan is
# already a zombie (its parent has not reaped it), which signal 0 still reaches.
_WORKER_OF_A_DEAD_SCAN = """
import os, sys, time
from fastaudit import scan
scan_pid = os.getpid()
worker = os.fork()
if worker == 0:
    while os.getppid() == scan_pid:  # until the scan has died
        time.sleep(0.01)
    scan._init_worker(scan_pid)
    open(sys.argv[1], "w").write("the worker outlived its scan")
    os._exit(0)
open(sys.argv[2], "w").write(str(worker))
os._exit(0)  # the scan dies; its parent (the test) does not reap it yet
"""


def test_a_worker_that_starts_after_its_scan_died_exits(tmp_path: Path) -> None:
    survived, worker_pid = tmp_path / "survived", tmp_path / "worker.pid"
    scan_proc = subprocess.Popen([sys.executable, "-c", _WORKER_OF_A_DEAD_SCAN, str(survived), str(worker_pid)])
    try:
        wait_for(lambda: process_state(scan_proc.pid) == "Z", "the scan to be a zombie")
        worker = int(worker_pid.read_text())
        wait_for(lambda: process_state(worker) in (None, "Z") or survived.exists(), "the worker to end")
        assert not survived.exists()
        assert Path(f"/proc/{scan_proc.pid}").exists(), "the scan was reaped: the zombie case was not tested"
    finally:
        scan_proc.wait()


def test_a_live_scan_sharing_the_store_is_not_marked_abandoned(tmp_path: Path, busy_tree: Path,
                                                               scenarios: dict[str, elfbuild.Scenario]) -> None:
    db = tmp_path / "shared.db"
    long_scan = start_scan(db, busy_tree)
    try:
        wait_for(lambda: committed(db), "the long scan's first batch")
        small = tmp_path / "small"
        small.mkdir()
        shutil.copy2(scenarios["glibc_2_17"].wheel, small)
        ran = fastaudit("scan", "--db", db, "--jobs", "1", small, cwd=tmp_path, limit=30)
        assert ran.returncode == 0, ran.stderr
        assert long_scan.poll() is None, "the long scan ended too soon to test this"
        assert run_statuses(db) == {1: "running", 2: "completed"}
    finally:
        long_scan.wait(timeout=300)
    assert long_scan.returncode == 0, long_scan.stderr.read() if long_scan.stderr else ""
    assert run_statuses(db) == {1: "completed", 2: "completed"}


# ---- 5. outputs that cannot be written ---------------------------------------------------------------------

@pytest.fixture
def small_store(tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> Path:
    tree = tmp_path / "small"
    for name in ("glibc_2_17", "glibc_2_34", "origin_chain"):
        tree.mkdir(exist_ok=True)
        shutil.copy2(scenarios[name].wheel, tree)
    db = tmp_path / "small.db"
    ran = fastaudit("scan", "--db", db, "--jobs", "1", tree, cwd=tmp_path, limit=30)
    assert ran.returncode == 0, ran.stderr
    return db


def full_disk(limit: int) -> Callable[[], None]:
    """preexec_fn: writes past `limit` bytes fail with EFBIG, as on a full disk."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_scan_refuses_an_unwritable_jsonl_before_it_scans(tmp_path: Path,
                                                          scenarios: dict[str, elfbuild.Scenario]) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy2(scenarios["glibc_2_17"].wheel, tree)
    a_file = tmp_path / "a file"
    a_file.write_text("")
    for target, phrase in ((tmp_path / "missing" / "out.jsonl", "No such file or directory"),
                           (a_file / "out.jsonl", "Not a directory"),
                           (tmp_path, "it is a directory")):
        db = tmp_path / "never.db"
        ran = fastaudit("scan", "--db", db, "--jsonl", target, tree, cwd=tmp_path)
        assert ran.returncode == 2
        one_line(ran, "cannot write", phrase)
        assert not db.exists()  # refused before the store was even created


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_to_a_missing_folder_or_a_full_disk_is_one_line_and_leaves_nothing(
        small_store: Path, tmp_path: Path, fmt: str) -> None:
    # a reader of a WAL store needs its -shm, which no file size limit would let it create: the
    # store goes back to a rollback journal, so that only the export's own output meets the limit
    with closing(sqlite3.connect(small_store)) as con:
        con.execute("PRAGMA journal_mode=DELETE")
    out = tmp_path / "exports"
    out.mkdir()
    ran = fastaudit("export", "--db", small_store, "--format", fmt, "-o", out / "missing" / f"x.{fmt}", cwd=tmp_path)
    assert ran.returncode == 2
    one_line(ran, "cannot write", "No such file or directory")
    previous = out / f"x.{fmt}"
    previous.write_text("yesterday's export\n")
    ran = fastaudit("export", "--db", small_store, "--format", fmt, "-o", previous, cwd=tmp_path,
                    preexec=full_disk(1024))
    assert ran.returncode == 2
    one_line(ran, f"cannot write {previous}", "File too large")
    assert sorted(out.iterdir()) == [previous] and previous.read_text() == "yesterday's export\n"
    ran = fastaudit("export", "--db", small_store, "--format", fmt, "-o", previous, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert previous.read_text().count("\n") == 3 + (fmt == "csv")


def test_report_and_repair_into_unwritable_folders(tmp_path: Path, small_store: Path,
                                                   scenarios: dict[str, elfbuild.Scenario]) -> None:
    db = tmp_path / "store.db"
    shutil.copy2(small_store, db)
    db.chmod(0o644)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    a_file = tmp_path / "a file"
    a_file.write_text("")
    wheel = tmp_path / scenarios["glibc_2_17"].wheel.name
    shutil.copy2(scenarios["glibc_2_17"].wheel, wheel)
    wheel.chmod(0o644)
    before = snapshot(tmp_path)
    for folder, phrase in ((read_only, "Permission denied"), (read_only / "new", "Permission denied"),
                           (a_file / "new", "Not a directory"), (a_file, "File exists")):
        ran = fastaudit("report", "--db", db, "-o", folder, cwd=tmp_path, unprivileged=True)
        assert ran.returncode == 2
        one_line(ran, "cannot write the report", phrase)
        ran = fastaudit("repair", "-w", folder, wheel, cwd=tmp_path, unprivileged=True)
        assert ran.returncode == 2
        one_line(ran, "cannot", phrase)
    assert snapshot(tmp_path) == before


def test_repair_onto_a_full_disk_leaves_no_partial_wheel(tmp_path: Path,
                                                         scenarios: dict[str, elfbuild.Scenario]) -> None:
    out = tmp_path / "wheelhouse"
    out.mkdir()
    wheel = scenarios["glibc_2_17"].wheel
    ran = fastaudit("repair", "-w", out, wheel, cwd=tmp_path, preexec=full_disk(1024))
    assert ran.returncode == 2
    one_line(ran, f"cannot write {out}/fa_glibc217-1.0-", "File too large")
    assert list(out.iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system of 16 KiB (tmpfs), filled by `filler`: a write fails with ENOSPC."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        with open(mount_point / "filler", "wb", buffering=0) as filler:  # full to the last block
            try:
                while True:
                    filler.write(b"x" * 1024)
            except OSError:
                pass
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_outputs_onto_a_full_disk_are_one_line_and_leave_nothing(
        tiny_disk: Path, tmp_path: Path, ci_wheels: list[Path]) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for wheel in ci_wheels[:6]:
        os.link(wheel, tree / wheel.name)
    db = tmp_path / "s.db"
    ran = fastaudit("scan", "--db", db, "--jobs", "2", "--jsonl", tiny_disk / "run.jsonl", tree, cwd=tmp_path, limit=60)
    assert ran.returncode == 2
    one_line(ran, f"cannot write {tiny_disk / 'run.jsonl'}", "No space left on device")
    assert [p.name for p in tiny_disk.iterdir()] == ["filler"]
    assert run_statuses(db) == {1: "completed"} and len(rows(db)) == 6  # the scan's work is kept
    for command in (["export", "--db", db, "-o", tiny_disk / "x.jsonl"],
                    ["export", "--db", db, "--format", "csv", "-o", tiny_disk / "x.csv"],
                    ["report", "--db", db, "-o", tiny_disk / "report", "--format", "json"]):
        ran = fastaudit(*command, cwd=tmp_path, limit=30)
        assert ran.returncode == 2, (command, ran.stderr)
        one_line(ran, "cannot write", "No space left on device")
        assert [p.name for p in tiny_disk.rglob("*") if p.is_file()] == ["filler"], command
    ran = fastaudit("scan", "--db", tiny_disk / "store.db", "--jobs", "2", tree, cwd=tmp_path, limit=60)
    assert ran.returncode == 2
    one_line(ran, f"{tiny_disk / 'store.db'}: cannot open the store", "disk is full")
    # no empty store left; the report's folder, made before its file failed, is empty
    assert sorted(str(p.relative_to(tiny_disk)) for p in tiny_disk.rglob("*")) == ["filler", "report"]


# ---- 6. read-only commands never change a store ---------------------------------------------------------------

def sqlite_file(path: Path, *statements: str) -> Path:
    with closing(sqlite3.connect(path)) as con:
        for statement in statements:
            if statement.strip():
                con.execute(statement)
        con.commit()
    return path


V1_SCHEMA = _MIGRATIONS[0].split(";")


def foreign_files(folder: Path) -> dict[str, Path]:
    """Files that are not fastaudit stores of this schema, each as its owner left it."""
    not_sqlite = folder / "random.db"
    not_sqlite.write_bytes(os.urandom(8192))
    return {
        "not sqlite": not_sqlite,
        "foreign": sqlite_file(folder / "foreign.db", "CREATE TABLE accounts (name TEXT, balance INTEGER)",
                               "INSERT INTO accounts VALUES ('a', 1)"),
        "foreign wal": sqlite_file(folder / "foreign-wal.db", "PRAGMA journal_mode=WAL",
                                   "CREATE TABLE accounts (name TEXT)"),
        "newer schema": sqlite_file(folder / "newer.db", *V1_SCHEMA, "PRAGMA user_version=99"),
        "fastaudit-like, other tables": sqlite_file(folder / "partial.db", "CREATE TABLE runs (id INTEGER)",
                                                    "PRAGMA user_version=2"),
    }


def state(path: Path) -> tuple[str, bool, bool]:
    return (hashlib.sha256(path.read_bytes()).hexdigest(), Path(f"{path}-wal").exists(), Path(f"{path}-shm").exists())


def test_no_command_changes_a_file_that_is_not_a_store_of_this_schema(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy2(scenarios["glibc_2_17"].wheel, tree)
    phrases = {"not sqlite": "not an SQLite file", "foreign": "not a fastaudit store",
               "foreign wal": "not a fastaudit store", "newer schema": "schema 99",
               "fastaudit-like, other tables": "not a fastaudit store"}
    for case, path in foreign_files(tmp_path).items():
        before = state(path)
        assert not before[1] and not before[2], case  # no -wal or -shm beside it
        for command in (["scan", "--db", path, tree], ["export", "--db", path], ["export", "--db", path,
                        "--format", "csv", "-o", tmp_path / "x.csv"], ["report", "--db", path, "-o", tmp_path / "r"]):
            ran = fastaudit(*command, cwd=tmp_path)
            assert ran.returncode == 2, (case, command, ran.stderr)
            one_line(ran, str(path), phrases[case])
            assert state(path) == before, (case, command)
        assert not (tmp_path / "x.csv").exists()


def test_an_older_store_is_refused_by_readers_and_migrated_by_scan(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    db = sqlite_file(tmp_path / "v1.db", *V1_SCHEMA,
                     "INSERT INTO runs (started_at, arguments, fastaudit_version, policy_version, status)"
                     " VALUES (1.0, '{}', '0.1.0', 'p', 'completed')", "PRAGMA user_version=1")
    before = state(db)
    for command in (["export", "--db", db], ["report", "--db", db, "-o", tmp_path / "r"]):
        ran = fastaudit(*command, cwd=tmp_path)
        assert ran.returncode == 2
        one_line(ran, "older schema 1")
        assert state(db) == before
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy2(scenarios["glibc_2_17"].wheel, tree)
    ran = fastaudit("scan", "--db", db, tree, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert run_statuses(db) == {1: "completed", 2: "completed"}
    with Store(db, readonly=True) as store:
        assert [r.status for r in store.runs()] == ["completed", "completed"]


# ---- 7. names are data -----------------------------------------------------------------------------------------

# a window title, a cleared screen, a cursor moved up, a reversed text direction, a C1 escape, HTML
EVIL = "\x1b]0;owned\x07\x1b[2J\x1b[1Afastaudit: all wheels consistent\u202eos.exe\x9b<img src=x onerror=alert(1)>"
# and a forged log line (a name with a line end cannot be listed in RECORD: that wheel is an error)
EVIL_LINES = "ok\nfastaudit: all wheels consistent\r" + EVIL


def test_names_are_escaped_in_every_text_output_and_kept_in_json(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    tree = tmp_path / "tree"
    over = elfbuild.pack_wheel(tree, "fa_evil", "1.0", TAG,
                               {f"fa_evil/{EVIL}.so": extension_of(scenarios["glibc_2_34"].wheel)})
    truncated = elfbuild.pack_wheel(tree, "fa_cut", "1.0", TAG,
                                    {f"fa_cut/{EVIL_LINES}.so": extension_of(scenarios["glibc_2_17"].wheel)[:300]})
    renamed = tree / f"fa_glibc217\x1b[31m-1.0-{TAG}.whl"
    shutil.copy2(scenarios["glibc_2_17"].wheel, renamed)
    member = f"fa_evil/{EVIL}.so"

    def assert_clean(text: str) -> None:
        assert not any(c in text for c in "\x1b\x07\r\x9b\u202e"), repr(text)

    shown = fastaudit("show", over, truncated, renamed, cwd=tmp_path)
    assert shown.returncode == 2
    assert_clean(shown.stdout + shown.stderr)
    escaped_member = "fa_evil/\\x1b]0;owned\\x07\\x1b[2J\\x1b[1Afastaudit: all wheels consistent\\u202eos.exe\\x9b<img"
    assert escaped_member in shown.stdout, (shown.stdout, shown.stderr)
    assert not any(line.startswith("fastaudit: all wheels") for line in (shown.stdout + shown.stderr).splitlines())
    one_line(shown, "fa_cut/ok\\nfastaudit: all wheels consistent\\r\\x1b]0;owned")  # one line, escaped
    assert "fa_glibc217\\x1b[31m-1.0" in shown.stdout

    as_json = fastaudit("show", "--json", over, cwd=tmp_path)
    report = json.loads(as_json.stdout)
    assert report["fastaudit"]["elf_members"] == [member]  # lossless
    assert any(r["member"] == member for r in report["fastaudit"]["over_promise_reasons"])

    db = tmp_path / "evil.db"
    scanned = fastaudit("scan", "--db", db, "--jsonl", tmp_path / "evil.jsonl", tree, cwd=tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    assert_clean(scanned.stdout + scanned.stderr)
    jsonl = (tmp_path / "evil.jsonl").read_text().splitlines()
    lines = {Path(line["path"]).name: line for line in map(json.loads, jsonl)}
    assert lines[over.name]["fastaudit"]["elf_members"] == [member]
    assert lines[renamed.name]["scan"]["status"] == "ok"

    reported = fastaudit("report", "--db", db, "-o", tmp_path / "report", cwd=tmp_path, limit=30)
    assert reported.returncode == 0, reported.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert_clean(markdown)
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)&gt;" in markdown
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    figures = json.loads((tmp_path / "report" / "report.json").read_text())
    assert any(EVIL_LINES in e["message"] for e in figures["errors"])  # JSON keeps the name as it is
    assert all(line.startswith(("|", "#", "-", "*", "No ", "Compared", "...")) or not line
               for line in markdown.splitlines()), markdown  # no line forged by a name


def test_repair_and_lddtree_refuse_special_files_and_escape_names(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario], built_objects: list[Path]) -> None:
    fifo = tmp_path / f"fifo-1.0-{TAG}.whl"
    os.mkfifo(fifo)
    renamed = tmp_path / f"fa_glibc217\x1b[2J\x1b]0;x\x07-1.0-{TAG}.whl"
    shutil.copy2(scenarios["glibc_2_17"].wheel, renamed)
    out = tmp_path / "wheelhouse"
    # the first failure ends a repair call, as in auditwheel: the wheel before it stays repaired
    ran = fastaudit("repair", "-w", out, renamed, fifo, tmp_path / "missing.whl", cwd=tmp_path)
    assert ran.returncode == 2
    lines = ran.stderr.splitlines()
    assert len(lines) == 1 and "a FIFO, not a regular file" in lines[0], ran.stderr
    assert "\x1b" not in ran.stdout and "\x07" not in ran.stdout
    assert "fa_glibc217\\x1b[2J\\x1b]0;x\\x07-1.0-" in ran.stdout  # repaired, its name escaped
    assert len(list(out.iterdir())) == 1
    ran = fastaudit("repair", "-w", out, tmp_path / "missing.whl", cwd=tmp_path)
    assert ran.returncode == 2
    assert len(ran.stderr.splitlines()) == 1 and "missing.whl" in ran.stderr, ran.stderr

    library = next(p for p in built_objects if p.name.endswith(".so"))
    odd = tmp_path / "lib\x1b[31mred\nline.so"
    shutil.copy2(library, odd)
    ran = fastaudit("lddtree", odd, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[0].startswith(str(tmp_path / "lib\\x1b[31mred\\nline.so")), ran.stdout
    assert "\x1b" not in ran.stdout
    lib_fifo = tmp_path / "fifo.so"
    os.mkfifo(lib_fifo)
    ran = fastaudit("lddtree", lib_fifo, cwd=tmp_path)
    assert ran.returncode == 2
    one_line(ran, str(lib_fifo), "a FIFO")


# ---- the whole: every case beside the real wheels ------------------------------------------------------------

def test_a_tree_mixing_every_case_with_the_real_wheels(tmp_path: Path, ci_wheels: list[Path],
                                                       scenarios: dict[str, elfbuild.Scenario]) -> None:
    tree = build_hostile_tree(tmp_path / "tree", good_four(scenarios))
    try:
        real = tree.root / "real"
        real.mkdir()
        for wheel in ci_wheels:
            os.link(wheel, real / wheel.name)
        evil = elfbuild.pack_wheel(tree.root, "fa_evil", "1.0", TAG,
                                   {f"fa_evil/{EVIL}.so": extension_of(scenarios["glibc_2_34"].wheel)})
        db = tmp_path / "all.db"
        ran = fastaudit("scan", "--db", db, "--jobs", "2", tree.root, cwd=tmp_path, limit=120)
        assert ran.returncode == 0, ran.stderr
        stored = rows(db)
        real_paths = {str(real / w.name) for w in ci_wheels}
        assert set(stored) == {str(p) for p in tree.good} | set(map(_stored_path, tree.bad)) | real_paths | {str(evil)}
        shown = fastaudit("show", "--json", *sorted(real_paths), cwd=tmp_path, limit=60)
        expected = {obj["wheel"]: obj for obj in map(json.loads, shown.stdout.splitlines())}
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            reports = {Path(path).name: json.loads(report) for path, report in con.execute(
                "SELECT w.path, r.report FROM results r JOIN wheels w ON w.id = r.wheel_id WHERE r.report IS NOT NULL")}
        for wheel in ci_wheels:
            assert reports[wheel.name] == expected[wheel.name], wheel.name
        for path, (error_type, phrase) in tree.bad.items():
            assert stored[_stored_path(path)][1] == error_type and phrase in stored[_stored_path(path)][2]
    finally:
        remove_deep(tree.root / "too_deep")
        remove_deep(tree.root / "deep")

