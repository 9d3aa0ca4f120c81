"""One wheel -> {member: ElfInfo} and the vendored libraries its members are or carry: the zip,
RECORD's checks and the cross-wheel ELF cache.

What analyze.py judges comes from here; nothing here judges.
"""
from __future__ import annotations

import functools
import hashlib
import json
import posixpath
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from os import PathLike
from pathlib import Path

from fastaudit.elf import ElfInfo, dump_elf_info, load_elf_info, read_elf
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

# The stored facts of a member may be at most this multiple of its own size, plus the slack: a
# damaged or forged cache row cannot make a worker allocate more than the member would.
_STORED_FACTS_FACTOR = 8
_STORED_FACTS_SLACK = 1 << 20
_STORED_FACTS_MAGIC = b"FAMF\x02"
_STORED_FACTS_HEAD = struct.Struct("<II")   # CRC-32 of the rest, length of the version strings' JSON


@functools.cache
def facts_version() -> str:
    """What the facts of a member depend on besides its bytes: this fastaudit, the compiled reader
    and string scanner, the Python that decodes their tables, the version-string patterns and this
    codec. Facts stored by any other build are never taken for this one's."""
    from fastaudit import __version__, _elf, _elfstrings, elf, vendored

    digest = hashlib.sha256(__version__.encode())
    for module in (_elf, _elfstrings, elf, vendored, sys.modules[__name__]):
        digest.update(Path(module.__file__ or "").read_bytes())
    digest.update(resources.files("fastaudit").joinpath("data/native-libraries.json").read_bytes())
    return f"{__version__}+{digest.hexdigest()[:16]}"


class StoredFactsError(ValueError):
    """A row of the store's ELF cache that is not facts this fastaudit wrote (damaged, forged or
    cut short): ignored, counted, and the member read from its bytes instead."""


def encode_member_facts(facts: MemberFacts) -> bytes:
    """The facts as the store keeps them, with a CRC-32 that catches a damaged row (not
    compressed: zlib would cost nine times the rest of the encoding, for a third of the size).
    Encode them fresh from the reader, before the audit decodes any symbol name (see dump_elf_info)."""
    strings = {project: [[version, text.decode("latin-1")] for version, text in sorted(
        versions.items(), key=lambda item: item[0] or "")] for project, versions in facts.strings.items()}
    head = json.dumps(strings, sort_keys=True).encode("ascii")
    body = head + dump_elf_info(facts.info)
    return _STORED_FACTS_MAGIC + _STORED_FACTS_HEAD.pack(zlib.crc32(body), len(head)) + body


def decode_member_facts(blob: bytes, member_size: int) -> MemberFacts:
    """The facts encode_member_facts wrote, for a member of member_size bytes; StoredFactsError otherwise."""
    if not isinstance(blob, bytes) or not blob.startswith(_STORED_FACTS_MAGIC):
        raise StoredFactsError("not a stored ELF facts row")
    limit = _STORED_FACTS_FACTOR * member_size + _STORED_FACTS_SLACK
    if len(blob) > limit:
        raise StoredFactsError(f"the stored facts are larger than {limit} bytes")
    start = len(_STORED_FACTS_MAGIC) + _STORED_FACTS_HEAD.size
    try:
        crc, head_size = _STORED_FACTS_HEAD.unpack_from(blob, len(_STORED_FACTS_MAGIC))
        body = memoryview(blob)[start:]
        if zlib.crc32(body) != crc:
            raise StoredFactsError("the stored facts are damaged (CRC-32)")
        stored = json.loads(bytes(body[:head_size]))
        strings: VersionStrings = {}
        for project, versions in stored.items():
            if not isinstance(project, str) or not isinstance(versions, list):
                raise StoredFactsError("the stored version strings are not ours")
            for version, text in versions:
                if version is not None and not isinstance(version, str) or not isinstance(text, str):
                    raise StoredFactsError("the stored version strings are not ours")
                strings.setdefault(project, {})[version] = text.encode("latin-1")
        return MemberFacts(load_elf_info(bytes(body[head_size:])), strings)
    except StoredFactsError:
        raise
    except (ValueError, TypeError, AttributeError, struct.error, UnicodeError) as e:
        raise StoredFactsError(f"the stored facts do not read back: {e}") from e


