"""analyze's judging against the per-policy definition it is worked out from.

analyze judges a wheel from tables made once per libc family and arch (which policies allow each
symbol version, as a bit mask; the policies that share a whitelist or a blacklist; every blacklist
in one). Here each policy is judged on its own instead, as analyze did before, by the rules the
tables are made from (`refused_versions`, `libc_symbols_too_new`, `_external_libraries`, a policy's
blacklist): the same tag per criterion, the same external libraries and blacklisted symbols per
policy, the same reasons. Over gcc-built wheels made to reach the tables' edges (a version no
policy lists, a prefix no policy checks, blacklists of several groups, libraries outside the
policy behind a shipped one, musl's libc symbols) and over real PyPI wheels (FASTAUDIT_DIFF_SET:
"ci" by default, "dev" or "all" for the whole corpus).
"""
from __future__ import annotations

import itertools
import os
import random
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from fastaudit.analyze import (
    BLACKLISTED_SYMBOL,
    EXTERNAL_LIBRARY,
    LIBC_SYMBOL,
    SYMBOL_VERSION,
    PolicyUpgrade,
    Reason,
    WheelReport,
    _external_libraries,
    _family_tables,
    _Member,
    _versions_refused,
    analyze,
    libc_symbols_too_new,
    refused_versions,
    roots,
)
from fastaudit.elf import ElfInfo
from fastaudit.facts import check_linux_wheel_name, read_wheel_elves
from fastaudit.lddtree import resolve_tree
from fastaudit.policy import Policy, known_arches, policies_for
from tests import elfbuild
from tests.corpus import corpus_wheels

DIFF_SET = os.environ.get("FASTAUDIT_DIFF_SET", "ci")
# Versions no policy lists, with and without a prefix some policy checks, and oddly spelt ones.
UNLISTED = ("GLIBC_2.99", "GLIBC_PRIVATE", "GLIBC_", "GLIBC", "", "_", "GLIBC_2.17_x", "glibc_2.17",
            "GLIBCXX_3.4.99", "CXXABI_1.3.99", "GCC_99.0", "ZLIB_9", "LIBATOMIC_9", "FAEDGE_1.0", "FA_EDGE_1.0")
JUDGED_CRITERIA = (SYMBOL_VERSION, LIBC_SYMBOL, EXTERNAL_LIBRARY, BLACKLISTED_SYMBOL)


def _positions(policies: tuple[Policy, ...], allowed: Callable[[Policy], bool]) -> set[int]:
    return {i for i, p in enumerate(policies) if allowed(p)}


def _bits_set(mask: int, count: int) -> set[int]:
    return {i for i in range(count) if mask >> i & 1}


FAMILIES = [(libc, arch) for libc in ("glibc", "musl") for arch in sorted(known_arches(libc))]


@pytest.mark.parametrize(("libc", "arch"), FAMILIES)
def test_the_version_table_says_what_each_policy_says(libc: str, arch: str) -> None:
    policies = policies_for(libc, arch)
    tables = _family_tables(policies)
    listed = sorted({v for p in policies for versions in p.symbol_versions.values() for v in versions})
    for version in [*listed, *UNLISTED]:
        expected = _positions(policies, lambda p: not _versions_refused(p, (version,)))
        assert _bits_set(tables.allowing((version,)), len(policies)) == expected, version
    pool = [*listed, *UNLISTED]
    rng = random.Random(f"{libc}-{arch}")
    for size in (0, 2, 3, 8):
        for _ in range(50):
            versions = rng.sample(pool, min(size, len(pool)))
            expected = _positions(policies, lambda p: not _versions_refused(p, versions))
            assert _bits_set(tables.allowing(versions), len(policies)) == expected, versions


def _per_policy_blacklist(member: _Member, policy: Policy) -> dict[str, set[str]]:
    """auditwheel's rule, written out: a needed library's blacklisted symbols the member imports."""
    found = {}
    for library, symbols in policy.blacklist.items():
        if library in member.info.needed:
            hits = {s for s in symbols if s == "*" or s in member.info.undefined_symbols}
            if hits:
                found[library] = hits
    return found


