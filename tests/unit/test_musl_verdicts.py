"""musllinux verdicts from musl's symbol history, on objects built with musl-gcc at test time.

musl has no symbol versions: a wheel that imports a function musl 1.2 added links without complaint
and then fails to load on musl 1.1. Each object here is compiled against musl's own headers and
linked against the real musl libc.so (Debian's musl-tools); a 32-bit case uses gcc -m32 against a
stand-in libc, since Debian ships no i386 musl.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fastaudit import audit_wheel
from fastaudit.analyze import LIBC_SYMBOL, Reason
from fastaudit.errors import RepairError
from fastaudit.repair import RepairOptions, plan_repair
from fastaudit.report.show import render_text
from fastaudit.results import to_json
from tests import elfbuild

MUSL_TAG = "cp312-cp312-musllinux_1_1_x86_64"

QSORT_R = """#define _GNU_SOURCE
#include <stdlib.h>
static int by_value(const void *a, const void *b, void *arg) {
    (void)arg;
    return *(const int *)a - *(const int *)b;
}
int PyInit_%(mod)s(void) {
    int v[3] = {3, 1, 2};
    qsort_r(v, 3, sizeof v[0], by_value, 0);
    return v[0];
}
"""

OLD_ONLY = """#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static int by_value(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int PyInit_%(mod)s(void) {
    char buf[32];
    struct timespec ts;
    int *v = malloc(3 * sizeof *v);
    qsort(v, 3, sizeof v[0], by_value);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(buf, sizeof buf, "%%d", v[0]);
    free(v);
    return (int)strlen(buf);
}
"""

# musl 1.2.2 added reallocarray and gettid, 1.2.3 pthread_getname_np (WHATSNEW)
SEVERAL = """#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
int PyInit_%(mod)s(void) {
    char name[16];
    void *p = reallocarray(0, 4, 8);
    free(p);
    pthread_getname_np(pthread_self(), name, sizeof name);
    return (int)gettid();
}
"""

REALLOCARRAY = """#define _GNU_SOURCE
#include <stdlib.h>
int PyInit_%(mod)s(void) { return reallocarray(0, 4, 8) != 0; }
"""

WEAK_GETTID = """#define _GNU_SOURCE
#include <unistd.h>
#pragma weak gettid
int PyInit_%(mod)s(void) { return gettid ? (int)gettid() : 0; }
"""


@pytest.fixture(scope="module")
def musl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("musl-gcc") is None:
        pytest.skip("SKIPPED LOUDLY: musl-gcc not found; apt-get install musl-tools (scripts/test.sh does)")
    return tmp_path_factory.mktemp("musl")


def _extension(workdir: Path, mod: str, source: str, **kwargs: object) -> Path:
    return elfbuild.build_musl_object(workdir, f"{mod}.cpython-312-x86_64-linux-musl.so", source % {"mod": mod},
                                      **kwargs)  # type: ignore[arg-type]


def _wheel(workdir: Path, dist: str, tag: str, files: dict[str, Path]) -> Path:
    return elfbuild.pack_wheel(workdir / "wheels", dist, "1.0", tag, files)


def _imports(path: Path) -> set[str]:
    """Undefined, non-weak dynamic symbols, as binutils' nm lists them (an oracle apart from ours)."""
    listing = subprocess.run(["nm", "-D", "--undefined-only", str(path)], capture_output=True, text=True,
                             check=True).stdout
    return {line.split()[-1] for line in listing.splitlines() if line.split()[0] == "U"}


def test_qsort_r_rules_out_musllinux_1_1_and_is_named(musl_dir: Path) -> None:
    ext = _extension(musl_dir, "sorter", QSORT_R)
    assert "qsort_r" in _imports(ext)
    member = f"sorter/{ext.name}"
    report = audit_wheel(_wheel(musl_dir, "sorter", MUSL_TAG, {member: ext}))
    assert report.libc == "musl"
    assert report.overall_tag == "musllinux_1_2_x86_64"
    assert report.symbol_policy is not None and report.symbol_policy.tag == "musllinux_1_2_x86_64"
    expected = Reason(LIBC_SYMBOL, member, elfbuild.MUSL_LIBC, "qsort_r")
    assert report.reasons == (expected,)
    assert report.over_promises and report.over_promise_reasons == (expected,)
    assert expected.describe() == (f"{member} imports qsort_r from {elfbuild.MUSL_LIBC}, "
                                   "which musl exports only since 1.2.3")
    text = render_text(report)
    assert "OVER-PROMISES" in text and "by criterion: libc symbols musllinux_1_2_x86_64;" in text
    assert f"    - {expected.describe()}" in text.splitlines()
    shown = to_json(report)
    assert shown["overall_tag"] == shown["sym_tag"] == "musllinux_1_2_x86_64"
    assert [r["detail"] for r in shown["fastaudit"]["over_promise_reasons"]] == ["qsort_r"]


