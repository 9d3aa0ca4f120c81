"""A wheel's RECORD checked against its archive (PEP 427, "The .dist-info directory").

Listing and sizes are checked on every audit: they come from the central directory and one small
member, about 1 us per member (bench/RESULTS.md). Hashes need every member inflated and hashed (about 1 GB/s
of sha256 here, as much again as the inflate), so they are checked only when asked
(`--verify-record`). pip does not check them at install (pypa/pip#4705); PyPI rejects uploads
whose RECORD disagrees with the content from 2026-02-01.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import re

from fastaudit.errors import RecordMismatchError
from fastaudit.wheel import Hasher, Member, WheelArchive

_RECORD_PATH = re.compile(r"^[^/]+\.dist-info/RECORD$")
# signatures of RECORD, which RECORD cannot list
_SIGNATURES = (".jws", ".p7s")
# PEP 427: sha256 or stronger; md5 and sha1 are refused. Value: the length of the digest in
# urlsafe base64 without padding, so a malformed one is caught without decoding every line.
_ENCODED_LENGTH = {name: len(base64.urlsafe_b64encode(bytes(hashlib.new(name).digest_size)).rstrip(b"="))
                   for name in ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s")}


class Record:
    """Member path -> RECORD's row for it (path, hash, size). A wheel can list thousands of files
    and this runs on every audit, so rows are kept as csv gives them and each is checked once,
    against its member, in check_listing."""

    def __init__(self, path: str, name: str, rows: dict[str, list[str]]) -> None:
        self.path = path
        self.name = name
        self.rows = rows

    def _error(self, message: str, member: str) -> RecordMismatchError:
        return RecordMismatchError(message, path=self.path, member=member)

    @classmethod
    def read(cls, archive: WheelArchive) -> Record:
        path = str(archive.path)
        found = [m for m in archive.members if m.name.endswith("/RECORD") and _RECORD_PATH.match(m.name)]
        if len(found) != 1:
            what = "no .dist-info/RECORD" if not found else f"{len(found)} .dist-info/RECORD files"
            raise RecordMismatchError(f"the wheel has {what}", path=path)
        name = found[0].name
        try:
            text = str(archive.read(found[0]), "utf-8")
            if '"' in text:
                lines = [line for line in csv.reader(text.splitlines()) if line]
            else:  # nothing quoted, so no comma inside a field: split gives what csv would, 5x faster
                lines = [line.split(",") for line in text.splitlines() if line]
        except (UnicodeDecodeError, csv.Error) as e:
            raise RecordMismatchError(f"unreadable RECORD: {e}", path=path, member=name) from e
        rows = {line[0]: line for line in lines}
        record = cls(path, name, rows)
        if len(rows) != len(lines):  # a path listed twice: harmless only if both lines agree
            for line in lines:
                if rows[line[0]] != line:
                    raise record._error("listed twice in RECORD, with different hashes or sizes", line[0])
        rows.pop(name, None)
        return record

    def check_listing(self, members: tuple[Member, ...]) -> None:
        """Every member is listed with a sha256-or-stronger hash and its size, and every listed file
        is a member."""
        rows = self.rows
        listed = 0
        for member in members:
            row = rows.get(member.name)
            if row is None:
                if member.name == self.name or member.name.startswith(self.name) and member.name.endswith(_SIGNATURES):
                    continue
                raise self._error("member not listed in RECORD", member.name)
            listed += 1
            algorithm, _, digest = (row[1] if len(row) > 1 else "").partition("=")
            if _ENCODED_LENGTH.get(algorithm, -1) != len(digest):
                raise self._error(self._bad_hash(algorithm, digest), member.name)
            size = row[2] if len(row) > 2 else ""
            if size and size != str(member.size):
                raise self._error(f"RECORD says {size} bytes, the archive holds {member.size}", member.name)
        if listed != len(rows):  # member names are unique (WheelArchive refuses duplicates)
            missing = sorted(rows.keys() - {m.name for m in members})
            raise self._error("listed in RECORD but not in the archive", missing[0])

    @staticmethod
    def _bad_hash(algorithm: str, digest: str) -> str:
        if algorithm in _ENCODED_LENGTH:
            return f"RECORD gives a {algorithm} digest of {len(digest)} characters, not {_ENCODED_LENGTH[algorithm]}"
        return "RECORD gives no hash" if not algorithm else \
            f"RECORD gives the hash algorithm {algorithm!r}, weaker than sha256 or unknown"

    def hasher(self, member: Member) -> Hasher | None:
        """A hash object of the algorithm RECORD gives for the member; None for a member RECORD
        does not list with an acceptable algorithm (check_listing says why)."""
        row = self.rows.get(member.name)
        algorithm = row[1].partition("=")[0] if row and len(row) > 1 else ""
        return hashlib.new(algorithm) if algorithm in _ENCODED_LENGTH else None

    def check_digest(self, member: Member, digest: bytes) -> None:
        algorithm, _, expected = self.rows[member.name][1].partition("=")
        actual = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if actual != expected:
            raise self._error(f"content has {algorithm}={actual}, RECORD says {expected}", member.name)
