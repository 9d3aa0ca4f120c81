"""`fastaudit report`: the figures of one run of the store, written as HTML, Markdown and JSON.

It reads the store only (opened read-only, so a scan may be writing at the same time), never a
wheel. Each file is written beside its final name and renamed into place, so a web server
publishing the folder never serves half a report.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fastaudit.advisories import Advisory
from fastaudit.errors import OutputError
from fastaudit.files import atomic_output, prepare_output_folder
from fastaudit.report.figures import compute_figures
from fastaudit.report.html import render_html
from fastaudit.report.markdown import render_markdown
from fastaudit.store import Store

FORMATS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "html": ("report.html", render_html),
    "md": ("report.md", render_markdown),
    "json": ("report.json", lambda figures: json.dumps(figures, indent=1) + "\n"),
}


def write_report(db: str | Path, out_dir: str | Path, formats: Iterable[str] = tuple(FORMATS),
                 run_id: int | None = None, compare_to: int | None = None,
                 advisories: tuple[Advisory, ...] | None = None) -> list[Path]:
    """Write report.<format> for each format into out_dir (created if missing); the paths written.
    The folder is checked before the store is read, and each file is written atomically."""
    try:
        out = prepare_output_folder(out_dir)
        with Store(db, readonly=True) as store:
            figures = compute_figures(store, run_id, compare_to, advisories)
        written = []
        for fmt in dict.fromkeys(formats):
            name, render = FORMATS[fmt]
            with atomic_output(out / name) as f:
                f.write(render(figures))
            written.append(out / name)
    except OutputError as e:
        raise OutputError(f"cannot write the report: {e.message}") from e
    return written
