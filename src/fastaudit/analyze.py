"""One wheel -> WheelReport: a pure function of the wheel's ELF facts and the policy data. Reading
those facts from a wheel is facts.py's.

The criteria and the way they combine follow auditwheel's `show`, so the verdicts agree: symbol
versions (over every ELF member; for musl, which has none, the libc symbols each member imports,
judged against musl's own export history), external libraries and blacklisted symbols (over the Python
extensions and the ELF members nothing else in the wheel needs), the x86-64 ISA level, and the
PyFPE_jbuf / UCS2 checks. Unlike auditwheel, nothing is looked up on the host running the audit.
Two more facts are reported beside the verdict without changing it: the members glibc 2.41+ will not
dlopen because they need an executable stack, and the build image a rebuild needs when symbol
versions break a declared tag.
"""
from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike

from fastaudit.abi3 import ABI3, Abi3Report, judge_abi3, may_need_audit
from fastaudit.elf import STT_FUNC, STT_NOTYPE, ElfInfo
from fastaudit.errors import FastauditError
from fastaudit.facts import ElfCache, check_linux_wheel_name, read_wheel_elves
from fastaudit.files import reading
from fastaudit.lddtree import DependencyTree, is_dynamic_loader, resolve_tree
from fastaudit.policy import Policy, libc_release_adding, libc_symbols_beyond, policies_for, policy_for_tag
from fastaudit.policy.builds import (
    BuildImage,
    build_image_for,
    default_stack_executable,
    dlopen_refuses_executable_stack_since,
    oldest_build_image,
)
from fastaudit.wheel import WheelName, is_linux_tag

GLIBC = "glibc"
MUSL = "musl"

# the criteria a Reason names
SYMBOL_VERSION = "symbol_version"
LIBC_SYMBOL = "libc_symbol"
EXTERNAL_LIBRARY = "external_library"
MISSING_LIBRARY = "missing_library"    # repair: an external library this machine does not have either
BLACKLISTED_SYMBOL = "blacklisted_symbol"
ISA = "isa"
PYFPE = "pyfpe"
UCS2 = "ucs2"
ARCH = "arch"
LIBC = "libc"
EXECUTABLE_STACK = "executable_stack"

_PYFPE_SYMBOLS = ("PyFPE_jbuf", "PyFPE_dummy", "PyFPE_counter")
ET_DYN = 3
_NUMBERED_VERSION = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z][A-Z0-9]*)*_[0-9]+(?:\.[0-9]+)*")


@dataclass(frozen=True, order=True)
class Reason:
    """One fact that keeps a wheel from a tag: which member, which library, what exactly."""

    criterion: str
    member: str
    library: str = ""
    detail: str = ""
    source: str = ""   # repair: the host file a library to be grafted (named by member) comes from

    def describe(self) -> str:
        who = f"{self.member} (grafted from {self.source})" if self.source else self.member
        if self.criterion == SYMBOL_VERSION:
            return f"{who} needs {self.detail} from {self.library}"
        if self.criterion == LIBC_SYMBOL:
            release = libc_release_adding(MUSL, self.detail)
            return f"{who} imports {self.detail} from {self.library}, which musl exports only since {release}"
        if self.criterion == EXTERNAL_LIBRARY:
            return f"{self.member} needs {self.library}, which is neither in the policy nor in the wheel"
        if self.criterion == MISSING_LIBRARY:
            return (f"{self.member} needs {self.library}, which is neither in the policy nor in the wheel and was not "
                    "found on this machine (RPATH, LD_LIBRARY_PATH, RUNPATH, ld.so.conf, the default folders)")
        if self.criterion == BLACKLISTED_SYMBOL:
            return f"{self.member} imports the blacklisted symbol {self.detail} from {self.library}"
        if self.criterion == ISA:
            return f"{self.member} needs the {self.detail} instruction set"
        if self.criterion == EXECUTABLE_STACK:
            since = dlopen_refuses_executable_stack_since()
            return (f"{who}: {self.detail}; glibc {since} and newer refuse to dlopen it "
                    "(\"cannot enable executable stack as shared object requires\")")
        return f"{self.member}: {self.detail}"


