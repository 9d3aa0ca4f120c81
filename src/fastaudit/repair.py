"""`fastaudit repair`: graft the external libraries a wheel needs into it, point its ELF members at
them, and write a wheel whose name and WHEEL tags say what it now satisfies.

`plan_repair` is the decision (which policy, which libraries from where, which edits), computed
from the wheel's ELF facts, the host's libraries and the policy data; `apply_plan` does the writing
with our own ELF rewriter. The meaning of every option follows `auditwheel repair` (6.x): grafted
libraries go to `<distribution><lib_sdir>/` as `<name>-<8 hex of sha256>.<suffix>` with that as
their SONAME, dependents get `$ORIGIN/<relative path>` in DT_RPATH after their RPATH entries that
point inside the wheel, and a libpython dependency is dropped with a warning. An ELF executable in
`<dist>-<ver>.data/scripts/` that needs grafted libraries moves to `<distribution>.scripts/` in the
package, where `$ORIGIN` finds them once installed, and a launcher script takes its place.
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import posixpath
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from email.generator import BytesGenerator
from email.parser import BytesParser
from os import PathLike
from pathlib import Path

from fastaudit.analyze import (
    BLACKLISTED_SYMBOL,
    ISA,
    LIBC_SYMBOL,
    MISSING_LIBRARY,
    PYFPE,
    SYMBOL_VERSION,
    UCS2,
    Reason,
    WheelReport,
    analyze,
    executable_stack_reasons,
    libc_symbols_too_new,
    rebuild_image,
    refused_versions,
    roots,
)
from fastaudit.elf import ElfEdits, ElfInfo, read_elf, rewrite_elf
from fastaudit.errors import FastauditError, RepairError, WheelError
from fastaudit.facts import MemberFacts, WheelFacts, check_linux_wheel_name, read_wheel_facts
from fastaudit.files import atomic_output, check_regular, prepare_output_folder
from fastaudit.lddtree import (
    LIBPYTHON,
    DependencyTree,
    HostFinder,
    Place,
    WheelFinder,
    WheelOnHostFinder,
    expand_search_path,
    is_dynamic_loader,
    resolve,
)
from fastaudit.ospackages import OsPackage, owners_of
from fastaudit.policy import Policy, policies_for
from fastaudit.record import Record
from fastaudit.rezip import (
    EXECUTABLE_FILE_ATTR,
    Deflater,
    Entry,
    deflated,
    record_field,
    record_hash,
    render_record,
    source_date_epoch,
    write_zip,
)
from fastaudit.sbom import SBOM_FILE, build_sbom, members_of
from fastaudit.vendored import scan_version_strings
from fastaudit.wheel import Member, WheelArchive, WheelName, parse_wheel_name


@dataclass(frozen=True)
class RepairOptions:
    plat: str = "auto"                 # a policy tag (with or without the arch), or auto
    lib_sdir: str = ".libs"
    exclude: tuple[str, ...] = ()      # fnmatch patterns over sonames and host paths
    strip: bool = False
    only_plat: bool = False
    update_tags: bool = True
    compression_level: int = zlib.Z_DEFAULT_COMPRESSION
    check_isa: bool = True
    ld_library_path: str | None = None  # None: the environment's LD_LIBRARY_PATH
    ldpaths: tuple[str, ...] | None = None  # replaces ld.so.conf and the default folders (--ldpaths)
    clear_execstack: bool = False      # clear PF_X where a member or graft asks for an executable stack


@dataclass(frozen=True)
class Graft:
    """A host library copied into the wheel."""

    soname: str          # the name the wheel's members need
    source: str          # the host file, symlinks resolved
    member: str          # where it goes in the wheel
    info: ElfInfo

    @property
    def new_soname(self) -> str:
        return posixpath.basename(self.member)


@dataclass(frozen=True)
class RepairPlan:
    wheel: str
    report: WheelReport
    policy: Policy
    platform_tags: tuple[str, ...]        # of the output's file name, in order
    added_tags: tuple[str, ...]           # the platform tags repair gives, most compatible first (WHEEL's order)
    grafts: tuple[Graft, ...]
    edits: Mapping[str, ElfEdits]         # member (of the wheel, or a graft) -> its edits
    excluded: tuple[str, ...]             # external sonames left outside on purpose
    warnings: tuple[str, ...]
    member_facts: Mapping[str, MemberFacts] = field(default_factory=dict)   # the input's, for the SBOM
    moved_scripts: Mapping[str, str] = field(default_factory=dict)  # ELF script -> where it goes in the package

    @property
    def output_name(self) -> str:
        prefix = self.report.name.filename.rsplit("-", 1)[0]
        return f"{prefix}-{'.'.join(self.platform_tags)}.whl"


@dataclass(frozen=True)
class RepairResult:
    wheel: str
    output: Path
    tag: str | None                       # None for a pure wheel, copied as it is
    grafted: tuple[tuple[str, str], ...] = ()  # (soname, host path)
    excluded: tuple[str, ...] = ()        # external sonames --exclude left outside the wheel
    warnings: tuple[str, ...] = ()
    note: str = ""
    moved_scripts: tuple[tuple[str, str], ...] = ()  # (script, where its ELF file went): a launcher took its place


# --- the external libraries, per policy ------------------------------------------------------------

@dataclass
class _Closure:
    """What grafting for one policy's whitelist involves."""

    grafts: dict[str, tuple[str, ElfInfo]] = field(default_factory=dict)  # soname -> (host path, facts)
    missing: list[Reason] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    libpython: dict[str, set[str]] = field(default_factory=dict)   # member -> libpython sonames
    needs_grafts: dict[str, set[str]] = field(default_factory=dict)  # member -> grafted sonames in its tree


