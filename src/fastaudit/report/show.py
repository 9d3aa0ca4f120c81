"""`fastaudit show` and `lddtree` output: JSON objects (auditwheel's field names plus ours) and text."""
from __future__ import annotations

import os
from typing import Any

from fastaudit.analyze import Reason, WheelReport
from fastaudit.errors import FastauditError
from fastaudit.lddtree import HostTree
from fastaudit.policy import POLICY_DATA_VERSION, Policy

# Version of the "fastaudit" object in `show --json`; the top-level "version" is auditwheel's.
SCHEMA_VERSION = 1

def _tag(policy: Policy | None) -> str | None:
    return policy.tag if policy else None


def _reason(r: Reason) -> dict[str, str]:
    return {"criterion": r.criterion, "member": r.member, "library": r.library, "detail": r.detail,
            "message": r.describe()}


def _ours(report: WheelReport) -> dict[str, Any]:
    ours: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "policy_data": POLICY_DATA_VERSION,
        "declared_tags": list(report.declared_tags),
        "over_promises": report.over_promises,
        "over_promise_reasons": [_reason(r) for r in report.over_promise_reasons],
        "ignored_members": [_reason(r) for r in report.ignored],
    }
    if report.pure:
        return ours
    overall = report.overall
    assert overall is not None  # a platform report always has a verdict
    ours.update({
        "arch": report.arch,
        "libc": report.libc,
        "overall_aliases": list(overall.alias_tags),
        "criteria": {
            "symbol_version": _tag(report.symbol_policy),
            "external_library": _tag(report.external_policy),
            "blacklisted_symbol": _tag(report.blacklist_policy),
            "isa": _tag(report.isa_policy),
            "pyfpe": _tag(report.pyfpe_policy),
            "ucs2": _tag(report.ucs2_policy),
        },
        "reasons": [_reason(r) for r in report.reasons],
        "elf_members": list(report.elf_members),
    })
    return ours


def to_json(report: WheelReport) -> dict[str, Any]:
    """The `show --json` object. Field names shared with auditwheel mean the same thing there."""
    if report.pure:
        return {"version": 1, "wheel": report.wheel, "pure": True, "fastaudit": _ours(report)}
    return {
        "version": 1,
        "wheel": report.wheel,
        "pure": False,
        "overall_tag": _tag(report.overall),
        "sym_tag": _tag(report.symbol_policy),
        "pyfpe": bool(report.pyfpe_policy and report.pyfpe_policy.is_linux),
        "ucs2": bool(report.ucs2_policy and report.ucs2_policy.is_linux),
        "unsupported_isa": bool(report.isa_policy and report.isa_policy.is_linux),
        "versioned_symbols": {k: list(v) for k, v in report.versioned_symbols.items()},
        # resolved on no host: a library outside the wheel has no path to give
        "external_libs": {soname: None for soname in report.external_libs},
        "policy_upgrades": {
            tag: {
                **({"libs_to_eliminate": list(u.libs_to_eliminate)} if u.libs_to_eliminate else {}),
                **({"blacklisted_symbols": {k: list(v) for k, v in u.blacklisted_symbols.items()}}
                   if u.blacklisted_symbols else {}),
            }
            for tag, u in report.policy_upgrades.items()
        },
        "fastaudit": _ours(report),
    }


def _grouped(reasons: tuple[Reason, ...], shown: int = 2) -> list[str]:
    """One line per distinct fact, naming the first members that have it: scipy has a hundred
    members that need the same GLIBC version, and a reader needs that fact once."""
    members: dict[tuple[str, str, str], list[str]] = {}
    for r in reasons:
        members.setdefault((r.criterion, r.library, r.detail), []).append(r.member)
    lines = []
    for (criterion, library, detail), paths in members.items():
        who = ", ".join(paths[:shown]) + (f" (and {len(paths) - shown} more)" if len(paths) > shown else "")
        lines.append(f"    - {Reason(criterion, who, library, detail).describe()}")
    return lines


def error_json(path: str, error: FastauditError) -> dict[str, Any]:
    """auditwheel's error object, for a wheel that could not be audited."""
    return {"version": 1, "wheel": os.path.basename(path), "error": str(error)}


def render_text(report: WheelReport) -> str:
    """A view a person reads at a glance: verdict first, then why."""
    lines = [report.wheel]
    if report.pure:
        lines.append("  pure: no ELF files for a Linux platform; any platform tag fits")
        lines.extend(f"  ignored: {r.describe()}" for r in report.ignored)
        return "\n".join(lines)
    overall = report.overall
    assert overall is not None
    aliases = f" (also {', '.join(overall.alias_tags)})" if overall.alias_tags else ""
    lines.append(f"  satisfies: {overall.tag}{aliases}")
    declared = ", ".join(report.declared_tags)
    if report.over_promises:
        lines.append(f"  declares:  {declared}  -> OVER-PROMISES")
    else:
        lines.append(f"  declares:  {declared}  -> consistent")
    per_criterion = [
        # musl has no symbol versions: its symbol criterion is the libc symbols a wheel imports
        ("libc symbols" if report.libc == "musl" else "symbol versions", report.symbol_policy),
        ("external libraries", report.external_policy),
        ("blacklisted symbols", report.blacklist_policy), ("instruction set", report.isa_policy),
    ]
    lines.append("  by criterion: " + "; ".join(f"{title} {_tag(p)}" for title, p in per_criterion))
    if report.over_promise_reasons:
        lines.append("  why the declared tag does not hold:")
        lines.extend(_grouped(report.over_promise_reasons))
    if report.reasons:
        lines.append("  why not a more compatible tag:")
        lines.extend(_grouped(report.reasons))
    if report.external_libs:
        lines.append("  external libraries: " + ", ".join(report.external_libs))
    if report.versioned_symbols:
        lines.append("  symbol versions needed:")
        for library, versions in report.versioned_symbols.items():
            lines.append(f"    {library}: {', '.join(versions)}")
    lines.extend(f"  ignored: {r.describe()}" for r in report.ignored)
    return "\n".join(lines)



def tree_to_json(tree: HostTree) -> dict[str, Any]:
    return {
        "path": tree.path,
        "interpreter": tree.info.interpreter,
        "needed": list(tree.info.needed),
        "rpath": list(tree.info.rpath),
        "runpath": list(tree.info.runpath),
        "libraries": {s: {"path": lib.path, "needed": list(lib.needed)} for s, lib in tree.libraries.items()},
    }


def render_tree(tree: HostTree) -> str:
    """The tree indented by depth, each library once, where it was first reached."""
    lines = [f"{tree.path}" + (f" (interpreter {tree.info.interpreter})" if tree.info.interpreter else "")]
    shown: set[str] = set()

    def walk(needed: tuple[str, ...], depth: int) -> None:
        for soname in needed:
            lib = tree.libraries.get(soname)
            if lib is None or soname in shown:
                continue
            shown.add(soname)
            lines.append(f"{'    ' * depth}{soname} => {lib.path or 'not found'}")
            walk(lib.needed, depth + 1)

    walk(tree.info.needed, 1)
    return "\n".join(lines)