def _judged_per_policy(report: WheelReport, elves: Mapping[str, ElfInfo]) -> None:
    """Judge every policy of the report's family on its own and compare with the report."""
    assert report.libc is not None and report.arch is not None
    policies = policies_for(report.libc, report.arch)
    members = [_Member(path, elves[path]) for path in report.elf_members]
    infos = {m.path: m.info for m in members}
    audited = [m for m in members if m.path in set(roots(infos))]
    trees = {m.path: resolve_tree(m.path, elves) for m in audited}

    def symbol_ok(p: Policy) -> bool:
        return not libc_symbols_too_new(p, infos) and not any(
            refused_versions(p, m.info.version_requirements) for m in members)

    external: dict[Policy, dict[str, set[str]]] = {}
    blacklist: dict[Policy, dict[tuple[str, str], set[str]]] = {}
    for p in policies:
        external[p], blacklist[p] = {}, {}
        if p.is_linux:
            continue
        for m in audited:
            for soname in _external_libraries(trees[m.path], p):
                external[p].setdefault(soname, set()).add(m.path)
            for library, symbols in _per_policy_blacklist(m, p).items():
                for symbol in symbols:
                    blacklist[p].setdefault((library, symbol), set()).add(m.path)

    def best(satisfied: Callable[[Policy], bool]) -> Policy:
        return max((p for p in policies if satisfied(p)), default=policies[0])

    assert report.symbol_policy == best(symbol_ok)
    assert report.external_policy == best(lambda p: not external[p])
    assert report.blacklist_policy == best(lambda p: not blacklist[p])
    assert report.overall == min(best(symbol_ok), best(lambda p: not external[p]), best(lambda p: not blacklist[p]),
                                 report.isa_policy, report.pyfpe_policy, report.ucs2_policy)
    assert report.external_libs == tuple(sorted(external[policies[-1]]))
    upgrades = {}
    for p in policies:
        if p > report.overall and (external[p] or blacklist[p]):
            black: dict[str, set[str]] = {}
            for library, symbol in blacklist[p]:
                black.setdefault(library, set()).add(symbol)
            upgrades[p.tag] = PolicyUpgrade(tuple(sorted(external[p])),
                                            {k: tuple(sorted(v)) for k, v in sorted(black.items())})
    assert report.policy_upgrades == upgrades
    better = [p for p in policies if p > report.overall]
    if better:
        p = min(better)
        reasons = {Reason(SYMBOL_VERSION, m.path, library, version)
                   for m in members for library, version in refused_versions(p, m.info.version_requirements)}
        reasons |= {Reason(LIBC_SYMBOL, path, library, symbol)
                    for (library, symbol), paths in libc_symbols_too_new(p, infos).items() for path in paths}
        reasons |= {Reason(EXTERNAL_LIBRARY, path, soname) for soname, paths in external[p].items() for path in paths}
        reasons |= {Reason(BLACKLISTED_SYMBOL, path, library, symbol)
                    for (library, symbol), paths in blacklist[p].items() for path in paths}
        assert {r for r in report.reasons if r.criterion in JUDGED_CRITERIA} == reasons
    else:
        assert report.reasons == ()


def _check_wheel(wheel: Path) -> WheelReport:
    name = check_linux_wheel_name(wheel)
    elves = read_wheel_elves(wheel)
    report = analyze(name, elves)
    if not report.pure:
        _judged_per_policy(report, elves)
    return report


