"""The abi3 check: does each extension of a `cp3X-abi3` wheel use only the stable ABI of CPython 3.X?

Pure judgement over the ELF facts analyze already holds (never the wheel again). Only what an
object imports counts: undefined, global dynamic symbols. A name it defines itself is its own
(abi3audit, reading .symtab and .dynsym alike, reports those). A weak undefined import is the
documented guard for a function newer than the baseline (its address is NULL where the
interpreter lacks it), so it is listed, never counted. A Py-prefixed import that is neither in the
stable ABI nor exported by any CPython build the data covers comes from another library
(libpyside6, shiboken6): not a CPython symbol, not a violation.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fastaudit.elf import SHN_UNDEF, STB_WEAK, ElfInfo
from fastaudit.policy.stable_abi import PyVersion, StableAbi, format_version, stable_abi
from fastaudit.wheel import WheelName

ABI3 = "abi3"          # the Reason criterion
STB_GLOBAL = 1
FIRST_STABLE_ABI: PyVersion = (3, 2)
ABI3_TAGS = ("abi3", "abi3t")
_CPYTHON_TAG = re.compile(r"cp3(\d+)(t?)")
# CPython's version-specific extension suffix: .cpython-311-x86_64-linux-gnu.so, .cpython-313t-...
_VERSION_SPECIFIC = re.compile(r"\.cpython-3(\d+)(t?)-[^/]*\.so$")
_ABI3_SUFFIX = re.compile(r"\.abi3\.so(\.[0-9.]+)?$")


@dataclass(frozen=True)
class Abi3Member:
    """One audited object. Field names shared with abi3audit's JSON mean what they mean there."""

    member: str
    baseline: PyVersion | None
    needed: PyVersion                       # the lowest stable ABI that covers its imports
    future_abi3_objects: Mapping[str, PyVersion]   # imports added after the baseline
    non_abi3_symbols: tuple[str, ...]       # CPython symbols imported from outside the stable ABI
    foreign_symbols: Mapping[str, str | None]      # Py-names CPython does not export -> member providing it
    guarded_symbols: tuple[str, ...]        # weak imports: present or NULL at run time
    version_specific: str | None = None     # the '.cpython-3X-...' suffix, when it has one
    free_threaded: tuple[str, ...] = ()     # the evidence it targets a free-threaded build

    @property
    def computed(self) -> PyVersion:
        """abi3audit's 'computed': the version the object needs, never below the baseline."""
        return max(self.needed, self.baseline) if self.baseline else self.needed


@dataclass(frozen=True)
class Abi3Report:
    baseline: PyVersion | None              # from the cp3X-abi3 tag; None when the wheel is not abi3-tagged
    members: tuple[Abi3Member, ...]
    free_threaded_claims: tuple[str, ...] = ()     # the tags that claim abi3 for a free-threaded build
    reasons: tuple[tuple[str, str], ...] = field(default=())   # (member, detail) of each broken promise

    @property
    def computed(self) -> PyVersion | None:
        versions = [m.computed for m in self.members]
        return max(versions) if versions else self.baseline

    @property
    def non_abi3_symbols(self) -> tuple[str, ...]:
        return tuple(sorted({s for m in self.members for s in m.non_abi3_symbols}))

    @property
    def over_promises(self) -> bool:
        return bool(self.reasons) and self.baseline is not None


def abi3_baseline(name: WheelName) -> PyVersion | None:
    """The highest cp3X of an abi3-tagged wheel (abi3audit's rule: several tags, the highest one)."""
    if not set(name.abi_tags) & set(ABI3_TAGS):
        return None
    versions = [(3, int(m.group(1))) for tag in name.python_tags if (m := _CPYTHON_TAG.fullmatch(tag))]
    return max(versions, default=FIRST_STABLE_ABI)


def _free_threaded_claims(name: WheelName, abi: StableAbi) -> list[str]:
    """Tags that promise abi3 to a free-threaded CPython without a stable ABI (3.13, 3.14)."""
    if not set(name.abi_tags) & set(ABI3_TAGS):
        return []
    claims = []
    for tag in (*name.python_tags, *name.abi_tags):
        m = _CPYTHON_TAG.fullmatch(tag)
        if m and m.group(2) and (3, int(m.group(1))) in abi.free_threaded_without_stable_abi:
            claims.append(tag)
    if "abi3t" in name.abi_tags:  # abi3t, the free-threaded stable ABI, begins with 3.15
        claims.extend(f"{tag}-abi3t" for tag in name.python_tags
                      if (m := _CPYTHON_TAG.fullmatch(tag)) and (3, int(m.group(1))) in
                      abi.free_threaded_without_stable_abi)
    return claims


def _imports(info: ElfInfo) -> tuple[list[str], list[str]]:
    """(strong, weak) undefined global dynamic symbol names."""
    sym = info.symbols
    undefined = sym.undefined_mask
    return (list(sym.names_where(undefined & (sym.bind == STB_GLOBAL))),
            list(sym.names_where(undefined & (sym.bind == STB_WEAK))))


def _is_python_name(name: str) -> bool:
    # abi3audit's rule; module init functions are the extension's own entry points
    return name.startswith(("Py", "_Py")) and not name.startswith("PyInit_")


