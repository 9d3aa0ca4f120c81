"""wheel.py and record.py on the cases the hostile-wheel suite does not build: the name rules one
by one, and RECORD's parsing paths (quoted rows, repeated rows, signatures)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fastaudit.errors import RecordMismatchError
from fastaudit.record import Record
from fastaudit.wheel import WheelArchive, unsafe_name_reason
from tests import zipcraft
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
