"""wheel.py, record.py and the ELF cache on the cases the hostile-wheel suite does not build: the
name rules one by one, RECORD's parsing paths (quoted rows, repeated rows, signatures), ELF members
hidden behind deflate encodings that delay their first bytes, and cache keys an attacker forges."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from fastaudit import wheel as wheel_module
from fastaudit.analyze import audit_wheel
from fastaudit.errors import RecordMismatchError, WheelChangedError, WheelError, ZipBombError
from fastaudit.facts import ElfCache, read_wheel_elves
from fastaudit.record import Record
from fastaudit.results import to_json
from fastaudit.wheel import WheelArchive, unsafe_name_reason
from tests import elfbuild, zipcraft
from tests.zipcraft import RawMember

DIST_INFO = "pkg-1.0.dist-info"
RECORD = f"{DIST_INFO}/RECORD"


@pytest.mark.parametrize(("name", "reason"), [
    ("/etc/passwd", "is an absolute path"),
    ("\\windows\\system32\\evil.dll", "is an absolute path"),
    ("C:/evil.so", "is an absolute path"),
    ("c:evil.so", "is an absolute path"),
    ("..", "has a '..' component"),
    ("../evil.so", "has a '..' component"),
    ("pkg/../../evil.so", "has a '..' component"),
    ("pkg\\..\\evil.so", "has a '..' component"),
    ("pkg/sub/..", "has a '..' component"),
    ("pkg/_core.so", None),
    ("pkg/..hidden/a..b.so", None),  # dots inside a component are not a parent reference
    ("pkg/a:b.so", None),  # a colon past the first character is no drive
    ("1:x", None),
])
def test_unsafe_names(name: str, reason: str | None) -> None:
    assert unsafe_name_reason(name) == reason


def wheel_with_record(folder: Path, record: str, files: dict[str, bytes]) -> Path:
    members = [RawMember.of(name, content) for name, content in files.items()]
    members.append(RawMember.of(RECORD, record.encode()))
    return zipcraft.write_zip(folder / "pkg-1.0-py3-none-any.whl", members, zip64=False)


def rows(files: dict[str, bytes]) -> str:
    return "".join(f"{n},{zipcraft.record_hash(c)},{len(c)}\n" for n, c in files.items())


def check(wheel: Path) -> None:
    with WheelArchive(wheel) as archive:
        Record.read(archive).check_listing(archive.members)


def test_quoted_paths_are_parsed_as_csv(tmp_path: Path) -> None:
    files = {"pkg/a,b.py": b"x = 1\n", "pkg/plain.py": b""}
    record = "".join(f'"{n}",{zipcraft.record_hash(c)},{len(c)}\n' for n, c in files.items()) + f"{RECORD},,\n"
    check(wheel_with_record(tmp_path, record, files))


def test_a_row_repeated_identically_is_accepted_and_a_conflicting_one_refused(tmp_path: Path) -> None:
    files = {"pkg/a.py": b"a = 1\n"}
    check(wheel_with_record(tmp_path, rows(files) * 2, files))
    conflicting = rows(files) + rows({"pkg/a.py": b"a = 2\n"})
    with pytest.raises(RecordMismatchError, match="listed twice in RECORD") as caught:
        check(wheel_with_record(tmp_path, conflicting, files))
    assert caught.value.member == "pkg/a.py"


def test_record_signatures_need_no_row(tmp_path: Path) -> None:
    files = {"pkg/a.py": b"a = 1\n", f"{RECORD}.jws": b"{}", f"{RECORD}.p7s": b"\x30\x00"}
    listed = {"pkg/a.py": files["pkg/a.py"]}
    check(wheel_with_record(tmp_path, rows(listed), files))
    unlisted = {**files, "pkg/b.py": b""}
    with pytest.raises(RecordMismatchError, match="member not listed in RECORD") as caught:
        check(wheel_with_record(tmp_path, rows(listed), unlisted))
    assert caught.value.member == "pkg/b.py"


@pytest.mark.parametrize(("hash_field", "message"), [
    ("", "RECORD gives no hash"),
    ("sha1=2jmj7l5rSw0yVb_vlWAYkK_YBwk", "the hash algorithm 'sha1', weaker than sha256 or unknown"),
    ("sha256=tooshort", "a sha256 digest of 8 characters, not 43"),
])
def test_bad_hash_fields(tmp_path: Path, hash_field: str, message: str) -> None:
    files = {"pkg/a.py": b""}
    with pytest.raises(RecordMismatchError, match=message):
        check(wheel_with_record(tmp_path, f"pkg/a.py,{hash_field},0\n", files))


# ---- ELF members behind deflate streams that delay their first bytes ---------------------------------

def verdict(wheel: Path, cache: ElfCache | None = None) -> dict:
    report = to_json(audit_wheel(wheel, cache=cache))
    report.pop("wheel")
    return report


def with_member(wheel: Path, out: Path, name: str, member: RawMember) -> Path:
    """The wheel rewritten byte by byte with one member replaced (RECORD unchanged)."""
    members = [member if m.name == name else m for m in zipcraft.read_members(wheel)]
    out.mkdir(parents=True, exist_ok=True)
    return zipcraft.write_zip(out / wheel.name, members, zip64=False)


def so_member(wheel: Path) -> tuple[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".so"))
        return name, zf.read(name)


def test_an_elf_member_hidden_behind_delayed_output_is_audited(tmp_path: Path,
                                                               scenarios: dict[str, elfbuild.Scenario]) -> None:
    """An extension needing GLIBC_2.34 in a wheel named manylinux2014 over-promises. Deflated as
    streams that start with empty blocks (stored, fixed, dynamic, zlib's own sync flushes), with
    zlib's other strategies behind them, or with the magic's first byte 40 kB before the rest,
    it must get exactly the verdict of the same wheel with the library stored plainly, with the
    ELF cache and without."""
    source = scenarios["glibc_2_34"].wheel
    name, so = so_member(source)
    plain = with_member(source, tmp_path / "stored", name, RawMember.of(name, so, deflate=False, mode=0o755))
    expected = verdict(plain)
    assert expected["fastaudit"]["over_promises"] and expected["fastaudit"]["elf_members"] == [name]
    streams = zipcraft.delayed_streams(so)
    hidden_from_a_prefix = 0
    cache = ElfCache()
    for index, (encoding, stream) in enumerate(streams.items()):
        # what the magic test inflated before: 1024 bytes of input, then nothing more
        hidden_from_a_prefix += len(zlib.decompressobj(-15).decompress(stream[:1024], 4)) < 4
        member = RawMember(name, stream, zipfile.ZIP_DEFLATED, zlib.crc32(so), len(so),
                           (zipcraft.S_IFREG | 0o755) << 16)
        wheel = with_member(source, tmp_path / str(index), name, member)
        assert verdict(wheel) == expected, encoding
        assert verdict(wheel, cache) == expected, encoding
        assert read_wheel_elves(wheel, verify_record=True).keys() == {name}, encoding
    assert hidden_from_a_prefix >= 8, "most encodings hide the magic from a 1 kB prefix"


def test_a_member_whose_stream_ends_before_four_bytes_is_not_elf(tmp_path: Path,
                                                                 scenarios: dict[str, elfbuild.Scenario]) -> None:
    """Empty blocks then the end of the data, and a stream that ends after three bytes: neither
    holds the ELF magic, and neither is a reason to refuse a wheel that never reads it in full."""
    source = scenarios["glibc_2_17"].wheel
    writer = zipcraft.BitWriter()
    for _ in range(3000):
        writer.empty_fixed()
    cut = writer.getvalue()  # no final block: the data ends mid-stream
    three = zipcraft.raw_deflate(b"\x7fEL")
    for index, stream in enumerate((cut, three)):
        data = tmp_path / f"data{index}"
        member = RawMember("fa_glibc217/table.bin", stream, zipfile.ZIP_DEFLATED, 0, 4096)
        members = [*zipcraft.read_members(source), member]
        wheel = zipcraft.write_zip(data.with_suffix(".whl"), members, zip64=False)
        with WheelArchive(wheel) as archive:
            bin_member = next(m for m in archive.members if m.name == member.name)
            assert not archive.starts_with_elf_magic(bin_member)
            assert [m.name for m in archive.elf_candidates()] == [so_member(source)[0]]


# ---- the ELF cache against forged CRC-32s ---------------------------------------------------------------

def comment_offset(so: bytes) -> int:
    """Four bytes inside the .comment string gcc writes: changing them changes no fact."""
    return so.index(b"GCC: ") + 5


def stored_wheel(folder: Path, source: Path, name: str, content: bytes) -> Path:
    return with_member(source, folder, name, RawMember.of(name, content, deflate=False, mode=0o755))


def central_key(wheel: Path, name: str) -> tuple[str, int, int, int]:
    """What the cache keyed on before: file name, CRC-32, size, compressed size."""
    info = zipfile.ZipFile(wheel).getinfo(name)
    return (info.filename, info.CRC, info.file_size, info.compress_size)


def elves_json(wheel: Path, cache: ElfCache | None) -> dict:
    return {n: (sorted(i.needed), {k: sorted(v) for k, v in i.version_requirements.items()})
            for n, i in read_wheel_elves(wheel, cache).items()}


def test_a_forged_crc_does_not_pass_a_non_elf_member_for_an_elf_one(tmp_path: Path,
                                                                    scenarios: dict[str, elfbuild.Scenario]) -> None:
    """First a wheel whose member is data, then one whose member of the same name, sizes and CRC-32
    is the GLIBC_2.34 extension: the second must be audited as over-promising, cache or not."""
    source = scenarios["glibc_2_34"].wheel
    name, so = so_member(source)
    decoy = zipcraft.forge_crc32(b"not an ELF image " * (len(so) // 17) + bytes(len(so) % 17),
                                 zlib.crc32(so), 64)
    first = stored_wheel(tmp_path / "decoy", source, name, decoy)
    second = stored_wheel(tmp_path / "real", source, name, so)
    assert central_key(first, name) == central_key(second, name)
    cache = ElfCache()
    assert read_wheel_elves(first, cache) == {}
    assert verdict(second, cache) == verdict(second)
    assert verdict(second, cache)["fastaudit"]["over_promises"]


def test_a_forged_crc_does_not_pass_one_library_for_another(tmp_path: Path,
                                                            scenarios: dict[str, elfbuild.Scenario]) -> None:
    """Library B is library A with its GLIBC_2.17 requirement renamed GLIBC_2.34 (same length) and
    four bytes of .comment set so that its CRC-32 is A's: same name, sizes and CRC-32, other facts.
    Whichever is seen first, each wheel gets its own facts and verdict."""
    source = scenarios["glibc_2_17"].wheel
    name, library_a = so_member(source)
    assert library_a.count(b"GLIBC_2.17\x00") >= 1
    library_b = zipcraft.forge_crc32(library_a.replace(b"GLIBC_2.17\x00", b"GLIBC_2.34\x00"),
                                     zlib.crc32(library_a), comment_offset(library_a))
    wheel_a = stored_wheel(tmp_path / "a", source, name, library_a)
    wheel_b = stored_wheel(tmp_path / "b", source, name, library_b)
    assert central_key(wheel_a, name) == central_key(wheel_b, name)
    facts = {w: elves_json(w, None) for w in (wheel_a, wheel_b)}
    assert facts[wheel_a] != facts[wheel_b]
    verdicts = {w: verdict(w) for w in (wheel_a, wheel_b)}
    assert verdicts[wheel_a]["overall_tag"] == elfbuild.MANYLINUX_2_17
    assert verdicts[wheel_b]["overall_tag"] == "manylinux_2_34_x86_64"
    for order in ((wheel_a, wheel_b), (wheel_b, wheel_a)):
        cache = ElfCache()
        for wheel in order:
            assert elves_json(wheel, cache) == facts[wheel], order
        for wheel in order:  # seen again: now served by the cache, still each its own
            assert verdict(wheel, cache) == verdicts[wheel], order
        assert cache.hits == 2


def test_the_cache_serves_the_same_library_in_another_wheel(tmp_path: Path,
                                                            scenarios: dict[str, elfbuild.Scenario]) -> None:
    """The point of the cache: the same stored bytes in a second wheel are a hit, with the same facts."""
    source = scenarios["origin_chain"].wheel
    copy = tmp_path / "copy"
    copy.mkdir()
    second = zipcraft.write_zip(copy / source.name, zipcraft.read_members(source), zip64=True)
    cache = ElfCache()
    first = elves_json(source, cache)
    hits = cache.hits
    assert elves_json(second, cache) == first
    assert cache.hits - hits == len(first) > 1  # zipfile and zipcraft deflate alike: the same stored bytes


# ---- the caps bound what is read, never what is merely declared ---------------------------------------

def wheel_with_data(folder: Path, source: Path, name: str, data: bytes) -> Path:
    """The wheel with one more member, listed in its RECORD."""
    members = zipcraft.read_members(source)
    record = next(m for m in members if m.name.endswith("/RECORD"))
    with zipfile.ZipFile(source) as zf:
        text = zf.read(record.name).decode()
    text = text.replace(f"{record.name},,", f"{name},{zipcraft.record_hash(data)},{len(data)}\n{record.name},,")
    members = [RawMember.of(record.name, text.encode()) if m is record else m for m in members]
    members.insert(0, RawMember.of(name, data))
    folder.mkdir(parents=True, exist_ok=True)
    return zipcraft.write_zip(folder / source.name, members, zip64=False)


def test_a_member_above_the_caps_is_refused_only_when_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           scenarios: dict[str, elfbuild.Scenario]) -> None:
    source = scenarios["glibc_2_17"].wheel
    wheel = wheel_with_data(tmp_path / "w", source, "fa_glibc217/data/zeros.bin", bytes(3 << 20))
    expected = read_wheel_elves(source).keys()
    monkeypatch.setattr(wheel_module, "MAX_MEMBER_SIZE", 2 << 20)
    assert read_wheel_elves(wheel).keys() == expected  # 3 MiB declared, 1000:1, never read
    with pytest.raises(ZipBombError, match="above the 2097152-byte limit") as caught:
        read_wheel_elves(wheel, verify_record=True)  # now it is read
    assert caught.value.member == "fa_glibc217/data/zeros.bin"
    monkeypatch.setattr(wheel_module, "MAX_MEMBER_SIZE", 8 << 30)
    monkeypatch.setattr(wheel_module, "MAX_WHEEL_INFLATE", 3 << 20)
    assert read_wheel_elves(wheel).keys() == expected
    with pytest.raises(ZipBombError, match="FASTAUDIT_MAX_WHEEL_INFLATE"):
        read_wheel_elves(wheel, verify_record=True)


def test_the_time_budget_stops_a_long_inflate_midway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     scenarios: dict[str, elfbuild.Scenario]) -> None:
    """A 64 MiB library spooled in 1 MiB chunks, under a clock that moves one second per look:
    the budget of 10 s runs out after a few chunks, and the read stops there."""
    name, so = so_member(scenarios["glibc_2_17"].wheel)
    padded = zipcraft.Padded(so, 64 << 20)
    member = RawMember(name, padded.stream(), zipfile.ZIP_DEFLATED, padded.crc(), padded.size)
    wheel = zipcraft.write_zip(tmp_path / "padded.whl", [member], zip64=False)
    clock = iter(range(10**6))
    monkeypatch.setattr(wheel_module, "SPOOL_SIZE", 1 << 20)
    monkeypatch.setattr(wheel_module, "MAX_WHEEL_SECONDS", 10.0)
    monkeypatch.setattr(wheel_module.time, "monotonic", lambda: float(next(clock)))
    with WheelArchive(wheel) as archive:
        assert archive.starts_with_elf_magic(archive.members[0])
        with pytest.raises(ZipBombError, match="takes more than 10 s"):
            archive.read(archive.members[0])
    assert next(clock) < 20  # it stopped after a few chunks, not after all 64


# ---- a file that changes while it is read ------------------------------------------------------------

# A child process opens the wheel, lets the parent change the file (one variant each), then reads
# every member as read_wheel_elves does and prints what came of it. Through a memory map a
# truncated file kills the reader with SIGBUS; the child's exit status shows any signal.
CHANGE_WHILE_READING = """
import sys
from fastaudit.errors import WheelError
from fastaudit.wheel import WheelArchive
path = sys.argv[1]
try:
    with WheelArchive(path) as archive:
        sys.stdout.write("opened\\n"); sys.stdout.flush()
        sys.stdin.readline()  # the parent changes the file now
        for member in archive.members:
            if archive.starts_with_elf_magic(member):
                archive.read(member)
        archive.read(next(m for m in archive.members if m.name.endswith("RECORD")))
        archive.check_unchanged()
    print("read")
except WheelError as e:
    print(type(e).__name__, str(e).replace(path, "WHEEL"))
"""


def change_variants(wheel: Path, other: Path) -> dict[str, object]:
    """How a mirror sync or an editor changes a file: each a function of the wheel's path."""
    size = wheel.stat().st_size
    with zipfile.ZipFile(wheel) as zf:
        so = next(i for i in zf.infolist() if i.filename.endswith(".so"))
    inside_so = so.header_offset + 30 + len(so.filename) + so.compress_size // 2

    def truncate(to: int):
        return lambda path: os.truncate(path, to)

    def append(path: Path) -> None:
        with open(path, "ab") as f:
            f.write(bytes(1 << 20))

    def replace(path: Path) -> None:
        staged = path.with_suffix(".partial")
        shutil.copyfile(other, staged)
        os.replace(staged, path)

    def overwrite(path: Path) -> None:
        with open(path, "r+b") as f:
            f.seek(inside_so)
            f.write(b"\xff" * 64)

    def rewrite_same_bytes(path: Path) -> None:  # nothing read differs, yet the file was written
        with open(path, "r+b") as f:
            f.seek(inside_so)
            data = f.read(64)
            f.seek(inside_so)
            f.write(data)

    return {"shrink to half": truncate(size // 2), "shrink to the central directory": truncate(size - 200),
            "shrink to nothing": truncate(0), "grow": append, "replace by rename": replace,
            "overwrite inside a library": overwrite, "rewrite in place, same bytes": rewrite_same_bytes,
            "remove": os.unlink}


def test_a_wheel_changed_while_it_is_read_is_a_typed_error(tmp_path: Path,
                                                           scenarios: dict[str, elfbuild.Scenario]) -> None:
    """The libraries sit behind 1 MiB of other data, so that a truncation to half leaves their pages
    wholly past the end of the file: through a memory map, touching them is SIGBUS."""
    other = scenarios["glibc_2_17"].wheel
    filler = RawMember.of("fa_origin/data/noise.bin", random.Random(7).randbytes(1 << 20), deflate=False)
    source = tmp_path / "source" / scenarios["origin_chain"].wheel.name
    source.parent.mkdir()
    zipcraft.write_zip(source, [filler, *zipcraft.read_members(scenarios["origin_chain"].wheel)], zip64=False)
    outcomes = {}
    for index, (variant, change) in enumerate(change_variants(source, other).items()):
        wheel = tmp_path / str(index) / source.name
        wheel.parent.mkdir()
        shutil.copyfile(source, wheel)
        child = subprocess.Popen([sys.executable, "-c", CHANGE_WHILE_READING, str(wheel)], text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == "opened\n", variant
        time.sleep(0.02)  # past the file system's timestamp tick, so the change shows in st_mtime
        change(wheel)
        out, err = child.communicate("go\n", timeout=60)
        assert child.returncode == 0, (variant, child.returncode, err)  # -7 would be SIGBUS
        outcomes[variant] = out.strip()
    for variant, outcome in outcomes.items():
        assert outcome.startswith("WheelChangedError WHEEL: "), (variant, outcome)
        assert "while it was read" in outcome, (variant, outcome)
    # after the change the wheel reads as whatever it now is: a typed error, or facts
    assert read_wheel_elves(tmp_path / "4" / source.name).keys() == read_wheel_elves(other).keys()


def test_a_wheel_changed_by_another_thread_while_it_is_read(tmp_path: Path,
                                                            scenarios: dict[str, elfbuild.Scenario]) -> None:
    """A thread truncates and restores the file without pause while this one audits it over and
    over: every call gives the wheel's facts or a WheelError, and the process gets no signal."""
    source = scenarios["origin_chain"].wheel
    wheel = tmp_path / source.name
    content = source.read_bytes()
    wheel.write_bytes(content)
    expected = read_wheel_elves(wheel).keys()
    stop = threading.Event()

    def churn() -> None:
        cuts = [len(content) // 3, len(content) // 2, len(content) - 100]
        while not stop.is_set():
            for cut in cuts:
                with open(wheel, "r+b") as f:
                    f.truncate(cut)
                    f.seek(0)
                    f.write(content)

    thread = threading.Thread(target=churn)
    thread.start()
    outcomes = {"read": 0, "changed": 0, "other error": 0}
    try:
        for _ in range(300):
            try:
                assert read_wheel_elves(wheel, verify_record=True).keys() == expected
                outcomes["read"] += 1
            except WheelChangedError:
                outcomes["changed"] += 1
            except WheelError:
                outcomes["other error"] += 1
    finally:
        stop.set()
        thread.join()
    assert outcomes["changed"] > 0, outcomes


def test_only_regular_files_are_opened(tmp_path: Path) -> None:
    """A FIFO named like a wheel would block open() until a writer came; a device can be acted on
    by opening it. Both are refused at once, unopened (the FIFO has no writer: a hang otherwise)."""
    fifo = tmp_path / "fifo-1.0-py3-none-any.whl"
    os.mkfifo(fifo)
    device = tmp_path / "device-1.0-py3-none-any.whl"
    device.symlink_to("/dev/zero")
    folder = tmp_path / "folder-1.0-py3-none-any.whl"
    folder.mkdir()
    for path in (fifo, device, folder):
        with pytest.raises(WheelError, match="not a regular file") as caught:
            WheelArchive(path)
        assert caught.value.path == str(path)
