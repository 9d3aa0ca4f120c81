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
from fastaudit.vendored import real_file_name
from tests.corpus import corpus_wheels

EXPECTED = json.loads((Path(__file__).parents[1] / "data" / "vendored-expected.json").read_text())
WHEELS = corpus_wheels("vendored")


def _found(wheel: Path) -> set[tuple]:
    """(member, project, version, evidence), and the lower bound a symbol-versions row gives."""
    return {(c.member, c.project, c.version, c.evidence) + ((c.at_least,) if c.at_least else ())
            for components in read_wheel_facts(wheel).vendored().values() for c in components}


def test_the_table_is_large_enough_and_names_the_projects_that_vendor_most() -> None:
    projects = {row[1] for rows in EXPECTED.values() for row in rows}
    assert len(EXPECTED) >= 25
    assert {"openssl", "zlib", "libpng", "libtiff", "ffmpeg", "curl", "hdf5", "krb5", "boringssl"} <= projects


@pytest.mark.slow
@pytest.mark.parametrize("wheel", WHEELS, ids=lambda p: p.name if p else "unavailable")
def test_vendored_libraries_match_the_hand_checked_table(wheel: Path) -> None:
    expected = {tuple(row) for row in EXPECTED[wheel.name]}
    found = _found(wheel)
    assert found - expected == set(), "found, not in the table"
    assert expected - found == set(), "in the table, not found"


@pytest.mark.slow
# av's rows include auditwheel's SBOM packages, pycurl's and psycopg2's lower bounds
@pytest.mark.parametrize("wheel", [w for w in WHEELS if w is None
                                   or w.name.lower().startswith(("psycopg2", "pillow", "av-", "pycurl"))],
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
                for m, p, v, *_ in rows if p == "openssl" and v == "1.1.1w"}
    assert len(expected) >= 4
    assert flagged == expected


# -- evidence other than version strings, each on the real members that carry it ----------------

def _wheel(prefix: str) -> Path:
    found = [w for w in WHEELS if w is not None and w.name.startswith(prefix)]
    if not found:
        pytest.skip(f"SKIPPED LOUDLY: {prefix} is not in the vendored wheel set here")
    return found[0]


def _exported(data: bytes, symbol: str) -> tuple[bytes, bytes | None]:
    """pyelftools' reading of an exported data object: its bytes, and the NUL-terminated string its
    first word points to once relocated (the word itself, or its RELA entry's addend)."""
    import io

    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    elf = ELFFile(io.BytesIO(data))
    [sym] = elf.get_section_by_name(".dynsym").get_symbol_by_name(symbol)
    assert sym["st_shndx"] != "SHN_UNDEF", f"{symbol} is not defined here"

    def offset(address: int) -> int:
        return next(s["p_offset"] + address - s["p_vaddr"] for s in elf.iter_segments()
                    if s["p_type"] == "PT_LOAD" and s["p_vaddr"] <= address < s["p_vaddr"] + s["p_filesz"])

    content = data[offset(sym["st_value"]):offset(sym["st_value"]) + sym["st_size"]]
    word = int.from_bytes(content[:8], "little")
    if word == 0:
        word = next(r["r_addend"] for section in elf.iter_sections() if isinstance(section, RelocationSection)
                    for r in section.iter_relocations() if r["r_offset"] == sym["st_value"])
    try:
        start = offset(word)
        pointed = data[start:data.index(b"\0", start)]
    except StopIteration:
        pointed = None
    return content, pointed


def _member(wheel: Path, name: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name)


def test_lxml_carries_libxml2_libxslt_and_libiconv_statically_and_exports_their_versions() -> None:
    """lxml's etree links libxml2, libxslt and libiconv statically (no DT_NEEDED names them) and
    exports their version objects: xmlParserVersion and xsltEngineVersion point to LIBXML_VERSION
    and LIBXSLT_VERSION as text, _libiconv_version is major << 8 | minor."""
    from fastaudit.elf import read_elf

    wheel = _wheel("lxml-5.2.2-")
    member = "lxml/etree.cpython-312-x86_64-linux-gnu.so"
    data = _member(wheel, member)
    assert not any(n.startswith(("libxml2", "libxslt", "libiconv")) for n in read_elf(data).needed)
    assert _exported(data, "xmlParserVersion")[1] == b"21206"
    assert _exported(data, "xsltEngineVersion")[1] == b"10139"
    iconv = int.from_bytes(_exported(data, "_libiconv_version")[0][:4], "little")
    assert (iconv >> 8, iconv & 0xFF) == (1, 17)
    found = {c.project: c for c in read_wheel_facts(wheel).vendored()[member]}
    assert {p: (c.version, c.evidence, c.statically_linked) for p, c in found.items() if p != "zlib"} == {
        "libxml2": ("2.12.6", "exported-symbol", True), "libxslt": ("1.1.39", "exported-symbol", True),
        "libiconv": ("1.17", "exported-symbol", True)}
    assert found["libxml2"].detail == "xmlParserVersion = 21206"


