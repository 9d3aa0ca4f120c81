"""Hostile wheels, one per zip hazard, through `fastaudit show` and `fastaudit scan` as a user runs them.

Each hazard must give a typed error (a FastauditError subclass) whose one-line message names the
wheel and, where the hazard lives in one member, that member; `show` exits 2 without a traceback;
a scan over all of them and some good wheels stores each as an error row and completes. The
legitimate variants (ZIP64 throughout, stored members, a member of more than 4 GiB) must audit
exactly as the plain wheel does, the last in bounded memory.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastaudit import errors
from fastaudit.errors import (
    FastauditError,
    RecordMismatchError,
    UnsafeMemberError,
    WheelError,
    ZipBombError,
    ZipConfusionError,
)
from tests import elfbuild, zipcraft
from tests.integration.test_scan import (
    CLI_TIMEOUT,
    extension_of,
    fastaudit,
    query,
    run_row,
)
from tests.zipcraft import Patch, RawMember

TAG = elfbuild.DEFAULT_TAG
SO = "p/_core.so"
# caps the scan and show processes are given through their environment
MEMBER_CAP = 4 << 20
WHEEL_CAP = 3 * MEMBER_CAP
HAZARD_ENV = {"FASTAUDIT_MAX_MEMBER_SIZE": str(MEMBER_CAP), "FASTAUDIT_MAX_WHEEL_INFLATE": str(WHEEL_CAP)}


def wheel_members(dist: str, files: dict[str, bytes], *, stored: frozenset[str] = frozenset(),
                  record: Callable[[list[tuple[str, str, int | str]]], list[tuple[str, str, int | str]]] | None = None,
                  with_record: bool = True) -> list[RawMember]:
    """The members of a wheel `dist`-1.0: files plus .dist-info (METADATA, WHEEL, RECORD). `record`
    may rewrite RECORD's rows (path, hash, size) before they are written."""
    dist_info = f"{dist}-1.0.dist-info"
    contents = dict(files)
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n".encode()
    contents[f"{dist_info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: zipcraft\nRoot-Is-Purelib: false\n"
                                      f"Tag: {TAG}\n").encode()
    rows: list[tuple[str, str, int | str]] = [(n, zipcraft.record_hash(c), len(c)) for n, c in contents.items()]
    if record is not None:
        rows = record(rows)
    members = [RawMember.of(name, content, deflate=name not in stored, mode=0o755 if name.endswith(".so") else 0o644)
               for name, content in contents.items()]
    if with_record:
        record_name = f"{dist_info}/RECORD"
        members.append(RawMember.of(record_name, zipcraft.record_text(rows, record_name)))
    return members


def build(folder: Path, dist: str, files: dict[str, bytes], *, zip64: bool = False, **options) -> Path:
    return zipcraft.write_zip(folder / f"{dist}-1.0-{TAG}.whl", wheel_members(dist, files, **options), zip64=zip64)


@dataclass(frozen=True)
class Hazard:
    wheel: Path
    error: type[FastauditError]
    member: str | None  # None: the hazard is in the archive as a whole
    phrase: str


def tampered(so: bytes) -> bytes:
    """The same library with one byte of its .comment changed: still valid, same size."""
    at = so.index(b"GCC: ")
    return so[:at] + b"gCC: " + so[at + 5:]


@pytest.fixture(scope="module")
def so(scenarios: dict[str, elfbuild.Scenario]) -> bytes:
    return extension_of(scenarios["glibc_2_17"].wheel)


