"""The summary `fastaudit scan` prints when it ends."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastaudit.names import printable

if TYPE_CHECKING:  # report/ renders; it does not import the scan (DESIGN.md layers)
    from fastaudit.scan import ScanSummary


def render_summary(summary: ScanSummary) -> str:
    rate = summary.analyzed / summary.seconds if summary.seconds > 0 else 0.0
    lines = [
        f"run {summary.run_id} {summary.status} in {summary.seconds:.1f} s",
        f"  wheels seen {summary.seen}: analyzed {summary.analyzed}, skipped (already stored) {summary.skipped},"
        f" not opened (pure or not Linux) {summary.not_analyzed}, errors {summary.errors}",
        f"  over-promising wheels: {summary.over_promising}",
        f"  throughput: {rate:.1f} analyzed wheels/s",
        "  verdicts:",
    ]
    lines.extend(f"    {count:6d}  {verdict}" for verdict, count in summary.verdicts.items())
    return "\n".join(printable(line) for line in lines)
