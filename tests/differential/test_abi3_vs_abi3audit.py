"""The abi3 criterion against abi3audit 0.0.26 (`abi3audit --report`) on the same wheels: every
abi3 wheel of the corpus, and the extensions tests/abi3build.py builds.

Both must give each object the same baseline, the same computed version and the same violating
symbols, except where abi3audit is wrong by construction, each case shown from the object's own
bytes (pyelftools reads its symbol tables):
- a symbol the object defines itself (abi3audit reads .symtab and .dynsym without asking whether
  a symbol is defined or imported);
- a Py-prefixed name that no CPython build exports (another library provides it);
- a weak import, the run-time guard (abi3audit counts it like any other).
Run with -s to see every exception with its evidence.
"""
from __future__ import annotations

import io
import json
import posixpath
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from fastaudit.abi3 import Abi3Member, abi3_baseline, audit_member
from fastaudit.analyze import analyze, audit_abi3
from fastaudit.facts import read_wheel_elves
from fastaudit.policy.stable_abi import format_version, parse_version, stable_abi
from fastaudit.wheel import parse_wheel_name
from tests.abi3build import build_objects, pack
from tests.corpus import _fetch_module, corpus_wheels


def _is_abi3(path: Path) -> bool:
    return "abi3" in parse_wheel_name(path.name).abi_tags


def _abi3_wheels() -> list:
    """The abi3 wheels of the "all" set (fetched when missing), and those of every other set that
    are in the cache."""
    wheels = [w for w in corpus_wheels("all") if w is None or _is_abi3(w)]
    fetch = _fetch_module()
    seen = {w.name for w in wheels if w is not None}
    missing = []
    for set_name in sorted(set(fetch.SETS) - {"ci", "dev", "all"}):
        for wheel in fetch.load_set(set_name):
            path = fetch.cache_dir() / wheel.filename
            if wheel.filename in seen or "abi3" not in parse_wheel_name(wheel.filename).abi_tags:
                continue
            seen.add(wheel.filename)
            if path.is_file():
                wheels.append(path)
            else:
                missing.append(wheel.filename)
    if missing:
        wheels.append(pytest.param(None, marks=pytest.mark.skip(
            reason=f"SKIPPED LOUDLY: {len(missing)} abi3 wheels of other sets are not in the cache "
                   f"(bench/fetch_wheels.py --set NAME), e.g. {missing[0]}")))
    return wheels


def _abi3audit(wheel: Path, tmp_path: Path) -> list[dict]:
    out = tmp_path / "abi3audit.json"
    proc = subprocess.run([sys.executable, "-m", "abi3audit", "--report", "-o", str(out), str(wheel)],
                          capture_output=True, text=True, timeout=900)
    assert out.is_file() and out.stat().st_size, f"abi3audit wrote no report (exit {proc.returncode}): {proc.stderr}"
    [spec] = json.loads(out.read_text())["specs"].values()
    return spec["wheel"]


def _defined_evidence(data: bytes, name: str) -> str | None:
    """Where the object's own symbol tables define the name, as readelf would show it."""
    elf = ELFFile(io.BytesIO(data))
    for section in elf.iter_sections():
        if not isinstance(section, SymbolTableSection):
            continue
        for sym in section.get_symbol_by_name(name) or ():
            if sym["st_shndx"] != "SHN_UNDEF":
                return (f"{section.name} defines it ({sym['st_info']['bind']} {sym['st_info']['type']},"
                        f" section index {sym['st_shndx']}, value {sym['st_value']:#x})")
    return None