@pytest.fixture(scope="module")
def hazards(tmp_path_factory: pytest.TempPathFactory, so: bytes) -> dict[str, Hazard]:
    folder = tmp_path_factory.mktemp("hazards")
    rng = random.Random(427)
    found: dict[str, Hazard] = {}

    def add(name: str, wheel: Path, error: type[FastauditError], member: str | None, phrase: str) -> None:
        found[name] = Hazard(wheel, error, member, phrase)

    def plain(dist: str, **options) -> Patch:
        return Patch(build(folder, dist, {SO: so}, **options))

    # declared sizes that lie: both headers larger, both smaller, stored, local against central
    add("size-larger", plain("sizelarger").both(SO, "size", len(so) + 1000).save(), WheelError, SO, "not the declared")
    add("size-smaller", plain("sizesmaller").both(SO, "size", 100).save(), WheelError, SO,
        "inflates to more than the declared 100 bytes")
    add("stored-size-lies", plain("storedlies", stored=frozenset({SO})).both(SO, "size", len(so) + 10).save(),
        WheelError, SO, f"stored member holds {len(so)} bytes, not the declared {len(so) + 10}")
    add("local-size-disagrees", plain("localsize").local(SO, "size", len(so) + 1).save(), ZipConfusionError, SO,
        "local header declares")
    add("local-name-disagrees", plain("localname").local_name(SO, "p/_evil.so").save(), ZipConfusionError, SO,
        "local header names the member b'p/_evil.so'")
    crc_patch = plain("crclies")
    crc = zipfile.ZipFile(crc_patch.path).getinfo(SO).CRC
    add("crc-lies", crc_patch.both(SO, "crc", crc ^ 1).save(), WheelError, SO, "the directory declares")

    # bombs: a ratio alone is no refusal, so a member of zeros behind the ELF magic is inflated
    # (to its declared 3 MiB, no more) and refused as the invalid ELF image it is; what is read is
    # capped per member (MEMBER_CAP) and per wheel (WHEEL_CAP); entries sharing their data
    add("ratio-bomb", build(folder, "ratiobomb", {SO: b"\x7fELF" + bytes(3 << 20)}), errors.ELFInvalidError, SO,
        "bad EI_CLASS")
    padded_so = so + bytes(3 << 20)  # a valid library (nothing points into the zeros), 1000:1
    many = {f"p/_part{i}.so": padded_so for i in range(5)}
    add("wheel-inflate-bomb", build(folder, "wheelbomb", many), ZipBombError, "p/_part3.so",
        f"above the {WHEEL_CAP}-byte limit (FASTAUDIT_MAX_WHEEL_INFLATE)")
    add("size-bomb", build(folder, "sizebomb", {SO: b"\x7fELF" + rng.randbytes(MEMBER_CAP + 4)}), ZipBombError, SO,
        f"above the {MEMBER_CAP}-byte limit (FASTAUDIT_MAX_MEMBER_SIZE)")
    overlap = Patch(build(folder, "overlap", {SO: so, "p/_copy.so": so}))
    add("overlapping-entries", overlap.central("p/_copy.so", "local_offset", overlap.entries[SO].local).save(),
        ZipConfusionError, SO, "member data overlaps the entry of p/_copy.so")

    # ZIP64 whose extra fields lie: central and local both, local alone, an offset past the end, a
    # field longer than its header (zipfile refuses the archive without naming the entry)
    add("zip64-size-lies", plain("zip64size", zip64=True).zip64(SO, "central", 0, len(so) + 1000)
        .zip64(SO, "local", 0, len(so) + 1000).save(), WheelError, SO, "not the declared")
    add("zip64-local-disagrees", plain("zip64local", zip64=True).zip64(SO, "local", 1, 12345).save(),
        ZipConfusionError, SO, "local header declares")
    past_end = plain("zip64offset", zip64=True)
    add("zip64-offset-past-end", past_end.zip64(SO, "central", 2, len(past_end.data) + 100).save(),
        ZipConfusionError, SO, "local header offset points into or past the central directory")
    add("zip64-extra-too-long", plain("zip64extra", zip64=True).zip64_extra_length(SO, 200).save(),
        WheelError, None, "not a readable zip file: Corrupt extra field 0001")

    # found by the wheel fuzzer: zipfile raised NotImplementedError, which escaped as a traceback
    add("zip-version-too-new", plain("zipversion").central(SO, "version_needed", 64).save(), WheelError, None,
        "not a readable zip file: zip file version 6.4")

    # found by the wheel fuzzer: a central name starting with NUL, which zipfile cuts to nothing
    # (an IndexError from ZipInfo.is_dir escaped)
    nul = plain("nulname")
    nul.data[nul.entries[SO].central + 46] = 0
    add("nul-name", nul.save(), UnsafeMemberError, None, "a member name is empty or starts with a NUL byte")

    # names and kinds an installer must not write, or cannot tell apart
    dup = wheel_members("duplicate", {SO: so})
    dup.insert(1, RawMember.of(SO, tampered(so)))
    add("duplicate-name", zipcraft.write_zip(folder / f"duplicate-1.0-{TAG}.whl", dup, zip64=False),
        ZipConfusionError, SO, "duplicate member name")
    add("encrypted", plain("encrypted").flags(SO, 0x1).save(), WheelError, SO, "encrypted member")
    add("absolute-path", build(folder, "absolute", {"/tmp/evil.so": so}), UnsafeMemberError, "/tmp/evil.so",
        "member name is an absolute path")
    add("dotdot", build(folder, "dotdot", {"p/../../evil.so": so}), UnsafeMemberError, "p/../../evil.so",
        "member name has a '..' component")
    add("dotdot-backslash", build(folder, "backslash", {"p\\..\\..\\evil.so": so}), UnsafeMemberError,
        "p\\..\\..\\evil.so", "member name has a '..' component")
    link = wheel_members("symlink", {SO: b"/usr/lib/x86_64-linux-gnu/libc.so.6"}, stored=frozenset({SO}))
    link[0].external_attr = (zipcraft.S_IFLNK | 0o777) << 16
    add("symlink", zipcraft.write_zip(folder / f"symlink-1.0-{TAG}.whl", link, zip64=False), UnsafeMemberError, SO,
        "symbolic link entry")

    # RECORD against the content
    def resize(rows):
        return [(n, h, s + 1 if n == SO else s) for n, h, s in rows]

    add("record-size", build(folder, "recordsize", {SO: so}, record=resize), RecordMismatchError, SO,
        f"RECORD says {len(so) + 1} bytes, the archive holds {len(so)}")
    add("record-unlisted", build(folder, "recordunlisted", {SO: so},
                                 record=lambda rows: [r for r in rows if r[0] != SO]),
        RecordMismatchError, SO, "member not listed in RECORD")
    add("record-lists-absent", build(folder, "recordabsent", {SO: so},
                                     record=lambda rows: [*rows, ("p/_gone.so", zipcraft.record_hash(b""), 0)]),
        RecordMismatchError, "p/_gone.so", "listed in RECORD but not in the archive")
    add("record-weak-hash", build(folder, "recordmd5", {SO: so},
                                  record=lambda rows: [(n, "md5=" + h[7:] if n == SO else h, s) for n, h, s in rows]),
        RecordMismatchError, SO, "the hash algorithm 'md5', weaker than sha256 or unknown")
    add("record-missing", build(folder, "norecord", {SO: so}, with_record=False), RecordMismatchError, None,
        "the wheel has no .dist-info/RECORD")
    # same size, different bytes: only a hash tells, so only --verify-record does
    add("record-hash", build(folder, "recordhash", {SO: tampered(so)},
                             record=lambda rows: [(n, zipcraft.record_hash(so) if n == SO else h, s)
                                                  for n, h, s in rows]),
        RecordMismatchError, SO, "RECORD says " + zipcraft.record_hash(so)[7:])
    return found


