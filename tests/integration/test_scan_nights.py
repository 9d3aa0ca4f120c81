"""Nightly scans of a changing tree: a run that lists its unchanged wheels by reference (a lineage's
spans) must give the same answers as a scan of the same tree into a fresh store, night after night,
whatever the operator or the sync did in between: wheels added, removed (with or without their hash
folder), a folder renamed in, a wheel replaced in place with other content or truncated, a wheel
swapped for a FIFO, an interrupted night, a --rescan night.

The wheels are the gcc-built scenario wheels, laid out as a bandersnatch mirror (the path is the
file's BLAKE2b-256) beside a plain folder (content keyed by size, mtime and path)."""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from fastaudit.scan import ScanOptions, scan
from fastaudit.store import Store
from tests import elfbuild

OPTIONS = ScanOptions(jobs=2)


def mirror_path(web: Path, wheel: Path) -> Path:
    digest = hashlib.blake2b(wheel.read_bytes(), digest_size=32).hexdigest()
    return web / "packages" / digest[:2] / digest[2:4] / digest[4:] / wheel.name


def add_to_mirror(web: Path, wheel: Path) -> Path:
    dest = mirror_path(web, wheel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wheel, dest)
    return dest


def answers(db: Path, run_id: int) -> dict[str, tuple[Any, ...]]:
    """path -> what export and the report read of a wheel in a run (its outcome aside)."""
    with Store(db, readonly=True) as store:
        out = {}
        for line in store.run_lines(run_id):
            scan_part = line["scan"]
            out[line["path"]] = (scan_part["status"], scan_part["kind"], scan_part["error_type"],
                                 line.get("overall_tag"), line.get("error"))
        counts = store.run_counts(run_id)
        verdicts = store.verdict_counts(run_id)
        wheels = sorted((w.filename, w.status, w.overall_tag, w.over_promises) for w in store.run_wheels(run_id))
    return {"lines": out, "verdicts": verdicts, "total": sum(counts.values()), "wheels": wheels}


def fresh_answers(tmp_path: Path, roots: list[Path], tag: str) -> dict[str, Any]:
    db = tmp_path / f"fresh-{tag}.db"
    with Store(db) as store:
        summary = scan(roots, store, OPTIONS, progress=False)
    return answers(db, summary.run_id)


def outcomes(db: Path, run_id: int) -> dict[str, int]:
    with Store(db, readonly=True) as store:
        return dict(store.db.execute("SELECT outcome, count(*) FROM run_wheels WHERE run_id=? GROUP BY 1", (run_id,)))


@pytest.fixture
def tree(tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> tuple[Path, Path, list[Path]]:
    web, plain = tmp_path / "mirror" / "web", tmp_path / "plain"
    sources = [s.wheel for s in scenarios.values()]
    mirrored = [add_to_mirror(web, w) for w in sources[:-3]]
    plain.mkdir()
    for w in sources[:4]:
        shutil.copy2(w, plain / w.name)
    return web, plain, mirrored


def test_nights_give_the_answers_of_a_fresh_scan(tmp_path: Path, tree: tuple[Path, Path, list[Path]],
                                                 scenarios: dict[str, elfbuild.Scenario]) -> None:
    web, plain, mirrored = tree
    roots = [web.parent, plain]
    sources = [s.wheel for s in scenarios.values()]
    db = tmp_path / "nightly.db"
    store = Store(db)

    def night(tag: str) -> int:
        summary = scan(roots, store, OPTIONS, progress=False)
        assert summary.status == "completed"
        assert answers(db, summary.run_id) == fresh_answers(tmp_path, roots, tag), tag
        return summary.run_id

    night("cold")
    unchanged = night("unchanged")
    assert outcomes(db, unchanged) == {"skipped": len(mirrored) + 4}
    with Store(db, readonly=True) as reader:  # the unchanged night wrote no row per wheel
        assert reader.db.execute("SELECT count(*) FROM run_entries WHERE run_id=?", (unchanged,)).fetchone() == (0,)

    # a night: one new wheel; one removed with its hash folder, one with its folder left behind
    add_to_mirror(web, sources[-1])
    shutil.rmtree(mirrored[0].parent)
    mirrored[1].unlink()
    # a hash folder renamed in from outside the tree (a sync's temporary folder moved into place)
    staged = tmp_path / "staging" / "w"
    staged.mkdir(parents=True)
    shutil.copyfile(sources[-2], staged / sources[-2].name)
    final = mirror_path(web, sources[-2])
    final.parent.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staged, final.parent)
    # plain folder: a wheel rewritten in place with another wheel's bytes (same name, mtime kept
    # as it was: only the size tells), another truncated in place
    first, second = sorted(plain.iterdir())[:2]
    stamp = first.stat()
    first.write_bytes(sources[5].read_bytes())
    os.utime(first, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    with open(second, "r+b") as f:
        f.truncate(second.stat().st_size // 2)
    changed = night("changed")
    assert outcomes(db, changed)["analyzed"] == 4  # the new, the renamed-in, the rewritten, the truncated

    # a wheel of the mirror swapped for a FIFO under its own name (renamed over it)
    fifo = mirrored[2].parent / "fifo.tmp"
    os.mkfifo(fifo)
    os.rename(fifo, mirrored[2])
    night("fifo")

    # an interrupted night, then a --rescan night, then a plain night again
    stop_now = threading.Event()
    stop_now.set()
    from fastaudit import scan as scan_module

    interrupted = scan_module._scan(roots, store, OPTIONS, False, stop_now)
    assert interrupted.status == "interrupted"
    rescanned = scan(roots, store, ScanOptions(jobs=2, rescan=True), progress=False)
    assert answers(db, rescanned.run_id) == fresh_answers(tmp_path, roots, "rescan")
    mirrored[3].unlink()
    night("after")
    store.close()


def test_a_run_whose_list_cannot_be_made_whole_is_failed_not_completed(
        tmp_path: Path, tree: tuple[Path, Path, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills as the run writes its spans: one StoreError, and the run reads as failed."""
    from fastaudit.store import StoreError

    web, plain, _ = tree
    db = tmp_path / "full.db"
    with Store(db) as store:
        def full_disk(*args: object) -> None:
            raise StoreError("cannot write the store: database or disk is full", path=str(db))
        monkeypatch.setattr(store, "settle_run", full_disk)
        with pytest.raises(StoreError, match="disk is full"):
            scan([web.parent, plain], store, OPTIONS, progress=False)
        assert store.run().status == "failed"
        monkeypatch.undo()
        again = scan([web.parent, plain], store, OPTIONS, progress=False)
        assert again.status == "completed"
        assert answers(db, again.run_id) == fresh_answers(tmp_path, [web.parent, plain], "x")
