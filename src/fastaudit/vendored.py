"""Which third-party native libraries an ELF member is, or carries statically linked, and their versions.

The evidence, strongest first: a version string in the member's constant data (found in one pass
by `_elfstrings.AnchorSet` over the bytes the audit already inflated) or a version object it
exports (sqlite3_version); the OS package auditwheel's own SBOM in the wheel says the grafted file
came from; the release number in the library's real file name for the projects whose file names
carry it; the library's own symbol version names (OPENSSL_3.0.0), a lower bound only; and the
library's name alone (project known, version unknown). Nothing is guessed: without evidence of a
version, the version is None. The patterns are data (data/native-libraries.json, written by
scripts/native_libraries.py).
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
EXPORTED_SYMBOL = "exported-symbol"   # a version object the library exports (sqlite3_version)
OS_PACKAGE = "os-package"             # auditwheel's SBOM: the build host's package of the grafted file
FILE_NAME = "file-name"
SYMBOL_VERSIONS = "symbol-versions"   # the library's own version names: a lower bound, no version
NAME = "name"
CONFIDENCE = {VERSION_STRING: 0.9, EXPORTED_SYMBOL: 0.9, OS_PACKAGE: 0.8, FILE_NAME: 0.7, SYMBOL_VERSIONS: 0.0,
              NAME: 0.0}
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
_MAX_HITS = 64
# a spooled member is scanned this much at a time (see _hits); no anchor is longer than _LONGEST_ANCHOR
_CHUNK = 64 << 20
_LONGEST_ANCHOR = 256


@dataclass(frozen=True)
class VersionString:
    anchor: bytes
    regex: re.Pattern[bytes]


def spell_release(match: re.Match, template: str) -> str:
    """The release a match's groups spell: digit groups lose their leading zeros ("21406" -> 2.14.6)."""
    return template.format(*(str(int(g)) if g.isdigit() else g for g in match.groups()))


@dataclass(frozen=True)
class ExportedVersion:
    symbol: str
    form: str                      # "string", "points-to", "int" or "int-major-minor"
    regex: re.Pattern[str]
    format: str

    def text(self, content: bytes, pointed: bytes | None, little_endian: bool) -> str | None:
        """The object as text, as its form says; None where it cannot be (too short, not ASCII)."""
        if self.form == "points-to":
            raw = pointed
        elif self.form == "string":
            raw = content.split(b"\0", 1)[0]
        elif len(content) < 4:
            return None
        else:
            value = int.from_bytes(content[:4], "little" if little_endian else "big")
            return str(value) if self.form == "int" else f"{value >> 8}.{value & 0xFF}"
        return raw.decode("ascii") if raw is not None and raw.isascii() else None

    def version(self, text: str) -> str | None:
        match = self.regex.fullmatch(text)
        return spell_release(match, self.format) if match else None


@dataclass(frozen=True)
class NativeLibrary:
    project: str
    cpe: str                       # CPE 2.3 prefix, "cpe:2.3:a:vendor:product"
    name: re.Pattern[str] | None   # the file name's stem; None for projects only linked statically
    strings: tuple[VersionString, ...]
    file_version: re.Pattern[str] | None
    file_version_format: str
    symbols: tuple[ExportedVersion, ...] = ()
    symbol_versions: re.Pattern[str] | None = None
    symbol_versions_format: str = ""

    def version_from_file_name(self, real_name: str) -> str | None:
        if self.file_version is None:
            return None
        match = self.file_version.fullmatch(real_name)
        return self.file_version_format.format(*match.groups()) if match else None

    def release_at_least(self, definitions: Iterable[str]) -> tuple[str, str] | None:
        """(the highest version name of ours the library defines, the release it spells): the
        library is at least that release."""
        if self.symbol_versions is None:
            return None
        found = [(name, spell_release(m, self.symbol_versions_format))
                 for name in definitions if (m := self.symbol_versions.fullmatch(name))]
        return max(found, key=lambda item: _release_key(item[1])) if found else None