@pytest.mark.parametrize("prefix, member, version", [
    ("pyproj-3.6.1-", "pyproj.libs/libsqlite3-7ee472c1.so.0.8.6", "3.42.0"),
    ("rasterio-1.3.10-", "rasterio.libs/libsqlite3-rasterio-b9d397b9.so.0.8.6", "3.33.0"),
    ("Fiona-1.8.20-", "Fiona.libs/libsqlite3-bc0a2dd7.so.0.8.6", "3.33.0"),
])
def test_sqlite_is_dated_by_its_exported_sqlite3_version(prefix: str, member: str, version: str) -> None:
    """SQLite's version text is a bare number, and its file name carries libtool's 0.8.6: the
    exported `const char sqlite3_version[]` is the evidence."""
    wheel = _wheel(prefix)
    content, _ = _exported(_member(wheel, member), "sqlite3_version")
    assert content.rstrip(b"\0") == version.encode()
    [component] = read_wheel_facts(wheel).vendored()[member]
    assert (component.project, component.version, component.evidence) == ("sqlite", version, "exported-symbol")


@pytest.mark.parametrize("prefix, member, bound", [
    ("pycurl-7.49.0-", "pycurl.libs/libssl-8b66dd34.so.3", "3.5.0"),
    ("psycopg2_binary-2.9.10-cp312-cp312-musllinux_1_2_ppc64le", "psycopg2_binary.libs/libssl-acade9a7.so.3", "3.0.0"),
    ("cryptography-42.0.8-cp39-abi3-musllinux_1_2_aarch64", "cryptography.libs/libgcc_s-7393e603.so.1", "13.0.0"),
    ("rasterio-1.3.10-", "rasterio.libs/liblzma-rasterio-c949e524.so.5.2.2", "5.2"),
])
def test_symbol_version_names_give_a_lower_bound_never_a_version(prefix: str, member: str, bound: str) -> None:
    """libssl carries no version text (libcrypto does), libgcc_s and liblzma none at all: the
    highest of their own version names, as pyelftools lists them, says "at least"."""
    import io

    from elftools.elf.elffile import ELFFile

    wheel = _wheel(prefix)
    elf = ELFFile(io.BytesIO(_member(wheel, member)))
    defined = [aux.name for _, auxes in elf.get_section_by_name(".gnu.version_d").iter_versions() for aux in auxes]
    [component] = read_wheel_facts(wheel).vendored()[member]
    assert (component.version, component.evidence, component.at_least) == (None, "symbol-versions", bound)
    name = component.detail.split()[1].rstrip(":")
    assert name in defined and name.endswith(bound)


@pytest.mark.parametrize("prefix", ["av-19.0.2-cp312-abi3-manylinux_2_28_x86_64", "netcdf4-1.7.5.1.post1-cp311",
                                    "opencv_python_headless-5.0.0.93-", "pyzmq-27.3.0-cp312-abi3-musllinux_1_2_i686"])
def test_auditwheel_sbom_dates_the_grafted_files_it_names(prefix: str) -> None:
    """auditwheel's SBOM names a grafted file only by the SHA-256 of the path it was copied from:
    each os-package row's member is the file whose host path hashes to the fragment of a component
    with that purl, and every component the SBOM lists is placed on exactly one member."""
    wheel = _wheel(prefix)
    with zipfile.ZipFile(wheel) as archive:
        [sbom] = [n for n in archive.namelist() if n.endswith(".dist-info/sboms/auditwheel.cdx.json")]
        document = json.loads(archive.read(sbom))
    fragments = {c["bom-ref"].rsplit("#", 1)[1]: c for c in document["components"] if "#" in c["bom-ref"]}
    rows = [c for cs in read_wheel_facts(wheel).vendored().values() for c in cs if c.evidence == "os-package"]
    placed = set()
    for row in rows:
        real = real_file_name(row.member)
        digests = [d for d in fragments if any(hashlib.sha256(f"{folder}/{real}".encode()).hexdigest() == d
                                               for folder in ("/lib64", "/usr/lib64", "/lib", "/usr/lib"))]
        assert len(digests) == 1, row.member
        component = fragments[digests[0]]
        assert row.detail.startswith(component["purl"])
        assert row.version == component["version"].split("-")[0]
        placed.add(digests[0])
    assert placed == set(fragments), "every grafted component of auditwheel's SBOM is placed"


@pytest.mark.slow
@pytest.mark.parametrize("wheel", WHEELS, ids=lambda p: p.name if p else "unavailable")
def test_reading_only_the_constant_data_finds_what_the_whole_image_holds(wheel: Path, monkeypatch) -> None:
    """The scan reads about a tenth of each image (its constant data); on every ELF member of the
    table's wheels it finds exactly what a scan of the whole image finds."""
    import fastaudit._elfstrings
    from fastaudit.vendored import scan_version_strings
    from fastaudit.wheel import WheelArchive

    members = []
    with WheelArchive(wheel) as archive:
        for member in archive.members:
            if not member.name.endswith(".py") and archive.starts_with_elf_magic(member):
                members.append((member.name, bytes(archive.read(member))))
    assert members
    constant = {name: scan_version_strings(data) for name, data in members}
    monkeypatch.setattr(fastaudit._elfstrings, "constant_data_ranges", lambda view: [(0, len(view))])
    whole = {name: scan_version_strings(data) for name, data in members}
    assert constant == whole
