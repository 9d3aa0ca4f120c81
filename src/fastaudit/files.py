"""What fastaudit opens and writes on the file system: only regular files in, only whole files out.

In: a mirror is a tree anyone may have put anything into. A FIFO or a device named `*.whl` would
block an open() or a read() for ever, so a path is stat'ed before it is opened, opened without
blocking, and its descriptor fstat'ed (a file swapped for a FIFO between the two is refused, never
waited on).

Out: every file fastaudit writes (reports, exports, JSON lines, repaired wheels) is written beside
its final name, fsync'ed and renamed into place, so a reader sees the old file or the whole new one;
a failure removes the partial file and is an `OutputError` with one line. Output folders are
checked before the work that fills them, so a long scan does not end by failing to write.
"""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from fastaudit.errors import FastauditError, OutputError, PathError, WheelError

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}


def not_regular(path: str | os.PathLike[str], mode: int) -> PathError:
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return PathError(f"{kind}, not a regular file: only regular files are opened", path=str(path))


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of the regular file at path (the caller closes it); a WheelError
    naming the path when it cannot be opened, a PathError when it is not a regular file."""
    where = str(path)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise not_regular(where, mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise WheelError(f"cannot open: {e.strerror or e}", path=where) from e
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise not_regular(where, mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_regular(path: str | os.PathLike[str]) -> None:
    """Refuse now what open_regular would refuse, for a reader that opens the path itself."""
    os.close(open_regular(path))


def _rename(error: FastauditError, proxy: str, path: str) -> None:
    if error.path == proxy:
        error.path = path
    error.message = error.message.replace(proxy, path)
    error.args = (error.message,)


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[str]:
    """A path that names the very regular file `open_regular` checked, for readers that open by
    path (the wheel reader opens it, and opens it again to spool a large member): on Linux
    /proc/self/fd/N reopens the checked file, whatever the name points at by then. Errors raised
    inside name `path`, not that proxy."""
    fd = open_regular(path)
    proxy = f"/proc/self/fd/{fd}"
    if not os.path.exists(proxy):
        proxy = str(path)  # no procfs: the checked name itself, a window left open
    try:
        yield proxy
    except FastauditError as e:
        if proxy != str(path):
            _rename(e, proxy, str(path))
        raise
    finally:
        os.close(fd)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a regular file's content."""
    fd = open_regular(path)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as e:
        raise WheelError(f"cannot read: {e.strerror or e}", path=str(path)) from e
    return digest.hexdigest()


def check_output_file(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output file that cannot be written: its folder is missing,
    read-only or not a folder, or the path is a folder. Nothing is left behind (the probe file
    has no name)."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a directory")
    _probe(target.parent, target)


def prepare_output_folder(folder: str | os.PathLike[str]) -> Path:
    """The output folder, created if missing, after checking a file can be written into it."""
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {target}: {e.strerror or e}") from e
    _probe(target, target)
    return target


def _probe(folder: Path, target: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from e


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """A file beside `path` to write into. When the block ends it is flushed, fsync'ed, made
    readable by all (0644: outputs are meant to be published) and renamed onto `path`. On any
    failure it is removed; an OSError (a full disk, a read-only folder) becomes OutputError.
    Text is UTF-8, undecodable bytes of file names written back as they were."""
    target = Path(path)
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        if "b" in mode:
            out: IO = os.fdopen(fd, mode)
        else:
            out = os.fdopen(fd, mode, encoding="utf-8", errors="surrogateescape", newline="")
        with out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
        temporary = None
    except OSError as e:
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from e
    finally:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass  # the folder went away, or a full disk refuses even this: nothing more to do
