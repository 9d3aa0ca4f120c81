"""One wheel -> {member: ElfInfo} and the vendored libraries its members are or carry: the zip,
RECORD's checks and the cross-wheel ELF cache.

What analyze.py judges comes from here; nothing here judges.
"""
from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike

from fastaudit.elf import ElfInfo, read_elf
from fastaudit.errors import ELFError, WheelError
from fastaudit.record import Record
from fastaudit.vendored import (
    AUDITWHEEL_SBOM,
    Component,
    PackageEvidence,
    VersionStrings,
    auditwheel_packages,
    identify,
    scan_version_strings,
)
from fastaudit.wheel import WheelArchive, WheelName, parse_wheel_name


class ElfCache:
    """ELF facts of library members seen in earlier wheels, so a library that recurs (openblas,
    libgfortran, ... grafted into thousands of wheels) is neither inflated nor parsed again.

    The key is WheelArchive.content_key: the SHA-256 of the member's data as stored, with its
    method, sizes and CRC-32. A hit is a member whose stored bytes are those of one read, checked
    and parsed before, so its facts are its own; forging one would take a SHA-256 collision.
    The CRC-32 and sizes of the central directory alone would not do: four bytes appended or
    changed anywhere make any content's CRC-32 whatever one likes. Bounded by an estimate of the
    bytes the cached facts hold; least recently used first out.
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self.held = 0
        self.hits = 0
        self._entries: dict[bytes, tuple[MemberFacts, int]] = {}

    def get(self, key: bytes) -> MemberFacts | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._entries[key] = entry  # most recently used goes last
        self.hits += 1
        return entry[0]

    def put(self, key: bytes, facts: MemberFacts) -> None:
        cost = facts.info.footprint() + sum(len(t) for v in facts.strings.values() for t in v.values())
        if cost > self.max_bytes:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.held -= previous[1]
        self._entries[key] = (facts, cost)
        self.held += cost
        while self.held > self.max_bytes:
            oldest = next(iter(self._entries))
            self.held -= self._entries.pop(oldest)[1]


@dataclass(frozen=True)
class MemberFacts:
    """What one ELF member's bytes say: its tables, and the version strings of known projects."""
    info: ElfInfo
    strings: VersionStrings


@dataclass(frozen=True)
class WheelFacts:
    members: dict[str, MemberFacts]
    sha256: dict[str, str] = field(default_factory=dict)   # hex digests, when asked for
    # grafted member -> its OS package, as auditwheel's own SBOM in the wheel records it
    os_packages: dict[str, PackageEvidence] = field(default_factory=dict)

    @property
    def elves(self) -> dict[str, ElfInfo]:
        return {name: facts.info for name, facts in self.members.items()}

    def vendored(self) -> dict[str, tuple[Component, ...]]:
        """Member -> the third-party libraries it is or carries (members with none left out)."""
        found = {name: identify(name, facts.strings, facts.info.needed, facts.info.soname,
                                facts.info.version_definitions, self.os_packages.get(name))
                 for name, facts in sorted(self.members.items())}
        return {name: components for name, components in found.items() if components}


# auditwheel's SBOM of a wheel's grafted files is a few KiB; a larger one is not read
_MAX_SBOM = 4 << 20


def read_wheel_facts(path: str | PathLike[str], cache: ElfCache | None = None, *,
                     verify_record: bool = False, hashes: bool = False,
                     only: Callable[[str], bool] | None = None) -> WheelFacts:
    """The facts of every ELF member of a wheel. Raises WheelError or ELFError with the wheel and
    member named.

    A missing or unreadable RECORD is refused first, then content errors, then RECORD's listing,
    hashes and sizes; with verify_record, every member's hash too (every member is then read,
    cached ELF members included). With `hashes`, each ELF member's SHA-256 (for an SBOM), which
    needs every ELF member read, so the cache is not used. `only` limits the members read to the
    names it accepts.
    """
    members: dict[str, MemberFacts] = {}
    digests: dict[str, str] = {}
    auditwheel_sbom = b""
    use_cache = cache is not None and not verify_record and not hashes
    with WheelArchive(path) as archive:
        record = Record.read(archive)
        hashed: set[str] = set()
        for member in archive.members:
            if AUDITWHEEL_SBOM.fullmatch(member.name) and member.size <= _MAX_SBOM \
                    and (only is None or only(member.name)):
                auditwheel_sbom = bytes(archive.read(member))
            if member.name.endswith(".py") or only is not None and not only(member.name) \
                    or not archive.starts_with_elf_magic(member):
                continue
            key = archive.content_key(member) if use_cache else None
            facts = cache.get(key) if cache is not None and key is not None else None
            if facts is None:
                hasher = record.hasher(member) if verify_record else None
                data = archive.read(member, hasher)
                try:
                    facts = MemberFacts(read_elf(data), scan_version_strings(data))
                except ELFError as e:
                    e.with_location(path=str(path), member=member.name)
                    raise
                if hashes:
                    digests[member.name] = hashlib.sha256(data).hexdigest()
                if hasher is not None:
                    record.check_digest(member, hasher.digest())
                    hashed.add(member.name)
                if cache is not None:
                    cache.put(key if key is not None else archive.content_key(member), facts)
            members[member.name] = facts
        record.check_listing(archive.members)
        if verify_record:
            for member in archive.members:
                if member.name not in hashed and (hasher := record.hasher(member)) is not None:
                    archive.read(member, hasher)
                    record.check_digest(member, hasher.digest())
        archive.check_unchanged()
    return WheelFacts(members, digests, auditwheel_packages(auditwheel_sbom, members) if auditwheel_sbom else {})


def read_wheel_elves(path: str | PathLike[str], cache: ElfCache | None = None, *,
                     verify_record: bool = False, only: Callable[[str], bool] | None = None) -> dict[str, ElfInfo]:
    """Member path -> ElfInfo for every ELF member of a wheel (read_wheel_facts' tables alone)."""
    return read_wheel_facts(path, cache, verify_record=verify_record, only=only).elves


def check_linux_wheel_name(path: str | PathLike[str]) -> WheelName:
    """The parsed file name of a wheel fastaudit can audit: Linux platform tags, or pure."""
    name = parse_wheel_name(posixpath.basename(str(path).replace("\\", "/")))
    if not name.is_pure and not name.is_linux:
        raise WheelError(f"not a Linux wheel: its platform tags are {', '.join(name.platform_tags)}",
                         path=str(path))
    return name
