"""The one resolver against the real loader: gcc-built libraries in host folders, each case a rule of
glibc's search order, resolved by `fastaudit lddtree` (resolve_on_host) and by the loader itself
(ld.so, as ldd runs it), and repaired by plan_repair, which must graft exactly what the loader loads
(or name what it cannot find).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastaudit.elf import read_elf
from fastaudit.errors import RepairError
from fastaudit.lddtree import Place, WheelFinder, resolve, resolve_on_host, resolve_tree
from fastaudit.repair import RepairOptions, plan_repair
from tests.elfbuild import build_extension, build_shared_object, calling_source, pack_wheel

LOADER = read_elf(Path(sys.executable).read_bytes()).interpreter
TAG = "cp311-cp311-linux_x86_64"


@dataclass(frozen=True)
class Case:
    extension: Path              # the root: a fake extension (PyInit_<name>), loaded from its host folder
    ld_library_path: str = ""


def lib(folder: Path, name: str, needs: Sequence[Path] = (), soname: str | None = None, **paths: str) -> Path:
    """`folder/name` (SONAME `soname`, else its name) exporting f_<stem>, calling f_<stem> of each library it needs."""
    callees = [f"f_{p.name.split('.')[0]}" for p in needs]
    return build_shared_object(folder, name, calling_source(f"f_{name.split('.')[0]}", callees), link=list(needs),
                               soname=soname or name, **paths)


def extension(folder: Path, needs: list[Path], **paths: str) -> Path:
    return build_extension(folder, "_ext", calls={p: [f"f_{p.name.split('.')[0]}"] for p in needs}, **paths)


def rpath_then_origin_runpath(t: Path) -> Case:
    """Issue 9, defect 2: DT_RPATH /x finds libfa_a, whose DT_RUNPATH $ORIGIN finds libfa_b."""
    b = lib(t / "x", "libfa_b.so.1")
    a = lib(t / "x", "libfa_a.so.1", [b], runpath="$ORIGIN")
    return Case(extension(t / "ext", [a], rpath=str(t / "x")))


def rpath_inherited_by_grandchildren(t: Path) -> Case:
    """Only the root has a DT_RPATH; its great-grandchild is still found there."""
    c = lib(t / "r", "libfa_c.so.1")
    b = lib(t / "r", "libfa_b.so.1", [c])
    a = lib(t / "r", "libfa_a.so.1", [b])
    return Case(extension(t / "ext", [a], rpath=str(t / "r")))


def runpath_stops_inheritance(t: Path) -> Case:
    """libfa_a has a DT_RUNPATH: its own needs ignore every DT_RPATH (libfa_x, only in the root's
    RPATH folder, is not found), but the needs of what it loads (libfa_c) see the root's again."""
    c = lib(t / "r", "libfa_c.so.1")
    b = lib(t / "q", "libfa_b.so.1", [c])
    x = lib(t / "r", "libfa_x.so.1")
    a = lib(t / "r", "libfa_a.so.1", [b, x], runpath=str(t / "q"))
    return Case(extension(t / "ext", [a], rpath=str(t / "r")))


def rpath_beside_runpath_is_ignored(t: Path) -> Case:
    """An object with both: its DT_RPATH is neither searched (the decoy libfa_a is not loaded) nor
    inherited (libfa_b, only in the RPATH folder, is not found for libfa_a)."""
    lib(t / "decoy", "libfa_a.so.1", [lib(t / "decoy", "libfa_gone.so.1")])
    a = lib(t / "good", "libfa_a.so.1", [lib(t / "decoy", "libfa_b.so.1")])
    return Case(extension(t / "ext", [a], rpath=str(t / "decoy"), runpath=str(t / "good")))


def origin_in_a_host_librarys_rpath(t: Path) -> Case:
    """A host library's DT_RPATH $ORIGIN/../b is its own folder's sibling, not the root's."""
    b = lib(t / "b", "libfa_b.so.1")
    a = lib(t / "a", "libfa_a.so.1", [b], rpath="$ORIGIN/../b")
    return Case(extension(t / "ext", [a], rpath=str(t / "a")))


def ld_library_path_before_runpath(t: Path) -> Case:
    """LD_LIBRARY_PATH is searched before DT_RUNPATH (the env copy wins) but after DT_RPATH."""
    lib(t / "run", "libfa_a.so.1", [lib(t / "run", "libfa_gone.so.1")])
    env_a = lib(t / "env", "libfa_a.so.1", [lib(t / "env", "libfa_b.so.1")])
    lib(t / "env", "libfa_r.so.1", [lib(t / "env", "libfa_gone2.so.1")])
    r = lib(t / "rp", "libfa_r.so.1")
    inner = lib(t / "run", "libfa_i.so.1", [r], rpath=str(t / "rp"))
    return Case(extension(t / "ext", [env_a, inner], runpath=str(t / "run")), ld_library_path=str(t / "env"))


def a_loop(t: Path) -> Case:
    """libfa_a needs libfa_b, which needs libfa_a: each is loaded once and the walk ends."""
    stub_a = lib(t / "stub", "libfa_a.so.1")
    b = lib(t / "x", "libfa_b.so.1", [stub_a])
    a = lib(t / "x", "libfa_a.so.1", [b], runpath="$ORIGIN")
    return Case(extension(t / "ext", [a], rpath=str(t / "x")))


