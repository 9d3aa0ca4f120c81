"""fastaudit.files: only regular files are opened; outputs are whole or absent."""
from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from fastaudit.errors import OutputError, PathError, WheelError
from fastaudit.files import (
    atomic_output,
    check_output_file,
    open_regular,
    prepare_output_folder,
    reading,
    sha256_of,
)


def special_files(folder: Path) -> dict[str, Path]:
    made = {"fifo": folder / "fifo.whl", "folder": folder / "folder.whl", "socket": folder / "socket.whl",
            "character device": Path("/dev/null"), "link to a FIFO": folder / "link.whl"}
    os.mkfifo(made["fifo"])
    made["folder"].mkdir()
    with socket.socket(socket.AF_UNIX) as server:
        os.chdir(folder)  # a socket path must be short
        server.bind("socket.whl")
    made["link to a FIFO"].symlink_to("fifo.whl")
    return made


@pytest.mark.parametrize("kind", ["fifo", "folder", "socket", "character device", "link to a FIFO"])
def test_only_regular_files_are_opened(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = special_files(tmp_path)[kind]
    expected = {"fifo": "a FIFO", "folder": "a directory", "socket": "a socket",
                "character device": "a character device", "link to a FIFO": "a FIFO"}[kind]
    for check in (open_regular, sha256_of):
        with pytest.raises(PathError, match=expected) as caught:
            check(path)
        assert str(path) in str(caught.value)
    with pytest.raises(PathError), reading(path):
        pass


def test_a_missing_or_unreadable_file_is_a_wheel_error(tmp_path: Path) -> None:
    with pytest.raises(WheelError, match="cannot open: No such file"):
        open_regular(tmp_path / "missing.whl")


def test_reading_names_the_file_not_its_descriptor(tmp_path: Path) -> None:
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(b"not a zip")
    from fastaudit.wheel import WheelArchive

    with pytest.raises(WheelError) as caught, reading(wheel) as readable:
        assert readable.startswith("/proc/self/fd/")
        WheelArchive(readable)
    assert str(caught.value).startswith(f"{wheel}: not a readable zip file")
    assert "/proc/self" not in str(caught.value)


def test_sha256_of_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"abc")
    assert sha256_of(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_atomic_output_replaces_whole_or_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(target) as out:
        out.write("half of the new")
        raise RuntimeError("the work failed midway")
    assert target.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [target]
    with atomic_output(target) as out:
        out.write("new \udcff\n")  # an undecodable byte of a file name goes out as the byte
    assert target.read_bytes() == b"new \xff\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 and sorted(tmp_path.iterdir()) == [target]


def test_atomic_output_into_a_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write .*missing/out.txt: No such file"):
        with atomic_output(tmp_path / "missing" / "out.txt") as out:
            out.write("x")


def test_outputs_are_checked_before_the_work(tmp_path: Path) -> None:
    a_file = tmp_path / "a file"
    a_file.write_text("")
    for target, phrase in ((tmp_path / "missing" / "x.jsonl", "No such file"), (a_file / "x.jsonl", "Not a directory"),
                           (tmp_path, "it is a directory")):
        with pytest.raises(OutputError, match=phrase):
            check_output_file(target)
    check_output_file(tmp_path / "fine.jsonl")
    assert sorted(tmp_path.iterdir()) == [a_file]  # the probe leaves nothing behind
    assert prepare_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    with pytest.raises(OutputError, match="cannot create .*Not a directory"):
        prepare_output_folder(a_file / "report")
