"""The fixture builders themselves: gcc-built objects, wheels, crafted images and the stderr guard.

Nothing here needs fastaudit's reader: readelf, pyelftools and auditwheel are the judges.
"""
from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

from tests import elfbuild, elfcraft

AUDITWHEEL = Path(sys.executable).with_name("auditwheel")
EXT = elfbuild.EXTENSION_SUFFIX


@dataclass(frozen=True)
class ObjectExpectation:
    needed: tuple[str, ...]
    versions: dict[str, set[str]]
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    soname: str | None = None
    undefined: set[str] = field(default_factory=set)
    x86_isa_needed: int | None = None


GLIBC_2_17 = {"libc.so.6": {"GLIBC_2.17"}}

# scenario -> wheel member -> what its dynamic section must say
SCENARIO_OBJECTS: dict[str, dict[str, ObjectExpectation]] = {
    "glibc_2_17": {
        f"fa_glibc217/_core{EXT}": ObjectExpectation(
            ("libc.so.6",), {"libc.so.6": {"GLIBC_2.2.5", "GLIBC_2.17"}}, undefined={"fa_old", "fa_mid"}),
    },
    "glibc_2_34": {
        f"fa_glibc234/_core{EXT}": ObjectExpectation(
            ("libc.so.6",), {"libc.so.6": {"GLIBC_2.17", "GLIBC_2.34"}}, undefined={"fa_mid", "fa_new"}),
    },
    "external_libfoo": {
        f"fa_libfoo/_core{EXT}": ObjectExpectation(
            ("libc.so.6", "libfoo.so.1"), {**GLIBC_2_17, "libfoo.so.1": {"FOO_1.0"}}, undefined={"fa_mid", "fa_foo"}),
    },
    "zlib_blacklist_partial": {
        f"fa_zlib_partial/_core{EXT}": ObjectExpectation(
            ("libc.so.6", "libz.so.1"), {**GLIBC_2_17, "libz.so.1": {"ZLIB_1.2.9"}},
            undefined={"fa_mid", "uncompress2"}),
    },
    "zlib_blacklist_all": {
        f"fa_zlib_all/_core{EXT}": ObjectExpectation(
            ("libc.so.6", "libz.so.1"), {**GLIBC_2_17, "libz.so.1": {"ZLIB_1.2.0"}},
            undefined={"fa_mid", "_dist_code", "inflate_fast"}),
    },
    "isa_v3": {
        f"fa_isa_v3/_core{EXT}": ObjectExpectation(("libc.so.6",), GLIBC_2_17, undefined={"fa_mid"},
                                                   x86_isa_needed=0x4),
    },
    "origin_chain": {
        f"fa_origin/_chain{EXT}": ObjectExpectation(
            (elfbuild.GRAFTED_BAR, "libc.so.6"), {"libc.so.6": {"GLIBC_2.2.5"}},
            rpath=("$ORIGIN/../fa_origin.libs",), undefined={"fa_bar", "fa_old"}),
        f"fa_origin.libs/{elfbuild.GRAFTED_BAR}": ObjectExpectation(
            (elfbuild.GRAFTED_BAZ, "libc.so.6"), GLIBC_2_17, runpath=("$ORIGIN",), soname=elfbuild.GRAFTED_BAR,
            undefined={"fa_baz", "fa_mid"}),
        f"fa_origin.libs/{elfbuild.GRAFTED_BAZ}": ObjectExpectation(
            ("libc.so.6",), {"libc.so.6": {"GLIBC_2.2.5"}}, soname=elfbuild.GRAFTED_BAZ, undefined={"fa_old"}),
    },
    "rpath_vs_runpath": {
        f"fa_prec/_prec{EXT}": ObjectExpectation(
            ("libqux.so.1", "libc.so.6"), GLIBC_2_17, rpath=("$ORIGIN/rpath_dir",),
            runpath=("$ORIGIN/runpath_dir",), undefined={"fa_qux", "fa_mid"}),
        "fa_prec/runpath_dir/libqux.so.1": ObjectExpectation(
            ("libc.so.6",), GLIBC_2_17, soname="libqux.so.1", undefined={"fa_mid"}),
        "fa_prec/rpath_dir/libqux.so.1": ObjectExpectation(
            ("libc.so.6", "libfoo.so.1"), {**GLIBC_2_17, "libfoo.so.1": {"FOO_1.0"}}, soname="libqux.so.1",
            undefined={"fa_mid", "fa_foo"}),
    },
    "glibcxx_3_4_21": {
        f"fa_glibcxx/_core{EXT}": ObjectExpectation(
            ("libc.so.6", "libstdc++.so.6"), {**GLIBC_2_17, "libstdc++.so.6": {"GLIBCXX_3.4", "GLIBCXX_3.4.21"}},
            undefined={"fa_mid", "fa_cxx_old", "fa_cxx_21"}),
    },
}