@dataclass(frozen=True)
class PolicyUpgrade:
    """What stands between the wheel and one more compatible tag (auditwheel's policy_upgrades)."""

    libs_to_eliminate: tuple[str, ...]
    blacklisted_symbols: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class RebuildImage:
    """The build image family a rebuild for `tag` needs: `image` has a libc no newer than the tag's;
    None when no published image is that old for the architecture, and then `oldest` is the oldest."""

    tag: str
    image: BuildImage | None
    oldest: BuildImage | None = None

    def describe(self) -> str:
        if self.image is not None:
            return f"to build for {self.tag}, build in {self.image.describe()}"
        oldest = f"; the oldest there is {self.oldest.describe()}" if self.oldest else ""
        return f"no pypa/manylinux image is old enough to build for {self.tag}{oldest}"


@dataclass(frozen=True)
class WheelReport:
    wheel: str
    name: WheelName
    pure: bool
    arch: str | None = None
    libc: str | None = None
    elf_members: tuple[str, ...] = ()
    # per criterion: the most compatible policy the wheel satisfies on that criterion alone
    overall: Policy | None = None
    symbol_policy: Policy | None = None
    external_policy: Policy | None = None
    blacklist_policy: Policy | None = None
    isa_policy: Policy | None = None
    pyfpe_policy: Policy | None = None
    ucs2_policy: Policy | None = None
    versioned_symbols: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    external_libs: tuple[str, ...] = ()
    policy_upgrades: Mapping[str, PolicyUpgrade] = field(default_factory=dict)
    # what keeps the wheel from the next more compatible tag
    reasons: tuple[Reason, ...] = ()
    # members left out of the verdict (another architecture or libc), with why
    ignored: tuple[Reason, ...] = ()
    declared_tags: tuple[str, ...] = ()
    over_promises: bool = False
    # what keeps the wheel from the most compatible tag its file name declares, when it over-promises
    over_promise_reasons: tuple[Reason, ...] = ()
    # the stable-ABI criterion (abi3.py); None for a wheel that is not abi3-tagged and has no *.abi3.so
    abi3: Abi3Report | None = None
    # members glibc 2.41+ refuses to dlopen: they need an executable stack (reported, not a tag limit)
    executable_stack: tuple[Reason, ...] = ()
    # when symbol versions break a declared tag: the build image a compliant rebuild needs
    rebuild_image: RebuildImage | None = None

    @property
    def overall_tag(self) -> str | None:
        return self.overall.tag if self.overall else None

    @property
    def is_linux_only(self) -> bool:
        return self.overall is not None and self.overall.is_linux


@dataclass
class _Member:
    path: str
    info: ElfInfo
    is_extension: bool = False
    python_major: int = 0


def _extension_kind(path: str, info: ElfInfo) -> int:
    """3 for a CPython 3 extension, 2 for a Python 2 / cffi-PyPy one, 0 for any other ELF."""
    module = posixpath.basename(path).split(".", 1)[0]
    for symbol, major in ((f"PyInit_{module}", 3), (f"init{module}", 2), (f"_cffi_pypyinit_{module}", 2)):
        if info.symbols.defines(symbol, STT_FUNC):
            return major
    return 0


def roots(elves: Mapping[str, ElfInfo]) -> list[str]:
    """The members whose trees are walked, as auditwheel chooses them for `show` and `repair`:
    every Python extension (even one another member needs), and every other ELF member whose file
    name no member needs. A library other members need is reached through their trees."""
    return _roots(elves, {m: _extension_kind(m, info) for m, info in elves.items()})


def _roots(elves: Mapping[str, ElfInfo], kinds: Mapping[str, int]) -> list[str]:
    """roots(), given each member's _extension_kind."""
    needed = {n for info in elves.values() for n in info.needed}
    return [m for m in elves if kinds[m] or posixpath.basename(m) not in needed]


