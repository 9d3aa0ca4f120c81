"""fastaudit report over a store written through the Store API: three runs with wheels added,
replaced, fixed and broken between them. Every figure is checked against independent SQL on the
store file (tests/report_oracle.py); bad stores and run ids give typed errors and exit code 2."""
from __future__ import annotations

import html
import json
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from fastaudit.cli import main
from fastaudit.errors import ReportError
from fastaudit.report.figures import (
    NO_GLIBC,
    compute_figures,
    glibc_required,
    grafted_name,
)
from fastaudit.report.html import render_html
from fastaudit.report.markdown import render_markdown
from fastaudit.report.nightly import write_report
from fastaudit.store import ResultRow, Store, StoreError, WheelRow
from tests import report_oracle
from tests.report_oracle import markdown_tables

ANALYZER, POLICY = "test-analyzer", "test-policy"


def _reason(message: str) -> dict[str, str]:
    return {"criterion": "symbol_version", "member": "m.so", "library": "libc.so.6", "detail": "", "message": message}


def linux(filename: str, *, key: str | None = None, overall: str, libc: str = "glibc", arch: str = "x86_64",
          glibc: tuple[str, ...] = (), external: tuple[str, ...] = (), over: tuple[str, ...] = (),
          grafted: tuple[str, ...] = ()) -> tuple[WheelRow, ResultRow]:
    """An audited wheel as a scan stores it: the `show --json` fields the store and report read."""
    project, version, _, _, platform = filename.removesuffix(".whl").split("-")
    report: dict[str, Any] = {
        "version": 1, "wheel": filename, "pure": False, "overall_tag": overall, "sym_tag": overall,
        "versioned_symbols": {"libc.so.6": list(glibc), "libstdc++.so.6": ["GLIBCXX_3.4.21", "CXXABI_1.3"]}
        if glibc else {},
        "external_libs": dict.fromkeys(external),
        "fastaudit": {"arch": arch, "libc": libc, "declared_tags": platform.split("."), "over_promises": bool(over),
                      "over_promise_reasons": [_reason(m) for m in over],
                      "criteria": {"external_library": overall, "blacklisted_symbol": overall, "isa": overall}},
    }
    facts = tuple({"member": m, "arch": arch, "soname": m.rsplit("/", 1)[-1], "needed": [], "isa_level": 0,
                   "version_requirements": {}} for m in ("pkg/_ext.so", *grafted))
    wheel = WheelRow(key or filename, f"/m/{filename}", filename, 1000, project, version, "cp312", "cp312",
                     platform, "linux")
    return wheel, ResultRow("ok", report, elf_facts=facts)


def other(filename: str, status: str, project: str | None = None) -> tuple[WheelRow, ResultRow]:
    kind = {"pure": "pure", "not_linux": "other", "error": "linux"}[status]
    wheel = WheelRow(filename, f"/m/{filename}", filename, 10, project, "1.0", "py3", "none", "any", kind)
    if status == "error":
        return wheel, ResultRow("error", None, "ELFTruncatedError", f"{filename}: truncated header", "pkg/bad.so")
    return wheel, ResultRow(status, {"version": 1, "wheel": filename, "pure": True} if status == "pure" else None)


A = "numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
B = "lxml-5.0.0-cp312-cp312-manylinux_2_17_x86_64.whl"
C = "orjson-3.0.0-cp312-cp312-musllinux_1_2_x86_64.whl"
D = "six-1.16.0-py2.py3-none-any.whl"
E = "broken-1.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"
F = "pywin-1.0.0-cp312-cp312-win_amd64.whl"
G = "Pillow-10.0.0-cp312-cp312-manylinux1_x86_64.whl"
H = "scipy-1.14.0-cp312-cp312-manylinux_2_5_x86_64.whl"
I_ = "bad-2.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"
J = "pillow-11.0.0-cp312-cp312-manylinux_2_28_aarch64.whl"


def run(store: Store, batch: list[tuple[WheelRow, ResultRow]], skipped: tuple[str, ...] = (),
        status: str = "completed") -> int:
    run_id = store.start_run({}, "0.1.0", POLICY)
    store.record_results(run_id, ANALYZER, POLICY, batch)
    store.record_skipped(run_id, store.known_results(skipped, ANALYZER, POLICY).values())
    store.finish_run(run_id, status, store.run_counts(run_id))
    return run_id


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    openblas = "numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so"
    with Store(path) as store:
        run(store, [
            linux(A, overall="manylinux_2_17_x86_64", glibc=("GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.3.4"),
                  grafted=(openblas, "numpy.libs/libgfortran-040039e1.so.5.0.0")),
            linux(B, overall="manylinux_2_28_x86_64", glibc=("GLIBC_2.28", "GLIBC_2.9"),
                  over=("needs GLIBC_2.28", "needs GLIBC_2.28", "libxml2.so.2 is external")),
            linux(C, overall="musllinux_1_1_x86_64", libc="musl", external=("libgcc_s.so.1",)),
            other(D, "pure", "six"), other(E, "error", "broken"), other(F, "not_linux", "pywin"),
            linux(G, overall="manylinux_2_5_x86_64", external=("libfoo.so.1", "libgcc_s.so.1"),
                  grafted=("Pillow.libs/libjpeg-a28b8213.so.9.4.0", "Pillow/sub.libs/libnot-12345678.so")),
        ])
        run(store, [
            linux(B, key="B-repaired", overall="manylinux_2_17_x86_64", glibc=("GLIBC_2.17",)),
            linux(H, overall="manylinux_2_17_x86_64", glibc=("GLIBC_2.14", "GLIBC_2.3"), over=("needs GLIBC_2.14",),
                  grafted=("scipy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so",)),
            other(I_, "error", "bad"),
            linux(J, overall="manylinux_2_28_aarch64", arch="aarch64", glibc=("GLIBC_2.28",)),
        ], skipped=(A, C, D, F, G))
        run(store, [], skipped=(A, B), status="interrupted")
    return path


