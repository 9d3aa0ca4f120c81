"""Which third-party native libraries an ELF member is, or carries statically linked, and their versions.

The evidence, strongest first: a version string in the member's bytes (found in one pass by
`_elfstrings.AnchorSet` over the bytes the audit already inflated), the release number in the
library's real file name for the projects whose file names carry it, and the library's name alone
(project known, version unknown). Nothing is guessed: without evidence of a version, the version
is None. The patterns are data (data/native-libraries.json, written by scripts/native_libraries.py).
"""
from __future__ import annotations

import functools
import json
import mmap
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from fastaudit.errors import PolicyError

if TYPE_CHECKING:
    from fastaudit._elfstrings import AnchorSet

# Evidence kinds, strongest first; `confidence` is what CycloneDX's evidence records.
VERSION_STRING = "version-string"
FILE_NAME = "file-name"
NAME = "name"
CONFIDENCE = {VERSION_STRING: 0.9, FILE_NAME: 0.7, NAME: 0.0}
# A version string inside another binary is a statically linked copy, or text from headers the
# binary was compiled against that no DT_NEEDED of ours explains (a library loaded at run time)
STATIC_CONFIDENCE = 0.6

# auditwheel renames a grafted `<name>.<rest>` to `<name>-<8 hex of its sha256>.<rest>`
_GRAFT_HASH = re.compile(r"^(?P<name>[^.]+?)-[0-9a-f]{8}\.(?P<rest>.+)$")
# what may follow a library's name in its file name: more graft hashes, an ABI number (libldap_r-2),
# a project's own suffix (rasterio's libpng16-rasterio)
_NAME_TAIL = r"(?:-[A-Za-z0-9_]+)*"
# bytes either side of an anchor that a version string may span
_BEFORE, _AFTER = 64, 192
# occurrences of one anchor looked at per member: a hostile member repeating it costs no more
_MAX_HITS = 16
# a spooled member is scanned this much at a time (see _hits); no anchor is longer than _LONGEST_ANCHOR
_CHUNK = 64 << 20
_LONGEST_ANCHOR = 256


@dataclass(frozen=True)
class VersionString:
    anchor: bytes
    regex: re.Pattern[bytes]


@dataclass(frozen=True)
class NativeLibrary:
    project: str
    cpe: str                       # CPE 2.3 prefix, "cpe:2.3:a:vendor:product"
    name: re.Pattern[str] | None   # the file name's stem; None for projects only linked statically
    strings: tuple[VersionString, ...]
    file_version: re.Pattern[str] | None
    file_version_format: str

    def version_from_file_name(self, real_name: str) -> str | None:
        if self.file_version is None:
            return None
        match = self.file_version.fullmatch(real_name)
        return self.file_version_format.format(*match.groups()) if match else None


@dataclass(frozen=True)
class Component:
    """One third-party library found in one member."""
    project: str
    version: str | None
    evidence: str              # VERSION_STRING, FILE_NAME or NAME
    detail: str                # the version string, or the file name, the evidence was read from
    member: str
    statically_linked: bool    # found inside a member that is not that library itself
    cpe: str

    @property
    def confidence(self) -> float:
        return STATIC_CONFIDENCE if self.statically_linked else CONFIDENCE[self.evidence]


@functools.cache
def libraries() -> tuple[NativeLibrary, ...]:
    """The projects of data/native-libraries.json, in their order of precedence."""
    raw = resources.files("fastaudit").joinpath("data/native-libraries.json").read_bytes()
    document = json.loads(raw)
    if document.get("version") != 1:
        raise PolicyError(f"native-libraries.json has format {document.get('version')!r}, expected 1")
    found = []
    for entry in document["libraries"]:
        file_version = entry.get("file_version")
        found.append(NativeLibrary(
            project=entry["project"], cpe=entry["cpe"],
            name=re.compile(entry["name"] + _NAME_TAIL) if entry["name"] is not None else None,
            strings=tuple(VersionString(s["anchor"].encode(), re.compile(s["regex"].encode()))
                          for s in entry["strings"]),
            file_version=re.compile(file_version["regex"]) if file_version else None,
            file_version_format=file_version["format"] if file_version else "",
        ))
    return tuple(found)


@dataclass(frozen=True)
class _Scanner:
    anchors: AnchorSet
    anchor_owner: tuple[tuple[NativeLibrary, VersionString], ...]   # by anchor index


@functools.cache
def _scanner() -> _Scanner:
    # compiled, so imported here: what only reads project names (the report) never loads it
    from fastaudit._elfstrings import AnchorSet

    owners = tuple((library, s) for library in libraries() for s in library.strings)
    return _Scanner(AnchorSet([s.anchor for _, s in owners]), owners)


def real_file_name(member: str) -> str:
    """The member's file name without auditwheel's graft hash: libz-a147dcb0.so.1.2.3 -> libz.so.1.2.3."""
    name = posixpath.basename(member)
    match = _GRAFT_HASH.match(name)
    return f"{match['name']}.{match['rest']}" if match else name


