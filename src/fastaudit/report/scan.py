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
    ]
    cache = summary.elf_cache
    if cache.get("members_read") or cache.get("members_from_store") or cache.get("members_from_memory"):
        mib = 1 << 20
        lines.append(f"  ELF cache: {cache['members_from_store']} members ({cache['bytes_from_store'] / mib:.1f} MiB)"
                     f" from earlier runs, {cache['members_from_memory']} ({cache['bytes_from_memory'] / mib:.1f} MiB)"
                     f" from this run, {cache['members_read']} ({cache['bytes_read'] / mib:.1f} MiB) inflated;"
                     f" {cache['rows']} stored ({cache['stored_bytes'] / mib:.1f} MiB)")
    lines.extend(f"  ELF cache note: {note}" for note in cache.get("notes", "").splitlines())
    lines.append("  verdicts:")
    lines.extend(f"    {count:6d}  {verdict}" for verdict, count in summary.verdicts.items())
    return "\n".join(printable(line) for line in lines)