def _release_key(release: str) -> tuple:
    return tuple((int(part), "") if part.isdigit() else (int(re.match(r"\d*", part)[0] or 0), part)
                 for part in release.split("."))


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
    at_least: str | None = None   # SYMBOL_VERSIONS: the release the library is at least; version is None

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
        symbol_versions = entry.get("symbol_versions")
        found.append(NativeLibrary(
            project=entry["project"], cpe=entry["cpe"],
            name=re.compile(entry["name"] + _NAME_TAIL) if entry["name"] is not None else None,
            strings=tuple(VersionString(s["anchor"].encode(), re.compile(s["regex"].encode()))
                          for s in entry["strings"]),
            file_version=re.compile(file_version["regex"]) if file_version else None,
            file_version_format=file_version["format"] if file_version else "",
            symbols=tuple(ExportedVersion(e["symbol"], e["form"], re.compile(e["regex"]), e["format"])
                          for e in entry.get("symbols", ())),
            symbol_versions=re.compile(symbol_versions["regex"]) if symbol_versions else None,
            symbol_versions_format=symbol_versions["format"] if symbol_versions else "",
        ))
    return tuple(found)


@dataclass(frozen=True)
class _Scanner:
    anchors: AnchorSet
    anchor_owner: tuple[tuple[NativeLibrary, VersionString], ...]   # by anchor index
    symbol_owner: dict[str, tuple[NativeLibrary, ExportedVersion]]  # by symbol name


@functools.cache
def _scanner() -> _Scanner:
    # compiled, so imported here: what only reads project names (the report) never loads it
    from fastaudit._elfstrings import AnchorSet

    owners = tuple((library, s) for library in libraries() for s in library.strings)
    symbols = {e.symbol: (library, e) for library in libraries() for e in library.symbols}
    return _Scanner(AnchorSet([s.anchor for _, s in owners]), owners, symbols)


def _symbol_detail(symbol: str, text: str) -> bytes:
    """How an exported version object is recorded, and told from a version string in identify()."""
    return f"{symbol} = {text}".encode()


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


def _hits(anchors: AnchorSet, data, view: memoryview, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The scanner's hits over the ranges of the buffer, at most _MAX_HITS per anchor. A member
    spooled to a file (an mmap: hundreds of MiB and more) is scanned a chunk at a time and each
    chunk's pages are given back after it, so reading every byte does not make the whole file
    resident, as the ELF reader does not."""
    spooled = isinstance(data, mmap.mmap)
    hits: list[tuple[int, int]] = []
    per_anchor: dict[int, int] = {}
    for first, last in ranges:
        for start in range(first, last, _CHUNK):
            end = min(last, start + _CHUNK)
            # an anchor starting in this chunk may end past it: look that far, keep starts < end
            for index, offset in anchors.find(view, start, min(len(view), end + _LONGEST_ANCHOR), _MAX_HITS):
                if offset < end and per_anchor.get(index, 0) < _MAX_HITS:
                    per_anchor[index] = per_anchor.get(index, 0) + 1
                    hits.append((index, offset))
            if spooled:
                page = start - start % mmap.PAGESIZE
                data.madvise(mmap.MADV_DONTNEED, page, end - page)
    return hits


def scan_version_strings(data) -> VersionStrings:
    """Every version string of a known project in data: one pass of the anchor scanner over the
    image's constant data (_elfstrings.constant_data_ranges: not its machine code), then the
    project's regex around each hit. Depends on the bytes alone, so it can be cached by content."""
    from fastaudit._elfstrings import constant_data_ranges, exported_objects

    known = _scanner()
    found: VersionStrings = {}
    view = memoryview(data).cast("B")
    little_endian = len(view) < 6 or view[5] != 2   # EI_DATA; only read for an ELF image
    for symbol, (content, pointed) in exported_objects(view, [s.encode() for s in known.symbol_owner]).items():
        library, exported = known.symbol_owner[symbol]
        text = exported.text(content, pointed, little_endian)
        if text is not None and (version := exported.version(text)) is not None:
            found.setdefault(library.project, {}).setdefault(version, _symbol_detail(symbol, text))
    for index, offset in _hits(known.anchors, data, view, constant_data_ranges(view)):
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


@dataclass(frozen=True)
class PackageEvidence:
    """What auditwheel's SBOM says of one grafted file: the build host's package it came from."""
    name: str
    version: str       # the package's version, release included ("1.0.9-3.el8")
    purl: str

    @property
    def upstream(self) -> str | None:
        """The upstream release in the package's version: without epoch, release (dpkg, rpm and
        apk all end it with -<release>) and a Debian repack's +dfsg; None if that leaves no release."""
        version = re.sub(r"^\d+:", "", self.version)
        version = version.rsplit("-", 1)[0] if "-" in version else version
        version = re.sub(r"[+~.](?:dfsg|ds|repack)\d*.*$", "", version)
        return version if re.fullmatch(r"\d+(?:\.\d+)*[a-z]?", version) else None


# auditwheel 6.5+ names each grafted file in its SBOM by the SHA-256 of the path it was copied from
# (the bom-ref's fragment), never by its path in the wheel: these are the folders that path was in
_HOST_LIBRARY_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib64", "/usr/local/lib",
                      "/lib32", "/usr/lib32", "/libx32", "/usr/libx32")
