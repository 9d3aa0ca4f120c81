"""The dependency tree of an ELF object, resolved as glibc's dynamic loader resolves it.

One walker, `resolve`, over a finder that says where a folder's files are: the members of a wheel
(`WheelFinder`), the files of this machine (`HostFinder`), or both (`WheelOnHostFinder`, what
repair needs). The walker owns the loader's rules (glibc's elf/dl-deps.c and elf/dl-load.c):

- dependencies load breadth first, and a soname already loaded is never searched for again;
- an object X's DT_NEEDED entries are searched in: unless X has a DT_RUNPATH, the DT_RPATH of X,
  of the object that loaded X, and so on up to the root (an object with a DT_RUNPATH contributes
  no DT_RPATH, but the chain goes on past it); then LD_LIBRARY_PATH; X's own DT_RUNPATH (never its
  loaders'); ld.so.conf and the default folders. The root is taken to be loaded by an executable
  without DT_RPATH, as python is;
- `$ORIGIN` is the folder of the object whose entry it is, as found (symlinks are not resolved);
  `$LIB` and `$PLATFORM` are not expanded;
- a candidate of another class, machine, byte order or OS ABI is skipped, as the loader skips it.

musl's loader searches LD_LIBRARY_PATH first and inherits DT_RUNPATH like DT_RPATH; musl objects
are walked by the rules above all the same.

A finder for a wheel answers only for folders inside the wheel: a verdict on a wheel must not
depend on the machine that computes it, so a library not found inside it is simply external.
"""
from __future__ import annotations

import os
import posixpath
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from fastaudit.elf import ElfInfo
from fastaudit.errors import ELFError

_ORIGIN = re.compile(r"\$(ORIGIN|\{ORIGIN\})")
# libpython is provided by the interpreter that loads the extension; a wheel's tree never searches it.
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
    """An RPATH/RUNPATH entry of a wheel member as a folder inside the wheel ("" is its root), or
    None when it names a host folder (absolute or cwd-relative)."""
    if not _ORIGIN.search(entry):
        return None
    origin = posixpath.dirname(member)
    expanded = _ORIGIN.sub(lambda _: "/" + origin if origin else "/", entry)
    folder = posixpath.normpath(expanded)
    if not folder.startswith("/"):
        return None
    return folder.lstrip("/")


@dataclass(frozen=True)
class Place:
    """A file or folder: a wheel member path (relative to the wheel's root) or a host path."""

    path: str
    in_wheel: bool


@dataclass(frozen=True)
class Found:
    """What a finder found for one soname in one folder."""

    place: Place       # where the loader opens it: its $ORIGIN is this place's folder
    path: str          # the file it is: a wheel member, or the host file with symlinks resolved
    info: ElfInfo


class Finder(Protocol):
    def find(self, folder: Place, soname: str, requester: ElfInfo) -> Found | None:
        """The object `soname` in `folder`, if it is there and compatible with `requester`."""

    def environment(self) -> list[Place]:
        """The LD_LIBRARY_PATH folders."""

    def defaults(self, requester: ElfInfo) -> list[Place]:
        """The ld.so.conf and default folders for objects like `requester`."""


def _folders(entries: tuple[str, ...], carrier: Place) -> list[Place]:
    """An object's RPATH/RUNPATH entries as folders, `$ORIGIN` being the carrier's folder."""
    folders = []
    for entry in entries:
        if carrier.in_wheel and _ORIGIN.search(entry):
            inside = expand_search_path(entry, carrier.path)
            if inside is not None:
                folders.append(Place(inside, True))
        elif carrier.in_wheel:
            folders.append(Place(entry, False))  # absolute or cwd-relative: a host folder
        else:
            origin = posixpath.dirname(posixpath.abspath(carrier.path))
            folders.append(Place(_ORIGIN.sub(lambda _: origin, entry), False))
    return folders


@dataclass(frozen=True)
class Library:
    """One soname in a tree, as the loader first resolved it."""

    soname: str
    path: str | None          # a wheel member or a host file (symlinks resolved); None when not found
    in_wheel: bool = False
    info: ElfInfo | None = None

    @property
    def member(self) -> str | None:
        """The wheel member it resolved to; None when it is outside the wheel or not found."""
        return self.path if self.in_wheel else None

    @property
    def needed(self) -> tuple[str, ...]:
        return self.info.needed if self.info is not None else ()


@dataclass(frozen=True)
class DependencyTree:
    path: str                          # the root: a wheel member or a host file
    info: ElfInfo
    libraries: Mapping[str, Library]   # every soname reached, in load order

    @property
    def needed(self) -> tuple[str, ...]:
        return self.info.needed


