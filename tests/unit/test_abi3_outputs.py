"""The abi3 criterion where people read it: scan's store, the nightly report (JSON, HTML, Markdown)
and `fastaudit abi3`, the drop-in for cibuildwheel's `abi3audit --strict --report {abi3_wheel}`."""
from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from fastaudit.cli import main
from fastaudit.report.figures import compute_figures
from fastaudit.report.html import render_html
from fastaudit.report.markdown import render_markdown
from fastaudit.scan import ScanOptions, scan
from fastaudit.store import Store
from tests.abi3build import build_objects, pack

SHOW_SCHEMA = json.loads(resources.files("fastaudit").joinpath("schema/show-v3.json").read_text())
REPORT_SCHEMA = json.loads(resources.files("fastaudit").joinpath("schema/report-v1.json").read_text())

# case, tag: two wheels over-promise a 3.10 function, one uses a private one, three keep the promise
WHEELS = [("clean", "cp38-abi3-linux_x86_64"), ("needs310", "cp38-abi3-linux_x86_64"),
          ("needs310", "cp39-abi3-linux_x86_64"), ("private", "cp38-abi3-linux_x86_64"),
          ("ownpy", "cp38-abi3-linux_x86_64"), ("foreign", "cp310-abi3-linux_x86_64")]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    built = build_objects(tmp_path_factory.mktemp("objects"))
    out = tmp_path_factory.mktemp("mirror")
    for case, tag in WHEELS:
        wheel = pack(built, tmp_path_factory.mktemp("w"), case, tag)
        shutil.copy(wheel, out / wheel.name)
    # a version-specific wheel without any *.abi3.so: not an abi3 wheel, no criterion
    plain = pack(built, tmp_path_factory.mktemp("w"), "clean", "cp311-cp311-linux_x86_64", member="clean.so")
    shutil.copy(plain, out / plain.name)
    return out


@pytest.fixture(scope="module")
def store_path(mirror, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "fa.db"
    with Store(path) as store:
        scan([mirror], store, ScanOptions(jobs=1), progress=False)
    return path


def test_the_store_keeps_the_criterion(store_path):
    with Store(store_path, readonly=True) as store:
        lines = list(store.run_lines(1))
        rows = list(store.run_abi3(1))
    assert len(lines) == 7
    for line in lines:
        jsonschema.validate({k: v for k, v in line.items() if k not in ("path", "scan")}, SHOW_SCHEMA)
    by_wheel = {line["wheel"]: line["fastaudit"]["abi3"] for line in lines}
    assert by_wheel["fa_clean-1.0-cp311-cp311-linux_x86_64.whl"] is None
    assert by_wheel["fa_needs310-1.0-cp39-abi3-linux_x86_64.whl"]["computed"] == "3.10"
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("fa_clean-1.0-cp38-abi3-linux_x86_64.whl", "3.8", "3.8", False),
        ("fa_foreign-1.0-cp310-abi3-linux_x86_64.whl", "3.10", "3.10", False),
        ("fa_needs310-1.0-cp38-abi3-linux_x86_64.whl", "3.8", "3.10", True),
        ("fa_needs310-1.0-cp39-abi3-linux_x86_64.whl", "3.9", "3.10", True),
        ("fa_ownpy-1.0-cp38-abi3-linux_x86_64.whl", "3.8", "3.8", False),
        ("fa_private-1.0-cp38-abi3-linux_x86_64.whl", "3.8", "3.8", True),
    ]