def test_figures_equal_independent_sql(store_path: Path) -> None:
    db = report_oracle.connect(str(store_path))
    with Store(store_path, readonly=True) as store:
        for run_id, compare_to, base in ((None, None, 1), (1, None, None), (3, 1, 1), (2, 2 - 1, 1)):
            figures = compute_figures(store, run_id, compare_to)
            shown = run_id or 2  # the latest completed run
            assert figures["run"]["id"] == shown
            assert report_oracle.view(figures) == report_oracle.expected_view(db, shown, base)
            assert [t["run"] for t in figures["trend"]] == list(range(1, shown + 1))
            assert [{k: t[k] for k in ("run", "wheels", "linux", "over_promising", "errors")}
                    for t in figures["trend"]] == report_oracle.trend(db, list(range(1, shown + 1)))


def test_the_scenario_is_what_the_figures_say(store_path: Path) -> None:
    """The changes the store was built with show up where an operator looks for them."""
    with Store(store_path, readonly=True) as store:
        figures = compute_figures(store)
    assert figures["diff"]["new_violations"] == [H]
    assert figures["diff"]["fixed"] == [B]
    assert figures["diff"]["new_errors"] == [I_]
    assert (figures["diff"]["added"], figures["diff"]["removed"]) == (3, 1)  # H, I, J in; E out
    pillow = next(p for p in figures["projects"] if p["project"] == "pillow")
    assert (pillow["wheels"], pillow["versions"], pillow["glibc_required"]) == (2, 2, "2.28")
    assert {"name": "libopenblas64_p-r0", "wheels": 2} in figures["grafted_libraries"]
    assert all(lib["name"] != "libnot" for lib in figures["grafted_libraries"])  # not a top-level .libs
    assert figures["over_promising"][0]["reasons"] == ["needs GLIBC_2.14"]


