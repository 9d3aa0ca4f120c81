"""The grafted libraries' OS packages, asked of the host's package manager once for all of them,
checked against dpkg-query asked about each file on its own (the oracle, run here directly)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fastaudit.ospackages import OsPackage, owner_of, owners_of

pytestmark = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a dpkg host (Debian)")

LIBDIR = Path("/usr/lib/x86_64-linux-gnu")


def dpkg_alone(path: str) -> tuple[str, str, str] | None:
    """(name, version, arch) of the package dpkg says owns exactly this path, asked on its own."""
    search = subprocess.run(["dpkg-query", "--search", path], capture_output=True, text=True)
    if search.returncode != 0:
        return None
    package = search.stdout.splitlines()[0].split(": ", 1)[0].split(", ")[0]
    show = subprocess.run(["dpkg-query", "--show", "--showformat", "${Package} ${Version} ${Architecture}", package],
                          capture_output=True, text=True, check=True)
    name, version, arch = show.stdout.split()
    return name, version, arch


def as_fields(package: OsPackage | None) -> tuple[str, str, str] | None:
    if package is None:
        return None
    arch = package.purl.rsplit("?arch=", 1)[1]
    return package.name, package.version, arch


def real_libraries(count: int) -> list[str]:
    """Shared libraries dpkg owns under their own (resolved) names."""
    found = []
    for path in sorted(LIBDIR.glob("lib*.so.*")):
        real = os.path.realpath(path)
        if real == str(path) and real not in found and dpkg_alone(real) is not None:
            found.append(real)
        if len(found) == count:
            break
    return found


def test_every_path_gets_the_package_dpkg_names_for_it_alone(tmp_path: Path) -> None:
    libraries = real_libraries(12)
    assert len(libraries) == 12
    nobody = tmp_path / "libnobody.so.1"
    nobody.write_bytes(b"\x7fELF")
    missing = str(tmp_path / "libmissing.so.1")
    paths = [*libraries, str(nobody), missing]
    owners = owners_of(paths)
    assert list(owners) == paths
    for path in paths:
        assert as_fields(owners[path]) == dpkg_alone(path), path
    assert owners[str(nobody)] is None and owners[missing] is None
    assert sum(owners[p] is not None for p in libraries) == 12
    assert all(owners[p] is not None and owners[p].purl.startswith("pkg:deb/") for p in libraries)


def test_a_link_is_answered_for_by_the_file_it_names(tmp_path: Path) -> None:
    """A link dpkg does not list (here, in a folder of ours) is the package of its target; two
    links to one file and a path named twice are each answered."""
    target = real_libraries(1)[0]
    one, two = tmp_path / "one.so", tmp_path / "two.so"
    one.symlink_to(target)
    two.symlink_to(target)
    owners = owners_of([str(one), str(two), str(one), target])
    assert list(owners) == [str(one), str(two), target]
    expected = dpkg_alone(target)
    assert expected is not None
    assert {as_fields(p) for p in owners.values()} == {expected}
    assert as_fields(owner_of(str(one))) == expected


def test_no_paths_asks_nothing() -> None:
    assert owners_of([]) == {}