def test_the_report_counts_abi3_wheels_and_offending_symbols(store_path):
    with Store(store_path, readonly=True) as store:
        figures = compute_figures(store)
    jsonschema.validate(figures, REPORT_SCHEMA)
    abi3 = figures["abi3"]
    assert (abi3["wheels"], abi3["over_promising"], abi3["consistent"]) == (6, 3, 3)
    assert abi3["baselines"] == [{"baseline": "3.8", "wheels": 4}, {"baseline": "3.9", "wheels": 1},
                                 {"baseline": "3.10", "wheels": 1}]
    assert abi3["offending_symbols"] == [
        {"name": "PyModule_AddObjectRef", "wheels": 2, "kind": "newer than the baseline"},
        {"name": "_Py_HashBytes", "wheels": 1, "kind": "outside the stable ABI"},
    ]
    [private] = [w for w in abi3["over_promising_wheels"] if w["wheel"].startswith("fa_private")]
    assert private["problems"] == ["fa_private/private.abi3.so: uses _Py_HashBytes, a CPython symbol outside"
                                   " the stable ABI"]
    # the abi3 over-promisers are over-promising wheels of the run, with the reason
    over = {o["wheel"]: o["reasons"] for o in figures["over_promising"]}
    assert any("PyModule_AddObjectRef" in r for r in over["fa_needs310-1.0-cp38-abi3-linux_x86_64.whl"])
    assert figures["headline"]["over_promising"] == 3

    page = render_html(figures)
    assert '<section id="abi3">' in page and 'id="abi3-over_promising"><b>3</b>' in page
    assert "PyModule_AddObjectRef (newer than the baseline)" in page and "table-abi3" in page
    text = render_markdown(figures)
    assert "## abi3 (stable ABI)" in text and "| 6 | 3 | 3 |" in text
    assert "| `_Py_HashBytes` | outside the stable ABI | 1 |" in text


def _run(*args: str):
    return CliRunner().invoke(main, ["abi3", *args], catch_exceptions=False)


def test_abi3_command_exit_codes(mirror, tmp_path):
    ok = [str(mirror / f"fa_{c}-1.0-{t}.whl") for c, t in WHEELS if c in ("clean", "ownpy", "foreign")]
    bad = str(mirror / "fa_needs310-1.0-cp38-abi3-linux_x86_64.whl")
    plain = str(mirror / "fa_clean-1.0-cp311-cp311-linux_x86_64.whl")
    assert _run(*ok).exit_code == 0
    result = _run(*ok, bad)
    assert result.exit_code == 1
    assert "uses PyModule_AddObjectRef, in the stable ABI only since 3.10" in result.output
    assert "1 extensions scanned; 1 ABI version mismatches and 0 ABI violations found" in result.output
    assert _run(plain).exit_code == 0           # nothing to audit: a note, not a failure
    assert _run("--strict", plain).exit_code == 1
    broken = tmp_path / "fa_broken-1.0-cp38-abi3-linux_x86_64.whl"
    broken.write_bytes(b"not a zip")
    result = _run(str(broken), *ok)
    assert result.exit_code == 2 and "fastaudit:" in result.output


def test_abi3_command_report_has_abi3audits_shape(mirror, tmp_path):
    wheel = str(mirror / "fa_private-1.0-cp38-abi3-linux_x86_64.whl")
    out = tmp_path / "report.json"
    assert _run("--strict", "--report", "-o", str(out), wheel).exit_code == 1
    report = json.loads(out.read_text())
    [entry] = report["specs"][wheel]["wheel"]
    assert report["specs"][wheel]["kind"] == "wheel" and entry["name"] == "private.abi3.so"
    result = entry["result"]
    assert {k: result[k] for k in ("is_abi3", "is_abi3_baseline_compatible", "baseline", "computed",
                                   "non_abi3_symbols", "future_abi3_objects")} == {
        "is_abi3": False, "is_abi3_baseline_compatible": True, "baseline": "3.8", "computed": "3.8",
        "non_abi3_symbols": ["_Py_HashBytes"], "future_abi3_objects": {}}
    # without -o the report goes to stdout, the summary to stderr
    result = CliRunner().invoke(main, ["abi3", "--report", wheel])
    assert json.loads(result.stdout)["specs"][wheel]["wheel"][0]["name"] == "private.abi3.so"
    assert "ABI violations found" in result.stderr


def test_abi3_command_refuses_what_is_not_a_wheel_file_in_one_line(mirror, tmp_path):
    fifo = tmp_path / "fa_fifo-1.0-cp38-abi3-linux_x86_64.whl"
    os.mkfifo(fifo)
    ok = str(mirror / "fa_clean-1.0-cp38-abi3-linux_x86_64.whl")
    result = _run(str(fifo), ok)  # a FIFO is refused, never read for ever; the next wheel is audited
    assert result.exit_code == 2 and result.output.count("fastaudit:") == 1
    out = tmp_path / "no-such-folder" / "report.json"
    result = _run("--report", "-o", str(out), ok)
    assert result.exit_code == 2 and "fastaudit:" in result.output and not out.exists()