def test_old_symbols_only_keep_musllinux_1_1(musl_dir: Path) -> None:
    ext = _extension(musl_dir, "oldonly", OLD_ONLY)
    assert {"qsort", "clock_gettime", "snprintf", "malloc"} <= _imports(ext)
    report = audit_wheel(_wheel(musl_dir, "oldonly", MUSL_TAG, {f"oldonly/{ext.name}": ext}))
    assert report.overall_tag == "musllinux_1_1_x86_64"
    assert not report.over_promises and report.reasons == ()


def test_declared_musllinux_1_2_is_consistent(musl_dir: Path) -> None:
    ext = _extension(musl_dir, "sorter12", QSORT_R)
    member = f"sorter12/{ext.name}"
    report = audit_wheel(_wheel(musl_dir, "sorter12", "cp312-cp312-musllinux_1_2_x86_64", {member: ext}))
    assert report.overall_tag == "musllinux_1_2_x86_64" and not report.over_promises
    # still told what keeps it from the more compatible musllinux_1_1
    assert report.reasons == (Reason(LIBC_SYMBOL, member, elfbuild.MUSL_LIBC, "qsort_r"),)


def test_every_new_symbol_is_named_with_its_release(musl_dir: Path) -> None:
    ext = _extension(musl_dir, "several", SEVERAL)
    member = f"several/{ext.name}"
    report = audit_wheel(_wheel(musl_dir, "several", MUSL_TAG, {member: ext}))
    assert report.overall_tag == "musllinux_1_2_x86_64"
    assert {r.detail for r in report.over_promise_reasons} == {"reallocarray", "gettid", "pthread_getname_np"}
    messages = {r.detail: r.describe() for r in report.over_promise_reasons}
    assert messages["reallocarray"].endswith("since 1.2.2") and messages["gettid"].endswith("since 1.2.2")
    assert messages["pthread_getname_np"].endswith("since 1.2.3")


def test_plain_libc_so_needed_is_named(musl_dir: Path) -> None:
    """Rust and Debian's musl record DT_NEEDED libc.so: the reason names that library."""
    work = musl_dir / "plain"
    ext = _extension(work, "plain", QSORT_R, libc_name="libc.so")
    member = f"plain/{ext.name}"
    report = audit_wheel(_wheel(work, "plain", MUSL_TAG, {member: ext}))
    assert report.overall_tag == "musllinux_1_2_x86_64"
    assert report.over_promise_reasons == (Reason(LIBC_SYMBOL, member, "libc.so", "qsort_r"),)


def test_grafted_library_import_counts(musl_dir: Path) -> None:
    """A library the extension needs is loaded too: its own import of qsort_r rules out 1.1."""
    work = musl_dir / "grafted"
    lib = elfbuild.build_musl_object(work, "libsorter.so.1", QSORT_R % {"mod": "unused"}, soname="libsorter.so.1")
    ext = elfbuild.build_musl_object(work, "user.cpython-312-x86_64-linux-musl.so",
                                     "int PyInit_unused(void);\nint PyInit_user(void) { return PyInit_unused(); }\n",
                                     link=[lib], rpath="$ORIGIN/../user.libs")
    report = audit_wheel(_wheel(work, "user", MUSL_TAG, {f"user/{ext.name}": ext,
                                                         "user.libs/libsorter.so.1": lib}))
    assert report.overall_tag == "musllinux_1_2_x86_64"
    assert {(r.member, r.detail) for r in report.over_promise_reasons} == {("user.libs/libsorter.so.1", "qsort_r")}


def test_symbol_defined_inside_the_wheel_is_not_libc_s(musl_dir: Path) -> None:
    """A wheel that ships its own reallocarray (a compat library) needs none from libc."""
    work = musl_dir / "compat"
    compat = elfbuild.build_musl_object(
        work, "libcompat.so", "#include <stddef.h>\n"
        "void *reallocarray(void *p, size_t n, size_t m) { (void)n; (void)m; return p; }\n", soname="libcompat.so")
    ext = _extension(work, "usecompat", REALLOCARRAY, link=[compat], rpath="$ORIGIN")
    assert "reallocarray" in _imports(ext)
    report = audit_wheel(_wheel(work, "usecompat", MUSL_TAG, {f"usecompat/{ext.name}": ext,
                                                              "usecompat/libcompat.so": compat}))
    assert report.overall_tag == "musllinux_1_1_x86_64" and not report.over_promises


