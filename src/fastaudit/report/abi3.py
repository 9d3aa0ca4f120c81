"""`fastaudit abi3`: the abi3 criterion as abi3audit prints it, so the command can stand in
cibuildwheel's `audit-command` where `abi3audit --strict --report {abi3_wheel}` stood.

The --report object has abi3audit's shape ({"specs": {WHEEL: {"kind": "wheel", "wheel": [{"name",
"result"}]}}}) and, in each result, its fields with their meaning (is_abi3,
is_abi3_baseline_compatible, baseline, computed, non_abi3_symbols, future_abi3_objects); ours
follow them (member, needed, foreign_symbols, guarded_symbols, version_specific, free_threaded).
"""
from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

from fastaudit.abi3 import Abi3Report
from fastaudit.report.show import abi3_lines
from fastaudit.results import abi3_json


def abi3audit_report(audited: Iterable[tuple[str, Abi3Report]]) -> dict[str, Any]:
    """abi3audit's --report object for (wheel path as given, its abi3 criterion) pairs."""
    specs: dict[str, Any] = {}
    for wheel, abi3 in audited:
        members = abi3_json(abi3)["members"]
        specs[wheel] = {"kind": "wheel", "wheel": [
            {"name": posixpath.basename(m["member"]), "result": m} for m in members]}
    return {"specs": specs}


def render_summary(wheel: str, abi3: Abi3Report) -> list[str]:
    """abi3audit's one-line count, then what breaks the promise."""
    mismatches = sum(1 for m in abi3.members if m.baseline and m.computed > m.baseline)
    violations = sum(len(m.non_abi3_symbols) for m in abi3.members)
    lines = [f"{posixpath.basename(wheel)}: {len(abi3.members)} extensions scanned; {mismatches} ABI version"
             f" mismatches and {violations} ABI violations found"]
    if not abi3.reasons and not any(m.foreign_symbols for m in abi3.members):
        return lines
    return lines + abi3_lines(abi3, shown=max(6, len(abi3.reasons)))[1:]
