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
from dataclasses import dataclass
from functools import cache

_TIMEOUT_S = 30


@dataclass(frozen=True)
class OsPackage:
    manager: str    # "dpkg", "rpm" or "apk"
    name: str
    version: str
    purl: str


def _run(*command: str) -> str | None:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


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


def _dpkg(path: str) -> OsPackage | None:
    out = _run("dpkg-query", "--search", path)
    if not out:
        return None
    package = out.splitlines()[0].split(": ", 1)[0].split(", ")[0]   # "libsqlite3-0:amd64: /usr/lib/..."
    fields = _run("dpkg-query", "--show", "--showformat", "${Package} ${Version} ${Architecture}", package)
    if not fields:
        return None
    name, version, arch = fields.split()
    return OsPackage("dpkg", name, version, f"pkg:deb/{_distribution()}/{name}@{version}?arch={arch}")


def _rpm(path: str) -> OsPackage | None:
    out = _run("rpm", "--query", "--file", "--queryformat", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}\\n", path)
    if not out or "not owned" in out:
        return None
    name, version, arch = out.splitlines()[0].split()
    return OsPackage("rpm", name, version, f"pkg:rpm/{_distribution()}/{name}@{version}?arch={arch}")


def _apk(path: str) -> OsPackage | None:
    out = _run("apk", "info", "--who-owns", path)   # "<path> is owned by zlib-1.3.1-r0"
    match = re.search(r" is owned by (.+)-([^-]+-r\d+)$", out.strip()) if out else None
    if not match:
        return None
    name, version = match.groups()
    return OsPackage("apk", name, version, f"pkg:apk/{_distribution()}/{name}@{version}")


_MANAGERS = (("dpkg-query", _dpkg), ("rpm", _rpm), ("apk", _apk))


def owner_of(path: str) -> OsPackage | None:
    """The package owning `path` (or the file it links to), or None."""
    for candidate in dict.fromkeys((path, os.path.realpath(path))):
        for command, ask in _MANAGERS:
            if shutil.which(command) and (package := ask(candidate)) is not None:
                return package
    return None
