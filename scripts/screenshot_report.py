#!/usr/bin/env python3
"""Take a PNG of a `fastaudit report` HTML page with headless Chromium (Debian's package).

    python scripts/screenshot_report.py report/report.html docs/report.png [--width 1400] [--height 2200]

The window is given the final size before the page loads: plotly redraws its charts when the
window is resized, and a full-page capture that grew the window would catch them mid-redraw.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2200, help="The part of the page captured, from the top.")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("no chromium on PATH: apt-get install -y --no-install-recommends chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(args.html.resolve().as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(500)  # let plotly finish its first layout pass
        page.screenshot(path=str(args.png))
        browser.close()
    if errors:
        sys.exit(f"the page reported errors: {errors}")


if __name__ == "__main__":
    main()
