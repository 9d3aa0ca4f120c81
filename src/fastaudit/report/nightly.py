"""`fastaudit report`: the figures of one run of the store, written as HTML, Markdown and JSON.

It reads the store only (opened read-only, so a scan may be writing at the same time), never a
wheel. Each file is written beside its final name and renamed into place, so a web server
publishing the folder never serves half a report.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fastaudit.advisories import Advisory
from fastaudit.errors import ReportError
from fastaudit.report.figures import compute_figures
from fastaudit.report.html import render_html
from fastaudit.report.markdown import render_markdown
from fastaudit.store import Store

FORMATS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "html": ("report.html", render_html),
    "md": ("report.md", render_markdown),
    "json": ("report.json", lambda figures: json.dumps(figures, indent=1) + "\n"),
}


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be published
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_report(db: str | Path, out_dir: str | Path, formats: Iterable[str] = tuple(FORMATS),
                 run_id: int | None = None, compare_to: int | None = None,
                 advisories: tuple[Advisory, ...] | None = None) -> list[Path]:
    """Write report.<format> for each format into out_dir (created if missing); the paths written."""
    with Store(db, readonly=True) as store:
        figures = compute_figures(store, run_id, compare_to, advisories)
    out = Path(out_dir)
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for fmt in dict.fromkeys(formats):
            name, render = FORMATS[fmt]
            _write_atomically(out / name, render(figures))
            written.append(out / name)
    except OSError as e:
        raise ReportError(f"cannot write the report: {e.strerror or e}", path=str(e.filename or out)) from e
    return written
