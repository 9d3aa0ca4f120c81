"""`fastaudit show` and `lddtree` as text, and the lddtree JSON object (show's JSON is `results.to_json`)."""
from __future__ import annotations

from typing import Any

from fastaudit.abi3 import Abi3Report
from fastaudit.analyze import Reason, WheelReport
from fastaudit.lddtree import DependencyTree
from fastaudit.names import printable
from fastaudit.policy.stable_abi import format_version
from fastaudit.results import tag_of


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


def abi3_lines(abi3: Abi3Report | None, shown: int = 6) -> list[str]:
    """The abi3 criterion: the promise, what the extensions need, and what breaks it."""
    if abi3 is None:
        return []
    audited = f"{len(abi3.members)} object{'s' if len(abi3.members) != 1 else ''}"
    computed = format_version(abi3.computed) if abi3.computed else "-"
    if abi3.baseline is None:
        head = f"  abi3: not abi3-tagged; {audited} named *.abi3.so need {computed}"
    else:
        verdict = "OVER-PROMISES" if abi3.over_promises else "consistent"
        head = f"  abi3: tagged cp3{abi3.baseline[1]}-abi3, {audited} need {computed}  -> {verdict}"
    lines = [head]
    lines.extend(f"    - {member}: {detail}" for member, detail in abi3.reasons[:shown])
    if len(abi3.reasons) > shown:
        lines.append(f"    (and {len(abi3.reasons) - shown} more)")
    foreign = sorted({name for m in abi3.members for name in m.foreign_symbols})
    if foreign:
        more = f" (and {len(foreign) - shown} more)" if len(foreign) > shown else ""
        lines.append(f"    not CPython symbols (another library provides them): {', '.join(foreign[:shown])}{more}")
    return lines


def render_text(report: WheelReport) -> str:
    """A view a person reads at a glance: verdict first, then why."""
    lines = [report.wheel]
    if report.pure:
        lines.append("  pure: no ELF files for a Linux platform; any platform tag fits")
        lines.extend(f"  ignored: {r.describe()}" for r in report.ignored)
        return _text(lines)
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
    lines.append("  by criterion: " + "; ".join(f"{title} {tag_of(p)}" for title, p in per_criterion))
    lines.extend(abi3_lines(report.abi3))
    if report.over_promise_reasons:
        lines.append("  why the declared tag does not hold:")
        lines.extend(_grouped(report.over_promise_reasons))
    if report.rebuild_image is not None:
        lines.append(f"  rebuild: {report.rebuild_image.describe()}")
    if report.reasons:
        lines.append("  why not a more compatible tag:")
        lines.extend(_grouped(report.reasons))
    if report.executable_stack:
        lines.append("  executable stack (does not change the tag; repair refuses it, see --clear-execstack):")
        lines.extend(_grouped(report.executable_stack, shown=4))
    if report.external_libs:
        lines.append("  external libraries: " + ", ".join(report.external_libs))
    if report.versioned_symbols:
        lines.append("  symbol versions needed:")
        for library, versions in report.versioned_symbols.items():
            lines.append(f"    {library}: {', '.join(versions)}")
    lines.extend(f"  ignored: {r.describe()}" for r in report.ignored)
    return _text(lines)


def _text(lines: list[str]) -> str:
    """Lines joined for a terminal, each escaped: a newline inside a name stays inside its line."""
    return "\n".join(printable(line) for line in lines)


def tree_to_json(tree: DependencyTree) -> dict[str, Any]:
    return {
        "path": tree.path,
        "interpreter": tree.info.interpreter,
        "needed": list(tree.info.needed),
        "rpath": list(tree.info.rpath),
        "runpath": list(tree.info.runpath),
        "libraries": {s: {"path": lib.path, "needed": list(lib.needed)} for s, lib in tree.libraries.items()},
    }


def render_tree(tree: DependencyTree) -> str:
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
    return _text(lines)
