"""Lay wheels out as a bandersnatch mirror: web/packages/<h[0:2]>/<h[2:4]>/<h[4:]>/<file>, where h
is the file's BLAKE2b-256 (bandersnatch's content address, which `fastaudit scan` reads instead
of hashing). Files are hard-linked where the file system allows it, copied otherwise.

    python scripts/mirror_layout.py MIRROR WHEEL...
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path


def blake2b_256(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=32)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def place(wheel: Path, mirror: Path) -> Path:
    """The wheel's path in the mirror, linked (or copied) there unless it already is."""
    h = blake2b_256(wheel)
    target = mirror / "web" / "packages" / h[:2] / h[2:4] / h[4:] / wheel.name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(wheel, target)
    except OSError:  # another file system, or links not allowed there
        shutil.copyfile(wheel, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirror", type=Path)
    parser.add_argument("wheels", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for wheel in args.wheels:
        place(wheel, args.mirror)
    print(f"{len(args.wheels)} wheels laid out under {args.mirror / 'web' / 'packages'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