def _excluded(soname: str, path: str | None, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(soname, p) or (path is not None and fnmatch.fnmatchcase(path, p))
               for p in patterns)


def _trees(members: tuple[str, ...], elves: Mapping[str, ElfInfo],
           finder: WheelOnHostFinder) -> list[tuple[str, DependencyTree]]:
    """(member, the tree it is loaded in) for every ELF member. A root (roots()) can be loaded on
    its own and is classified in its own tree; another member in the first tree that loads it,
    whose DT_RPATH chain it inherits; a member no tree loads, in its own."""
    first = roots({m: elves[m] for m in members})
    placed = {root: resolve(Place(root, True), elves[root], finder) for root in first}
    for member in [*first, *(m for m in members if m not in first)]:
        if member not in placed:
            placed[member] = resolve(Place(member, True), elves[member], finder)
        tree = placed[member]
        for library in tree.libraries.values():
            if library.member is not None and library.member not in placed:
                placed[library.member] = tree
    return [(m, placed[m]) for m in members]


def _closure(trees: list[tuple[str, DependencyTree]], elves: Mapping[str, ElfInfo], policy: Policy,
             exclude: tuple[str, ...]) -> _Closure:
    """Classify what each member's tree reaches through libraries the policy does not allow: inside
    the wheel, whitelisted, libpython, excluded, to be grafted, or missing."""
    closure = _Closure()
    for member, tree in trees:
        direct = elves[member].needed
        pending = list(direct)
        seen: set[str] = set()
        while pending:
            soname = pending.pop()
            if soname in seen:
                continue
            seen.add(soname)
            library = tree.libraries[soname]
            if library.in_wheel:
                continue  # shipped in the wheel: classified as a member of its own
            if LIBPYTHON.match(soname):
                if soname in direct:
                    closure.libpython.setdefault(member, set()).add(soname)
                continue
            if is_dynamic_loader(soname) or soname in policy.whitelist:
                continue
            grafted = closure.grafts.get(soname)
            if _excluded(soname, grafted[0] if grafted else library.path, exclude):
                closure.excluded.add(soname)
                continue
            if grafted is None:  # the first tree to find a soname on the host says which file is grafted
                if library.path is None or library.info is None:
                    closure.missing.append(Reason(MISSING_LIBRARY, member, soname))
                    continue
                grafted = closure.grafts[soname] = (library.path, library.info)
            closure.needs_grafts.setdefault(member, set()).add(soname)
            # its own needs as this tree resolved them (one grafted from another tree: that tree's)
            pending.extend(n for n in grafted[1].needed if n in tree.libraries)
    return closure