def _stem(file_name: str) -> str:
    return file_name.split(".", 1)[0]


def libraries_named(file_name: str) -> list[NativeLibrary]:
    """The known projects a (grafted or plain) library file name may belong to, first the likeliest."""
    return list(_libraries_with_stem(_stem(file_name)))


# A scan asks this for every DT_NEEDED name of every member, and the same few hundred names recur:
# 84 regular expressions per name were a sixth of a scan worker's CPU per wheel. Bounded, so names
# a hostile wheel invents cannot grow it.
@functools.lru_cache(maxsize=4096)
def _libraries_with_stem(stem: str) -> tuple[NativeLibrary, ...]:
    return tuple(lib for lib in libraries() if lib.name is not None and lib.name.fullmatch(stem))


def library_named(file_name: str) -> NativeLibrary | None:
    candidates = libraries_named(file_name)
    return candidates[0] if candidates else None


# {project: {version or None: the bytes it was read from}}: what a member's bytes say, whatever its name
VersionStrings = dict[str, dict[str | None, bytes]]


def _hits(anchors: AnchorSet, data, view: memoryview) -> list[tuple[int, int]]:
    """The scanner's hits over the whole buffer. A member spooled to a file (an mmap: hundreds of
    MiB and more) is scanned a chunk at a time and each chunk's pages are given back after it, so
    reading every byte does not make the whole file resident, as the ELF reader does not."""
    if not isinstance(data, mmap.mmap) or len(view) <= _CHUNK:
        return anchors.find(view, max_hits=_MAX_HITS)
    hits: list[tuple[int, int]] = []
    per_anchor: dict[int, int] = {}
    for start in range(0, len(view), _CHUNK):
        end = min(len(view), start + _CHUNK)
        # an anchor starting in this chunk may end in the next: look that far, keep starts < end
        for index, offset in anchors.find(view, start, min(len(view), end + _LONGEST_ANCHOR), _MAX_HITS):
            if offset < end and per_anchor.get(index, 0) < _MAX_HITS:
                per_anchor[index] = per_anchor.get(index, 0) + 1
                hits.append((index, offset))
        data.madvise(mmap.MADV_DONTNEED, start, end - start)
    return hits


def scan_version_strings(data) -> VersionStrings:
    """Every version string of a known project in data: one pass of the anchor scanner, then the
    project's regex around each hit. Depends on the bytes alone, so it can be cached by content."""
    known = _scanner()
    found: VersionStrings = {}
    view = memoryview(data).cast("B")
    for index, offset in _hits(known.anchors, data, view):
        library, pattern = known.anchor_owner[index]
        start = max(0, offset - _BEFORE)
        window = bytes(view[start:offset + _AFTER])
        for match in pattern.regex.finditer(window):
            if match.start() <= offset - start < match.end():
                version = match.group(1).decode("ascii") if pattern.regex.groups else None
                found.setdefault(library.project, {}).setdefault(version, match.group(0))
                break
    return found


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "backslashreplace")


def identify(member: str, strings: VersionStrings, needed: Iterable[str] = (),
             soname: str | None = None) -> tuple[Component, ...]:
    """The third-party libraries member is or carries, from its name and its version strings.
    `needed` (its DT_NEEDED) tells a library linked statically from one the member was only
    compiled against: a member that needs libssl.so.3 quotes OpenSSL's version text from the
    headers, it does not ship OpenSSL."""
    real_name = real_file_name(member)
    candidates = libraries_named(real_name) or (libraries_named(real_file_name(soname)) if soname else [])
    # two projects ship a libjpeg.so: the one whose version string the member carries is the one
    itself = next((lib for lib in candidates if lib.project in strings), candidates[0] if candidates else None)
    linked_projects = {lib.project for lib in map(library_named, map(real_file_name, needed)) if lib}
    components: list[Component] = []
    others = dict(strings)
    if itself is not None:
        own = others.pop(itself.project, {})
        versions = {v: text for v, text in own.items() if v is not None}
        if versions:
            components.extend(Component(itself.project, v, VERSION_STRING, _text(text), member, False, itself.cpe)
                              for v, text in sorted(versions.items()))
        elif (version := itself.version_from_file_name(real_name)) is not None:
            components.append(Component(itself.project, version, FILE_NAME, real_name, member, False, itself.cpe))
        else:
            components.append(Component(itself.project, None, NAME, real_name, member, False, itself.cpe))
    by_project = {lib.project: lib for lib in libraries()}
    for project, versions in sorted(others.items()):
        if project in linked_projects:
            continue
        for version, text in sorted(versions.items(), key=lambda item: item[0] or ""):
            components.append(Component(project, version, VERSION_STRING, _text(text), member, True,
                                        by_project[project].cpe))
    return tuple(components)
