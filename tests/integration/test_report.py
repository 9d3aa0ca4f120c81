"""`fastaudit report` as an operator runs it: three nightly scans of a folder that changes between
them (wheels added, removed, one repaired in place, one newly over-promising, one newly broken),
then the report, checked against independent SQL on the store (tests/report_oracle.py) in all
three formats, and the HTML opened in headless Chromium (Debian's package, driven by Playwright):
no console errors, no network request, the expected table rows, filtering, sorting, the project
view, and charts drawn from the same figures.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests import elfbuild, report_oracle
from tests.integration.test_scan import place
from tests.report_oracle import markdown_tables

TAG = elfbuild.DEFAULT_TAG
CLI_TIMEOUT = 300


def fastaudit(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "fastaudit", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    return proc


def repack(scenario_wheel: Path, out_dir: Path, dist: str) -> Path:
    """The binaries of a scenario wheel in a wheel of another name (a release of another project)."""
    with zipfile.ZipFile(scenario_wheel) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if ".dist-info/" not in n}
    return elfbuild.pack_wheel(out_dir, dist, "1.0", TAG, files)


@dataclass(frozen=True)
class Nights:
    db: Path
    work: Path
    demo: str  # over-promising on night 1, repaired in place on night 2
    new_violation: str  # appears on night 2, over-promising; repaired in place on night 3
    broken: str  # appears on night 2, not a zip
    late_violation: str  # appears on night 3, over-promising
    late_broken: str  # appears on night 3, not a zip


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory, scenarios: dict[str, elfbuild.Scenario],
           ci_wheels: list[Path]) -> Nights:
    work = tmp_path_factory.mktemp("nightly")
    folder, db, built = work / "mirror", work / "store.db", work / "built"
    bad_demo = repack(scenarios["glibc_2_34"].wheel, built / "bad", "nightly_demo")
    good_demo = repack(scenarios["glibc_2_17"].wheel, built / "good", "nightly_demo")
    new_violation = repack(scenarios["glibc_2_34"].wheel, built / "bad", "newly_bad")
    new_violation_repaired = repack(scenarios["glibc_2_17"].wheel, built / "good", "newly_bad")
    late_violation = repack(scenarios["glibc_2_34"].wheel, built / "bad", "late_bad")
    assert bad_demo.name == good_demo.name and bad_demo.read_bytes() != good_demo.read_bytes()

    # night 1: every scenario, eight real wheels, the demo wheel over-promising
    for s in scenarios.values():
        place(s.wheel, folder / "gcc" / s.wheel.name)
    for w in ci_wheels[:8]:
        place(w, folder / "pypi" / w.name)
    shutil.copy(bad_demo, folder / bad_demo.name)
    fastaudit("scan", "--db", db, "--jobs", "2", folder, cwd=work)

    # night 2: two real wheels gone, the rest arrive; the demo repaired in place; a new
    # over-promising wheel; a wheel that is not a zip
    for w in ci_wheels[:2]:
        (folder / "pypi" / w.name).unlink()
    for w in ci_wheels[8:]:
        place(w, folder / "pypi" / w.name)
    shutil.copy(good_demo, folder / good_demo.name)
    os.utime(folder / good_demo.name, (1e9, 1e9))  # a new content key even if the size matched
    shutil.copy(new_violation, folder / new_violation.name)
    broken = folder / f"broken-1.0-{TAG}.whl"
    broken.write_bytes(b"this is not a zip file" * 64)
    fastaudit("scan", "--db", db, "--jobs", "2", folder, cwd=work)

    # night 3: one scenario wheel withdrawn, the two real wheels back; night 2's new violation
    # repaired in place, another over-promising wheel and another broken one
    (folder / "gcc" / scenarios["external_libfoo"].wheel.name).unlink()
    for w in ci_wheels[:2]:
        place(w, folder / "pypi" / w.name)
    shutil.copy(new_violation_repaired, folder / new_violation.name)
    os.utime(folder / new_violation.name, (2e9, 2e9))
    shutil.copy(late_violation, folder / late_violation.name)
    late_broken = folder / f"late_broken-1.0-{TAG}.whl"
    late_broken.write_bytes(b"PK\x03\x04 and then nothing")
    fastaudit("scan", "--db", db, "--jobs", "2", folder, cwd=work)
    return Nights(db, work, good_demo.name, new_violation.name, broken.name, late_violation.name, late_broken.name)


@pytest.fixture(scope="module")
def reports(nights: Nights) -> dict[str, Path]:
    """The default report (run 3 against run 2) and run 2 against run 1, all formats each, made
    with the scanned folder gone: a report reads the store alone."""
    shutil.rmtree(nights.work / "mirror")
    fastaudit("report", "--db", nights.db, "-o", nights.work / "latest", cwd=nights.work)
    fastaudit("report", "--db", nights.db, "-o", nights.work / "second", "--run", "2", "--compare-to", "1",
              cwd=nights.work)
    return {"latest": nights.work / "latest", "second": nights.work / "second"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("SKIPPED LOUDLY: no chromium on PATH (scripts/test.sh installs Debian's package as root)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@dataclass
class Opened:
    page: Page
    problems: list[str]  # console errors, page errors and any request that left the file


@pytest.fixture
def opened(browser: Browser, reports: dict[str, Path]) -> Iterator[Opened]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def offline(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            problems.append(f"request: {route.request.url}")
            route.abort()

    page.route("**/*", offline)
    page.goto((reports["latest"] / "report.html").as_uri())
    page.wait_for_load_state("load")
    yield Opened(page, problems)
    page.close()


def oracle(nights: Nights, run: int, base: int | None) -> dict[str, Any]:
    return report_oracle.expected_view(report_oracle.connect(str(nights.db)), run, base)


def test_the_nights_changed_what_they_should(nights: Nights, reports: dict[str, Path]) -> None:
    second = json.loads((reports["second"] / "report.json").read_text())
    assert second["diff"]["fixed"] == [nights.demo]
    assert second["diff"]["new_violations"] == [nights.new_violation]
    assert second["diff"]["new_errors"] == [nights.broken]
    latest = json.loads((reports["latest"] / "report.json").read_text())
    assert latest["diff"]["fixed"] == [nights.new_violation]
    assert latest["diff"]["new_violations"] == [nights.late_violation]
    assert latest["diff"]["new_errors"] == [nights.late_broken]
    assert (latest["run"]["id"], latest["compare_to"]["id"], latest["diff"]["removed"]) == (3, 2, 1)
    assert [t["run"] for t in latest["trend"]] == [1, 2, 3]
    assert latest["grafted_libraries"] and latest["over_promising"] and latest["errors"]


@pytest.mark.parametrize(("name", "run", "base"), [("latest", 3, 2), ("second", 2, 1)])
def test_json_and_markdown_equal_sql(nights: Nights, reports: dict[str, Path], name: str, run: int,
                                     base: int) -> None:
    figures = json.loads((reports[name] / "report.json").read_text())
    schema = json.loads(resources.files("fastaudit").joinpath("schema/report-v1.json").read_text())
    jsonschema.validate(figures, schema)
    expected = oracle(nights, run, base)
    assert report_oracle.view(figures) == expected
    trend = report_oracle.trend(report_oracle.connect(str(nights.db)), list(range(1, run + 1)))
    assert [{k: t[k] for k in ("run", "wheels", "linux", "over_promising", "errors")}
            for t in figures["trend"]] == trend

    tables = markdown_tables((reports[name] / "report.md").read_text())
    h = expected["headline"]
    assert tables["headline"] == [[str(h[k]) for k in report_oracle.HEADLINE]]
    assert {r[0]: int(r[1]) for r in tables["Verdicts"]} == expected["verdicts"]
    assert {r[0]: int(r[1]) for r in tables["glibc actually required (glibc wheels)"]} == expected["glibc_required"]
    assert {(r[0], r[1]): int(r[2]) for r in tables["Declared against achieved"]} == expected["declared_vs_achieved"]
    assert {(r[0], r[1]): int(r[2]) for r in tables["Architecture and libc"]} == expected["arch_libc"]
    assert [(r[0], int(r[1])) for r in tables["Most common grafted libraries"]] == expected["grafted_libraries"]
    assert [(r[0], int(r[1])) for r in tables["Most common external libraries"]] == expected["external_libraries"]
    assert [{"run": int(r[0]), "wheels": int(r[3]), "linux": int(r[4]), "over_promising": int(r[5]),
             "errors": int(r[6])} for r in tables["Trend"]] == trend
    assert sorted(r[0] for r in tables[f"Over-promising wheels: {h['over_promising']}"]) == expected["over_promising"]
    assert sorted(r[0] for r in tables[f"Errors: {h['errors']}"]) == expected["errors"]


def visible(page: Page, table: str, column: int = 0) -> list[str]:
    return page.eval_on_selector_all(f"#{table} tbody tr:not([hidden])",
                                     f"rows => rows.map(r => r.cells[{column}].textContent)")


def test_page_loads_offline_without_errors_and_holds_the_figures(opened: Opened, nights: Nights) -> None:
    page, expected = opened.page, oracle(nights, 3, 2)
    assert page.title() == "fastaudit report: run 3"
    for key, value in expected["headline"].items():
        assert page.text_content(f"#headline-{key} b") == str(value), key
    assert sorted(visible(page, "table-over-promising")) == expected["over_promising"]
    assert sorted(visible(page, "table-errors")) == expected["errors"]
    projects = visible(page, "table-projects")
    assert sorted(projects) == sorted(expected["projects"])
    wheels = [int(n) for n in visible(page, "table-projects", 1)]
    assert dict(zip(projects, wheels, strict=True)) == expected["projects"]
    for key in ("new_violations", "fixed", "new_errors"):
        assert page.eval_on_selector_all(f"#diff-{key} li", "items => items.map(i => i.textContent)") == \
            expected["diff"][key]
    assert opened.problems == []


def test_filtering_sorting_and_the_project_view(opened: Opened, nights: Nights) -> None:
    page, expected = opened.page, oracle(nights, 3, 2)
    over = expected["over_promising"]
    needle = "late_bad"
    page.fill('input[data-filter="table-over-promising"]', needle)
    assert visible(page, "table-over-promising") == [w for w in over if needle in w] == [nights.late_violation]
    assert page.text_content('[data-count="table-over-promising"]') == f"1 of {len(over)} rows"
    page.fill('input[data-filter="table-over-promising"]', "no wheel is called this")
    assert visible(page, "table-over-promising") == []
    page.fill('input[data-filter="table-over-promising"]', "")
    assert sorted(visible(page, "table-over-promising")) == over

    page.click("#table-projects th:nth-child(2)")  # wheels, ascending then descending
    page.click("#table-projects th:nth-child(2)")
    counts = [int(n) for n in visible(page, "table-projects", 1)]
    assert counts == sorted(expected["projects"].values(), reverse=True)

    page.click('button.project[data-project="fa-zlib-all"]')
    assert page.is_visible("#project-view") and page.text_content("#project-name") == "fa-zlib-all"
    assert [w.split("-")[0] for w in visible(page, "table-over-promising")] == ["fa_zlib_all"]
    assert visible(page, "table-errors") == []
    page.click("#project-clear")
    assert sorted(visible(page, "table-over-promising")) == over
    assert opened.problems == []


def test_charts_are_drawn_from_the_figures(opened: Opened, nights: Nights, reports: dict[str, Path]) -> None:
    page, expected = opened.page, oracle(nights, 3, 2)
    figures = json.loads((reports["latest"] / "report.json").read_text())
    bars = {"chart-verdicts": list(expected["verdicts"].items()),
            "chart-glibc": list(expected["glibc_required"].items()),
            "chart-grafted": expected["grafted_libraries"]}
    for chart, pairs in bars.items():
        assert page.locator(f"#{chart} .main-svg").count() >= 1, chart
        # one drawn bar (an SVG path with a non-empty outline) per category
        drawn = page.eval_on_selector_all(
            f"#{chart} .trace.bars .point path",
            "ps => ps.filter(p => p.getBBox().width > 0 && p.getBBox().height > 0).length")
        assert drawn == len(pairs), chart
        data = page.evaluate("id => { const d = document.getElementById(id).data[0];"
                             " return d.orientation === 'h' ? [d.y, d.x] : [d.x, d.y]; }", chart)
        assert sorted(zip(*data, strict=True)) == sorted(pairs), chart
    cells = expected["declared_vs_achieved"]
    heat = page.evaluate("() => { const d = document.getElementById('chart-matrix').data[0];"
                         " return [d.x, d.y, d.z]; }")
    drawn_cells = {(y, x): z for y, row in zip(heat[1], heat[2], strict=True)
                   for x, z in zip(heat[0], row, strict=True) if z is not None}
    assert drawn_cells == cells
    assert page.locator("#chart-matrix .hm image").count() == 1  # plotly paints a heatmap as one image
    arch = page.evaluate("(() => document.getElementById('chart-arch').data.map(t => [t.name, t.x, t.y]))()")
    assert {(a, name): n for name, xs, ys in arch for a, n in zip(xs, ys, strict=True)} == expected["arch_libc"]
    trend = page.evaluate("() => document.getElementById('chart-trend').data.map(t => [t.name, t.y])")
    assert dict(trend) == {name: [t[key] for t in figures["trend"]] for name, key in
                           (("audited", "linux"), ("over-promising", "over_promising"), ("errors", "errors"))}
    trend_points = page.locator("#chart-trend .scatterlayer .trace .points path").count()
    assert trend_points == 3 * len(figures["trend"])  # audited, over-promising, errors per run
    # each chart fits the box it is in (a chart drawn before its grid was laid out once did not)
    overflow = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(plot => {
        const svg = plot.querySelector('.main-svg').getBoundingClientRect();
        return svg.right > plot.closest('section').getBoundingClientRect().right + 1; }).map(plot => plot.id)""")
    assert overflow == []
    assert opened.problems == []
