"""Which package of the build host's package manager owns a file (dpkg, rpm or apk), for the
SBOM of a repaired wheel: a grafted library's origin, as the host's package database records it.

Each manager is asked only if its command exists; a file no manager owns, or a manager that fails,
gives None: the SBOM then says nothing of an origin rather than guess one.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

_TIMEOUT_S = 30


@dataclass(frozen=True)
class OsPackage:
    manager: str    # "dpkg", "rpm" or "apk"
    name: str
    version: str
    purl: str


def _run(*command: str) -> str:
    """The command's output, whatever its exit status (a query over several paths exits 1 when some
    are not found, and still prints the others); empty when it cannot run."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


@cache
def _distribution() -> str:
    """ID from /etc/os-release ("debian", "almalinux", "alpine"), the purl namespace of its packages."""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("ID="):
                    return line.split("=", 1)[1].strip().strip('"') or "linux"
    except OSError:
        pass
    return "linux"


# Each manager is asked once for all the paths: one query per file cost repair a process start per
# grafted library, which was most of its time on a wheel grafting twenty.

def _dpkg(paths: list[str]) -> dict[str, OsPackage]:
    out = _run("dpkg-query", "--search", *paths)
    owners: dict[str, str] = {}
    for line in out.splitlines():   # "libsqlite3-0:amd64: /usr/lib/...", "a, b: /shared/path"
        names, sep, path = line.partition(": ")
        if sep and not line.startswith("diversion ") and path in paths:
            owners.setdefault(path, names.split(", ")[0])
    if not owners:
        return {}
    fields = _run("dpkg-query", "--show", "--showformat", "${binary:Package} ${Package} ${Version} ${Architecture}\\n",
                  *sorted(set(owners.values())))
    found: dict[str, OsPackage] = {}
    for line in fields.splitlines():
        parts = line.split()
        if len(parts) == 4:
            key, name, version, arch = parts
            found[key] = OsPackage("dpkg", name, version, f"pkg:deb/{_distribution()}/{name}@{version}?arch={arch}")
    return {path: found[package] for path, package in owners.items() if package in found}


def _rpm(paths: list[str]) -> dict[str, OsPackage]:
    # one line per path, in order: the owner, or "file ... is not owned by any package"
    out = _run("rpm", "--query", "--file", "--queryformat", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}\\n", *paths)
    lines = out.splitlines()
    if len(lines) != len(paths) and len(paths) > 1:
        # a file several packages own prints a line for each: which line is whose is lost, so one by one
        return {path: package for one in paths for path, package in _rpm([one]).items()}
    found: dict[str, OsPackage] = {}
    for path, line in zip(paths, lines):
        parts = line.split()
        if "not owned" not in line and len(parts) == 3:
            name, version, arch = parts
            found[path] = OsPackage("rpm", name, version, f"pkg:rpm/{_distribution()}/{name}@{version}?arch={arch}")
    return found


def _apk(paths: list[str]) -> dict[str, OsPackage]:
    out = _run("apk", "info", "--who-owns", *paths)   # "<path> is owned by zlib-1.3.1-r0"
    found: dict[str, OsPackage] = {}
    for line in out.splitlines():
        match = re.fullmatch(r"(.+) is owned by (.+)-([^-]+-r\d+)", line.strip())
        if match and match.group(1) in paths:
            path, name, version = match.groups()
            found[path] = OsPackage("apk", name, version, f"pkg:apk/{_distribution()}/{name}@{version}")
    return found


_MANAGERS = (("dpkg-query", _dpkg), ("rpm", _rpm), ("apk", _apk))


def owners_of(paths: Iterable[str]) -> dict[str, OsPackage | None]:
    """The package owning each path (or the file it links to), or None; each manager that exists
    is asked once for the paths as given, then once for the link targets of those it did not own."""
    owners: dict[str, OsPackage | None] = dict.fromkeys(paths)
    managers = [ask for command, ask in _MANAGERS if shutil.which(command)]
    for linked in (False, True):
        asked: dict[str, list[str]] = {}   # the name a manager is asked about -> the paths it answers for
        for path in owners:
            candidate = os.path.realpath(path) if linked else path
            if owners[path] is None and (not linked or candidate != path):
                asked.setdefault(candidate, []).append(path)
        for ask in managers:
            unanswered = [c for c, ps in asked.items() if owners[ps[0]] is None]
            for candidate, package in (ask(unanswered) if unanswered else {}).items():
                for path in asked[candidate]:
                    owners[path] = package
    return owners


def owner_of(path: str) -> OsPackage | None:
    """The package owning `path` (or the file it links to), or None."""
    return owners_of([path])[path]