def audit_member(path: str, info: ElfInfo, baseline: PyVersion | None, abi: StableAbi,
                 providers: Mapping[str, str]) -> Abi3Member:
    """One object's judgement; providers: Py-name -> the member of the wheel that defines it."""
    strong, weak = _imports(info)
    needed = FIRST_STABLE_ABI
    future: dict[str, PyVersion] = {}
    outside: list[str] = []
    foreign: dict[str, str | None] = {}
    for name in strong:
        added = abi.added.get(name)
        if added is not None:
            needed = max(needed, added)
            if baseline is not None and added > baseline:
                future[name] = added
        elif _is_python_name(name):
            if abi.is_cpython_symbol(name):
                outside.append(name)
            else:
                foreign[name] = providers.get(name)
    m = _VERSION_SPECIFIC.search(path)
    free_threaded = [s for s in strong if s in abi.free_threaded_only]
    if m and m.group(2):
        free_threaded.insert(0, m.group(0))
    return Abi3Member(
        member=path, baseline=baseline, needed=needed,
        future_abi3_objects=dict(sorted(future.items())),
        non_abi3_symbols=tuple(sorted(outside)),
        foreign_symbols=dict(sorted(foreign.items())),
        guarded_symbols=tuple(sorted(s for s in weak if s in abi.added or _is_python_name(s))),
        version_specific=m.group(0) if m else None,
        free_threaded=tuple(free_threaded),
    )


def _providers(elves: Mapping[str, ElfInfo], names: Iterable[str]) -> dict[str, str]:
    """Which member of the wheel defines each of the names (the first, in path order). Looked up
    name by name: decoding every defined name of every library (Qt's are tens of thousands) costs more."""
    found: dict[str, str] = {}
    for name in sorted(set(names)):
        for path in sorted(elves):
            sym = elves[path].symbols
            if bool((sym.rows_named(name) & (sym.shndx != SHN_UNDEF)).any()):
                found[name] = path
                break
    return found


def may_need_audit(path: str) -> bool:
    """Whether a wheel member's name makes it an object `fastaudit abi3` reads: what abi3audit
    audits (*.so), and versioned abi3 libraries (libshiboken6.abi3.so.6.8)."""
    return path.endswith(".so") or bool(_ABI3_SUFFIX.search(path))


def _wanted(path: str, info: ElfInfo, is_extension: bool, abi: StableAbi) -> bool:
    if is_extension or _ABI3_SUFFIX.search(path):
        return True
    # a helper library linked against the interpreter (libshiboken6.abi3.so.6 is named, others are not)
    sym = info.symbols
    if b"Py" not in sym.strtab:  # (not "\0Py": the linker shares a name's tail with a longer one)
        return False  # most libraries of a wheel, decided without decoding a name
    return any(abi.is_cpython_symbol(n) for n in sym.names_where(sym.undefined_mask) if n.startswith(("Py", "_Py")))


def judge_abi3(name: WheelName, elves: Mapping[str, ElfInfo], extensions: Iterable[str]) -> Abi3Report | None:
    """The abi3 verdict over a wheel's ELF members (path -> facts) and which of them are
    extensions; None for a wheel that is not abi3-tagged and has no *.abi3.so."""
    abi = stable_abi()
    baseline = abi3_baseline(name)
    extension_set = set(extensions)
    if baseline is None:
        paths = [p for p in sorted(elves) if _ABI3_SUFFIX.search(p)]
    else:
        paths = [p for p in sorted(elves) if _wanted(p, elves[p], p in extension_set, abi)]
    claims = _free_threaded_claims(name, abi)
    if not paths and not claims:
        return None
    candidates = {n for p in paths for n in _imports(elves[p])[0]
                  if _is_python_name(n) and not abi.is_cpython_symbol(n)}
    providers = _providers(elves, candidates) if candidates else {}
    members = tuple(audit_member(p, elves[p], baseline, abi, providers) for p in paths)
    return Abi3Report(baseline, members, tuple(claims), tuple(_reasons(name, baseline, members, claims)))


def _reasons(name: WheelName, baseline: PyVersion | None, members: Iterable[Abi3Member],
             claims: Iterable[str]) -> list[tuple[str, str]]:
    """(member, detail) for each way the wheel breaks the stable ABI it promises."""
    reasons = []
    tag = f"cp3{baseline[1]}-abi3" if baseline else "abi3"
    for claim in claims:
        reasons.append((name.filename, f"claims the stable ABI for the free-threaded {claim}, "
                                       "which has none before CPython 3.15 (abi3t)"))
    for m in members:
        for symbol, added in m.future_abi3_objects.items():
            reasons.append((m.member, f"uses {symbol}, in the stable ABI only since {format_version(added)},"
                                      f" but the wheel is tagged {tag}"))
        for symbol in m.non_abi3_symbols:
            reasons.append((m.member, f"uses {symbol}, a CPython symbol outside the stable ABI"))
        if m.version_specific and baseline is not None:
            reasons.append((m.member, f"is a version-specific extension ({m.version_specific}) in a {tag} wheel"))
        if m.free_threaded and baseline is not None:
            reasons.append((m.member, f"targets a free-threaded build ({', '.join(m.free_threaded)}), "
                                      "which has no abi3 before CPython 3.15"))
    return reasons