@pytest.fixture(scope="module")
def edge_wheels(tmp_path_factory: pytest.TempPathFactory, stub_libs: elfbuild.StubLibs) -> dict[str, Path]:
    """Wheels built by gcc to reach the tables' edges, by name."""
    work = tmp_path_factory.mktemp("judging")
    tag = "cp311-cp311-manylinux_2_17_x86_64"
    libs = work / "libs"
    # GLIBC_PRIVATE: a prefix every policy checks, a version none lists (only linux allows it)
    libc = elfbuild.build_stub_lib(libs, "libc.so.6", {"GLIBC_2.2.5": ["fa_old"], "GLIBC_2.18": ["fa_18"],
                                                         "GLIBC_2.28": ["fa_28"], "GLIBC_PRIVATE": ["fa_private"]})
    libstdcxx = elfbuild.build_stub_lib(libs, "libstdc++.so.6", {"GLIBCXX_3.4": ["fa_cxx"],
                                                                  "GLIBCXX_3.4.30": ["fa_cxx_30"],
                                                                  "CXXABI_1.3.13": ["fa_abi_13"]})
    # blacklisted names of two blacklist groups (manylinux_2_5 .. 2_17 only, and libz's)
    libpthread = elfbuild.build_stub_lib(libs, "libpthread.so.0", {"GLIBC_2.2.5": ["fa_pt"],
                                                                    "GLIBC_2.18": ["pthread_getattr_default_np"]})
    libm = elfbuild.build_stub_lib(libs, "libm.so.6", {"GLIBC_2.2.5": ["fa_m"], "GLIBC_2.18": ["__issignaling"]})
    # a prefix no policy checks, from a library the wheel ships, which itself needs one outside the policy
    libbar = elfbuild.build_stub_lib(libs / "unshipped", "libbar.so.2", {"BAR_2": ["fa_bar"]})
    grafted = elfbuild.build_shared_object(
        work / "grafted", "libfaedge-1a2b3c4d.so.1", "void fa_bar(void);\nvoid fa_edge(void) { fa_bar(); }\n",
        link=[libbar, libc], soname="libfaedge-1a2b3c4d.so.1",
        ldflags=[f"-Wl,--version-script={_version_script(work, 'FAEDGE_1.0', ['fa_edge'])}"])

    def wheel(dist: str, files: dict[str, Path]) -> Path:
        return elfbuild.pack_wheel(work / "wheels", dist, "1.0", tag, {f"{dist}/__init__.py": b"", **files})

    private = elfbuild.build_extension(work / "private", "_core", calls={libc: ["fa_old", "fa_private"],
                                                                        libstdcxx: ["fa_cxx_30", "fa_abi_13"]})
    blacklisted = elfbuild.build_extension(work / "blacklisted", "_core",
                                           calls={libpthread: ["pthread_getattr_default_np"],
                                                  libm: ["__issignaling"], stub_libs.libz: ["uncompress2"],
                                                  libc: ["fa_18"]})
    shipped = elfbuild.build_extension(work / "shipped", "_core", calls={grafted: ["fa_edge"], libc: ["fa_28"]},
                                       runpath="$ORIGIN/../fa_shipped.libs")
    # a blacklisted name in the string table that the member defines rather than imports
    own_libz = elfbuild.build_stub_lib(libs / "own_libz", "libz.so.1", {"ZLIB_1.2.3": ["fa_zok"]})
    defines = elfbuild.build_shared_object(
        work / "defines", f"_core{elfbuild.EXTENSION_SUFFIX}",
        elfbuild.calling_source("PyInit__core", ["fa_zok"]) + "void uncompress2(void) {}\n", link=[own_libz])
    # a library nothing in the wheel needs, whose name is no extension's: a root of its own
    loose = elfbuild.build_shared_object(work / "loose", "libloose.so", "void fa_cxx(void);\n"
                                         "void fa_loose(void) { fa_cxx(); }\n", link=[libstdcxx])
    return {
        "private": wheel("fa_private", {f"fa_private/{private.name}": private}),
        "blacklisted": wheel("fa_blacklisted", {f"fa_blacklisted/{blacklisted.name}": blacklisted}),
        "shipped": wheel("fa_shipped", {f"fa_shipped/{shipped.name}": shipped,
                                        f"fa_shipped.libs/{grafted.name}": grafted,
                                        "fa_shipped/libloose.so": loose}),
        "defines": wheel("fa_defines", {f"fa_defines/{defines.name}": defines}),
        "all": wheel("fa_all", {f"fa_all/a/{private.name}": private, f"fa_all/b/{blacklisted.name}": blacklisted,
                                f"fa_all/{shipped.name}": shipped, f"fa_all.libs/{grafted.name}": grafted}),
    }