def _compare(path: str, ours: Abi3Member, theirs: dict, data: bytes) -> tuple[list[str], list[str]]:
    """(mismatches, explained differences) between our judgement of one object and abi3audit's."""
    abi = stable_abi()
    mismatches, explained = [], []
    if theirs["baseline"] != format_version(ours.baseline):
        mismatches.append(f"baseline {format_version(ours.baseline)} != abi3audit's {theirs['baseline']}")

    def exception(name: str) -> str | None:
        evidence = _defined_evidence(data, name)
        if evidence:
            return f"the object defines it: {evidence}"
        if name in ours.guarded_symbols:
            return "a weak import (the run-time guard), not counted"
        if not abi.is_cpython_symbol(name):
            versions = f"{format_version(abi.export_versions[0])}-{format_version(abi.export_versions[-1])}"
            return f"no CPython build ({versions}) exports it: {ours.foreign_symbols.get(name) or 'another wheel'}"
        return None

    theirs_bad, ours_bad = set(theirs["non_abi3_symbols"]), set(ours.non_abi3_symbols)
    mismatches += [f"we flag {n}, abi3audit does not" for n in sorted(ours_bad - theirs_bad)]
    for name in sorted(theirs_bad - ours_bad):
        why = exception(name)
        if why is None:
            mismatches.append(f"abi3audit flags {name}, we do not, and nothing explains it")
        else:
            explained.append(f"{path}: {name}: {why}")

    future = {n: parse_version(v) for n, v in theirs["future_abi3_objects"].items()}
    kept = {}
    for name, added in future.items():
        why = exception(name) if name not in ours.future_abi3_objects else None
        if why:
            explained.append(f"{path}: {name} (stable ABI {format_version(added)}): {why}")
        else:
            kept[name] = added
    if kept != dict(ours.future_abi3_objects):
        mismatches.append(f"future objects {dict(ours.future_abi3_objects)} != abi3audit's {kept}")
    expected = max([ours.baseline, *kept.values()])
    if ours.computed != expected:
        mismatches.append(f"computed {format_version(ours.computed)}, abi3audit's is {theirs['computed']}"
                          f" ({format_version(expected)} without the explained symbols)")
    if not explained and theirs["computed"] != format_version(ours.computed):
        mismatches.append(f"computed {format_version(ours.computed)} != abi3audit's {theirs['computed']}")
    return mismatches, explained


def check_against_abi3audit(wheel: Path, tmp_path: Path) -> list[str]:
    """Compare every object abi3audit audits; returns the explained differences."""
    name = parse_wheel_name(wheel.name)
    elves = read_wheel_elves(wheel)
    report = analyze(name, elves)
    assert report.abi3 is not None
    ours = {m.member: m for m in report.abi3.members}
    baseline = abi3_baseline(name)
    explained: list[str] = []
    matched: set[str] = set()  # abi3audit names objects by file name alone: match each path once
    with zipfile.ZipFile(wheel) as zf:
        for theirs in _abi3audit(wheel, tmp_path):
            candidates = [p for p in elves if posixpath.basename(p) == theirs["name"] and p not in matched]
            assert candidates, f"abi3audit audited {theirs['name']}, which holds no ELF we read"
            failures = []
            for path in candidates:
                # an object we did not select imports nothing from CPython: judge it anyway
                mine = ours.get(path) or audit_member(path, elves[path], baseline, stable_abi(), {})
                if path not in ours:
                    assert not mine.non_abi3_symbols and not mine.future_abi3_objects, path
                mismatches, why = _compare(path, mine, theirs["result"], zf.read(path))
                if not mismatches:
                    explained += why
                    matched.add(path)
                    break
                failures.append(f"{path}: {'; '.join(mismatches)}")
            else:
                pytest.fail(f"{wheel.name}: no object named {theirs['name']} agrees with abi3audit: {failures}")
    # `fastaudit abi3` reads only the *.so members: the same judgement of each it reads
    for m in audit_abi3(wheel).members:
        assert m == ours[m.member], m.member
    for line in explained:
        print(f"{wheel.name}: {line}")
    return explained


@pytest.mark.slow
@pytest.mark.parametrize("wheel", _abi3_wheels(), ids=lambda w: getattr(w, "name", "unavailable"))
def test_same_verdict_as_abi3audit_on_real_wheels(wheel: Path, tmp_path: Path) -> None:
    check_against_abi3audit(wheel, tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_objects(tmp_path_factory.mktemp("abi3-objects"))


@pytest.mark.parametrize("case, differences", [
    ("clean", []),
    ("needs310", []),
    ("private", []),
    ("freethreaded", []),
    ("ownpy", ["ownpy.abi3.so: PyFoo_Answer: the object defines it: .dynsym defines it"]),
    # the library that provides the name is flagged for defining it, the extension for importing it
    ("foreign", ["foreign.abi3.so: PyFa_Provided: no CPython build (3.6-3.15) exports it: fa_foreign/libpyfa.so",
                 "libpyfa.so: PyFa_Provided: the object defines it: .dynsym defines it"]),
    ("guarded", ["guarded.abi3.so: PyModule_AddObjectRef (stable ABI 3.10): a weak import"]),
])
def test_same_verdict_as_abi3audit_on_built_extensions(built, tmp_path, case, differences):
    """On the gcc-built cases each difference is one of abi3audit's false positives."""
    explained = sorted(check_against_abi3audit(pack(built, tmp_path, case), tmp_path))
    assert len(explained) == len(differences), explained
    for line, expected in zip(explained, differences):
        assert expected in line, explained
