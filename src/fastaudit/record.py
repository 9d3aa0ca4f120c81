"""A wheel's RECORD checked against its archive (PEP 427, "The .dist-info directory").

Listing and sizes are checked on every audit: they come from the central directory and one small
member, so they cost next to nothing. Hashes need every member inflated and hashed (about 1 GB/s
of sha256 here, as much again as the inflate), so they are checked only when asked
(`--verify-record`). pip does not check them at install (pypa/pip#4705); PyPI rejects uploads
whose RECORD disagrees with the content from 2026-02-01.
"""
from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import re
from dataclasses import dataclass

from fastaudit.errors import RecordMismatchError
from fastaudit.wheel import Hasher, Member, WheelArchive

_RECORD_PATH = re.compile(r"^[^/]+\.dist-info/RECORD$")
# signatures of RECORD, which RECORD cannot list
_SIGNATURES = (".jws", ".p7s")
# PEP 427: sha256 or stronger; md5 and sha1 are refused
_ALGORITHMS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"})


@dataclass(frozen=True)
class RecordEntry:
    algorithm: str
    digest: bytes
    size: int | None


class Record:
    """Member path -> what RECORD says of it."""

    def __init__(self, path: str, name: str, entries: dict[str, RecordEntry]) -> None:
        self.path = path
        self.name = name
        self.entries = entries

    def _error(self, message: str, member: str) -> RecordMismatchError:
        return RecordMismatchError(message, path=self.path, member=member)

    @classmethod
    def read(cls, archive: WheelArchive) -> Record:
        path = str(archive.path)
        found = [m for m in archive.members if _RECORD_PATH.match(m.name)]
        if len(found) != 1:
            what = "no .dist-info/RECORD" if not found else f"{len(found)} .dist-info/RECORD files"
            raise RecordMismatchError(f"the wheel has {what}", path=path)
        member = found[0]
        record = cls(path, member.name, {})
        try:
            text = bytes(archive.read(member)).decode("utf-8")
            rows = list(csv.reader(text.splitlines()))
        except (UnicodeDecodeError, csv.Error) as e:
            raise record._error(f"unreadable RECORD: {e}", member.name) from e
        for row in rows:
            if not row or row[0] == member.name:
                continue
            name, entry = row[0], record._entry(row)
            if record.entries.setdefault(name, entry) != entry:
                raise record._error("listed twice in RECORD, with different hashes or sizes", name)
        return record

    def _entry(self, row: list[str]) -> RecordEntry:
        name = row[0]
        algorithm, _, encoded = (row[1] if len(row) > 1 else "").partition("=")
        if algorithm not in _ALGORITHMS:
            reason = "no hash" if not algorithm else f"the hash algorithm {algorithm!r}, weaker than sha256 or unknown"
            raise self._error(f"RECORD gives {reason}", name)
        try:
            digest = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            size = int(row[2]) if len(row) > 2 and row[2] else None
        except (binascii.Error, ValueError) as e:
            raise self._error(f"malformed RECORD line: {e}", name) from e
        if len(digest) != hashlib.new(algorithm).digest_size:
            raise self._error(f"RECORD gives a {algorithm} digest of {len(digest)} bytes", name)
        return RecordEntry(algorithm, digest, size)

    def check_listing(self, members: tuple[Member, ...]) -> None:
        """Every member is listed with its size, and every listed file is a member."""
        present = set()
        for member in members:
            present.add(member.name)
            if member.name == self.name or member.name.startswith(self.name) and member.name.endswith(_SIGNATURES):
                continue
            entry = self.entries.get(member.name)
            if entry is None:
                raise self._error("member not listed in RECORD", member.name)
            if entry.size is not None and entry.size != member.size:
                raise self._error(f"RECORD says {entry.size} bytes, the archive holds {member.size}", member.name)
        missing = sorted(self.entries.keys() - present)
        if missing:
            raise self._error("listed in RECORD but not in the archive", missing[0])

    def hasher(self, member: Member) -> Hasher:
        return hashlib.new(self.entries[member.name].algorithm)

    def check_digest(self, member: Member, digest: bytes) -> None:
        entry = self.entries[member.name]
        if digest != entry.digest:
            expected = base64.urlsafe_b64encode(entry.digest).rstrip(b"=").decode()
            actual = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            raise self._error(f"content has {entry.algorithm}={actual}, RECORD says {expected}", member.name)
