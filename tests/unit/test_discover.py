"""scan.discover: the walk holds what its depth and widest folder need, not a record of every wheel
it found, and still yields each wheel once, links included (the rule is decided from real paths)."""
from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

from fastaudit.scan import discover

TAG = "py3-none-any"


def touch(path: Path, data: bytes = b"PK") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def walked(root: Path) -> dict[str, str | None]:
    """path relative to root -> the error's first words, None for a wheel to audit."""
    return {os.path.relpath(f.path, root): (str(f.error).split(": ", 1)[-1][:24] if f.error else None)
            for f in discover([root])}


def test_links_count_once_and_only_when_the_walk_did_not_find_the_wheel(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    touch(root / "real" / f"a-1.0-{TAG}.whl")
    touch(root / "data" / "blob")  # a wheel stored under a name the walk does not take
    (root / "dirlink").symlink_to("real", target_is_directory=True)
    (root / f"via-dirlink-1.0-{TAG}.whl").symlink_to(f"dirlink/a-1.0-{TAG}.whl")  # found as real/a
    (root / f"alias-1.0-{TAG}.whl").symlink_to(f"real/a-1.0-{TAG}.whl")  # found as real/a
    (root / f"blob1-1.0-{TAG}.whl").symlink_to("data/blob")  # not found by the walk: audited once,
    (root / f"blob2-1.0-{TAG}.whl").symlink_to("data/blob")  # through the first link only
    touch(root / "x" / f"b-1.0-{TAG}.whl.part")
    (root / f"part-1.0-{TAG}.whl").symlink_to(f"x/b-1.0-{TAG}.whl.part")  # not a .whl name: audited via the link
    assert walked(root) == {f"real/a-1.0-{TAG}.whl": None, f"blob1-1.0-{TAG}.whl": None,
                            f"part-1.0-{TAG}.whl": None}


def test_a_link_into_a_folder_that_cannot_be_listed_is_audited(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        import pytest
        pytest.skip("root lists any folder")
    root = tmp_path / "tree"
    hidden = touch(root / "locked" / f"h-1.0-{TAG}.whl").parent
    (root / f"link-1.0-{TAG}.whl").symlink_to(f"locked/h-1.0-{TAG}.whl")
    hidden.chmod(0o311)  # enterable, not listable
    try:
        found = walked(root)
    finally:
        hidden.chmod(0o755)
    assert found[f"link-1.0-{TAG}.whl"] is None and found["locked"].startswith("cannot list")


def peak_of_walk(root: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for _ in discover([root]))
        return tracemalloc.get_traced_memory()[1], count
    finally:
        tracemalloc.stop()


def test_the_walk_holds_the_same_memory_for_ten_times_the_wheels(tmp_path: Path) -> None:
    """A bandersnatch-shaped tree (a folder per file): 1,000 then 10,000 wheels."""
    def mirror(root: Path, wheels: int) -> Path:
        for i in range(wheels):
            digest = hashlib.blake2b(str(i).encode(), digest_size=32).hexdigest()
            touch(root / "web" / "packages" / digest[:2] / digest[2:4] / digest[4:] / f"p{i}-1.0-{TAG}.whl")
        return root
    small, small_count = peak_of_walk(mirror(tmp_path / "small", 1000))
    large, large_count = peak_of_walk(mirror(tmp_path / "large", 10000))
    assert (small_count, large_count) == (1000, 10000)
    assert large < small * 1.5 + 64 * 1024, (small, large)
