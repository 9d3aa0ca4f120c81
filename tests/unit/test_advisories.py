"""Advisory files in both formats, and the version order they are matched in."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastaudit.advisories import AdvisoryError, Range, findings, load_advisories, version_key


@pytest.mark.parametrize("older, newer", [
    ("1.1.1", "1.1.1a"), ("1.1.1a", "1.1.1w"), ("1.1.1w", "3.0.0"), ("0.3.21.dev", "0.3.21"),
    ("0.3.21", "0.3.27"), ("1.2.9", "1.2.13"), ("1.6.37", "1.6.40"), ("9.0.2", "10.0"), ("1.3", "1.3.1"),
])
def test_version_order(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


def test_ranges_follow_osv_events() -> None:
    assert Range("1.6.0", fixed="1.6.40").contains("1.6.37")
    assert not Range("1.6.0", fixed="1.6.40").contains("1.6.40")
    assert Range("0", last_affected="1.1.1w").contains("1.1.1w")
    assert not Range("3.0.0").contains("1.1.1w")
    assert Range("3.0.0").contains("3.5.1")


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "advisories.json"
    path.write_text(json.dumps(document))
    return path


def test_our_format(tmp_path: Path) -> None:
    [advisory] = load_advisories(_write(tmp_path, {"advisories": [
        {"id": "CVE-2023-4863", "library": "libwebp", "summary": "heap overflow",
         "ranges": [{"introduced": "0", "fixed": "1.3.2"}], "versions": ["1.3.2-rc1"]}]}))
    assert advisory.affects("1.3.1") and advisory.affects("1.3.2-rc1")
    assert not advisory.affects("1.3.2") and not advisory.affects(None)


def test_osv_records_keep_the_packages_we_can_map(tmp_path: Path) -> None:
    records = [
        {"id": "OSV-1", "summary": "zlib", "affected": [
            {"package": {"ecosystem": "OSS-Fuzz", "name": "zlib"},
             "ranges": [{"type": "GIT", "events": [{"introduced": "abc123"}, {"fixed": "def456"}]},
                        {"type": "ECOSYSTEM", "events": [{"introduced": "1.2.0"}, {"fixed": "1.2.12"}]}]}]},
        {"id": "OSV-2", "affected": [{"package": {"purl": "pkg:generic/openssl@3.0.0"}, "versions": ["3.0.0"]}]},
        {"id": "OSV-3", "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"}, "versions": ["2.0"]}]},
    ]
    advisories = load_advisories(_write(tmp_path, records))
    assert [(a.id, a.library) for a in advisories] == [("OSV-1", "zlib"), ("OSV-2", "openssl")]
    zlib = advisories[0]
    assert zlib.affects("1.2.11") and not zlib.affects("1.2.12") and not zlib.affects("1.3.1")


@pytest.mark.parametrize("content", ["not json", '{"advisories": [{"id": "X"}]}',
                                     '{"advisories": [{"id": "X", "library": "nosuchlib"}]}',
                                     '{"advisories": [{"id": "X", "library": "zlib", "ranges": 5}]}'])
def test_a_bad_file_is_one_typed_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(AdvisoryError) as raised:
        load_advisories(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_an_unknown_version_is_never_affected(tmp_path: Path) -> None:
    advisories = load_advisories(_write(tmp_path, {"advisories": [
        {"id": "A", "library": "libwebp", "ranges": [{"introduced": "0"}]}]}))
    rows = [("libwebp", None, "w.whl", "w", "w.libs/libwebp.so", "name", "shared"),
            ("libwebp", "1.0.0", "v.whl", "v", "v.libs/libwebp.so", "version-string", "shared")]
    assert [(f.wheel, f.version) for f in findings(advisories, rows)] == [("v.whl", "1.0.0")]
