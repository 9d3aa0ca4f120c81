"""Offline advisories against the vendored libraries a scan found: which wheels ship an affected version.

Two formats are read, both JSON:

- ours, written by hand or by a script:
  ``{"advisories": [{"id": "CVE-2023-4863", "library": "libwebp", "summary": "...",
  "ranges": [{"introduced": "0", "fixed": "1.3.2"}], "versions": ["1.3.1"]}]}``
  where `library` is a project name of data/native-libraries.json, each range is a list of OSV's
  events (`introduced`, then `fixed` or `last_affected`; "0" is the beginning), and `versions`
  lists single affected versions;
- OSV records (https://ossf.github.io/osv-schema/), one object or a list: each `affected` entry
  whose package `name` (or the name in a `pkg:generic/...` purl) is one of our project names is
  used, with its ECOSYSTEM or SEMVER ranges and its `versions`. GIT ranges (commit hashes) cannot
  be compared with the version a binary carries and are left out.

A library whose version is unknown (found by name only) is never reported as affected: the
finding would be a guess.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastaudit.errors import FastauditError
from fastaudit.vendored import libraries

_TOKEN = re.compile(r"\d+|[A-Za-z]+")
_PRERELEASE = {"dev", "alpha", "beta", "rc", "pre"}  # not "a"/"b": OpenSSL 1.1.1a is a release


class AdvisoryError(FastauditError):
    """An advisory file that cannot be read or does not follow either format."""


@cache
def version_key(version: str) -> tuple:
    """An order for the versions C libraries print: numbers compare as numbers, a letter suffix
    comes after the bare release (OpenSSL 1.1.1 < 1.1.1a < 1.1.1w), a pre-release before it
    (0.3.21.dev < 0.3.21)."""
    key: list[tuple[int, int | str]] = []
    for token in _TOKEN.findall(version):
        if token.isdigit():
            key.append((2, int(token)))
        elif token.lower() in _PRERELEASE and key:
            key.append((0, token.lower()))
        else:
            key.append((1, token.lower()))
    key.append((1, ""))  # the release itself sorts after its pre-releases, before its letters
    return tuple(key)


@dataclass(frozen=True)
class Range:
    introduced: str
    fixed: str | None = None
    last_affected: str | None = None

    def contains(self, version: str) -> bool:
        key = version_key(version)
        if self.introduced != "0" and key < version_key(self.introduced):
            return False
        if self.fixed is not None:
            return key < version_key(self.fixed)
        if self.last_affected is not None:
            return key <= version_key(self.last_affected)
        return True


@dataclass(frozen=True)
class Advisory:
    id: str
    library: str
    summary: str
    ranges: tuple[Range, ...]
    versions: frozenset[str]

    def affects(self, version: str | None) -> bool:
        if version is None:
            return False
        return version in self.versions or any(r.contains(version) for r in self.ranges)


@dataclass(frozen=True)
class Finding:
    advisory: Advisory
    wheel: str
    project: str
    member: str
    version: str


def _ranges(events_lists: Iterable[list[dict]], where: str) -> tuple[Range, ...]:
    ranges = []
    for events in events_lists:
        introduced: str | None = None
        for event in events:
            if "introduced" in event:
                introduced = str(event["introduced"])
            elif introduced is not None and ("fixed" in event or "last_affected" in event):
                ranges.append(Range(introduced, event.get("fixed"), event.get("last_affected")))
                introduced = None
            elif "limit" not in event:
                raise AdvisoryError(f"{where}: an event before any 'introduced': {event}")
        if introduced is not None:
            ranges.append(Range(introduced))
    return tuple(ranges)


def _osv_package_name(package: dict) -> str:
    purl = package.get("purl") or ""
    if purl.startswith("pkg:generic/"):
        return purl.removeprefix("pkg:generic/").split("@", 1)[0].lower()
    return str(package.get("name", "")).lower()


def _from_osv(record: dict, projects: set[str]) -> Iterator[Advisory]:
    for affected in record.get("affected", ()):
        name = _osv_package_name(affected.get("package", {}))
        if name not in projects:
            continue
        usable = [r.get("events", []) for r in affected.get("ranges", ()) if r.get("type") in ("ECOSYSTEM", "SEMVER")]
        yield Advisory(str(record["id"]), name, str(record.get("summary", "")), _ranges(usable, record["id"]),
                       frozenset(map(str, affected.get("versions", ()))))


def load_advisories(path: str | Path) -> tuple[Advisory, ...]:
    """The advisories of a file in either format; AdvisoryError with the file named otherwise."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdvisoryError(f"cannot read the advisories: {e}", path=str(path)) from e
    projects = {lib.project for lib in libraries()}
    try:
        if isinstance(document, dict) and "advisories" in document:
            found = []
            for entry in document["advisories"]:
                if entry["library"] not in projects:
                    raise AdvisoryError(f"advisory {entry['id']}: unknown library {entry['library']!r}", path=str(path))
                ranges = tuple(Range(str(r.get("introduced", "0")), r.get("fixed"), r.get("last_affected"))
                               for r in entry.get("ranges", ()))
                found.append(Advisory(str(entry["id"]), entry["library"], str(entry.get("summary", "")), ranges,
                                      frozenset(map(str, entry.get("versions", ())))))
            return tuple(found)
        records = document if isinstance(document, list) else [document]
        return tuple(a for record in records for a in _from_osv(record, projects))
    except (KeyError, TypeError, AttributeError) as e:
        raise AdvisoryError(f"not an advisory file of either format ({type(e).__name__}: {e})", path=str(path)) from e


def findings(advisories: Iterable[Advisory],
             vendored: Iterable[tuple[str, str | None, str, str, str, str, str]]) -> list[Finding]:
    """The affected (wheel, member) pairs among Store.vendored_libraries rows."""
    by_library: dict[str, list[Advisory]] = {}
    for advisory in advisories:
        by_library.setdefault(advisory.library, []).append(advisory)
    found = []
    for library, version, wheel, project, member, _evidence, _linkage in vendored:
        for advisory in by_library.get(library, ()):
            if advisory.affects(version):
                assert version is not None
                found.append(Finding(advisory, wheel, project, member, version))
    return found