def breadth_first(t: Path) -> Case:
    """The root needs libfa_a and libfa_c; libfa_a's DT_RPATH has another libfa_c. The loader maps
    the root's needs first, so its copy wins (a depth-first walk would take libfa_a's)."""
    lib(t / "p", "libfa_c.so.1", [lib(t / "p", "libfa_gone.so.1")])
    c = lib(t / "q", "libfa_c.so.1")
    a = lib(t / "q", "libfa_a.so.1", [c], rpath=str(t / "p"))
    return Case(extension(t / "ext", [a, c], runpath=str(t / "q")))


def origin_of_a_symlink(t: Path) -> Case:
    """$ORIGIN is the folder a library was opened from, not where its symlink points."""
    real = lib(t / "real", "libfa_a.so.1.0", [lib(t / "link", "libfa_b.so.1")], soname="libfa_a.so.1",
               runpath="$ORIGIN")
    (t / "link" / "libfa_a.so.1").symlink_to(real)
    lib(t / "real", "libfa_b.so.1", [lib(t / "real", "libfa_gone.so.1")])
    ext = build_extension(t / "ext", "_ext", calls={}, rpath=str(t / "link"), ldflags=["-Wl,--no-as-needed",
                          f"-L{t / 'link'}", "-l:libfa_a.so.1"])
    return Case(ext)


CASES: dict[str, Callable[[Path], Case]] = {f.__name__: f for f in (
    rpath_then_origin_runpath, rpath_inherited_by_grandchildren, runpath_stops_inheritance,
    rpath_beside_runpath_is_ignored, origin_in_a_host_librarys_rpath, ld_library_path_before_runpath, a_loop,
    breadth_first, origin_of_a_symlink)}


def loader_list(path: Path, ld_library_path: str) -> list[tuple[str, str | None]]:
    """(soname, real path or None) as glibc's loader maps them for `path`, in load order (as ldd
    asks it: a missing library is listed, not fatal)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["LD_TRACE_LOADED_OBJECTS"] = "1"
    if ld_library_path:
        env["LD_LIBRARY_PATH"] = ld_library_path
    proc = subprocess.run([LOADER, str(path)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = []
    for line in proc.stdout.splitlines():
        match = re.match(r"\s+(\S+) => (not found|(\S+) \(0x)", line)
        if match:
            loaded.append((match[1], os.path.realpath(match[3]) if match[3] else None))
    return loaded


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    return CASES[request.param](tmp_path)


def test_lddtree_loads_what_the_loader_loads_in_its_order(case: Case) -> None:
    expected = loader_list(case.extension, case.ld_library_path)
    assert expected and any(path for _, path in expected)
    tree = resolve_on_host(str(case.extension), case.ld_library_path)
    assert [(s, lib.path) for s, lib in tree.libraries.items()] == expected


def test_repair_grafts_what_the_loader_loads_or_names_what_it_cannot_find(case: Case, tmp_path: Path) -> None:
    expected = loader_list(case.extension, case.ld_library_path)
    wheel = pack_wheel(tmp_path / "dist", "fa_case", "1.0", TAG, {f"fa_case/{case.extension.name}": case.extension})
    missing = sorted(s for s, path in expected if path is None)
    if missing:
        with pytest.raises(RepairError) as refused:
            plan_repair(wheel, RepairOptions(ld_library_path=case.ld_library_path))
        for soname in missing:
            assert f"fa_case/{case.extension.name} needs {soname}, which is neither in the policy nor in the wheel " \
                   "and was not found on this machine" in str(refused.value)
        return
    plan = plan_repair(wheel, RepairOptions(ld_library_path=case.ld_library_path))
    assert plan is not None
    assert sorted((g.soname, g.source) for g in plan.grafts) == sorted(expected)


def test_a_wheel_tree_follows_the_same_rules_inside_the_wheel(tmp_path: Path) -> None:
    """Inside a wheel: the extension's DT_RPATH $ORIGIN/../fa.libs finds libfa_a; libfa_a's
    DT_RUNPATH $ORIGIN/../other stops the chain, so libfa_x, only in fa.libs, is external; libfa_b,
    found through that RUNPATH, sees the extension's RPATH again and finds libfa_c in fa.libs."""
    c = lib(tmp_path / "fa.libs", "libfa_c.so.1")
    b = lib(tmp_path / "other", "libfa_b.so.1", [c])
    x = lib(tmp_path / "fa.libs", "libfa_x.so.1")
    a = lib(tmp_path / "fa.libs", "libfa_a.so.1", [b, x], runpath="$ORIGIN/../other")
    ext = extension(tmp_path / "fa", [a], rpath="$ORIGIN/../fa.libs")
    elves = {f"fa/{ext.name}": read_elf(ext.read_bytes())}
    elves.update({f"{p.parent.name}/{p.name}": read_elf(p.read_bytes()) for p in (a, b, c, x)})
    tree = resolve_tree(f"fa/{ext.name}", elves)
    assert {s: lib.member for s, lib in tree.libraries.items()} == {
        "libfa_a.so.1": "fa.libs/libfa_a.so.1", "libfa_b.so.1": "other/libfa_b.so.1",
        "libfa_x.so.1": None, "libfa_c.so.1": "fa.libs/libfa_c.so.1"}
    # the same files on the host, in the same layout: the loader agrees
    assert loader_list(ext, "") == [(s, os.path.realpath(tmp_path / lib.member) if lib.member else None)
                                    for s, lib in tree.libraries.items()]
    # a wheel finder never answers for a host folder, whatever the host holds
    outside = resolve(Place(f"fa/{ext.name}", True), elves[f"fa/{ext.name}"], WheelFinder({}))
    assert all(lib.path is None for lib in outside.libraries.values())