_MULTIARCH = ("x86_64-linux-gnu", "i386-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf",
              "powerpc64le-linux-gnu", "s390x-linux-gnu", "riscv64-linux-gnu")
AUDITWHEEL_SBOM = re.compile(r"[^/]+\.dist-info/sboms/auditwheel\.cdx\.json")


def _host_paths(file_name: str) -> Iterable[str]:
    for folder in _HOST_LIBRARY_DIRS:
        yield f"{folder}/{file_name}"
    for triplet in _MULTIARCH:
        yield f"/lib/{triplet}/{file_name}"
        yield f"/usr/lib/{triplet}/{file_name}"


def auditwheel_packages(document: bytes, members: Iterable[str]) -> dict[str, PackageEvidence]:
    """The grafted members auditwheel's SBOM (.dist-info/sboms/auditwheel.cdx.json) names, with
    their package. A member is named when the SHA-256 of a library folder joined with its real file
    name is a component's bom-ref fragment; one the SBOM names by a path we cannot rebuild is left
    out, never matched by its package's name. A document that is not auditwheel's JSON gives {}."""
    import hashlib

    try:
        components = json.loads(document).get("components", [])
    except (ValueError, AttributeError, RecursionError):   # RecursionError: "[[[[..." nested too deep
        return {}
    by_digest: dict[str, PackageEvidence] = {}
    for component in components if isinstance(components, list) else ():
        ref = component.get("bom-ref") if isinstance(component, dict) else None
        fields = [component.get(k) for k in ("name", "version", "purl")] if ref else []
        if isinstance(ref, str) and "#" in ref and all(isinstance(f, str) for f in fields):
            by_digest[ref.rsplit("#", 1)[1]] = PackageEvidence(*fields)
    found: dict[str, PackageEvidence] = {}
    for member in members:
        if by_digest and posixpath.basename(posixpath.dirname(member)).endswith(".libs"):
            for path in _host_paths(real_file_name(member)):
                package = by_digest.get(hashlib.sha256(path.encode()).hexdigest())
                if package is not None:
                    found[member] = package
                    break
    return found


def _own_evidence(library: NativeLibrary, text: bytes) -> str:
    exported = any(text.startswith(_symbol_detail(e.symbol, "")) for e in library.symbols)
    return EXPORTED_SYMBOL if exported else VERSION_STRING


def identify(member: str, strings: VersionStrings, needed: Iterable[str] = (),
             soname: str | None = None, definitions: Iterable[str] = (),
             package: PackageEvidence | None = None) -> tuple[Component, ...]:
    """The third-party libraries member is or carries, from its name, its version strings and
    exported version objects, the OS package auditwheel recorded for it, and its own symbol
    version names (`definitions`). `needed` (its DT_NEEDED) tells a library linked statically
    from one the member was only compiled against: a member that needs libssl.so.3 quotes
    OpenSSL's version text from the headers, it does not ship OpenSSL."""
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
        mine = functools.partial(Component, itself.project, member=member, statically_linked=False, cpe=itself.cpe)
        if versions:
            components.extend(mine(v, _own_evidence(itself, text), _text(text)) for v, text in sorted(versions.items()))
        elif package is not None and package.upstream is not None:
            components.append(mine(package.upstream, OS_PACKAGE, f"{package.purl} (auditwheel's SBOM)"))
        elif (version := itself.version_from_file_name(real_name)) is not None:
            components.append(mine(version, FILE_NAME, real_name))
        elif (bound := itself.release_at_least(definitions)) is not None:
            components.append(mine(None, SYMBOL_VERSIONS, f"defines {bound[0]}: at least {bound[1]}",
                                   at_least=bound[1]))
        else:
            components.append(mine(None, NAME, real_name))
    by_project = {lib.project: lib for lib in libraries()}
    for project, versions in sorted(others.items()):
        if project in linked_projects:
            continue
        for version, text in sorted(versions.items(), key=lambda item: item[0] or ""):
            components.append(Component(project, version, _own_evidence(by_project[project], text), _text(text),
                                        member, True, by_project[project].cpe))
    return tuple(components)
