"""The nightly report as Markdown, to paste into a chat or an issue: the figures of the JSON, with
long lists of wheels cut to their first MAX_ROWS entries (the count is always the full one)."""
from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastaudit.names import printable

MAX_ROWS = 25


class _Code(str):
    """A name shown as code (a wheel file name)."""


def _cell(value: object, in_table: bool = True) -> str:
    """A value as Markdown: names and messages come from uploaded files, and the report is pasted
    into trackers that render HTML, so control characters are escaped (names.printable), HTML is
    escaped outside code spans and inert inside them, and `|` cannot end a table cell."""
    text = printable("" if value is None else str(value))
    if isinstance(value, _Code):
        # a fence longer than any run of backticks inside: the name cannot close its code span
        fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        text = f"{fence}{pad}{text}{pad}{fence}"
    else:
        text = html.escape(text, quote=False)
    return text.replace("|", "\\|") if in_table else text


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return lines + [""]


def _capped(items: Sequence[Any]) -> tuple[Sequence[Any], list[str]]:
    if len(items) <= MAX_ROWS:
        return items, []
    return items[:MAX_ROWS], [f"... and {len(items) - MAX_ROWS} more (see the HTML or JSON report).", ""]


def _wheel_list(title: str, wheels: Sequence[str]) -> list[str]:
    shown, more = _capped(wheels)
    items = [f"- {_cell(_Code(w), in_table=False)}" for w in shown]
    return [f"**{title}: {len(wheels)}**", ""] + items + ([""] if shown else []) + more


def _abi3_markdown(abi3: dict[str, Any]) -> list[str]:
    out = ["## abi3 (stable ABI)", ""]
    out += _table(["abi3 wheels", "consistent", "over-promising"],
                  [[abi3["wheels"], abi3["consistent"], abi3["over_promising"]]])
    out += _table(["offending symbol", "kind", "wheels"],
                  [[f"`{s['name']}`", s["kind"], s["wheels"]] for s in abi3["offending_symbols"]])
    shown, more = _capped(abi3["over_promising_wheels"])
    out += _table(["wheel", "baseline", "computed", "first problem"],
                  [[f"`{w['wheel']}`", w["baseline"], w["computed"], w["problems"][0] if w["problems"] else ""]
                   for w in shown]) + more
    return out


def _rebuild_cell(rebuild: dict[str, Any] | None) -> str:
    if rebuild is None:
        return ""
    return rebuild["image"] if rebuild["old_enough"] else f"no image old enough (oldest: {rebuild['image']})"


def _executable_stack_markdown(stack: dict[str, Any]) -> list[str]:
    out = [f"## Executable stack: {stack['wheels']} wheels, {stack['members']} members", "",
           "*glibc 2.41 and newer refuse to dlopen these members; the tag is not changed "
           "(`fastaudit repair --clear-execstack` clears the flag).*", ""]
    if stack["not_checked"]:
        out += [f"*{stack['not_checked']} results were stored before this check existed and were not checked.*", ""]
    shown, more = _capped(stack["rows"])
    return out + _table(["wheel", "member", "why"],
                        [[_Code(r["wheel"]), _Code(r["member"]), r["message"]] for r in shown]) + more


