"""Dependency resolution of the ELF images inside a wheel, as the dynamic loader would see them.

A wheel member's DT_NEEDED entries resolve through RPATH/RUNPATH, where `$ORIGIN` is the folder of
the object that carries the entry, in the order lddtree (pax-utils) and auditwheel use, so that
verdicts agree: the top-level object's DT_RPATH, the dependency's own DT_RPATH and DT_RUNPATH, then
the top-level object's DT_RUNPATH (an object's DT_RPATH is ignored when it also has DT_RUNPATH). Host folders (LD_LIBRARY_PATH, ld.so.conf, the defaults)
are deliberately absent: a verdict on a wheel must not depend on the machine that computes it, so
a library not found inside the wheel is simply external.
"""
from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fastaudit.elf import ElfInfo

_ORIGIN = re.compile(r"\$(ORIGIN|\{ORIGIN\})")
# libpython is provided by the interpreter that loads the extension; it is never searched for.
LIBPYTHON = re.compile(r"^libpython\d+\.\d+m?\.so(\.\d)*$")
# ELF OS ABIs the Linux loader treats as one: ELFOSABI_NONE (SYSV) and ELFOSABI_GNU (LINUX).
_LINUX_OSABIS = frozenset({0, 3})


def is_dynamic_loader(soname: str) -> bool:
    """The program interpreter is always present: ld-linux*, ld64.so.1 (ppc64le), ld64.so.2 (s390x)."""
    return "ld-linux" in soname or soname in ("ld64.so.1", "ld64.so.2")


def compatible(a: ElfInfo, b: ElfInfo) -> bool:
    """Whether the loader would accept b as a dependency of a."""
    osabi_ok = a.osabi == b.osabi or (a.osabi in _LINUX_OSABIS and b.osabi in _LINUX_OSABIS)
    return (osabi_ok and a.elf_class == b.elf_class and a.little_endian == b.little_endian
            and a.machine == b.machine)


def expand_search_path(entry: str, member: str) -> str | None:
    """An RPATH/RUNPATH entry as a folder inside the wheel, or None when it points outside."""
    if not _ORIGIN.search(entry):
        return None  # absolute or cwd-relative: a host folder
    origin = posixpath.dirname(member)
    expanded = _ORIGIN.sub(lambda _: "/" + origin if origin else "/", entry)
    folder = posixpath.normpath(expanded)
    if not folder.startswith("/"):
        return None
    return folder.lstrip("/")


@dataclass(frozen=True)
class Library:
    """One DT_NEEDED soname in the tree of a top-level member."""

    soname: str
    member: str | None          # the wheel member it resolved to, None when outside the wheel
    needed: tuple[str, ...]     # its own DT_NEEDED, empty when unresolved


@dataclass(frozen=True)
class DependencyTree:
    member: str
    needed: tuple[str, ...]
    libraries: Mapping[str, Library]   # every soname reached, first resolution wins


def _search(soname: str, folders: list[str], parent: ElfInfo,
            elves: Mapping[str, ElfInfo]) -> str | None:
    for folder in folders:
        candidate = posixpath.join(folder, soname)
        info = elves.get(candidate)
        if info is not None and compatible(parent, info):
            return candidate
    return None


def _folders(entries: tuple[str, ...], member: str) -> list[str]:
    return [f for f in (expand_search_path(e, member) for e in entries) if f is not None]


def resolve_tree(member: str, elves: Mapping[str, ElfInfo]) -> DependencyTree:
    """Resolve the dependency tree of one wheel member against the ELF members of the wheel."""
    top = elves[member]
    top_rpath = _folders(top.rpath, member) if not top.runpath else []
    top_runpath = _folders(top.runpath, member)
    libraries: dict[str, Library] = {}
    if top.interpreter:
        libraries[posixpath.basename(top.interpreter)] = Library(posixpath.basename(top.interpreter), None, ())

    def visit(path: str, info: ElfInfo, is_top: bool) -> None:
        if is_top:
            folders = top_rpath + top_runpath
        else:
            own_rpath = _folders(info.rpath, path) if not info.runpath else []
            folders = top_rpath + own_rpath + _folders(info.runpath, path) + top_runpath
        for soname in info.needed:
            if soname in libraries:
                continue
            if LIBPYTHON.match(soname):
                libraries[soname] = Library(soname, None, ())
                continue
            found = _search(soname, folders, info, elves)
            if found is None:
                libraries[soname] = Library(soname, None, ())
                continue
            dep = elves[found]
            libraries[soname] = Library(soname, found, dep.needed)
            visit(found, dep, False)

    visit(member, top, True)
    return DependencyTree(member, top.needed, libraries)