def one_line_error(hazard: Hazard) -> str:
    where = f"{hazard.wheel}: {hazard.member}: " if hazard.member else f"{hazard.wheel}: "
    return f"fastaudit: {where}"


def assert_typed(hazard: Hazard, name: str, error_type: str, message: str) -> None:
    error_class = getattr(errors, error_type, None)
    assert error_class is hazard.error, (name, error_type, message)
    assert hazard.phrase in message, (name, message)


# ---- show ------------------------------------------------------------------------------------------------

def show(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return fastaudit("show", *args, cwd=cwd, env={**os.environ, **env})


def test_show_refuses_each_hazard_in_one_line(hazards: dict[str, Hazard], tmp_path: Path) -> None:
    names = [n for n in hazards if n != "record-hash"]
    for name in names:
        hazard = hazards[name]
        proc = show(hazard.wheel, cwd=tmp_path, env=HAZARD_ENV)
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr)
        assert proc.stdout == "", name
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, (name, proc.stderr)
        assert lines[0].startswith(one_line_error(hazard)), (name, lines[0])
        assert hazard.phrase in lines[0], (name, lines[0])


def test_show_json_prints_each_error_object(hazards: dict[str, Hazard], tmp_path: Path) -> None:
    names = [n for n in hazards if n != "record-hash"]
    proc = show("--json", *(hazards[n].wheel for n in names), cwd=tmp_path, env=HAZARD_ENV)
    assert proc.returncode == 2, proc.stderr
    objects = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(objects) == len(names)
    for name, obj in zip(names, objects, strict=True):
        hazard = hazards[name]
        assert obj["wheel"] == hazard.wheel.name and obj["version"] == 1, (name, obj)
        assert obj["error"].startswith(one_line_error(hazard)[len("fastaudit: "):]), (name, obj)
        assert hazard.phrase in obj["error"], (name, obj)