def _blockers(policy: Policy, report: WheelReport, elves: Mapping[str, ElfInfo], closure: _Closure) -> list[Reason]:
    """Why the wheel, with the closure grafted, cannot have the policy's tag; empty when it can."""
    reasons = list(closure.missing)
    for member in report.elf_members:
        reasons.extend(Reason(SYMBOL_VERSION, member, library, version)
                       for library, version in refused_versions(policy, elves[member].version_requirements))
    for soname, (path, info) in sorted(closure.grafts.items()):
        reasons.extend(Reason(SYMBOL_VERSION, soname, library, version, source=path)
                       for library, version in refused_versions(policy, info.version_requirements))
    grafted_from = {soname: path for soname, (path, _) in closure.grafts.items()}
    loaded = {**{m: elves[m] for m in report.elf_members},
              **{soname: info for soname, (_, info) in closure.grafts.items()}}
    for (library, symbol), paths in sorted(libc_symbols_too_new(policy, loaded).items()):
        reasons.extend(Reason(LIBC_SYMBOL, p, library, symbol, source=grafted_from.get(p, ""))
                       for p in sorted(paths))
    known = sorted(set(report.reasons) | set(report.over_promise_reasons))
    for criterion, achieved in ((BLACKLISTED_SYMBOL, report.blacklist_policy), (ISA, report.isa_policy),
                                (PYFPE, report.pyfpe_policy), (UCS2, report.ucs2_policy)):
        if achieved is None or policy <= achieved:
            continue
        if criterion == BLACKLISTED_SYMBOL:
            # the report names the members for the tags it looked at; policy_upgrades has every tag
            upgrade = report.policy_upgrades.get(policy.tag)
            pairs = {(lib, s) for lib, syms in (upgrade.blacklisted_symbols if upgrade else {}).items() for s in syms}
            named = [r for r in known if r.criterion == criterion and (r.library, r.detail) in pairs]
            reasons.extend(named)
            reasons.extend(Reason(criterion, report.wheel, lib, s)
                           for lib, s in sorted(pairs - {(r.library, r.detail) for r in named}))
        else:  # a wheel-wide cap: the report's reasons for any non-linux tag name every member
            reasons.extend(r for r in known if r.criterion == criterion)
    return reasons


# --- the plan --------------------------------------------------------------------------------------

def _target(plat: str, policies: tuple[Policy, ...], wheel: str) -> Policy | None:
    if plat == "auto":
        return None
    for policy in policies:
        if plat in (policy.tag, policy.name) or plat in policy.alias_tags or plat in policy.aliases:
            return policy
    raise RepairError(f"no {policies[0].libc} policy named {plat} for {policies[0].arch} "
                      f"(known: {', '.join(p.tag for p in policies if not p.is_linux)})", path=wheel)


def _graft_member(name: WheelName, lib_sdir: str, source: str) -> str:
    """`<dist><lib_sdir>/<base>-<8 hex of sha256>.<suffix>`, as auditwheel names grafted copies."""
    with open(source, "rb") as f:
        short = hashlib.sha256(f.read()).hexdigest()[:8]
    base, _, suffix = posixpath.basename(source).partition(".")
    new = posixpath.basename(source) if base.endswith(f"-{short}") else f"{base}-{short}.{suffix}"
    return f"{name.name}{lib_sdir}/{new}"


def _rpath_within_wheel(info: ElfInfo, member: str, new_entry: str) -> str:
    """The member's RPATH/RUNPATH entries that point inside the wheel, then the new entry, once each."""
    entries = [e for e in (info.runpath or info.rpath) if expand_search_path(e, member) is not None]
    return ":".join(dict.fromkeys([*entries, new_entry]))


