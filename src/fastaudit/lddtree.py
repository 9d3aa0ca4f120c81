"""Dependency resolution of the ELF images inside a wheel, as the dynamic loader would see them.

A wheel member's DT_NEEDED entries resolve through RPATH/RUNPATH, where `$ORIGIN` is the folder of
the object that carries the entry, in the order lddtree (pax-utils) and auditwheel use, so that
verdicts agree: the top-level object's DT_RPATH, the dependency's own DT_RPATH and DT_RUNPATH, then
the top-level object's DT_RUNPATH (an object's DT_RPATH is ignored when it also has DT_RUNPATH).
Host folders (LD_LIBRARY_PATH, ld.so.conf, the defaults)
are deliberately absent: a verdict on a wheel must not depend on the machine that computes it, so
a library not found inside the wheel is simply external.
"""
from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fastaudit.elf import ElfInfo
from fastaudit.errors import ELFError

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


# --- on the host: for `fastaudit lddtree FILE` and, later, repair ---------------------------------

_DEFAULT_DIRS_GLIBC = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")
_DEFAULT_DIRS_MUSL = ("/lib", "/usr/local/lib", "/usr/lib")


def parse_ld_so_conf(path: str = "/etc/ld.so.conf", _seen: set[str] | None = None) -> list[str]:
    """Folders named by ld.so.conf, following `include` globs (relative ones from its folder)."""
    import glob

    seen = _seen if _seen is not None else set()
    if path in seen:
        return []  # an include cycle
    seen.add(path)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    folders: list[str] = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            pattern = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
            if not pattern.startswith("/"):
                pattern = posixpath.join(posixpath.dirname(path), pattern)
            for included in sorted(glob.glob(pattern)):
                folders.extend(parse_ld_so_conf(included, seen))
        else:
            folders.append(line)
    return folders


def _host_default_dirs(info: ElfInfo) -> list[str]:
    interp = posixpath.basename(info.interpreter or "")
    if interp.startswith("ld-musl-"):
        arch = interp[len("ld-musl-"):].split(".so", 1)[0]
        try:
            with open(f"/etc/ld-musl-{arch}.path", encoding="utf-8") as f:
                return [p for line in f for p in line.strip().replace(":", " ").split()]
        except OSError:
            return list(_DEFAULT_DIRS_MUSL)
    multiarch = [f"/lib/{t}" for t in _MULTIARCH.get(info.arch or "", ())] + \
        [f"/usr/lib/{t}" for t in _MULTIARCH.get(info.arch or "", ())]
    return parse_ld_so_conf() + multiarch + list(_DEFAULT_DIRS_GLIBC)


# Debian-style multiarch folders per architecture
_MULTIARCH: Mapping[str, tuple[str, ...]] = {
    "x86_64": ("x86_64-linux-gnu",), "i686": ("i386-linux-gnu",), "aarch64": ("aarch64-linux-gnu",),
    "ppc64le": ("powerpc64le-linux-gnu",), "s390x": ("s390x-linux-gnu",),
    "armv7l": ("arm-linux-gnueabihf",), "riscv64": ("riscv64-linux-gnu",),
}


@dataclass(frozen=True)
class HostLibrary:
    soname: str
    path: str | None        # where the loader would find it, None when not found
    needed: tuple[str, ...]


@dataclass(frozen=True)
class HostTree:
    path: str
    info: ElfInfo
    libraries: Mapping[str, HostLibrary]   # in the order first reached


def _host_folders(entries: tuple[str, ...], origin_file: str) -> list[str]:
    origin = posixpath.dirname(posixpath.abspath(origin_file))
    return [_ORIGIN.sub(origin, e) for e in entries if e]


class HostSearch:
    """Finds sonames on this machine as the loader would, reading each candidate file once."""

    def __init__(self, ld_library_path: str | None = None) -> None:
        import os

        value = ld_library_path if ld_library_path is not None else os.environ.get("LD_LIBRARY_PATH", "")
        self.env_dirs = [d for d in value.split(":") if d]
        self._files: dict[str, ElfInfo | None] = {}
        self._defaults: dict[tuple[str | None, str | None], list[str]] = {}

    def load(self, candidate: str) -> ElfInfo | None:
        import os

        from fastaudit.elf import read_elf

        if candidate not in self._files:
            try:
                if not os.path.isfile(candidate):
                    raise FileNotFoundError(candidate)
                with open(candidate, "rb") as f:
                    self._files[candidate] = read_elf(f.read())
            except (OSError, ValueError, ELFError):
                self._files[candidate] = None
        return self._files[candidate]

    def find(self, soname: str, requester: ElfInfo, rpath: list[str], runpath: list[str]) -> tuple[str, ElfInfo] | None:
        """(real path, facts) of the library the loader would map for `soname` needed by
        `requester`, searching its DT_RPATH chain, LD_LIBRARY_PATH, its DT_RUNPATH, ld.so.conf and
        the default folders; None when no compatible file is found."""
        import os

        key = (requester.interpreter, requester.arch)
        if key not in self._defaults:  # ld.so.conf is read once per kind of requester
            self._defaults[key] = _host_default_dirs(requester)
        for folder in rpath + self.env_dirs + runpath + self._defaults[key]:
            candidate = posixpath.join(folder, soname)
            dep = self.load(candidate)
            if dep is not None and compatible(requester, dep):
                return os.path.realpath(candidate), dep
        return None


def resolve_on_host(path: str, ld_library_path: str | None = None) -> HostTree:
    """The dependency tree of an ELF file on this machine, searched as glibc's (or musl's) loader
    does: the object's DT_RPATH (unless it has DT_RUNPATH) and its loaders', LD_LIBRARY_PATH,
    DT_RUNPATH, ld.so.conf, the default folders. Candidates of another class, machine, byte order
    or OS ABI are skipped, as the loader skips them."""
    from fastaudit.elf import read_elf

    with open(path, "rb") as f:
        top = read_elf(f.read())
    search = HostSearch(ld_library_path)
    libraries: dict[str, HostLibrary] = {}

    def visit(file: str, info: ElfInfo, loaders_rpath: list[str]) -> None:
        # the DT_RPATH chain: the object's own, then its loaders', unless the object has DT_RUNPATH
        rpath_chain = _host_folders(info.rpath, file) + loaders_rpath
        rpath = rpath_chain if not info.runpath else []
        for soname in info.needed:
            if soname in libraries:
                continue
            found = search.find(soname, info, rpath, _host_folders(info.runpath, file))
            if found is None:
                libraries[soname] = HostLibrary(soname, None, ())
                continue
            libraries[soname] = HostLibrary(soname, found[0], found[1].needed)
            visit(found[0], found[1], rpath_chain)

    visit(path, top, [])
    return HostTree(path, top, libraries)
