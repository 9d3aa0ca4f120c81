"""Vendored native libraries on real PyPI wheels, against a hand-checked table.

tests/data/vendored-expected.json lists, for each wheel of the "vendored" set, every library
fastaudit must find: (member, project, version, evidence). The table was made by hand: every
version in it was checked with `strings` against the member's bytes (the version string, for
"version-string"), or against the member's file name ("file-name"); a project known by name only
has no version. The test fails on a missing library, an extra one or a different version, so an
invented version cannot pass.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from fastaudit.facts import read_wheel_facts
from fastaudit.sbom import wheel_sbom
from tests.corpus import corpus_wheels

EXPECTED = json.loads((Path(__file__).parents[1] / "data" / "vendored-expected.json").read_text())
WHEELS = corpus_wheels("vendored")


def _found(wheel: Path) -> set[tuple[str, str, str | None, str]]:
    return {(c.member, c.project, c.version, c.evidence)
            for components in read_wheel_facts(wheel).vendored().values() for c in components}


def test_the_table_is_large_enough_and_names_the_projects_that_vendor_most() -> None:
    projects = {row[1] for rows in EXPECTED.values() for row in rows}
    assert len(EXPECTED) >= 25
    assert {"openssl", "zlib", "libpng", "libtiff", "ffmpeg", "curl", "hdf5", "krb5", "boringssl"} <= projects


@pytest.mark.slow
@pytest.mark.parametrize("wheel", WHEELS, ids=lambda p: p.name if p else "unavailable")
def test_vendored_libraries_match_the_hand_checked_table(wheel: Path) -> None:
    expected = {(m, p, v, e) for m, p, v, e in EXPECTED[wheel.name]}
    found = _found(wheel)
    assert found - expected == set(), "found, not in the table"
    assert expected - found == set(), "in the table, not found"


@pytest.mark.slow
@pytest.mark.parametrize("wheel", [w for w in WHEELS if w is None or w.name.lower().startswith(("psycopg2", "pillow"))],
                         ids=lambda p: p.name if p else "unavailable")
def test_the_sbom_validates_and_names_every_grafted_file_with_its_true_sha256(wheel: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    document = wheel_sbom(wheel)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None
    with zipfile.ZipFile(wheel) as archive:
        grafted = {n: hashlib.sha256(archive.read(n)).hexdigest() for n in archive.namelist()
                   if n.split("/")[0].endswith(".libs") and n.count("/") == 1 and not n.endswith("/")}
    listed: dict[str, set[str]] = {}
    for component in document["components"]:
        path = next(p["value"] for p in component["properties"] if p["name"] == "fastaudit:path")
        listed.setdefault(path, set()).update(h["content"] for h in component.get("hashes", ()))
    assert grafted, "the wheel grafts libraries"
    for path, digest in grafted.items():
        assert listed.get(path) == {digest}, path
    name = wheel.name.split("-")[0].lower().replace("_", "-")
    assert document["metadata"]["component"]["purl"].startswith(f"pkg:pypi/{name}@")
    refs = {c["bom-ref"] for c in document["components"]}
    root = next(d for d in document["dependencies"] if d["ref"] == document["metadata"]["component"]["bom-ref"])
    assert set(root["dependsOn"]) == refs


@pytest.mark.slow
def test_an_advisory_flags_exactly_the_wheels_that_carry_the_version(tmp_path: Path) -> None:
    """A scan of the table's wheels, then an advisory naming OpenSSL 1.1.1w: the members flagged
    are those the hand-checked table says carry it, statically linked copies included."""
    import os

    from fastaudit.advisories import findings, load_advisories
    from fastaudit.scan import ScanOptions, scan
    from fastaudit.store import Store

    wheels = [w for w in WHEELS if w is not None]
    if not wheels:
        pytest.skip("SKIPPED LOUDLY: the vendored wheel set is unavailable")
    tree = tmp_path / "mirror"
    tree.mkdir()
    for wheel in wheels:
        os.link(wheel, tree / wheel.name)
    advisory = tmp_path / "advisories.json"
    advisory.write_text(json.dumps({"advisories": [{"id": "TEST-1", "library": "openssl", "versions": ["1.1.1w"]}]}))
    with Store(tmp_path / "store.db") as store:
        summary = scan([tree], store, ScanOptions(jobs=2), progress=False)
        flagged = {(f.wheel, f.member) for f in findings(load_advisories(advisory),
                                                          store.vendored_libraries(summary.run_id))}
    expected = {(w, m) for w, rows in EXPECTED.items() if w in {x.name for x in wheels}
                for m, p, v, _ in rows if p == "openssl" and v == "1.1.1w"}
    assert len(expected) >= 4
    assert flagged == expected