def _platform_tags(name: WheelName, report: WheelReport, abis: list[str], update_tags: bool) -> tuple[str, ...]:
    if not update_tags:
        return name.platform_tags
    replaced = f"linux_{report.arch}"
    kept = [t for t in name.platform_tags if t != replaced]
    return tuple(sorted(dict.fromkeys([*kept, *abis])))


# --- ELF scripts -----------------------------------------------------------------------------------
# pip installs `<x>.data/scripts/...` into the environment's bin folder, which has no fixed path to
# site-packages: no RPATH written there can find the grafted libraries. As auditwheel 6 does, the
# ELF file of such a script moves into the package, and a launcher takes its place.

def _script_home(name: WheelName, member: str) -> str | None:
    """Where an ELF script goes (`<distribution>.scripts/<its path below scripts/>`), or None for a
    member that is not a script (pip's rule: a top folder named *.data, then scripts/)."""
    top, _, rest = member.partition("/")
    folder, _, below = rest.partition("/")
    if not top.endswith(".data") or folder != "scripts" or not below:
        return None
    return f"{name.name}.scripts/{below}"


def _folders_above(member: str) -> list[str]:
    parts = member.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _check_script_homes(path: str | PathLike[str], homes: Mapping[str, str], grafts: Iterable[Graft]) -> None:
    """Refuse a move whose destination is taken (auditwheel would overwrite what is there)."""
    with WheelArchive(path) as archive:
        files = {m.name for m in archive.members} | {g.member for g in grafts}
    folders = {f for name in files for f in _folders_above(name)}
    claimed: dict[str, str] = {}
    for script, home in sorted(homes.items()):
        file_above = next((f for f in _folders_above(home) if f in files), None)
        if home in files:
            why = f"{home} is already in the wheel"
        elif home in folders:
            why = f"{home} is a folder in the wheel"
        elif file_above is not None:
            why = f"{file_above} is a file in the wheel"
        elif home in claimed:
            why = f"{claimed[home]} goes there too"
        else:
            claimed[home] = script
            continue
        raise RepairError(f"cannot move the ELF script {script} (it needs grafted libraries) to {home}: {why}",
                          path=str(path))


_LAUNCHER = '''#!python
"""Runs the ELF executable that `fastaudit repair` moved into the package, beside the libraries
grafted for it, with this script's arguments. pip rewrites the first line to the interpreter."""
import os
import sys
import sysconfig

os.execv(os.path.join(sysconfig.get_path({scheme}), {home}), sys.argv)
'''


def _launcher(home: str, wheel_file: bytes) -> bytes:
    """The script left in place of a moved ELF file. The package root is installed into platlib, or
    purelib when WHEEL says Root-Is-Purelib: true; the name is an ASCII literal, whatever it holds."""
    root_is_purelib = BytesParser().parsebytes(wheel_file).get("Root-Is-Purelib", "").strip().lower() == "true"
    return _LAUNCHER.format(scheme=ascii("purelib" if root_is_purelib else "platlib"), home=ascii(home)).encode()