def _libc_of(info: ElfInfo) -> str | None:
    interp = posixpath.basename(info.interpreter or "")
    if interp.startswith("ld-musl-") or any(n.startswith(("libc.musl-", "ld-musl-")) for n in info.needed):
        return MUSL
    if interp.startswith(("ld-linux", "ld64.so")) or any(
            n == "libc.so.6" or n.startswith(("ld-linux-", "ld64.so.")) for n in info.needed):
        return GLIBC
    return None


def _libc_from_tags(tags: Iterable[str]) -> str | None:
    for tag in tags:
        if tag.startswith("musllinux"):
            return MUSL
        if tag.startswith("manylinux"):
            return GLIBC
    return None


_ARCHES = ("x86_64", "i686", "aarch64", "ppc64le", "ppc64", "s390x", "armv7l", "riscv64", "loongarch64")


def _arch_from_tags(tags: Iterable[str]) -> str | None:
    """The one architecture the Linux platform tags name; None when they name none or several."""
    arches = {arch for tag in tags if is_linux_tag(tag)
              for arch in _ARCHES if tag.endswith("_" + arch)}
    return arches.pop() if len(arches) == 1 else None


def _required_versions(members: Iterable[_Member]) -> dict[str, set[str]]:
    """Library -> symbol versions needed from it, over all members; the loader is left out."""
    required: dict[str, set[str]] = {}
    for m in members:
        for library, versions in m.info.version_requirements.items():
            if not is_dynamic_loader(library):
                required.setdefault(library, set()).update(versions)
    return required


def _versions_refused(policy: Policy, versions: Iterable[str]) -> list[str]:
    """The versions a policy refuses; a prefix the policy does not list is not checked."""
    refused = []
    for version in versions:
        prefix = version.partition("_")[0]
        allowed = policy.symbol_versions.get(prefix)
        if allowed is not None and version not in allowed:
            refused.append(version)
    return refused