def test_json_matches_the_shipped_schema(store_path: Path) -> None:
    schema = json.loads(resources.files("fastaudit").joinpath("schema/report-v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    with Store(store_path, readonly=True) as store:
        for run_id in (1, 2, 3):
            jsonschema.validate(compute_figures(store, run_id), schema)
    with Store(store_path, readonly=True) as store:
        broken = compute_figures(store)
    broken["headline"]["wheels"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_markdown_holds_the_figures(store_path: Path) -> None:
    with Store(store_path, readonly=True) as store:
        figures = compute_figures(store)
    tables = markdown_tables(render_markdown(figures))
    h = figures["headline"]
    assert tables["headline"] == [[str(h[k]) for k in report_oracle.HEADLINE]]
    assert tables["Verdicts"] == [[v["verdict"], str(v["wheels"])] for v in figures["verdicts"]]
    assert tables["glibc actually required (glibc wheels)"] == [[g["glibc"], str(g["wheels"])]
                                                                for g in figures["glibc_required"]]
    assert tables["Declared against achieved"] == [[m["declared"], m["achieved"], str(m["wheels"])]
                                                   for m in figures["declared_vs_achieved"]]
    assert tables["Most common grafted libraries"] == [[g["name"], str(g["wheels"])]
                                                       for g in figures["grafted_libraries"]]
    assert [r[0] for r in tables["Over-promising wheels: 1"]] == [H]
    assert [r[0] for r in tables["Errors: 1"]] == [I_]
    assert [r[0] for r in tables["Trend"]] == ["1", "2"]


def test_glibc_required_is_the_newest_numeric_version() -> None:
    assert glibc_required(json.dumps({"libc.so.6": ["GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.3.4"],
                                      "libm.so.6": ["GLIBC_2.29"], "libstdc++.so.6": ["GLIBCXX_3.4.30"]})) == "2.29"
    assert glibc_required(json.dumps({"libc.so.6": ["GLIBC_PRIVATE"]})) == NO_GLIBC
    assert glibc_required(None) == NO_GLIBC


@pytest.mark.parametrize(("member", "name"), [
    ("numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so", "libopenblas64_p-r0"),
    ("pillow.libs/libXau-154567c4.so.6.0.0", "libXau"),
    ("psycopg2_binary.libs/libssl-3e69114b.so.1.1", "libssl"),
    ("pkg.libs/libplain.so.1", "libplain"),
])
def test_grafted_names_lose_auditwheels_hash(member: str, name: str) -> None:
    assert grafted_name(member) == name


def test_cli_writes_the_formats_asked_for(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["report", "--db", str(store_path), "-o", str(out), "--format", "md",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]
    written = write_report(store_path, tmp_path / "all", run_id=1)
    assert [p.name for p in written] == ["report.html", "report.md", "report.json"]
    assert json.loads(written[2].read_text())["run"]["id"] == 1


def test_an_output_folder_that_cannot_be_made_is_an_error(store_path: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["report", "--db", str(store_path), "-o", str(blocker / "report")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("fastaudit: ") and "cannot write the report" in result.output


@pytest.mark.parametrize("case", ["missing", "not sqlite", "foreign sqlite", "newer schema", "no runs",
                                  "unknown run", "unknown base", "no completed run"])
def test_bad_input_is_a_one_line_error_and_exit_2(case: str, store_path: Path, tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    args = []
    if case == "missing":
        expected = "no such store file"
    elif case == "not sqlite":
        db.write_bytes(b"not a database at all" * 100)
        expected = "cannot open the store"
    elif case == "foreign sqlite":
        with sqlite3.connect(db) as c:
            c.execute("CREATE TABLE t (x)")
        expected = "not a fastaudit store"
    elif case == "newer schema":
        with sqlite3.connect(db) as c:
            c.execute("PRAGMA user_version=99")
        expected = "schema 99"
    elif case == "no runs":
        Store(db).close()
        expected = "no runs"
    elif case == "no completed run":
        with Store(db) as store:
            run(store, [], status="interrupted")
        expected = "no completed run"
    else:
        db = store_path
        args = ["--run", "9"] if case == "unknown run" else ["--compare-to", "9"]
        expected = "no run 9" if case == "unknown run" else "with run 9"
    before = db.read_bytes() if db.exists() else None
    result = CliRunner().invoke(main, ["report", "--db", str(db), "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("fastaudit: ") and expected in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (db.read_bytes() if db.exists() else None) == before  # read only: nothing created or migrated


def test_report_error_is_typed(store_path: Path) -> None:
    with Store(store_path, readonly=True) as store, pytest.raises(ReportError):
        compute_figures(store, run_id=0)
    with pytest.raises(StoreError):
        Store(store_path.parent / "absent.db", readonly=True)


def test_html_escapes_what_the_store_holds(tmp_path: Path) -> None:
    """File names and error messages come from the mirror: they must reach the page as text."""
    hostile = "<script>alert(1)</script>"
    path = tmp_path / "store.db"
    with Store(path) as store:
        run(store, [other(f"x{hostile}-1.0-py3-none-any.whl", "error", f"p{hostile}"),
                    linux(B, overall="manylinux_2_28_x86_64", glibc=("GLIBC_2.28",), over=(f"needs {hostile}",))])
    with Store(path, readonly=True) as store:
        page = render_html(compute_figures(store))
    assert hostile not in page
    assert page.count(html.escape(hostile)) >= 3  # the error's wheel, its message, the reason


def test_a_run_with_nothing_audited_still_renders(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store(path) as store:
        run(store, [other(D, "pure", "six")])
    with Store(path, readonly=True) as store:
        figures = compute_figures(store)
    schema = json.loads(resources.files("fastaudit").joinpath("schema/report-v1.json").read_text())
    jsonschema.validate(figures, schema)
    assert figures["headline"]["pure"] == 1 and figures["diff"] is None
    page = render_html(figures)
    for chart in ("chart-matrix", "chart-arch", "chart-glibc", "chart-external", "chart-grafted"):
        assert f'<p class="empty" id="{chart}">' in page
    assert "No earlier completed run" in render_markdown(figures)


def test_a_snapshot_does_not_see_a_scan_commit_halfway(store_path: Path) -> None:
    """compute_figures reads in one snapshot: a run a scan finishes meanwhile shows up only after."""
    with Store(store_path, readonly=True) as reader, Store(store_path) as writer:
        with reader.snapshot():
            before = reader.runs()
            new_run = run(writer, [other(F.replace("pywin", "later"), "not_linux", "later")])
            assert reader.runs() == before
            assert reader.run_outcome_counts([new_run]) == {new_run: {}}
        assert [r.id for r in reader.runs()] == [r.id for r in before] + [new_run]


def test_the_report_never_loads_the_elf_reader() -> None:
    """report/ renders stored results (DESIGN.md layers): neither the ELF extension nor numpy."""
    code = ("import sys, fastaudit.report.nightly, fastaudit.cli; "
            "print(sorted(m for m in sys.modules if m in ('numpy', 'fastaudit.elf', 'fastaudit.analyze')"
            " or m.startswith('fastaudit._')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