def plan_repair(path: str | PathLike[str], options: RepairOptions = RepairOptions()) -> RepairPlan | None:
    """Decide the repair of one wheel; None for a pure wheel (nothing to repair).

    Raises RepairError, naming what blocks it, when the wheel cannot have the requested tag, and
    when a wheel with a platform tag holds no ELF member.
    """
    name = check_linux_wheel_name(path)
    if name.is_pure:
        return None
    # every member's RECORD hash is checked here, so the wheel repair writes (or copies) is sound
    facts = read_wheel_facts(path, verify_record=True)
    elves = facts.elves
    report = analyze(name, elves, check_isa=options.check_isa)
    if report.pure:  # auditwheel refuses it too: its tag would promise binaries it does not hold
        skipped = "; ".join(r.describe() for r in report.ignored)
        raise RepairError(f"nothing to repair: no ELF member{f' to judge ({skipped})' if skipped else ''}, yet "
                          f"tagged {'.'.join(name.platform_tags)} (a pure wheel is tagged any)", path=str(path))
    policies = policies_for(report.libc or "glibc", report.arch or "")
    requested = _target(options.plat, policies, str(path))
    finder = WheelOnHostFinder(WheelFinder(elves), HostFinder(options.ld_library_path, options.ldpaths))
    trees = _trees(report.elf_members, elves, finder)  # the same for every policy: only the whitelist changes
    closures: dict[frozenset[str], _Closure] = {}

    def closure_for(policy: Policy) -> _Closure:
        if policy.whitelist not in closures:
            closures[policy.whitelist] = _closure(trees, elves, policy, options.exclude)
        return closures[policy.whitelist]

    def blocked_because(policy: Policy) -> str:
        blockers = _blockers(policy, report, elves, closure_for(policy))
        versions = [r.detail for r in blockers if r.criterion == SYMBOL_VERSION]
        rebuild = rebuild_image(policy, versions) if versions else None
        return "; ".join([r.describe() for r in blockers] + ([rebuild.describe()] if rebuild else []))

    candidates = [p for p in policies if not p.is_linux]
    achievable = [p for p in candidates if not _blockers(p, report, elves, closure_for(p))]
    if requested is None:
        if not achievable:
            lowest = candidates[0]
            raise RepairError(f"cannot repair to any {report.libc} tag; {lowest.tag} is blocked because "
                              + blocked_because(lowest), path=str(path))
        target = max(achievable)
    else:
        target = requested
        if _blockers(target, report, elves, closure_for(target)):
            raise RepairError(f"cannot repair to {target.tag}: " + blocked_because(target), path=str(path))

    closure = closure_for(target)
    abis = [target.tag, *target.alias_tags]
    if not options.only_plat:
        # a tag more compatible than the requested one that the wheel, grafted for it, also meets
        better = [p for p in candidates if p > target and not _blockers(p, report, elves, closure)]
        if better:
            best = max(better)
            abis = [best.tag, *best.alias_tags, *abis]

    grafts = tuple(Graft(soname, source, _graft_member(name, options.lib_sdir, source), info)
                   for soname, (source, info) in sorted(closure.grafts.items()))
    new_names = {g.soname: g.new_soname for g in grafts}
    lib_dir = f"{name.name}{options.lib_sdir}"
    edits: dict[str, ElfEdits] = {}
    warnings: list[str] = []
    homes: dict[str, str] = {}
    for member in report.elf_members:
        info = elves[member]
        libpython = closure.libpython.get(member, set())
        for soname in sorted(libpython):
            warnings.append(f"removing the {soname} dependency of {member}: manylinux and musllinux wheels "
                            "may not link libpython")
        if not closure.needs_grafts.get(member) and not libpython:
            continue
        home = _script_home(name, member)
        if home is not None:
            homes[member] = home
        loaded_from = home or member   # its RPATH is judged, and written, from where it will be
        relative = posixpath.relpath(lib_dir, posixpath.dirname(loaded_from) or ".")
        edits[member] = ElfEdits(
            replace_needed={n: new_names[n] for n in info.needed if n in new_names},
            remove_needed=frozenset(libpython),
            rpath=_rpath_within_wheel(info, loaded_from, f"$ORIGIN/{relative}") if closure.needs_grafts.get(member)
            else None,
        )
    if homes:
        _check_script_homes(path, homes, grafts)
    for graft in grafts:
        inner = {n: new_names[n] for n in graft.info.needed if n in new_names}
        edits[graft.member] = ElfEdits(replace_needed=inner, soname=graft.new_soname,
                                       rpath="$ORIGIN" if inner else "", runpath=None if inner else "")
    for member in _executable_stack_step(report, grafts, options.clear_execstack, str(path)):
        edits[member] = replace(edits.get(member, ElfEdits()), clear_execstack=True)
    return RepairPlan(str(path), report, target, _platform_tags(name, report, abis, options.update_tags), tuple(abis),
                      grafts, edits, tuple(sorted(closure.excluded)), tuple(warnings), facts.members, homes)


