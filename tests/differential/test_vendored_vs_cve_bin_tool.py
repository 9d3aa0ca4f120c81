"""Vendored-library versions against cve-bin-tool's version checkers, on the same real members.

cve-bin-tool (PyPI, test-only) runs `strings` over a file and matches about 360 product patterns.
Its checkers run here directly on each ELF member of the wheels of the hand-checked table (its
CVE database is never opened). Where both tools give a version for the same product (CPE
vendor:product) in the same member, the versions must agree. Where only cve-bin-tool gives one,
the product must be one of the explained differences below, or a library the member loads as a
shared object (whose version text it quotes from headers); a new one fails the test.

FASTAUDIT_DIFF_SET picks the wheels (default "ci": those of the table that are in the ci set;
"vendored" or "full" for the whole table, about ten minutes).
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from fastaudit.facts import read_wheel_facts
from fastaudit.vendored import libraries, library_named, real_file_name
from tests.corpus import corpus_wheels

EXPECTED = json.loads((Path(__file__).parents[1] / "data" / "vendored-expected.json").read_text())
DIFF_SET = os.environ.get("FASTAUDIT_DIFF_SET", "ci")
WHEELS = [w for w in corpus_wheels("vendored" if DIFF_SET in ("vendored", "full", "all") else DIFF_SET)
          if w is None or w.name in EXPECTED]

# Products only cve-bin-tool dates, and why we do not.
EXPLAINED = {
    # the compiler named in .comment ("GCC: (GNU) 14.2.1") built the file; no GCC code is shipped
    "gnu:gcc": "compiler of the file, not a vendored library",
    # formats with no literal to anchor on (a bare "9d  12-Jan-2020", "8.32 2012-11-30", "10.1.0"):
    # we name the library and leave its version unknown; cve-bin-tool also reads libjpeg-turbo's
    # API level "6b" as IJG libjpeg 6b
    "ijg:libjpeg": "JVERSION has no anchor; libjpeg-turbo's is its API level (6b, 8d), not a release",
    "pcre:pcre": "version string has no anchor",
    "harfbuzz_project:harfbuzz": "bare version string",
    "bzip:bzip2": "BZ2_bzlibVersion's string has no anchor (here inside libfreetype)",
    # build paths compiled into assertions (/project/json-c-0.15/..., /io/gdal-3.8.4/...):
    # the directory a build ran in, which we do not take for a version
    "json-c_project:json-c": "build path",
    "json-c:json-c": "build path",
    "gdal:gdal": "build path",
    "osgeo:gdal": "build path",
    # libcurl builds whose version string is assembled at run time ("libcurl/%s")
    "haxx:libcurl": "no literal version string in these builds",
    "haxx:curl": "no literal version string in these builds",
    # a project-renamed file (libzstd-rasterio.so.1.5.0) is not matched by zstd's file-name rule
    "facebook:zstandard": "renamed file, no version string",
    # cve-bin-tool's own false positives: libavcodec's library version (7.1.102 style) read as
    # dav1d's; nghttp2 versions read from unrelated numbers in libcurl and libnghttp2
    "videolan:dav1d": "cve-bin-tool false positive",
    "nghttp2:nghttp2": "cve-bin-tool false positive",
}


def _cve_bin_tool_versions(path: Path) -> list[tuple[tuple[str, ...], set[str]]]:
    """(the checker's vendor:product names, the versions it found) for each checker that found one;
    a checker may name one product under several vendors (tesseract_project and tesseract_ocr_project)."""
    from cve_bin_tool.checkers import BUILTIN_CHECKERS
    from cve_bin_tool.strings import parse_strings

    lines = parse_strings(str(path))
    found: list[tuple[tuple[str, ...], set[str]]] = []
    for entry in BUILTIN_CHECKERS.values():
        try:
            checker = entry.load()
        except Exception:  # noqa: BLE001 - the sqlite checker downloads its version map at import
            continue
        result = checker().get_version(lines, str(path))
        versions = {item["version"] for item in (result if isinstance(result, list) else [result])
                    if item.get("is_or_contains") and item.get("version", "UNKNOWN") != "UNKNOWN"}
        if versions:
            found.append((tuple(f"{vendor}:{product}" for vendor, product in checker.VENDOR_PRODUCT), versions))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("wheel", WHEELS, ids=lambda p: p.name if p else "unavailable")
def test_versions_agree_with_cve_bin_tool(wheel: Path, tmp_path: Path) -> None:
    pytest.importorskip("cve_bin_tool")
    os.environ.setdefault("HOME", str(tmp_path))
    (Path.home() / ".cache" / "cve-bin-tool").mkdir(parents=True, exist_ok=True)
    # by CPE product: cve-bin-tool lists several vendors for some products (libpng under greg_roelofs)
    product_of = {lib.cpe.rsplit(":", 1)[1]: lib.project for lib in libraries()}
    facts = read_wheel_facts(wheel)
    vendored = facts.vendored()
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(facts.members):  # every ELF member, those we found nothing in too
            components = vendored.get(member, ())
            ours: dict[str, set[str]] = {}
            for c in components:
                if c.version is not None:
                    ours.setdefault(c.project, set()).add(c.version)
            # a member that loads a project's shared library quotes that library's version text from
            # the headers it was compiled with: we report the shared library, not the member
            needed = facts.members[member].info.needed
            linked = {lib.project for lib in (library_named(real_file_name(n)) for n in needed) if lib}
            target = tmp_path / Path(member).name
            target.write_bytes(archive.read(member))
            for products, versions in _cve_bin_tool_versions(target):
                projects = {product_of.get(product.split(":", 1)[1]) for product in products} - {None}
                if projects & ours.keys():
                    for project in projects & ours.keys():
                        assert ours[project] & versions, f"{member}: {project} {ours[project]} vs {versions}"
                elif not projects & linked:
                    assert set(products) & EXPLAINED.keys(), f"{member}: only cve-bin-tool dates {products} {versions}"
            target.unlink()