def refused_versions(policy: Policy, requirements: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """(library, version) pairs of the requirements the policy refuses; the loader is left out."""
    return [(library, version) for library, versions in sorted(requirements.items())
            if not is_dynamic_loader(library) for version in sorted(_versions_refused(policy, versions))]


def libc_symbols_too_new(policy: Policy, elves: Mapping[str, ElfInfo]) -> dict[tuple[str, str], set[str]]:
    """(libc soname, symbol) -> paths importing it, for the symbols the libc of the policy's release
    line lacks (musl has no symbol versions to say so) and none of the ELF images defines."""
    beyond = libc_symbols_beyond(policy)
    found: dict[tuple[str, str], set[str]] = {}
    if not beyond:
        return found
    libc_names = sorted(n for n in policy.whitelist if n.startswith("libc.musl-") or n == "libc.so")
    for path, info in elves.items():
        # the image's own name for its libc; one that reaches libc only through another library
        # still binds these symbols to it (musl has one global symbol scope)
        library = next((n for n in info.needed if n in libc_names), libc_names[0])
        for symbol in beyond.keys() & info.undefined_symbols:
            if not any(symbol in other.defined_symbols for other in elves.values()):
                found.setdefault((library, symbol), set()).add(path)
    return found


def _external_libraries(tree: DependencyTree, policy: Policy) -> set[str]:
    """Sonames the policy does not allow and the wheel does not ship, reached from the tree's root
    through libraries the policy does not allow either."""
    def outside_policy(names: Iterable[str]) -> list[str]:
        return [n for n in names if not is_dynamic_loader(n) and n not in policy.whitelist]

    pending = set(outside_policy(tree.needed))
    reached: set[str] = set()
    while pending:
        soname = pending.pop()
        reached.add(soname)
        library = tree.libraries.get(soname)
        if library is not None:
            pending.update(n for n in outside_policy(library.needed) if n not in reached)
    return {s for s in reached if tree.libraries.get(s) is None or tree.libraries[s].member is None}


def _blacklisted(member: _Member, blacklist: Mapping[str, frozenset[str]]) -> dict[str, set[str]]:
    """Library -> the symbols of a blacklist (a policy's) the member imports from it; "*" when the
    blacklist names the whole library."""
    found: dict[str, set[str]] = {}
    undefined = member.info.undefined_symbols
    for library in blacklist.keys() & set(member.info.needed):
        symbols = blacklist[library]
        hits = set(symbols & undefined)
        if "*" in symbols:
            hits.add("*")
        if hits:
            found[library] = hits
    return found


def _uses_pyfpe(info: ElfInfo) -> bool:
    sym = info.symbols
    kinds = (sym.type == STT_FUNC) | (sym.type == STT_NOTYPE)
    return any(bool((sym.rows_named(name) & sym.undefined_mask & kinds).any()) for name in _PYFPE_SYMBOLS)


def _uses_ucs2(info: ElfInfo) -> bool:
    sym = info.symbols
    names = sym.names_where(sym.undefined_mask & (sym.type == STT_FUNC))
    return any("PyUnicodeUCS2_" in n for n in names)


def _isa_name(level: int) -> str:
    return f"x86-64-v{level}"


def _bits(positions: Iterable[int]) -> int:
    """A set of positions in a family's policies, as a bit mask (bit i: policies[i])."""
    mask = 0
    for i in positions:
        mask |= 1 << i
    return mask


_Groups = tuple[tuple[Policy, tuple[int, ...]], ...]


def _groups(policies: tuple[Policy, ...], key: Callable[[Policy], object]) -> _Groups:
    """The policies other than linux grouped by what key gives: (the first of a group, the
    positions of all of them)."""
    groups: dict[object, list[int]] = {}
    for i, policy in enumerate(policies):
        if not policy.is_linux:
            groups.setdefault(key(policy), []).append(i)
    return tuple((policies[positions[0]], tuple(positions)) for positions in groups.values())


class _FamilyTables:
    """What judging needs from one libc family's policies on one arch, worked out once per process,
    since every wheel is judged by the same policies: which policies allow each symbol version (a
    bit mask over their positions), which share a whitelist or a blacklist, and which have libc
    symbols to look for."""

    def __init__(self, policies: tuple[Policy, ...]) -> None:
        self.policies = policies
        self.position = {policy: i for i, policy in enumerate(policies)}
        self._everyone = _bits(range(len(policies)))
        listed = {v for p in policies for versions in p.symbol_versions.values() for v in versions}
        self._allowing = {v: _bits(i for i, p in enumerate(policies) if not _versions_refused(p, (v,)))
                          for v in listed}
        # a version no policy lists is refused by exactly the policies that check its prefix
        self._allowing_unlisted = {prefix: _bits(i for i, p in enumerate(policies) if prefix not in p.symbol_versions)
                                   for p in policies for prefix in p.symbol_versions}
        self.whitelist_groups = _groups(policies, lambda p: p.whitelist)
        self.blacklist_groups = _groups(policies, lambda p: frozenset(p.blacklist.items()))
        # every policy's blacklisted names, per library, as they stand in a string table
        needles: dict[str, set[bytes]] = {}
        self._whole_library_blacklisted: set[str] = set()
        for policy, _ in self.blacklist_groups:
            for library, symbols in policy.blacklist.items():
                if "*" in symbols:
                    self._whole_library_blacklisted.add(library)
                needles.setdefault(library, set()).update(
                    name.encode("utf-8", "surrogateescape") + b"\0" for name in symbols if name != "*")
        self._blacklist_needles = {library: tuple(sorted(found)) for library, found in needles.items()}
        self.checks_libc_symbols = tuple(bool(libc_symbols_beyond(p)) for p in policies)

    def may_import_blacklisted(self, info: ElfInfo) -> bool:
        """False when the image imports nothing any policy blacklists from a library it needs. Told
        from its string table, without decoding its symbols: a name it imports is there, ending in
        a NUL byte."""
        strtab = info.symbols.strtab
        for library in info.needed:
            needles = self._blacklist_needles.get(library)
            if needles is not None and (library in self._whole_library_blacklisted
                                        or any(needle in strtab for needle in needles)):
                return True
        return False

    def allowing(self, versions: Iterable[str]) -> int:
        """The policies (a bit mask) that refuse none of the versions."""
        mask = self._everyone
        for version in versions:
            allowing = self._allowing.get(version)
            if allowing is None:
                allowing = self._allowing_unlisted.get(version.partition("_")[0], self._everyone)
            mask &= allowing
        return mask


@functools.cache
def _family_tables(policies: tuple[Policy, ...]) -> _FamilyTables:
    return _FamilyTables(policies)


class _PolicyFacts:
    """The per-policy facts of one wheel, computed once and read by every criterion; lists are
    indexed by the policy's position in `policies`."""

    def __init__(self, policies: tuple[Policy, ...], members: list[_Member], audited: list[_Member],
                 trees: Mapping[str, DependencyTree]) -> None:
        self.policies = policies
        self.tables = tables = _family_tables(policies)
        self.members = members
        self.audited = audited
        # soname -> members, and (lib, symbol) -> members; linux allows everything
        self.external: list[dict[str, set[str]]] = [{} for _ in policies]
        self.blacklist: list[dict[tuple[str, str], set[str]]] = [{} for _ in policies]
        for policy, positions in tables.whitelist_groups:
            ext: dict[str, set[str]] = {}
            for m in audited:
                for soname in _external_libraries(trees[m.path], policy):
                    ext.setdefault(soname, set()).add(m.path)
            for i in positions:
                self.external[i] = ext
        by_group: list[dict[tuple[str, str], set[str]]] = [{} for _ in tables.blacklist_groups]
        for m in audited:
            if not tables.may_import_blacklisted(m.info):
                continue
            for (policy, _), black in zip(tables.blacklist_groups, by_group):
                for library, symbols in _blacklisted(m, policy.blacklist).items():
                    for symbol in symbols:
                        black.setdefault((library, symbol), set()).add(m.path)
        for (_, positions), black in zip(tables.blacklist_groups, by_group):
            for i in positions:
                self.blacklist[i] = black
        self.required = _required_versions(members)
        self.versions_allowed_by = tables.allowing(v for versions in self.required.values() for v in versions)
        infos = {m.path: m.info for m in members}
        self.libc_symbols = [libc_symbols_too_new(p, infos) if checks else {}
                             for p, checks in zip(policies, tables.checks_libc_symbols)]

    def best(self, satisfied: Callable[[int], bool]) -> Policy:
        """The most compatible policy that satisfies a criterion (policies ascend in priority: the
        last one that does); linux satisfies every one."""
        return next((self.policies[i] for i in range(len(self.policies) - 1, 0, -1) if satisfied(i)),
                    self.policies[0])

    def symbol_ok(self, i: int) -> bool:
        return bool(self.versions_allowed_by >> i & 1) and not self.libc_symbols[i]

    def blockers(self, policy: Policy, isa_blocked: bool, pyfpe: bool, ucs2: bool) -> list[Reason]:
        i = self.tables.position[policy]
        reasons = []
        for m in self.members:
            for library, versions in m.info.version_requirements.items():
                if is_dynamic_loader(library):
                    continue
                reasons.extend(Reason(SYMBOL_VERSION, m.path, library, v)
                               for v in _versions_refused(policy, versions))
        for (library, symbol), paths in self.libc_symbols[i].items():
            reasons.extend(Reason(LIBC_SYMBOL, p, library, symbol) for p in paths)
        for soname, paths in self.external[i].items():
            reasons.extend(Reason(EXTERNAL_LIBRARY, p, soname) for p in paths)
        for (library, symbol), paths in self.blacklist[i].items():
            reasons.extend(Reason(BLACKLISTED_SYMBOL, p, library, symbol) for p in paths)
        if isa_blocked and not policy.is_linux:
            reasons.extend(Reason(ISA, m.path, "", _isa_name(m.info.isa_level))
                           for m in self.audited if m.info.isa_level > 1 or m.info.unknown_isa_bits)
        if pyfpe and not policy.is_linux:
            reasons.extend(Reason(PYFPE, m.path, "", "uses PyFPE_jbuf (fpectl builds)")
                           for m in self.audited if m.is_extension and _uses_pyfpe(m.info))
        if ucs2 and not policy.is_linux:
            reasons.extend(Reason(UCS2, m.path, "", "built for a narrow-unicode (UCS2) Python")
                           for m in self.audited if m.python_major == 2 and _uses_ucs2(m.info))
        return sorted(set(reasons))


class _CriterionTags:
    """The tag each criterion allows, and the overall one, under one libc family's policies."""

    def __init__(self, policies: tuple[Policy, ...], members: list[_Member], audited: list[_Member],
                 trees: Mapping[str, DependencyTree], check_isa: bool) -> None:
        self.policies = policies
        self.facts = facts = _PolicyFacts(policies, members, audited, trees)
        highest = policies[-1]
        self.symbol_policy = facts.best(facts.symbol_ok)
        self.external_policy = facts.best(lambda i: not facts.external[i])
        self.blacklist_policy = facts.best(lambda i: not facts.blacklist[i])
        self.isa_blocked = check_isa and any(m.info.isa_level > 1 or m.info.unknown_isa_bits for m in audited)
        self.isa_policy = policies[0] if self.isa_blocked else highest
        self.pyfpe = any(m.is_extension and _uses_pyfpe(m.info) for m in audited)
        self.ucs2 = any(m.python_major == 2 and _uses_ucs2(m.info) for m in audited)
        self.pyfpe_policy = policies[0] if self.pyfpe else highest
        self.ucs2_policy = policies[0] if self.ucs2 else highest
        self.overall = min(self.symbol_policy, self.external_policy, self.blacklist_policy, self.isa_policy,
                           self.pyfpe_policy, self.ucs2_policy)
        # where the policies more compatible than the verdict start
        self.better_from = facts.tables.position[self.overall] + 1
        self.better = policies[self.better_from:]

    def blockers(self, policy: Policy) -> tuple[Reason, ...]:
        return tuple(self.facts.blockers(policy, self.isa_blocked, self.pyfpe, self.ucs2))


def _declared_policies(name: WheelName) -> list[Policy]:
    declared = []
    for tag in name.platform_tags:
        if tag.startswith(("manylinux", "musllinux")):
            try:
                declared.append(policy_for_tag(tag))
            except FastauditError:
                continue  # a tag we have no policy for cannot be judged
    return declared


def _abi3_step(name: WheelName, members: list[_Member]) -> tuple[Abi3Report | None, list[Reason]]:
    """The abi3 criterion, and the reasons it adds to the over-promise decision."""
    report = judge_abi3(name, {m.path: m.info for m in members}, (m.path for m in members if m.python_major == 3))
    if report is None or not report.over_promises:
        return report, []
    return report, [Reason(ABI3, member, "", detail) for member, detail in report.reasons]


def executable_stack_reasons(members: Iterable[tuple[str, ElfInfo]], libc: str | None) -> tuple[Reason, ...]:
    """The glibc members a dlopen refuses since glibc 2.41 because they need an executable stack:
    PF_X in PT_GNU_STACK, or no PT_GNU_STACK where glibc's default stack is executable. Only shared
    objects count: the kernel gives a program (an interpreter, or ET_EXEC) the stack it asks for, and
    only dlopen refuses; a relocatable object (.o) is never loaded. musl never makes the stack
    executable, so musl wheels have no such failure."""
    if libc != GLIBC:
        return ()
    reasons = []
    for path, info in members:
        if info.e_type != ET_DYN or info.interpreter:
            continue
        if info.executable_stack:
            reasons.append(Reason(EXECUTABLE_STACK, path, "", "its PT_GNU_STACK asks for an executable stack (PF_X)"))
        elif info.executable_stack is None and default_stack_executable(info.arch or ""):
            reasons.append(Reason(EXECUTABLE_STACK, path, "",
                                  f"it has no PT_GNU_STACK, and glibc's default stack on {info.arch} is executable"))
    return tuple(reasons)


def _rebuild_step(name: WheelName, symbol_policy: Policy, required: Mapping[str, set[str]], arch: str,
                  libc: str) -> RebuildImage | None:
    """The build image for the most compatible tag the file name declares (for the wheel's libc and
    architecture) that its symbol versions break; None when they break none, or when a version no
    image can give is among them (GLIBC_PRIVATE: no rebuild elsewhere removes that)."""
    broken = [p for p in _declared_policies(name) if p.arch == arch and p.libc == libc and p > symbol_policy]
    if not broken:
        return None
    wanted = max(broken)
    return rebuild_image(wanted, (version for _, version in refused_versions(wanted, required)))


def rebuild_image(wanted: Policy, refused: Iterable[str]) -> RebuildImage | None:
    """The build image for a tag whose refused symbol versions are `refused`; None when one of them
    is not a numbered release (GLIBC_PRIVATE), which no build image removes."""
    if any(not _NUMBERED_VERSION.fullmatch(version) for version in refused):
        return None
    image = build_image_for(wanted)
    return RebuildImage(wanted.tag, image, None if image else oldest_build_image(wanted.libc, wanted.arch))


def audit_wheel(path: str | PathLike[str], *, check_isa: bool = True, cache: ElfCache | None = None,
                verify_record: bool = False) -> WheelReport:
    """Audit one wheel file. Raises WheelError or ELFError (with the member) on unreadable input."""
    name = check_linux_wheel_name(path)
    return analyze(name, read_wheel_elves(path, cache, verify_record=verify_record), check_isa=check_isa)


def audit_abi3(path: str | PathLike[str]) -> Abi3Report | None:
    """The abi3 criterion alone (`fastaudit abi3`): the members abi3audit audits (*.so) and
    versioned *.abi3.so.N libraries are read, not the whole wheel."""
    name = check_linux_wheel_name(path)
    with reading(path) as readable:  # a regular file only, as scan.audit_path reads it
        elves = read_wheel_elves(readable, only=may_need_audit)
    members = [_Member(p, info) for p, info in sorted(elves.items())]
    for m in members:
        m.python_major = _extension_kind(m.path, m.info)
    return _abi3_step(name, members)[0]


def _members_to_judge(elves: Mapping[str, ElfInfo], libcs: Mapping[str, str | None], arch: str | None,
                      libc: str | None) -> tuple[list[_Member], list[Reason], str | None, str | None]:
    """The members of the wheel's architecture and libc (the first member fixes what the file name
    does not), the others set aside with why, and the architecture and libc so fixed."""
    ignored: list[Reason] = []
    members: list[_Member] = []
    for path in sorted(elves):
        info = elves[path]
        if info.arch is None:
            ignored.append(Reason(ARCH, path, "", f"unknown or unsupported machine {info.machine}"))
            continue
        if arch is None:
            arch = info.arch
        elif info.arch != arch:
            ignored.append(Reason(ARCH, path, "", f"built for {info.arch}, the wheel is {arch}"))
            continue
        member_libc = libcs[path]
        if member_libc is not None:
            if libc is None:
                libc = member_libc
            elif member_libc != libc:
                ignored.append(Reason(LIBC, path, "", f"linked against {member_libc}, the wheel is {libc}"))
                continue
        members.append(_Member(path, info))
    return members, ignored, arch, libc


def _policy_upgrades(judged: _CriterionTags) -> dict[str, PolicyUpgrade]:
    """auditwheel's policy_upgrades: for each policy above the verdict, the external libraries and
    blacklisted symbols that stand in its way."""
    upgrades = {}
    for i, p in enumerate(judged.better, judged.better_from):
        libs = tuple(sorted(judged.facts.external[i]))
        black: dict[str, set[str]] = {}
        for library, symbol in judged.facts.blacklist[i]:
            black.setdefault(library, set()).add(symbol)
        if libs or black:
            upgrades[p.tag] = PolicyUpgrade(libs, {k: tuple(sorted(v)) for k, v in sorted(black.items())})
    return upgrades


def _over_promises(name: WheelName, judged: _CriterionTags, members: list[_Member], audited: list[_Member],
                   trees: Mapping[str, DependencyTree], check_isa: bool, arch: str, libc: str,
                   libc_known: bool) -> tuple[bool, list[Reason]]:
    """Whether a tag the file name declares does not hold, and why."""
    overall = judged.overall
    over_reasons: list[Reason] = []
    unmet: list[Policy] = []
    for p in _declared_policies(name):
        if p.arch != arch:
            unmet.append(p)
            over_reasons.append(Reason(ARCH, name.filename, "", f"declares {p.tag} but the binaries are {arch}"))
        elif p.libc != libc and libc_known:
            unmet.append(p)
            over_reasons.append(Reason(LIBC, name.filename, "", f"declares {p.tag} but the binaries use {libc}"))
        elif p.libc != libc:
            other = _CriterionTags(policies_for(p.libc, arch), members, audited, trees, check_isa)
            if p > other.overall:
                unmet.append(p)
                over_reasons.extend(other.blockers(p))
        elif p > overall:
            unmet.append(p)
    most_compatible_claim = max((p for p in unmet if p.libc == libc and p.arch == arch), default=None)
    if most_compatible_claim is not None:
        over_reasons.extend(judged.blockers(most_compatible_claim))
    return bool(unmet), over_reasons


def analyze(name: WheelName, elves: Mapping[str, ElfInfo], *, check_isa: bool = True) -> WheelReport:
    """The verdict for a wheel whose ELF members have been read: member path -> ElfInfo."""
    declared_tags = name.platform_tags
    arch = _arch_from_tags(declared_tags)
    # The binaries say which libc they need; the file name only when none of them says.
    libcs = {path: _libc_of(info) for path, info in elves.items()}
    libc = next((libcs[path] for path in sorted(elves) if libcs[path]), None) or _libc_from_tags(declared_tags)
    members, ignored, arch, libc = _members_to_judge(elves, libcs, arch, libc)
    if not members:
        return WheelReport(name.filename, name, pure=True, arch=arch, libc=libc,
                           ignored=tuple(ignored), declared_tags=declared_tags)
    libc = libc or GLIBC

    for m in members:
        m.python_major = _extension_kind(m.path, m.info)
        m.is_extension = m.python_major > 0
    root_paths = set(_roots({m.path: m.info for m in members}, {m.path: m.python_major for m in members}))
    audited = [m for m in members if m.path in root_paths]
    trees = {m.path: resolve_tree(m.path, elves) for m in audited}
    judged = _CriterionTags(policies_for(libc, arch), members, audited, trees, check_isa)
    overall = judged.overall
    # Binaries that link no libc at all (static executables) fit either family: a claim of the
    # other family is judged by that family's policies, not refused outright.
    libc_known = any(libcs[m.path] for m in members)

    over_promises, over_reasons = _over_promises(name, judged, members, audited, trees, check_isa, arch, libc,
                                                 libc_known)
    abi3, abi3_reasons = _abi3_step(name, members)
    return WheelReport(
        wheel=name.filename,
        name=name,
        pure=False,
        arch=arch,
        libc=libc,
        elf_members=tuple(m.path for m in members),
        overall=overall,
        symbol_policy=judged.symbol_policy,
        external_policy=judged.external_policy,
        blacklist_policy=judged.blacklist_policy,
        isa_policy=judged.isa_policy,
        pyfpe_policy=judged.pyfpe_policy,
        ucs2_policy=judged.ucs2_policy,
        versioned_symbols={lib: tuple(sorted(v)) for lib, v in sorted(judged.facts.required.items())},
        external_libs=tuple(sorted(judged.facts.external[-1])),
        policy_upgrades=_policy_upgrades(judged),
        reasons=judged.blockers(judged.better[0]) if judged.better else (),
        ignored=tuple(ignored),
        declared_tags=declared_tags,
        over_promises=over_promises or bool(abi3_reasons),
        over_promise_reasons=tuple(sorted(set(over_reasons + abi3_reasons))),
        abi3=abi3,
        executable_stack=executable_stack_reasons(((m.path, m.info) for m in members), libc),
        rebuild_image=_rebuild_step(name, judged.symbol_policy, judged.facts.required, arch, libc),
    )
