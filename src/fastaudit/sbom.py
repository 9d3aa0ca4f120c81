"""The native libraries a wheel ships, as a CycloneDX 1.6 SBOM (the format PEP 770 names for
`.dist-info/sboms/`): the wheel is the root component; each identified library is a component
with where it sits in the wheel, its SHA-256 when it is a file of its own, the evidence its name
and version were read from, and the OS package it was grafted from when the build host knew it."""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

from fastaudit import __version__
from fastaudit.facts import WheelFacts, check_linux_wheel_name, read_wheel_facts
from fastaudit.lddtree import resolve_tree
from fastaudit.ospackages import OsPackage
from fastaudit.vendored import (
    EXPORTED_SYMBOL,
    FILE_NAME,
    NAME,
    OS_PACKAGE,
    SYMBOL_VERSIONS,
    VERSION_STRING,
    Component,
)
from fastaudit.wheel import WheelName

SPEC_VERSION = "1.6"
SBOM_FILE = "fastaudit.cdx.json"   # in .dist-info/sboms/ (PEP 770)
# CycloneDX's evidence techniques for each kind of evidence of ours
_TECHNIQUE = {VERSION_STRING: "binary-analysis", EXPORTED_SYMBOL: "binary-analysis", SYMBOL_VERSIONS: "binary-analysis",
              OS_PACKAGE: "manifest-analysis", FILE_NAME: "filename", NAME: "filename"}


@dataclass(frozen=True)
class SbomMember:
    """One ELF member of the wheel with what was found in it."""
    path: str
    sha256: str
    components: tuple[Component, ...]
    depends_on: tuple[str, ...] = ()      # paths of the members it loads, inside the wheel
    os_package: OsPackage | None = None
    grafted: bool = False                 # in the wheel's <dist>.libs/ folder


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_purl(wheel: WheelName) -> str:
    return f"pkg:pypi/{_normalized(wheel.name)}@{wheel.version}?file_name={wheel.filename}"


def _purl(component: Component) -> str:
    return f"pkg:generic/{component.project}" + (f"@{component.version}" if component.version else "")


def _cpe(component: Component) -> str:
    version = component.version or "*"
    return f"{component.cpe}:{version}:*:*:*:*:*:*:*"


def _evidence(component: Component) -> dict[str, Any]:
    method = {"technique": _TECHNIQUE[component.evidence], "confidence": component.confidence,
              "value": component.detail}
    identity = [{"field": "name", "confidence": 1.0 if component.evidence != NAME else 0.8,
                 "methods": [{"technique": _TECHNIQUE[component.evidence], "confidence": 0.8,
                              "value": component.detail}]}]
    if component.version is not None:
        identity.append({"field": "version", "confidence": component.confidence, "methods": [method]})
    return {"identity": identity, "occurrences": [{"location": component.member}]}


def _component(member: SbomMember, component: Component, ref: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": component.project}
    if component.version is not None:
        entry["version"] = component.version
    if not component.statically_linked:
        entry["hashes"] = [{"alg": "SHA-256", "content": member.sha256}]
    entry["cpe"] = _cpe(component)
    entry["purl"] = member.os_package.purl if member.os_package and not component.statically_linked \
        else _purl(component)
    properties = [
        {"name": "fastaudit:path", "value": member.path},
        {"name": "fastaudit:evidence", "value": component.evidence},
        {"name": "fastaudit:linkage", "value": "static" if component.statically_linked else "shared"},
    ]
    if component.at_least is not None:   # a lower bound from symbol version names, not a version
        properties.append({"name": "fastaudit:version-at-least", "value": component.at_least})
    if member.grafted:
        properties.append({"name": "fastaudit:grafted", "value": "true"})
    if member.os_package and not component.statically_linked:
        package = member.os_package
        properties.append({"name": f"fastaudit:{package.manager}-package",
                           "value": f"{package.name} {package.version}"})
    entry["properties"] = properties
    entry["evidence"] = _evidence(component)
    return entry


def _unidentified(member: SbomMember, ref: str) -> dict[str, Any]:
    """A grafted library no pattern knows: listed by its file, never given a made-up name or version."""
    name = member.path.rsplit("/", 1)[-1]
    entry: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": name,
                             "hashes": [{"alg": "SHA-256", "content": member.sha256}],
                             "properties": [{"name": "fastaudit:path", "value": member.path},
                                            {"name": "fastaudit:evidence", "value": "none"},
                                            {"name": "fastaudit:grafted", "value": "true"}],
                             "evidence": {"occurrences": [{"location": member.path}]}}
    if member.os_package:
        entry["purl"] = member.os_package.purl
        entry["version"] = member.os_package.version
    return entry


