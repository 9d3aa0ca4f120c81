#!/usr/bin/env python3
"""Build real projects from their pinned sdists against Debian's -dev packages, as a pipeline does.

    python bench/build_sdist_wheels.py [--python python3.11] [--cache DIR] [--only NAME ...] [--apt]

Each project below is built with ``pip wheel --no-binary NAME --no-deps NAME==VERSION`` by the given
interpreter (Python 3.11 by default), so the project's own code is compiled here and links the
system libraries the Debian packages installed; its build dependencies (setuptools, Cython, numpy,
meson, ...) come as wheels, which keeps a build within minutes on a small machine. ``--apt``
installs the Debian packages first (as root). The unrepaired ``linux_x86_64`` wheels go to
$FASTAUDIT_SDIST_WHEELS, else ~/.cache/fastaudit/sdist-wheels; a project whose wheel is already
there is not built again. bench/bench_repair_sdist.py repairs them.

Builds are heavy: run this niced, in the background. Builds run one at a time; a failed build is
reported on stderr and does not stop the others.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

CACHE_ENV = "FASTAUDIT_SDIST_WHEELS"


class Project(NamedTuple):
    name: str                   # the PyPI name, as pip takes it
    version: str
    debian: tuple[str, ...]     # the -dev packages it builds against
    env: tuple[tuple[str, str], ...] = ()   # what makes the build link the system library


PROJECTS: tuple[Project, ...] = (
    Project("psycopg2", "2.9.10", ("libpq-dev",)),
    Project("lxml", "5.3.0", ("libxml2-dev", "libxslt1-dev")),
    Project("pillow", "11.1.0", ("libjpeg-dev", "libpng-dev", "libtiff-dev", "libwebp-dev", "zlib1g-dev",
                                 "libfreetype-dev")),
    Project("h5py", "3.14.0", ("libhdf5-dev",), (("HDF5_DIR", "/usr/lib/x86_64-linux-gnu/hdf5/serial"),)),
    Project("pycurl", "7.45.3", ("libcurl4-openssl-dev",)),
    # pyzmq finds libzmq with pkg-config and links it rather than building its bundled copy
    Project("pyzmq", "27.0.0", ("libzmq3-dev",)),
    Project("python-ldap", "3.4.4", ("libldap-dev", "libsasl2-dev")),
    Project("PyYAML", "6.0.2", ("libyaml-dev",)),
    Project("cffi", "1.17.1", ("libffi-dev",)),
    Project("mysqlclient", "2.2.6", ("default-libmysqlclient-dev",)),
    Project("python-snappy", "0.6.1", ("libsnappy-dev",)),
    Project("gssapi", "1.9.0", ("libkrb5-dev",)),
    # Debian 12's libgit2 is 1.5, which pygit2 1.11 is written for
    Project("pygit2", "1.11.1", ("libgit2-dev",)),
    Project("lz4", "4.3.3", ("liblz4-dev",), (("PYLZ4_USE_SYSTEM_LZ4", "1"),)),
    Project("pycairo", "1.27.0", ("libcairo2-dev",)),
)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "fastaudit" / "sdist-wheels"))


def normalized(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def built_wheel(project: Project, cache: Path) -> Path | None:
    """The cached wheel of this project and version, if it was built."""
    prefix = f"{normalized(project.name)}-{project.version}-"
    found = [p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix)]
    return found[0] if found else None


def build(project: Project, python: str, cache: Path) -> Path:
    """Build one project's wheel into the cache; raises CalledProcessError when the build fails."""
    env = {**os.environ, **dict(project.env), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    with tempfile.TemporaryDirectory(prefix="fa-sdist-") as tmp:
        subprocess.run([python, "-m", "pip", "wheel", "--no-binary", project.name, "--no-deps", "-q",
                        "-w", tmp, f"{project.name}=={project.version}"], check=True, env=env)
        (wheel,) = Path(tmp).glob("*.whl")
        target = cache / wheel.name
        shutil.move(wheel, target)
        return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="python3.11", help="the interpreter that builds (default python3.11)")
    parser.add_argument("--cache", type=Path, default=None, help="where the wheels go")
    parser.add_argument("--only", nargs="*", default=None, help="build only these projects")
    parser.add_argument("--apt", action="store_true", help="apt-get install the -dev packages first")
    args = parser.parse_args(argv)
    cache = args.cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    projects = [p for p in PROJECTS if args.only is None or p.name in args.only]
    if args.apt:
        packages = sorted({d for p in projects for d in p.debian} | {"build-essential", "pkg-config"})
        subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    failed = []
    for project in projects:
        wheel = built_wheel(project, cache)
        if wheel is None:
            print(f"building {project.name} {project.version}", file=sys.stderr, flush=True)
            try:
                wheel = build(project, args.python, cache)
            except subprocess.CalledProcessError:
                print(f"{project.name} {project.version}: the build failed", file=sys.stderr, flush=True)
                failed.append(project.name)
                continue
        print(wheel)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
