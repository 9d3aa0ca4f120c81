"""The abi3 criterion on extensions gcc builds against the 3.8 limited API (tests/abi3build.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from fastaudit.abi3 import abi3_baseline
from fastaudit.analyze import ABI3, audit_wheel
from fastaudit.errors import PolicyError
from fastaudit.facts import read_wheel_elves
from fastaudit.policy.stable_abi import _parse, stable_abi
from fastaudit.report.show import render_text
from fastaudit.results import to_json
from fastaudit.wheel import parse_wheel_name
from tests.abi3build import Abi3Fixtures, build_objects, pack

SCHEMA = json.loads(resources.files("fastaudit").joinpath("schema/show-v3.json").read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Abi3Fixtures:
    return build_objects(tmp_path_factory.mktemp("abi3-objects"))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("abi3-wheels")


def _member(report, case: str, name: str | None = None):
    path = f"fa_{case}/{name or case + '.abi3.so'}"
    return next(m for m in report.abi3.members if m.member == path)


def test_clean_extension_is_consistent(built, wheels):
    report = audit_wheel(pack(built, wheels, "clean"))
    m = _member(report, "clean")
    assert (report.abi3.baseline, report.abi3.computed, m.needed) == ((3, 8), (3, 8), (3, 2))
    assert m.non_abi3_symbols == () and m.future_abi3_objects == {}
    assert not report.abi3.over_promises and report.abi3.reasons == ()
    assert not any(r.criterion == ABI3 for r in report.over_promise_reasons)


def test_function_added_in_310_over_promises_and_is_named(built, wheels):
    report = audit_wheel(pack(built, wheels, "needs310"))
    m = _member(report, "needs310")
    assert m.future_abi3_objects == {"PyModule_AddObjectRef": (3, 10)}
    assert (m.needed, m.computed, report.abi3.computed) == ((3, 10), (3, 10), (3, 10))
    assert report.over_promises and report.abi3.over_promises
    [reason] = [r for r in report.over_promise_reasons if r.criterion == ABI3]
    assert reason.member == "fa_needs310/needs310.abi3.so"
    assert "PyModule_AddObjectRef" in reason.detail and "3.10" in reason.detail and "cp38-abi3" in reason.detail
    # tagged for what it needs, the same object is consistent
    assert not audit_wheel(pack(built, wheels, "needs310", "cp310-abi3-linux_x86_64")).abi3.over_promises


def test_private_function_is_a_named_violation(built, wheels):
    report = audit_wheel(pack(built, wheels, "private"))
    m = _member(report, "private")
    assert m.non_abi3_symbols == ("_Py_HashBytes",) and report.abi3.non_abi3_symbols == ("_Py_HashBytes",)
    assert m.computed == (3, 8)  # in range, but outside the stable ABI altogether
    [reason] = [r for r in report.over_promise_reasons if r.criterion == ABI3]
    assert reason.member == "fa_private/private.abi3.so" and "_Py_HashBytes" in reason.detail
    assert report.over_promises


def test_a_py_name_the_object_defines_is_never_a_violation(built, wheels):
    wheel = pack(built, wheels, "ownpy")
    assert "PyFoo_Answer" in read_wheel_elves(wheel)["fa_ownpy/ownpy.abi3.so"].defined_symbols
    report = audit_wheel(wheel)
    m = _member(report, "ownpy")
    assert m.non_abi3_symbols == () and m.foreign_symbols == {} and not report.abi3.over_promises


def test_weak_import_is_the_guard_pattern(built, wheels):
    report = audit_wheel(pack(built, wheels, "guarded"))
    m = _member(report, "guarded")
    assert m.guarded_symbols == ("PyModule_AddObjectRef",)
    assert m.future_abi3_objects == {} and m.computed == (3, 8) and not report.abi3.over_promises


def test_py_name_another_library_provides_is_not_cpythons(built, wheels):
    report = audit_wheel(pack(built, wheels, "foreign"))
    m = _member(report, "foreign")
    assert m.foreign_symbols == {"PyFa_Provided": "fa_foreign/libpyfa.so"}
    assert m.non_abi3_symbols == () and not report.abi3.over_promises
    assert not stable_abi().is_cpython_symbol("PyFa_Provided")


def test_free_threaded_import_is_reported(built, wheels):
    report = audit_wheel(pack(built, wheels, "freethreaded"))
    m = _member(report, "freethreaded")
    assert m.free_threaded == ("_Py_DecRefShared",) and m.non_abi3_symbols == ("_Py_DecRefShared",)
    details = [r.detail for r in report.over_promise_reasons if r.criterion == ABI3]
    assert any("free-threaded" in d and "_Py_DecRefShared" in d for d in details)


@pytest.mark.parametrize("suffix, free_threaded", [
    ("clean.cpython-311-x86_64-linux-gnu.so", False),
    ("clean.cpython-313t-x86_64-linux-gnu.so", True),
])
def test_version_specific_extension_in_an_abi3_wheel(built, wheels, suffix, free_threaded):
    report = audit_wheel(pack(built, wheels, "clean", member=suffix))
    m = _member(report, "clean", suffix)
    assert m.version_specific == suffix[len("clean"):]
    assert bool(m.free_threaded) == free_threaded
    details = [r.detail for r in report.over_promise_reasons if r.criterion == ABI3]
    assert any("version-specific" in d and m.version_specific in d for d in details)
    assert any("free-threaded" in d for d in details) == free_threaded


@pytest.mark.parametrize("tag, claims", [
    ("cp313-abi3.cp313t-linux_x86_64", ["cp313t"]),
    ("cp314t-abi3-linux_x86_64", ["cp314t"]),
    ("cp314-abi3t-linux_x86_64", ["cp314-abi3t"]),
    ("cp315-abi3.abi3t-linux_x86_64", []),   # abi3t, the free-threaded stable ABI, exists from 3.15
    ("cp38-abi3-linux_x86_64", []),
])
def test_free_threaded_abi3_claims(built, wheels, tag, claims):
    report = audit_wheel(pack(built, wheels, "clean", tag))
    assert list(report.abi3.free_threaded_claims) == claims
    assert report.abi3.over_promises == bool(claims)


def test_abi3_so_in_a_version_specific_wheel_is_checked_but_promises_nothing(built, wheels):
    report = audit_wheel(pack(built, wheels, "private", "cp311-cp311-linux_x86_64"))
    assert report.abi3.baseline is None and report.abi3.non_abi3_symbols == ("_Py_HashBytes",)
    assert not report.abi3.over_promises and not any(r.criterion == ABI3 for r in report.over_promise_reasons)
    assert report.abi3.reasons  # still shown as the criterion's finding


def test_wheel_without_abi3_has_no_criterion(built, wheels):
    report = audit_wheel(pack(built, wheels, "clean", "cp311-cp311-linux_x86_64", member="clean.so"))
    assert report.abi3 is None
    assert to_json(report)["fastaudit"]["abi3"] is None


@pytest.mark.parametrize("tags, baseline", [
    ("cp38-abi3-linux_x86_64", (3, 8)), ("cp37.cp310-abi3-linux_x86_64", (3, 10)),
    ("cp311-cp311-linux_x86_64", None), ("py3-none-any", None),
])
def test_baseline_is_the_highest_abi3_python_tag(tags, baseline):
    assert abi3_baseline(parse_wheel_name(f"x-1.0-{tags}.whl")) == baseline


def test_json_and_text(built, wheels):
    report = audit_wheel(pack(built, wheels, "needs310"))
    document = to_json(report)
    jsonschema.validate(document, SCHEMA)
    abi3 = document["fastaudit"]["abi3"]
    assert (abi3["baseline"], abi3["computed"], abi3["over_promises"]) == ("3.8", "3.10", True)
    [member] = abi3["members"]
    assert member["future_abi3_objects"] == {"PyModule_AddObjectRef": "3.10"}
    assert member["is_abi3"] and not member["is_abi3_baseline_compatible"]
    assert any(r["criterion"] == "abi3" for r in document["fastaudit"]["over_promise_reasons"])
    text = render_text(report)
    assert "abi3: tagged cp38-abi3, 1 object need 3.10  -> OVER-PROMISES" in text
    assert "PyModule_AddObjectRef" in text
    for case in ("clean", "private", "foreign", "guarded", "ownpy", "freethreaded"):
        jsonschema.validate(to_json(audit_wheel(pack(built, wheels, case))), SCHEMA)


def _python38() -> str | None:
    """A CPython 3.8 that runs (a pyenv shim without the version selected does not)."""
    versions = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv"), "versions")
    candidates = [str(p) for p in versions.glob("3.8.*/bin/python3.8")]
    candidates += [shutil.which("python3.8") or ""]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                          capture_output=True).returncode == 0:
            return candidate
    return None


_PYTHON38 = _python38()


@pytest.mark.skipif(_PYTHON38 is None, reason="needs a CPython 3.8 interpreter to import the extensions")
@pytest.mark.parametrize("case, loads", [("clean", True), ("needs310", False), ("guarded", True)])
def test_the_verdict_is_what_cpython_38_does(built, wheels, tmp_path, case, loads):
    """What the check says is what 3.8's loader does: the over-promising extension fails to import
    there, the clean and the guarded ones import."""
    with zipfile.ZipFile(pack(built, wheels, case)) as zf:
        zf.extractall(tmp_path)
    os.rename(tmp_path / f"fa_{case}" / f"{case}.abi3.so", tmp_path / f"{case}.abi3.so")
    result = subprocess.run([_PYTHON38, "-c", f"import {case}"], cwd=tmp_path, capture_output=True, text=True)
    assert (result.returncode == 0) == loads, result.stderr
    if not loads:
        assert "undefined symbol: PyModule_AddObjectRef" in result.stderr
    assert audit_wheel(pack(built, wheels, case)).abi3.over_promises == (not loads)


@pytest.mark.parametrize("damage", [
    lambda d: d.update(format="other/1"),
    lambda d: d["stable_abi"]["functions"].update(PyBroken="three"),
    lambda d: d["exports"]["symbols"].update(PyX=1 << 40),
    lambda d: d["exports"]["symbols"].update(PyX=0),
    lambda d: d["stable_abi"]["abi_only"].append("NotInTheManifest"),
    lambda d: d["stable_abi"]["data"].update(PyArg_Parse="3.2"),
    lambda d: d.pop("exports"),
])
def test_malformed_stable_abi_data_is_a_policy_error(damage):
    document = json.loads(resources.files("fastaudit.policy").joinpath("stable-abi.json").read_text())
    damage(document)
    with pytest.raises(PolicyError):
        _parse(document)


def test_the_data_knows_the_facts_the_tests_rely_on():
    abi = stable_abi()
    assert abi.added["PyModule_AddObjectRef"] == (3, 10) and abi.added["PyModule_Create2"] == (3, 2)
    assert "_Py_HashBytes" not in abi.added and (3, 8) in abi.exported_by("_Py_HashBytes")
    assert abi.exported_by("PyModule_AddType")[0] == (3, 9)  # exported a release before it was stable ABI
    assert "_Py_DecRefShared" in abi.free_threaded_only and not abi.exported_by("_Py_DecRefShared")
    assert abi.export_versions[0] == (3, 6) and abi.export_versions[-1] >= (3, 14)