def timestamp(source_date_epoch: str | None) -> str:
    """ISO 8601 in UTC: SOURCE_DATE_EPOCH when set, else now."""
    seconds = int(source_date_epoch) if source_date_epoch else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def build_sbom(wheel: WheelName, members: Sequence[SbomMember], *, created: str) -> dict:
    """The CycloneDX document, `created` being its ISO 8601 timestamp; the same for the same input."""
    root = wheel_purl(wheel)
    components: list[dict[str, Any]] = []
    refs_of_member: dict[str, list[str]] = {}
    for member in sorted(members, key=lambda m: m.path):
        refs = refs_of_member.setdefault(member.path, [])
        if not member.components and member.grafted:
            ref = f"{member.path}"
            components.append(_unidentified(member, ref))
            refs.append(ref)
        for component in member.components:
            ref = f"{member.path}#{component.project}" + (f"@{component.version}" if component.version else "")
            if ref in refs:
                continue
            components.append(_component(member, component, ref))
            refs.append(ref)
    dependencies = [{"ref": root, "dependsOn": sorted(r for refs in refs_of_member.values() for r in refs)}]
    for member in sorted(members, key=lambda m: m.path):
        targets = sorted({r for path in member.depends_on for r in refs_of_member.get(path, ())})
        for ref in refs_of_member.get(member.path, ()):
            dependencies.append({"ref": ref, "dependsOn": targets})
    identity = wheel.filename + "".join(f"{m.path}:{m.sha256}" for m in sorted(members, key=lambda m: m.path))
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, identity)}",
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": {"components": [{"type": "application", "name": "fastaudit", "version": __version__}]},
            "component": {"type": "library", "bom-ref": root, "name": wheel.name, "version": wheel.version,
                          "purl": root},
        },
        "components": components,
        "dependencies": dependencies,
    }


def _grafted(member: str) -> bool:
    """In a top-level `<dist>.libs/` folder, where auditwheel (and fastaudit) graft libraries."""
    folder, _, rest = member.partition("/")
    return folder.endswith(".libs") and "/" not in rest


def members_of(facts: WheelFacts, origins: Mapping[str, OsPackage | None] | None = None) -> list[SbomMember]:
    """The SBOM view of a wheel's ELF members: identification, hashes and in-wheel links; `origins`
    gives the OS package a grafted member came from (repair knows it)."""
    elves = facts.elves
    vendored = facts.vendored()
    members = []
    for path in sorted(elves):
        if path not in vendored and not _grafted(path):
            continue
        tree = resolve_tree(path, elves)
        depends = tuple(sorted({lib.member for soname in elves[path].needed
                                if (lib := tree.libraries.get(soname)) is not None and lib.member}))
        members.append(SbomMember(path, facts.sha256[path], vendored.get(path, ()), depends,
                                  (origins or {}).get(path), grafted=_grafted(path)))
    return members


def wheel_sbom(path: str | PathLike[str], *, source_date_epoch: str | None = None) -> dict:
    """The SBOM of any wheel, from its binaries alone."""
    name = check_linux_wheel_name(path)
    facts = read_wheel_facts(path, hashes=True)
    return build_sbom(name, members_of(facts), created=timestamp(source_date_epoch))