def test_weak_import_does_not_count(musl_dir: Path) -> None:
    """A weak undefined gettid resolves to null on musl 1.1: the extension still loads there."""
    ext = _extension(musl_dir, "weak", WEAK_GETTID)
    assert "gettid" not in _imports(ext)
    report = audit_wheel(_wheel(musl_dir, "weak", MUSL_TAG, {f"weak/{ext.name}": ext}))
    assert report.overall_tag == "musllinux_1_1_x86_64"


def test_glibc_import_of_a_musl_1_2_name_is_not_judged_by_musl(scenarios: dict[str, elfbuild.Scenario],
                                                               stub_libs: elfbuild.StubLibs, tmp_path: Path) -> None:
    """qsort_r exists in glibc; a manylinux wheel importing it is judged by its symbol versions alone."""
    libc = elfbuild.build_stub_lib(tmp_path / "stub", "libc.so.6", {"GLIBC_2.2.5": ["qsort_r"]})
    ext = elfbuild.build_extension(tmp_path, "gsort", calls={libc: ["qsort_r"]})
    wheel = elfbuild.pack_wheel(tmp_path, "gsort", "1.0", "cp311-cp311-manylinux_2_5_x86_64",
                                {f"gsort/{ext.name}": ext})
    report = audit_wheel(wheel)
    assert report.libc == "glibc" and not any(r.criterion == LIBC_SYMBOL for r in report.reasons)
    assert report.overall_tag == "manylinux_2_5_x86_64"


@pytest.fixture(scope="module")
def i386_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    probe = subprocess.run(["gcc", "-m32", "-print-libgcc-file-name"], capture_output=True, text=True)
    if probe.returncode != 0 or "/32/" not in probe.stdout:
        pytest.skip("SKIPPED LOUDLY: gcc -m32 unavailable; apt-get install gcc-multilib (scripts/test.sh does)")
    return tmp_path_factory.mktemp("musl-i386")


@pytest.mark.parametrize(("symbol", "tag"), [("__clock_gettime64", "musllinux_1_2_i686"),
                                              ("clock_gettime", "musllinux_1_1_i686")])
def test_i386_time64_symbol_rules_out_musllinux_1_1(i386_dir: Path, symbol: str, tag: str) -> None:
    """musl 1.2.0 made time_t 64-bit on 32-bit arches: its headers turn clock_gettime into
    __clock_gettime64, which musl 1.1 never exported. The old name is still 1.1's."""
    work = i386_dir / symbol
    libc = elfbuild.build_i386_musl_stub(work, ["clock_gettime", "__clock_gettime64"])
    ext = elfbuild.build_shared_object(work, "clock.cpython-312-i386-linux-musl.so",
                                       elfbuild.calling_source("PyInit_clock", [symbol]), link=[libc], cflags=["-m32"])
    member = f"clock/{ext.name}"
    report = audit_wheel(elfbuild.pack_wheel(work, "clock", "1.0", "cp312-cp312-musllinux_1_1_i686", {member: ext}))
    assert report.arch == "i686" and report.libc == "musl"
    assert report.overall_tag == tag
    if symbol.startswith("__"):
        assert report.over_promise_reasons == (Reason(LIBC_SYMBOL, member, elfbuild.MUSL_I386_LIBC, symbol),)
        assert report.over_promise_reasons[0].describe().endswith("since 1.2.0")


def test_repair_refuses_musllinux_1_1_and_never_adds_it(musl_dir: Path) -> None:
    """Repair judges a target by the same libc symbols: it neither writes musllinux_1_1 for a wheel
    importing qsort_r nor adds the 1_1 tag to one repaired for musllinux_1_2."""
    work = musl_dir / "repair"
    ext = _extension(work, "fixme", QSORT_R)
    member = f"fixme/{ext.name}"
    wheel = _wheel(work, "fixme", "cp312-cp312-musllinux_1_2_x86_64", {member: ext})
    with pytest.raises(RepairError, match=r"cannot repair to musllinux_1_1_x86_64: .*imports qsort_r from "
                                          r"libc\.musl-x86_64\.so\.1, which musl exports only since 1\.2\.3"):
        plan_repair(wheel, RepairOptions(plat="musllinux_1_1_x86_64"))
    plan = plan_repair(wheel, RepairOptions(plat="auto"))
    assert plan is not None and plan.policy.tag == "musllinux_1_2_x86_64"
    assert not any("musllinux_1_1" in tag for tag in plan.platform_tags)
    old = _extension(work, "fine", OLD_ONLY)
    plan = plan_repair(_wheel(work, "fine", "cp312-cp312-musllinux_1_2_x86_64", {f"fine/{old.name}": old}),
                       RepairOptions(plat="musllinux_1_2_x86_64"))
    assert plan is not None and "musllinux_1_1_x86_64" in plan.platform_tags