def _executable_stack_step(report: WheelReport, grafts: Iterable[Graft], clear: bool, wheel: str) -> list[str]:
    """The members and grafts whose PF_X repair clears (with --clear-execstack); without the
    option, a RepairError: the repaired wheel would not load through dlopen on glibc 2.41+."""
    grafted = [(g.member, g.info) for g in grafts]
    reasons = list(report.executable_stack) + list(executable_stack_reasons(grafted, report.libc))
    if not reasons or clear:
        return [r.member for r in reasons]
    sources = {g.member: g.source for g in grafts}
    first = replace(reasons[0], source=sources.get(reasons[0].member, ""))
    more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
    raise RepairError(f"refusing to repair: {first.describe()}{more}; --clear-execstack clears the flag",
                      path=wheel)


# --- writing ---------------------------------------------------------------------------------------

def _updated_wheel_file(data: bytes, report: WheelReport, abis: Iterable[str]) -> bytes:
    """WHEEL with Tag headers for the new platform tags and none for the plain linux one.

    WHEEL is a block of email headers (PEP 427): wheel, pip and auditwheel read it with
    email.parser, so it is parsed and written that way. The Tag headers go last, inside the headers.
    """
    message = BytesParser().parsebytes(data)
    tags = message.get_all("Tag", [])
    interpreters = list(dict.fromkeys("-".join(t.split("-")[:2]) for t in tags))
    removed = f"linux_{report.arch}"
    wanted = [t for t in tags if not t.endswith("-" + removed)]
    wanted += [f"{i}-{p}" for i in interpreters for p in abis if f"{i}-{p}" not in wanted]
    del message["Tag"]
    for tag in wanted:
        message["Tag"] = tag
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, maxheaderlen=0).flatten(message)
    return out.getvalue()


def _strip(data: bytes, member: str) -> bytes:
    """`strip -s`, as auditwheel runs it (binutils: it is the one external tool repair uses)."""
    with tempfile.TemporaryDirectory(prefix="fastaudit-strip-") as folder:
        file = Path(folder) / "image"
        file.write_bytes(data)
        try:
            subprocess.run(["strip", "-s", str(file)], check=True, capture_output=True, text=True)
        except FileNotFoundError as e:
            raise RepairError("--strip needs binutils' strip on PATH", member=member) from e
        except subprocess.CalledProcessError as e:
            raise RepairError(f"strip failed: {e.stderr.strip()}", member=member) from e
        return file.read_bytes()


def _hex_of(record_digest: str) -> str:
    """'sha256=<urlsafe base64>' -> the hex digest."""
    encoded = record_digest.split("=", 1)[1]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()


def _record_field(archive: WheelArchive, record: Record, member: Member) -> str:
    """The member's sha256 RECORD field: RECORD's own when it is sha256 (the plan verified every
    RECORD hash), else computed from the content."""
    row = record.rows.get(member.name)
    if row is not None and len(row) > 1 and row[1].startswith("sha256="):
        return row[1]
    return record_hash(archive.read(member))


def apply_plan(plan: RepairPlan, out_dir: Path, options: RepairOptions = RepairOptions()) -> RepairResult:
    """Write the repaired wheel into out_dir."""
    wheel = plan.wheel
    destination = out_dir / plan.output_name
    if not plan.edits and not options.strip and plan.output_name == posixpath.basename(wheel):
        _copy(Path(wheel), destination)  # already compliant: the bytes are the answer
        return RepairResult(wheel, destination, plan.policy.tag, excluded=plan.excluded, warnings=plan.warnings)

    # the changed members compress on threads while this one rewrites the next, and another waits
    # for the package manager's answer, asked once for every grafted library
    with ThreadPoolExecutor(max_workers=1) as asker, Deflater(options.compression_level) as deflater:
        owners = asker.submit(owners_of, [g.source for g in plan.grafts])
        return _write_repaired(plan, destination, options, deflater, owners)


