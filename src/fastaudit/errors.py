"""One exception tree for everything fastaudit raises on purpose.

Each error carries what a user needs to find the problem: the path, the member inside a wheel and,
for ELF errors, the byte offset where reading failed.
"""
from __future__ import annotations


class FastauditError(Exception):
    """Root of every error fastaudit raises deliberately."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, member: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.member = member

    def with_location(self, *, path: str | None = None, member: str | None = None) -> FastauditError:
        """Fill in where the error happened, keeping what is already known."""
        self.path = self.path or path
        self.member = self.member or member
        return self

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.path, self.member) if p)
        return f"{where}: {self.message}" if where else self.message


class ELFError(FastauditError):
    """An ELF image could not be read."""

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        path: str | None = None,
        member: str | None = None,
    ) -> None:
        super().__init__(message, path=path, member=member)
        self.offset = offset

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (at offset {self.offset:#x})" if self.offset is not None else text


class ELFTruncatedError(ELFError):
    """A header or table extends past the end of the buffer."""


class ELFInvalidError(ELFError):
    """Not an ELF image, or a header field holds a value the gABI does not allow."""


class ELFCorruptError(ELFError):
    """Internally inconsistent tables: bad links, loops, unterminated strings."""


class ELFUnsupportedError(ELFError):
    """A well-formed ELF image that uses something we do not read."""


class WheelError(FastauditError):
    """A wheel file could not be read or has an invalid name or layout."""


class WheelChangedError(WheelError):
    """The wheel file was written, truncated or replaced while it was read (a mirror sync in
    progress): what was read may mix two versions of it. Reading it again later is the remedy."""


class ZipBombError(WheelError):
    """Reading a member would pass a configured cap: its declared size, or what one wheel may
    inflate in bytes or in time."""


class ZipConfusionError(WheelError):
    """The archive reads differently depending on the reader: duplicate names, a local header that
    disagrees with the central directory, entries whose data overlap."""


class UnsafeMemberError(WheelError):
    """A member an installer must not write as named: an absolute path, `..`, a symbolic link."""


class RecordMismatchError(WheelError):
    """The wheel's RECORD disagrees with its content: a member missing from it or from the archive,
    a size or a hash that differs."""


class PathError(WheelError):
    """A path fastaudit will not open as a wheel: not a regular file (a FIFO, a device, a folder),
    a link out of the scanned tree, a name that is not UTF-8, or a folder it cannot list."""


class OutputError(FastauditError):
    """An output file or folder cannot be written (missing, read-only, full); nothing was left
    half-written."""


class ScanWorkerError(FastauditError):
    """The worker process auditing a wheel died (a signal, the out-of-memory killer)."""


class PolicyError(FastauditError):
    """The policy data is inconsistent, or a tag names no known policy."""


class RepairError(FastauditError):
    """A wheel cannot be repaired to the requested tag."""


class ReportError(FastauditError):
    """No report can be made from a store: it has no runs, or the run asked for is unknown."""


# The walkers' and the rewriter's failure statuses, by the names _elfbytes.pxd gives them (the codes
# are defined there only), mapped to the error they mean.
_ELF_ERROR_BY_STATUS: dict[str, type[ELFError]] = {
    "ST_TRUNCATED": ELFTruncatedError,
    "ST_INVALID": ELFInvalidError,
    "ST_CORRUPT": ELFCorruptError,
    "ST_UNSUPPORTED": ELFUnsupportedError,
}


def elf_error_for_status(status: str, what: str, offset: int) -> ELFError:
    """The exception for a failure status; an unknown status is itself corruption."""
    error_class = _ELF_ERROR_BY_STATUS.get(status, ELFCorruptError)
    return error_class(f"bad {what}" if error_class is not ELFTruncatedError else f"truncated {what}",
                       offset=offset)