def _version_script(work: Path, node: str, names: list[str]) -> Path:
    script = work / f"{node}.map"
    script.write_text(f"{node} {{ global: {' '.join(f'{n};' for n in names)} local: *; }};\n")
    return script


@pytest.mark.parametrize("name", ["private", "blacklisted", "shipped", "defines", "all"])
def test_edge_wheels(edge_wheels: dict[str, Path], name: str) -> None:
    report = _check_wheel(edge_wheels[name])
    if name in ("private", "all"):  # GLIBC_PRIVATE: no policy but linux allows it
        assert report.symbol_policy is not None and report.symbol_policy.is_linux
    if name == "blacklisted":  # two blacklist groups: up to manylinux_2_17, and libz's up to 2_31
        assert report.blacklist_policy is not None and report.blacklist_policy.tag == "manylinux_2_34_x86_64"
        older = report.policy_upgrades["manylinux_2_17_x86_64"].blacklisted_symbols
        assert "pthread_getattr_default_np" in older["libpthread.so.0"] and "__issignaling" in older["libm.so.6"]
        assert report.policy_upgrades["manylinux_2_31_x86_64"].blacklisted_symbols == {"libz.so.1": ("uncompress2",)}
    if name == "defines":
        member = f"fa_defines/_core{elfbuild.EXTENSION_SUFFIX}"
        assert b"uncompress2\0" in read_wheel_elves(edge_wheels[name])[member].symbols.strtab
        assert report.blacklist_policy == policies_for("glibc", "x86_64")[-1]
    if name == "shipped":
        assert report.external_libs == ("libbar.so.2",)
        assert "FAEDGE_1.0" in report.versioned_symbols["libfaedge-1a2b3c4d.so.1"]


@pytest.mark.parametrize("name", sorted(elfbuild.SCENARIOS))
def test_scenarios(scenarios: dict[str, elfbuild.Scenario], name: str) -> None:
    _check_wheel(scenarios[name].wheel)


def test_musl_objects(tmp_path: Path) -> None:
    if shutil.which("musl-gcc") is None:
        pytest.skip("SKIPPED LOUDLY: musl-gcc not found; apt-get install musl-tools (scripts/test.sh does)")
    source = """#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
static int cmp(const void *a, const void *b, void *arg) { (void)arg; return *(const int *)a - *(const int *)b; }
int PyInit_%s(void) { int v[2] = {2, 1}; qsort_r(v, 2, sizeof v[0], cmp, 0); %s return v[0]; }
"""
    extensions = {
        mod: elfbuild.build_musl_object(tmp_path, f"{mod}.cpython-312-x86_64-linux-musl.so", source % (mod, extra))
        for mod, extra in (("_sort", ""), ("_tid", "(void)gettid(); free(reallocarray(0, 2, 2));"))}
    for combination in itertools.chain.from_iterable(itertools.combinations(extensions, n) for n in (1, 2)):
        files = {f"fa_musl/{extensions[mod].name}": extensions[mod] for mod in combination}
        wheel = elfbuild.pack_wheel(tmp_path / "-".join(combination), "fa_musl", "1.0",
                                    "cp312-cp312-musllinux_1_1_x86_64", files)
        report = _check_wheel(wheel)
        assert report.libc == "musl" and report.symbol_policy is not None
        assert report.symbol_policy.tag == "musllinux_1_2_x86_64"


@pytest.mark.slow
@pytest.mark.parametrize("wheel", corpus_wheels(DIFF_SET), ids=lambda w: w.name if isinstance(w, Path) else "none")
def test_real_wheels(wheel: Path) -> None:
    _check_wheel(wheel)