def _write_repaired(plan: RepairPlan, destination: Path, options: RepairOptions, deflater: Deflater,
                    owners: Future[dict[str, OsPackage | None]]) -> RepairResult:
    wheel = plan.wheel
    stamp = source_date_epoch()
    # WheelArchive has refused unsafe, duplicate and overlapping members, and the plan checked
    # RECORD against every member: repair writes only from a wheel that passed both
    with WheelArchive(wheel) as archive:
        record = Record.read(archive)
        record_name = record.name
        dist_info = record_name.rsplit("/", 1)[0]
        wheel_name = f"{dist_info}/WHEEL"
        by_name = {m.name: m for m in archive.members}
        if wheel_name not in by_name:
            raise WheelError("no WHEEL in the .dist-info folder", path=wheel)
        latest = max((m.date_time for m in archive.members), default=(1980, 1, 1, 0, 0, 0))
        new_time = stamp or latest

        entries: list[Entry | Future[Entry]] = []
        rows: list[tuple[str, str, str]] = []
        sbom_name = f"{dist_info}/sboms/{SBOM_FILE}"
        written: dict[str, MemberFacts] = {}   # the output's ELF members, for its SBOM
        digests: dict[str, str] = {}
        for member in archive.members:
            if member.name in (record_name, sbom_name):  # both written anew below
                continue
            date_time = stamp or member.date_time
            name = plan.moved_scripts.get(member.name, member.name)  # where the output holds it
            edits = plan.edits.get(member.name)
            if member.name == wheel_name and options.update_tags:
                data = _updated_wheel_file(bytes(archive.read(member)), plan.report, plan.added_tags)
            elif edits is not None or (options.strip and member.name in plan.report.elf_members):
                data = archive.read(member)
                try:
                    new = rewrite_elf(data, edits) if edits else bytes(data)
                except FastauditError as e:
                    raise e.with_location(path=wheel, member=member.name)
                if options.strip:
                    new = _strip(new, member.name)
                data = None if new == data else new
            else:
                data = None
            if data is None:  # unchanged: copied as stored, its RECORD row checked against its bytes
                digest = _record_field(archive, record, member)
                entries.append(Entry(name, archive.compressed(member), member.compress_type, member.crc32,
                                     member.size, date_time, member.external_attr))
                rows.append((name, digest, str(member.size)))
                if member.name in plan.member_facts:
                    written[name] = plan.member_facts[member.name]
                    digests[name] = _hex_of(digest)
            else:
                entries.append(deflater.add(name, data, date_time, member.external_attr))
                sha256 = hashlib.sha256(data).digest()
                rows.append((name, record_field(sha256), str(len(data))))
                if member.name in plan.member_facts:
                    written[name] = MemberFacts(read_elf(data), scan_version_strings(data))
                    digests[name] = sha256.hex()
        wheel_file = bytes(archive.read(by_name[wheel_name])) if plan.moved_scripts else b""
        for script, home in plan.moved_scripts.items():  # a launcher in each moved script's place
            launcher = _launcher(home, wheel_file)
            entries.append(deflated(script, launcher, options.compression_level, stamp or by_name[script].date_time,
                                    by_name[script].external_attr))
            rows.append((script, record_hash(launcher), str(len(launcher))))

    for graft in plan.grafts:
        with open(graft.source, "rb") as f:
            data = rewrite_elf(f.read(), plan.edits[graft.member])
        if options.strip:
            data = _strip(data, graft.member)
        entries.append(deflater.add(graft.member, data, new_time, EXECUTABLE_FILE_ATTR))
        sha256 = hashlib.sha256(data).digest()
        rows.append((graft.member, record_field(sha256), str(len(data))))
        written[graft.member] = MemberFacts(read_elf(data), scan_version_strings(data))
        digests[graft.member] = sha256.hex()

    origins = {g.member: owners.result()[g.source] for g in plan.grafts}
    created = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*new_time)  # the wheel's own time stamp
    sbom = build_sbom(parse_wheel_name(plan.output_name), members_of(WheelFacts(written, digests), origins),
                      created=created)
    if sbom["components"]:  # PEP 770: what the wheel vendors; nothing to say when it vendors nothing
        sbom_data = (json.dumps(sbom, indent=1, sort_keys=False) + "\n").encode()
        entries.append(deflated(sbom_name, sbom_data, options.compression_level, new_time,
                                by_name[record_name].external_attr))
        rows.append((sbom_name, record_hash(sbom_data), str(len(sbom_data))))

    # deterministic: sorted, the .dist-info folder last and RECORD last of all (PEP 427 advice)
    settled = [e.result() if isinstance(e, Future) else e for e in entries]
    settled.sort(key=lambda e: (e.name.startswith(dist_info + "/"), e.name))
    rows.sort(key=lambda r: (r[0].startswith(dist_info + "/"), r[0]))
    rows.append((record_name, "", ""))
    record_entry = deflated(record_name, render_record(rows), options.compression_level, new_time,
                            by_name[record_name].external_attr)
    write_zip(destination, [*settled, record_entry])
    return RepairResult(wheel, destination, plan.policy.tag, tuple((g.soname, g.source) for g in plan.grafts),
                        plan.excluded, plan.warnings, moved_scripts=tuple(sorted(plan.moved_scripts.items())))