def render_markdown(figures: dict[str, Any]) -> str:
    run, head = figures["run"], figures["headline"]
    out = [f"# fastaudit report: run {run['id']} ({run['status']}, {run['started_at']})", ""]
    out += _table(["wheels", "projects", "audited (Linux)", "consistent", "over-promising", "pure", "not Linux",
                   "errors"],
                  [[head[k] for k in ("wheels", "projects", "linux", "consistent", "over_promising", "pure",
                                      "not_linux", "errors")]])
    diff = figures["diff"]
    out += ["## Since the previous run", ""]
    if diff is None:
        out += ["No earlier completed run to compare with.", ""]
    else:
        out += [f"Compared with run {diff['compare_to']}: {diff['added']} wheels added, {diff['removed']} removed.", ""]
        out += _wheel_list("New violations", diff["new_violations"])
        out += _wheel_list("Fixed", diff["fixed"])
        out += _wheel_list("New errors", diff["new_errors"])
    out += ["## Trend", ""]
    out += _table(["run", "started", "status", "wheels", "audited", "over-promising", "errors"],
                  [[t["run"], t["started_at"], t["status"], t["wheels"], t["linux"], t["over_promising"],
                    t["errors"]] for t in figures["trend"]])
    out += ["## Verdicts", ""]
    out += _table(["verdict", "wheels"], [[v["verdict"], v["wheels"]] for v in figures["verdicts"]])
    out += ["## glibc actually required (glibc wheels)", ""]
    out += _table(["glibc", "wheels"], [[g["glibc"], g["wheels"]] for g in figures["glibc_required"]])
    out += ["## Declared against achieved", ""]
    out += _table(["declared", "achieved", "wheels"],
                  [[m["declared"], m["achieved"], m["wheels"]] for m in figures["declared_vs_achieved"]])
    out += ["## Architecture and libc", ""]
    out += _table(["arch", "libc", "wheels"], [[a["arch"], a["libc"], a["wheels"]] for a in figures["arch_libc"]])
    out += ["## Most common external libraries", ""]
    out += _table(["library", "wheels"], [[lib["name"], lib["wheels"]] for lib in figures["external_libraries"]])
    out += ["## Most common grafted libraries", ""]
    out += _table(["library", "wheels"], [[lib["name"], lib["wheels"]] for lib in figures["grafted_libraries"]])
    findings = figures["advisory_findings"]
    if findings is not None:
        shown, more = _capped(findings)
        out += [f"## Advisories: {len(findings)} affected members", ""]
        out += _table(["advisory", "library", "version", "wheel", "member"],
                      [[f["id"], f["library"], f["version"], f"`{f['wheel']}`", f"`{f['member']}`"]
                       for f in shown]) + more
    vendored = sorted(figures["vendored_libraries"], key=lambda v: (-v["wheels"], v["library"], v["version"] or ""))
    shown, more = _capped(vendored)
    out += [f"## Vendored native libraries: {len(vendored)} library versions", ""]
    out += _table(["library", "version", "wheels", "projects", "linkage"],
                  [[v["library"], v["version"] or "unknown", v["wheels"], v["projects"], ", ".join(v["linkage"])]
                   for v in shown]) + more
    out += _abi3_markdown(figures["abi3"])
    out += _executable_stack_markdown(figures["executable_stack"])
    over = figures["over_promising"]
    shown, more = _capped(over)
    out += [f"## Over-promising wheels: {len(over)}", ""]
    out += _table(["wheel", "declared", "achieved", "first reason", "rebuild in"],
                  [[_Code(o["wheel"]), o["declared"], o["achieved"], o["reasons"][0] if o["reasons"] else "",
                    _rebuild_cell(o["rebuild_image"])] for o in shown]) + more
    if figures["rebuild_images"]:
        out += ["## Build images a compliant rebuild needs", ""]
        out += _table(["image", "for", "wheels"],
                      [[r["image"], r["for_tag"], r["wheels"]] for r in figures["rebuild_images"]])
    errors = figures["errors"]
    shown, more = _capped(errors)
    out += [f"## Errors: {len(errors)}", ""]
    out += _table(["wheel", "error", "message"],
                  [[_Code(e["wheel"]), e["error_type"], e["message"]] for e in shown]) + more
    worst = sorted((p for p in figures["projects"] if p["over_promising"] or p["errors"]),
                   key=lambda p: (-p["over_promising"] - p["errors"], p["project"]))
    shown, more = _capped(worst)
    out += [f"## Projects with problems: {len(worst)} of {len(figures['projects'])}", ""]
    out += _table(["project", "wheels", "over-promising", "errors", "glibc required"],
                  [[p["project"], p["wheels"], p["over_promising"], p["errors"], p["glibc_required"]]
                   for p in shown]) + more
    return "\n".join(out).rstrip() + "\n"