def resolve(root: Place, info: ElfInfo, finder: Finder, *, search_libpython: bool = False) -> DependencyTree:
    """The dependency tree of the object at `root`, loaded as glibc loads it (see the module's
    docstring). With search_libpython False, libpython is recorded as not found and not searched."""
    libraries: dict[str, Library] = {}
    if info.interpreter:  # the program interpreter is loaded before anything else
        name = posixpath.basename(info.interpreter)
        libraries[name] = Library(name, info.interpreter)
    # (where it was opened, its facts, the DT_RPATH folders of its loaders, nearest first)
    queue: deque[tuple[Place, ElfInfo, list[Place]]] = deque([(root, info, [])])
    while queue:
        place, obj, loaders_rpath = queue.popleft()
        own_rpath = [] if obj.runpath else _folders(obj.rpath, place)  # the loader drops RPATH beside RUNPATH
        inherited = own_rpath + loaders_rpath
        search = ([] if obj.runpath else inherited) + finder.environment() + _folders(obj.runpath, place) + \
            finder.defaults(obj)
        for soname in obj.needed:
            if soname in libraries:
                continue
            if not search_libpython and LIBPYTHON.match(soname):
                libraries[soname] = Library(soname, None)
                continue
            found = next((f for f in (finder.find(folder, soname, obj) for folder in search) if f), None)
            if found is None:
                libraries[soname] = Library(soname, None)
                continue
            libraries[soname] = Library(soname, found.path, found.place.in_wheel, found.info)
            queue.append((found.place, found.info, inherited))
    return DependencyTree(root.path, info, libraries)


# --- finders ---------------------------------------------------------------------------------------

class WheelFinder:
    """The ELF members of one wheel; no host folder, no environment."""

    def __init__(self, elves: Mapping[str, ElfInfo]) -> None:
        self.elves = elves

    def find(self, folder: Place, soname: str, requester: ElfInfo) -> Found | None:
        if not folder.in_wheel:
            return None
        member = posixpath.join(folder.path, soname)
        info = self.elves.get(member)
        if info is None or not compatible(requester, info):
            return None
        return Found(Place(member, True), member, info)

    def environment(self) -> list[Place]:
        return []

    def defaults(self, requester: ElfInfo) -> list[Place]:
        return []


def resolve_tree(member: str, elves: Mapping[str, ElfInfo]) -> DependencyTree:
    """The tree of one wheel member against the wheel's own ELF members."""
    return resolve(Place(member, True), elves[member], WheelFinder(elves))


_DEFAULT_DIRS_GLIBC = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")
_DEFAULT_DIRS_MUSL = ("/lib", "/usr/local/lib", "/usr/lib")
# Debian-style multiarch folders per architecture
_MULTIARCH: Mapping[str, tuple[str, ...]] = {
    "x86_64": ("x86_64-linux-gnu",), "i686": ("i386-linux-gnu",), "aarch64": ("aarch64-linux-gnu",),
    "ppc64le": ("powerpc64le-linux-gnu",), "s390x": ("s390x-linux-gnu",),
    "armv7l": ("arm-linux-gnueabihf",), "riscv64": ("riscv64-linux-gnu",),
}


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


class HostFinder:
    """The files of this machine, each candidate read once; answers only for host folders."""

    def __init__(self, ld_library_path: str | None = None, ldpaths: Sequence[str] | None = None) -> None:
        value = ld_library_path if ld_library_path is not None else os.environ.get("LD_LIBRARY_PATH", "")
        self._environment = [Place(d, False) for d in value.split(":") if d]
        self._files: dict[str, ElfInfo | None] = {}
        self._defaults: dict[tuple[str | None, str | None], list[Place]] = {}
        # folders that replace ld.so.conf and the defaults, as auditwheel's --ldpaths
        self._ldpaths = [Place(d, False) for d in ldpaths] if ldpaths is not None else None

    def load(self, candidate: str) -> ElfInfo | None:
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

    def find(self, folder: Place, soname: str, requester: ElfInfo) -> Found | None:
        if folder.in_wheel:
            return None
        candidate = posixpath.join(folder.path, soname)
        info = self.load(candidate)
        if info is None or not compatible(requester, info):
            return None
        return Found(Place(candidate, False), os.path.realpath(candidate), info)

    def environment(self) -> list[Place]:
        return self._environment

    def defaults(self, requester: ElfInfo) -> list[Place]:
        if self._ldpaths is not None:
            return self._ldpaths
        key = (requester.interpreter, requester.arch)
        if key not in self._defaults:  # ld.so.conf is read once per kind of requester
            self._defaults[key] = [Place(d, False) for d in _host_default_dirs(requester)]
        return self._defaults[key]


class WheelOnHostFinder:
    """A wheel's members where its $ORIGIN entries point, this machine's files everywhere else: the
    view of a wheel installed on this machine, which repair grafts from."""

    def __init__(self, wheel: WheelFinder, host: HostFinder) -> None:
        self.wheel = wheel
        self.host = host

    def find(self, folder: Place, soname: str, requester: ElfInfo) -> Found | None:
        return (self.wheel if folder.in_wheel else self.host).find(folder, soname, requester)

    def environment(self) -> list[Place]:
        return self.host.environment()

    def defaults(self, requester: ElfInfo) -> list[Place]:
        return self.host.defaults(requester)


def resolve_on_host(path: str, ld_library_path: str | None = None) -> DependencyTree:
    """The dependency tree of an ELF file on this machine, as the loader would load it (libpython
    included: on the host it is a library like any other)."""
    from fastaudit.elf import read_elf

    with open(path, "rb") as f:
        top = read_elf(f.read())
    return resolve(Place(path, False), top, HostFinder(ld_library_path), search_libpython=True)