def _copy(source: Path, destination: Path) -> None:
    if destination.exists() and destination.samefile(source):
        return
    with atomic_output(destination, "wb") as out, open(source, "rb") as f:
        shutil.copyfileobj(f, out)


def repair_wheels(paths: Iterable[str | PathLike[str]], out_dir: str | PathLike[str] = "wheelhouse",
                  options: RepairOptions = RepairOptions()) -> Iterator[RepairResult]:
    """Repair each wheel in turn into out_dir (created if missing), yielding its result. A pure
    wheel is copied as it is.

    As `auditwheel repair W1 W2 ...`: the first wheel that fails stops the batch with its error; the
    wheels before it stay written, those after it are not tried, and the failed one leaves nothing.
    Every input has its own output: one that would replace the output of another input of the
    batch, or another input itself, is refused. Raises RepairError (the tag cannot be reached: the
    message names the symbol versions, libraries and members in the way), WheelError or ELFError
    (unreadable input), PathError (not a regular file).
    """
    folder = prepare_output_folder(out_dir)  # an unwritable folder fails before the work
    batch = [Path(p) for p in paths]
    outputs: dict[str, Path] = {}   # output file name -> the input it was written from
    for path in batch:
        check_regular(path)  # a FIFO or a device is that wheel's error, not a hang
        plan = plan_repair(path, options)
        destination = folder / (plan.output_name if plan is not None else path.name)
        _check_one_output_per_input(destination, path, batch, outputs)
        if plan is None:
            _copy(path, destination)
            result = RepairResult(str(path), destination, None, note="pure wheel: nothing to repair, copied as it is")
        else:
            result = apply_plan(plan, folder, options)
        outputs[destination.name] = path
        yield result


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _check_one_output_per_input(destination: Path, path: Path, batch: list[Path], outputs: Mapping[str, Path]) -> None:
    """auditwheel overwrites silently; a batch that loses a result (two inputs with one output
    name) or an input (an output written over it) is refused instead. The same file named twice
    is repaired twice, to the same output."""
    earlier = outputs.get(destination.name)
    if earlier is not None and not _same_file(earlier, path):
        raise RepairError(f"its output {destination.name} would replace the one repaired from {earlier}",
                          path=str(path))
    if destination.exists():
        other = next((p for p in batch if _same_file(p, destination) and not _same_file(p, path)), None)
        if other is not None:
            raise RepairError(f"its output would overwrite {other}, another wheel of this call", path=str(path))


def repair_wheel(path: str | PathLike[str], out_dir: str | PathLike[str] = "wheelhouse",
                 options: RepairOptions = RepairOptions()) -> RepairResult:
    """Repair one wheel into out_dir (created if missing): repair_wheels of that one wheel."""
    return next(repair_wheels([path], out_dir, options))


__all__ = ["RepairOptions", "RepairPlan", "RepairResult", "apply_plan", "plan_repair", "repair_wheel", "repair_wheels"]