def readelf(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["readelf", *map(str, args)], capture_output=True, text=True, check=False)


def wheel_elf_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    return {name: data for name, data in members.items() if data[:4] == b"\x7fELF"}


# ---- stub libraries ----

def test_every_scenario_has_expectations() -> None:
    assert set(SCENARIO_OBJECTS) == set(elfbuild.SCENARIOS)


@pytest.mark.parametrize(("attr", "versions"), [
    ("libc", elfbuild.LIBC_VERSIONS),
    ("libz", elfbuild.LIBZ_VERSIONS),
    ("libstdcxx", elfbuild.LIBSTDCXX_VERSIONS),
])
def test_stub_exports_each_function_under_its_chained_version(
        stub_libs: elfbuild.StubLibs, attr: str, versions: dict[str, list[str]]) -> None:
    path: Path = getattr(stub_libs, attr)
    facts = elfbuild.reference_facts(path.read_bytes())
    assert facts.soname == path.name
    assert facts.needed == ()  # -nostdlib: nothing of the real system leaks in
    assert facts.version_definitions == (path.name, *versions)
    symbols = readelf("--dyn-syms", "-W", path).stdout
    for version, names in versions.items():
        for name in names:
            assert re.search(rf" {re.escape(name)}@@{re.escape(version)}$", symbols, re.M), (name, version)
    # Each node inherits the one before, as in glibc's own version script.
    parents = re.findall(r"Parent 1: (\S+)", readelf("-V", "-W", path).stdout)
    assert parents == list(versions)[:-1]


# ---- objects inside the scenario wheels ----

@pytest.mark.parametrize("scenario_name", sorted(SCENARIO_OBJECTS))
def test_scenario_objects_have_intended_dynamic_facts(
        scenarios: dict[str, elfbuild.Scenario], scenario_name: str, tmp_path: Path) -> None:
    expected = SCENARIO_OBJECTS[scenario_name]
    members = wheel_elf_members(scenarios[scenario_name].wheel)
    assert set(members) == set(expected), "the wheel ships exactly these ELF files (never a stub)"
    for name, want in expected.items():
        facts = elfbuild.reference_facts(members[name])
        assert facts.needed == want.needed, name
        assert facts.version_requirements == {k: frozenset(v) for k, v in want.versions.items()}, name
        assert facts.rpath == want.rpath, name
        assert facts.runpath == want.runpath, name
        assert facts.soname == want.soname, name
        assert facts.undefined_symbols == frozenset(want.undefined), name
        assert facts.x86_isa_needed == want.x86_isa_needed, name
        # readelf, independently: the same RPATH / RUNPATH strings.
        on_disk = tmp_path / Path(name).name
        on_disk.write_bytes(members[name])
        dynamic = readelf("-d", "-W", on_disk).stdout
        assert re.findall(r"Library rpath: \[(.*)\]", dynamic) == [":".join(want.rpath)] * bool(want.rpath)
        assert re.findall(r"Library runpath: \[(.*)\]", dynamic) == [":".join(want.runpath)] * bool(want.runpath)


def test_isa_v3_note_is_seen_by_readelf(scenarios: dict[str, elfbuild.Scenario], tmp_path: Path) -> None:
    for scenario in scenarios.values():
        for name, data in wheel_elf_members(scenario.wheel).items():
            on_disk = tmp_path / f"{scenario.name}-{Path(name).name}"
            on_disk.write_bytes(data)
            notes = readelf("-n", "-W", on_disk).stdout
            if scenario.name == "isa_v3":
                assert "x86 ISA needed: x86-64-v3" in notes
            else:
                # -fcf-protection=none: no GNU property note at all unless a scenario asks for one.
                assert "NT_GNU_PROPERTY_TYPE_0" not in notes, name