def test_repair_refuses_each_hazard_and_writes_nothing(hazards: dict[str, Hazard], tmp_path: Path) -> None:
    """repair reads every RECORD hash (record-hash included) and writes only from a sound wheel:
    each hazard is a one-line error, exit 2, and no file appears anywhere under its folder."""
    for name, hazard in hazards.items():
        work = tmp_path / name
        work.mkdir()
        proc = fastaudit("repair", "-w", work / "out", hazard.wheel, cwd=work, env={**os.environ, **HAZARD_ENV})
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert lines[0].startswith(one_line_error(hazard)), (name, lines[0])
        assert hazard.phrase in lines[0], (name, lines[0])
        written = [p for p in work.rglob("*") if p.is_file()]
        assert written == [], (name, written)


def test_record_hashes_are_checked_on_request(hazards: dict[str, Hazard], tmp_path: Path) -> None:
    """A member changed without changing its size passes by default (listing and sizes agree) and is
    refused with --verify-record, which hashes every member."""
    hazard = hazards["record-hash"]
    default = show("--json", hazard.wheel, cwd=tmp_path, env={})
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["overall_tag"] == elfbuild.MANYLINUX_2_17
    verified = show("--verify-record", hazard.wheel, cwd=tmp_path, env={})
    assert verified.returncode == 2
    assert verified.stderr.startswith(one_line_error(hazard)) and hazard.phrase in verified.stderr, verified.stderr


# ---- legitimate variants -------------------------------------------------------------------------------