# Where a cache looks for the facts of earlier runs: member key -> the row's bytes, or None.
StoredFactsLookup = Callable[[bytes], "bytes | None"]


@dataclass
class CacheTraffic:
    """What a cache did for one wheel, for the store to record: the facts it read from bytes
    (to store), the stored rows it reused (to keep them from eviction), and what that saved."""
    new: list[tuple[bytes, int, bytes]] = field(default_factory=list)   # (key, member size, encoded facts)
    reused: list[bytes] = field(default_factory=list)                    # keys of stored rows used
    rejected: list[tuple[bytes, str]] = field(default_factory=list)      # (key, why) of rows ignored
    members_from_store: int = 0
    bytes_from_store: int = 0       # inflated bytes of those members: what was not inflated
    members_from_memory: int = 0
    bytes_from_memory: int = 0
    members_read: int = 0
    bytes_read: int = 0
    facts_version: str = ""          # of the facts in `new` and the rows in `reused`
    without_store: str | None = None  # why the store's rows could not be looked up, if they could not


class ElfCache:
    """ELF facts of library members seen in earlier wheels, so a library that recurs (openblas,
    libgfortran, ... grafted into thousands of wheels) is neither inflated nor parsed again.

    The key is WheelArchive.content_key: the SHA-256 of the member's data as stored, with its
    method, sizes and CRC-32. A hit is a member whose stored bytes are those of one read, checked
    and parsed before, so its facts are its own; forging one would take a SHA-256 collision.
    The CRC-32 and sizes of the central directory alone would not do: four bytes appended or
    changed anywhere make any content's CRC-32 whatever one likes. Bounded by an estimate of the
    bytes the cached facts hold; least recently used first out.

    While `stored` is set (the store's rows of earlier runs, see Store.stored_elf_facts), a member
    not held here is looked up there before it is inflated, and `traffic` collects what the store
    should keep: the facts read from bytes, encoded at once, and the rows reused. `traffic` also
    counts what was reused and what was read, store or not. Members smaller than
    `store_min_size` are neither looked up nor kept there: reading them again costs less than
    encoding, sending and storing their facts (measured in bench/RESULTS.md).
    """

    def __init__(self, max_bytes: int = 256 << 20, stored: StoredFactsLookup | None = None) -> None:
        self.max_bytes = max_bytes
        self.held = 0
        self.hits = 0
        self.stored = stored
        self.store_min_size = 0
        self.traffic = CacheTraffic()
        self._entries: dict[bytes, tuple[MemberFacts, int]] = {}

    def take_traffic(self) -> CacheTraffic:
        """What happened since the last call (one wheel's worth, in a scan)."""
        traffic, self.traffic = self.traffic, CacheTraffic()
        return traffic

    def get(self, key: bytes, member_size: int = 0) -> MemberFacts | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._entries[key] = entry  # most recently used goes last
            self.hits += 1
            self.traffic.members_from_memory += 1
            self.traffic.bytes_from_memory += member_size
            return entry[0]
        blob = self.stored(key) if self._stores(member_size) else None
        if blob is None:
            return None
        try:
            facts = decode_member_facts(blob, member_size)
        except StoredFactsError as e:
            self.traffic.rejected.append((key, str(e)))
            return None
        self.hits += 1
        self.traffic.members_from_store += 1
        self.traffic.bytes_from_store += member_size
        self.traffic.reused.append(key)
        self._hold(key, facts)
        return facts

    def put(self, key: bytes, facts: MemberFacts, member_size: int = 0) -> None:
        self.traffic.members_read += 1
        self.traffic.bytes_read += member_size
        if self._stores(member_size):
            self.traffic.new.append((key, member_size, encode_member_facts(facts)))
        self._hold(key, facts)

    def _stores(self, member_size: int) -> bool:
        return self.stored is not None and member_size >= self.store_min_size

    def _hold(self, key: bytes, facts: MemberFacts) -> None:
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
            facts = cache.get(key, member.size) if cache is not None and key is not None else None
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
                    cache.put(key if key is not None else archive.content_key(member), facts, member.size)
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