def test_built_objects_cover_stubs_and_scenarios(built_objects: list[Path], stub_libs: elfbuild.StubLibs) -> None:
    names = {p.name for p in built_objects}
    assert {stub_libs.libc.name, stub_libs.libz.name, stub_libs.libstdcxx.name} <= names
    assert {elfbuild.GRAFTED_BAR, elfbuild.GRAFTED_BAZ, "libqux.so.1", "libfoo.so.1"} <= names
    assert sum(p.name.endswith(EXT) for p in built_objects) == len(elfbuild.SCENARIOS)


# ---- wheels ----

def _urlsafe_sha256(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_wheels_follow_pep_427(scenarios: dict[str, elfbuild.Scenario]) -> None:
    for scenario in scenarios.values():
        dist, version, python, abi, platforms = scenario.wheel.name.removesuffix(".whl").split("-")
        dist_info = f"{dist}-{version}.dist-info"
        with zipfile.ZipFile(scenario.wheel) as zf:
            assert zf.testzip() is None
            assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
            wheel_meta = zf.read(f"{dist_info}/WHEEL").decode()
            tags = re.findall(r"^Tag: (.*)$", wheel_meta, re.M)
            assert tags == [f"{python}-{abi}-{p}" for p in platforms.split(".")]
            assert "Root-Is-Purelib: false" in wheel_meta
            assert f"Name: {dist}" in zf.read(f"{dist_info}/METADATA").decode()
            rows = list(csv.reader(io.StringIO(zf.read(f"{dist_info}/RECORD").decode())))
            assert sorted(r[0] for r in rows) == sorted(zf.namelist())
            for name, digest, size in rows:
                if name == f"{dist_info}/RECORD":
                    assert (digest, size) == ("", "")
                else:
                    data = zf.read(name)
                    assert (digest, int(size)) == (_urlsafe_sha256(data), len(data)), name


def test_pack_wheel_is_reproducible(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": b"", "pkg/data.bin": bytes(range(256))}
    first = elfbuild.pack_wheel(tmp_path / "a", "my-dist", "2.0", "py3-none-any", files)
    second = elfbuild.pack_wheel(tmp_path / "b", "my-dist", "2.0", "py3-none-any", files)
    assert first.name == "my_dist-2.0-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()


# ---- what auditwheel says about each scenario ----

def auditwheel_show(wheel: Path) -> dict[str, object]:
    # A library path from the environment could resolve libfoo.so.1 and change the verdict.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH")}
    result = subprocess.run([str(AUDITWHEEL), "show", "--json", str(wheel)],
                            capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("scenario_name", sorted(elfbuild.SCENARIOS))
def test_auditwheel_gives_the_recorded_verdict(scenarios: dict[str, elfbuild.Scenario], scenario_name: str) -> None:
    scenario = scenarios[scenario_name]
    shown = auditwheel_show(scenario.wheel)
    upgrades = shown["policy_upgrades"]
    assert isinstance(upgrades, dict)
    blacklisted = {s for entry in upgrades.values() for syms in entry.get("blacklisted_symbols", {}).values()
                   for s in syms}
    external = shown["external_libs"]
    assert isinstance(external, dict)
    assert (shown["overall_tag"], shown["sym_tag"], tuple(sorted(external)), tuple(sorted(blacklisted)),
            shown["unsupported_isa"]) == (
        scenario.overall_tag, scenario.sym_tag, scenario.external_libs, scenario.blacklisted_symbols,
        scenario.unsupported_isa)


def test_claimed_platforms_come_from_the_file_name(scenarios: dict[str, elfbuild.Scenario]) -> None:
    assert scenarios["glibc_2_34"].claimed_platforms == ("manylinux_2_17_x86_64", "manylinux2014_x86_64")


# ---- crafted images ----

VALID_IMAGES = elfcraft.valid_images()


@pytest.mark.parametrize("name", sorted(VALID_IMAGES))
def test_crafted_image_is_clean_for_readelf(name: str, tmp_path: Path) -> None:
    image = VALID_IMAGES[name]
    path = tmp_path / f"{name}.so"
    path.write_bytes(image.data)
    # With no sections, -D makes readelf walk the dynamic segment and its hash tables.
    options = ["-a", "-W"] if image.spec.sections else ["-a", "-D", "-W"]
    result = readelf(*options, path)
    assert result.stderr == ""
    # readelf quirk: the ARM unwind pass (-u, part of -a) returns 1, silently, without sections.
    quiet_failure_ok = image.spec.machine == elfcraft.EM_ARM and not image.spec.sections
    assert result.returncode == 0 or quiet_failure_ok
    assert "Warning" not in result.stdout
    for needed in image.spec.needed:
        assert f"Shared library: [{needed}]" in result.stdout


@pytest.mark.parametrize("name", sorted(n for n, i in VALID_IMAGES.items() if i.spec.sections))
def test_crafted_image_reads_back_in_pyelftools(name: str) -> None:
    image = VALID_IMAGES[name]
    assert dataclasses.asdict(elfbuild.reference_facts(image.data)) == elfcraft.expected_facts(image.spec)


@pytest.mark.parametrize("name", sorted(n for n, i in VALID_IMAGES.items() if not i.spec.sections))
def test_stripped_image_dynamic_segment_in_pyelftools(name: str) -> None:
    image = VALID_IMAGES[name]
    elf = ELFFile(io.BytesIO(image.data))
    assert elf.num_sections() == 0
    dynamic = next(s for s in elf.iter_segments() if isinstance(s, DynamicSegment))
    # pyelftools counts the symbols through DT_HASH / DT_GNU_HASH, which checks those tables.
    assert [s.name for s in dynamic.iter_symbols()] == list(image.symbol_names)
    needed = [t.needed for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    assert tuple(needed) == image.spec.needed
    assert elfbuild.reference_facts(image.data).x86_isa_needed == image.spec.x86_isa_needed


def test_stripped_and_sectioned_images_share_their_bytes() -> None:
    """A stripped image is its sectioned twin minus .shstrtab and the section headers."""
    for name, image in VALID_IMAGES.items():
        if not name.endswith("-stripped"):
            continue
        twin = VALID_IMAGES[name.replace("-stripped", "-sections")]
        end = twin.regions[".dynamic"].end
        assert image.data[64:end] == twin.data[64:end], name  # e_shoff/e_shnum differ in the header


@pytest.mark.parametrize("name", sorted(n for n, i in VALID_IMAGES.items() if i.spec.verdef))
def test_malformed_cases_are_distinct_variants(name: str) -> None:
    image = VALID_IMAGES[name]
    cases = elfcraft.malformed_cases(image)
    assert len({c.name for c in cases}) == len(cases)
    for case in cases:
        assert case.data != image.data, case.name
        assert case.expected, case.name
        assert set(case.expected) <= {elfcraft.TRUNCATED, elfcraft.INVALID, elfcraft.CORRUPT, elfcraft.UNSUPPORTED}
    cuts = list(elfcraft.truncations(image))
    assert all(len(data) == cut < len(image.data) for cut, data in cuts)
    assert len(cuts) > 50


def test_near_max_offsets_really_overflow_a_naive_check() -> None:
    for image in (VALID_IMAGES["x86_64-sections"], VALID_IMAGES["i686-sections"]):
        case = next(c for c in elfcraft.malformed_cases(image) if c.name == "e_phoff-near-max")
        off, code = image.field("ehdr", "e_phoff")
        width = image.layout.word_size
        phoff = int.from_bytes(case.data[off:off + width], "little")
        table = image.layout.size("phdr") * 7
        assert (phoff + table) % (1 << (8 * width)) < len(case.data)  # wraps past a naive bound


# ---- the "Exception ignored" guard in conftest.py ----

GUARDED_TESTS = '''
import gc
import os
import sys


def test_clean():
    print("nothing to see", file=sys.stderr)


def test_prints_exception_ignored():
    print("Exception ignored in: <function f>", file=sys.stderr)


def test_writes_exception_ignored_to_fd_2():
    os.write(2, b"Exception ignored in: <object>\\n")


class Boom:
    def __del__(self):
        raise RuntimeError("from __del__")


def test_unraisable_in_del():
    Boom()
    gc.collect()
'''


def test_guard_fails_tests_that_swallow_exceptions(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text())
    pytester.makepyfile(test_guarded=GUARDED_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    outcomes = {r.nodeid.split("::")[-1]: r.outcome for r in result.reprec.getreports("pytest_runtest_logreport")
                if r.when == "call"}
    assert outcomes == {
        "test_clean": "passed",
        "test_prints_exception_ignored": "failed",
        "test_writes_exception_ignored_to_fd_2": "failed",
        "test_unraisable_in_del": "failed",
    }