def report_without_name(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    report.pop("wheel")
    return report


def test_zip64_and_stored_wheels_audit_like_the_plain_one(tmp_path: Path,
                                                          scenarios: dict[str, elfbuild.Scenario]) -> None:
    source = scenarios["origin_chain"].wheel  # several libraries, one needing another through $ORIGIN
    members = zipcraft.read_members(source)
    with zipfile.ZipFile(source) as zf:
        contents = {i.filename: zf.read(i) for i in zf.infolist()}
    for folder in ("zip64", "stored"):
        (tmp_path / folder).mkdir()
    variants = {
        "zip64": zipcraft.write_zip(tmp_path / "zip64" / source.name, members, zip64=True),
        "stored": zipcraft.write_zip(tmp_path / "stored" / source.name,
                                     [RawMember.of(n, c, deflate=False) for n, c in contents.items()], zip64=False),
    }
    with zipfile.ZipFile(variants["zip64"]) as zf:  # zipfile reads it as ZIP64 throughout
        assert all(i.extra[:2] == b"\x01\x00" for i in zf.infolist())
    expected = report_without_name(show("--json", "--verify-record", source, cwd=tmp_path, env={}))
    assert expected["fastaudit"]["elf_members"], "the scenario has ELF members to compare"
    for name, wheel in variants.items():
        assert report_without_name(show("--json", "--verify-record", wheel, cwd=tmp_path, env={})) == expected, name


# ---- scan ------------------------------------------------------------------------------------------------

def test_scan_stores_every_hazard_as_an_error_row(hazards: dict[str, Hazard], tmp_path: Path,
                                                   scenarios: dict[str, elfbuild.Scenario]) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for hazard in hazards.values():
        os.link(hazard.wheel, tree / hazard.wheel.name)
    good = [scenarios[n].wheel for n in ("glibc_2_17", "origin_chain", "external_libfoo")]
    for wheel in good:
        os.link(wheel, tree / wheel.name)
    zip64 = zipcraft.write_zip(tree / f"zipsixtyfour-1.0-{TAG}.whl",
                               wheel_members("zipsixtyfour", {SO: extension_of(good[0])}), zip64=True)

    db = tmp_path / "hazards.db"
    proc = fastaudit("scan", "--db", db, "--jobs", "2", "--verify-record", tree, cwd=tmp_path,
                     env={**os.environ, **HAZARD_ENV})
    assert proc.returncode == 0, proc.stderr

    rows = {Path(path).name: row for path, *row in query(
        db, "SELECT w.path, r.status, r.error_type, r.error_message, r.error_member"
            " FROM results r JOIN wheels w ON w.id = r.wheel_id")}
    assert set(rows) == {h.wheel.name for h in hazards.values()} | {w.name for w in good} | {zip64.name}
    for name, hazard in hazards.items():
        status, error_type, message, member = rows[hazard.wheel.name]
        assert status == "error", (name, status)
        assert_typed(hazard, name, error_type, message)
        assert message.startswith(f"{tree / hazard.wheel.name}: "), (name, message)
        assert member == hazard.member, (name, member)
    for wheel in (*good, zip64):
        assert rows[wheel.name][0] == "ok", (wheel.name, rows[wheel.name])
    run = run_row(db, 1)
    assert (run["status"], run["errors"], run["analyzed"]) == ("completed", len(hazards), len(good) + 1)
    assert json.loads(run["arguments"])["verify_record"] is True


# ---- a member of more than 4 GiB, in bounded memory ------------------------------------------------------

RSS_LIMIT_KB = 400 << 10
# `fastaudit show` in a process that reports its own peak RSS on the way out. VmHWM, not ru_maxrss:
# subprocess spawns with vfork, and the kernel folds the parent's peak (pytest's, hundreds of MB
# late in a full run) into the child's ru_maxrss at exec; VmHWM belongs to the new image alone.
SHOW_WITH_PEAK = """
import runpy, sys
try:
    runpy.run_module("fastaudit", run_name="__main__")
finally:
    status = open("/proc/self/status").read()
    print(status.split("VmHWM:")[1].split()[0], file=sys.stderr)
"""


def test_multi_gigabyte_member_is_audited_in_bounded_memory(tmp_path: Path, so: bytes) -> None:
    """A real library followed by 4 GiB of zeros (a valid ELF image: nothing points past the
    library), in a ZIP64 wheel of a few megabytes. Inflating it in memory would need 4 GiB; the
    audit must give the plain library's verdict with a peak RSS under 400 MB."""
    padded = zipcraft.Padded(so, 4 << 30)
    assert padded.size > zipcraft.MARK32  # ZIP64 is needed, not just allowed
    stream = padded.stream()
    big = RawMember(SO, stream, 8, padded.crc(), padded.size, (zipcraft.S_IFREG | 0o755) << 16)

    def record(rows):
        return [(n, padded.record_hash(), padded.size) if n == SO else (n, h, s) for n, h, s in rows]
    members = wheel_members("bigcore", {SO: b""}, record=record)
    members[0] = big
    wheel = zipcraft.write_zip(tmp_path / f"bigcore-1.0-{TAG}.whl", members, zip64=True)
    assert wheel.stat().st_size < 16 << 20
    small = build(tmp_path, "smallcore", {SO: so})

    # zeros inflate ~1000-fold: no cap refuses that, with the default settings
    proc = subprocess.run([sys.executable, "-c", SHOW_WITH_PEAK, "show", "--json", str(wheel)], cwd=tmp_path,
                          env=os.environ, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False)
    *messages, peak_kb = proc.stderr.splitlines()
    assert proc.returncode in (0, 1), proc.stderr
    assert not messages, messages
    assert int(peak_kb) < RSS_LIMIT_KB, f"peak RSS {peak_kb} kB"
    expected = report_without_name(show("--json", small, cwd=tmp_path, env={}))
    report = json.loads(proc.stdout)
    report.pop("wheel")
    assert report == expected


# ---- legitimate members that compress far: accepted whether read or not ----------------------------------

def sparse(size: int, ratio: float, seed: int) -> bytes:
    """`size` bytes, zeros but for random bytes at random places, as many as make zlib (level 6)
    compress them about `ratio`-fold: the shape of real test data and padded libraries."""
    def with_bytes(count: int) -> bytes:
        rng = random.Random(seed)
        data = bytearray(size)
        for _ in range(count):
            data[rng.randrange(size)] = rng.randrange(1, 256)
        return bytes(data)
    low, high = 0, size // 64
    while low < high:  # fewest sprinkled bytes that bring the ratio down to `ratio`
        middle = (low + high) // 2
        if size / len(zipcraft.raw_deflate(with_bytes(middle))) > ratio:
            low = middle + 1
        else:
            high = middle
    return with_bytes(low)


def padded_extension(workdir: Path, stubs: elfbuild.StubLibs, size: int, ratio: float) -> bytes:
    """A CPython extension built by gcc that needs GLIBC_2.17 and carries a constant array of
    `size` bytes, mostly zeros (as grafted libraries padded by their linker scripts are), the
    array's bytes chosen so that the whole library compresses about `ratio`-fold: a first build
    measures what the rest of the library adds to the compressed size."""
    def built(array_ratio: float) -> tuple[bytes, bytes]:
        content = sparse(size, array_ratio, seed=223)
        entries = ",".join(f"[{i}]={b}" for i, b in enumerate(content) if b)
        source = (elfbuild.calling_source("PyInit__core", ["fa_old", "fa_mid"])
                  + f"__attribute__((used)) const unsigned char fa_padding[{size}] = {{{entries}}};\n")
        library = elfbuild.build_shared_object(workdir, f"_core{elfbuild.EXTENSION_SUFFIX}", source,
                                               link=[stubs.libc]).read_bytes()
        return library, content

    library, content = built(ratio)
    rest = len(zipcraft.raw_deflate(library)) - len(zipcraft.raw_deflate(content))
    return built(size / (len(library) / ratio - rest))[0]


def test_members_that_compress_hundreds_of_times_are_audited(tmp_path: Path, stub_libs: elfbuild.StubLibs) -> None:
    """The two refusals of issue 11, rebuilt: a test-data member of about 1 MB that compresses
    472:1 (pandas), never read, and a 2 MB library of padding that compresses 223:1 (PyAV's libXau),
    read in full. Both are above the ratio cap of 200 fastaudit had; neither is a bomb. `show`,
    `show --verify-record` (every member read) and `scan` audit the wheel as the plain one."""
    data = sparse(1_100_000, 472, seed=472)
    library = padded_extension(tmp_path / "build", stub_libs, 2 << 20, 223)
    ratios = {"data": len(data) / len(zipcraft.raw_deflate(data)),
              "library": len(library) / len(zipcraft.raw_deflate(library))}
    assert 450 < ratios["data"] < 500 and 210 < ratios["library"] < 240, ratios
    so_name = f"p/_core{elfbuild.EXTENSION_SUFFIX}"
    wheel = build(tmp_path, "farcompressed", {so_name: library, "p/tests/data/frame.bin": data, "p/__init__.py": b""})
    for args in (("--json",), ("--json", "--verify-record")):
        proc = show(*args, wheel, cwd=tmp_path, env={})
        assert proc.returncode == 0, (args, proc.stderr)
        report = json.loads(proc.stdout)
        assert report["overall_tag"] == elfbuild.MANYLINUX_2_17, (args, report)
        assert report["fastaudit"]["elf_members"] == [so_name], (args, report)
    db = tmp_path / "far.db"
    tree = tmp_path / "tree"
    tree.mkdir()
    os.link(wheel, tree / wheel.name)
    scan = fastaudit("scan", "--db", db, "--verify-record", tree, cwd=tmp_path, env=dict(os.environ))
    assert scan.returncode == 0, scan.stderr
    assert query(db, "SELECT status FROM results") == [("ok",)]
