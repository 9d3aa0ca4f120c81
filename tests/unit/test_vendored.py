"""Identification of vendored native libraries on shared objects built here by gcc."""
from __future__ import annotations

from pathlib import Path

import pytest

from fastaudit.elf import read_elf
from fastaudit.vendored import (
    EXPORTED_SYMBOL,
    FILE_NAME,
    NAME,
    OS_PACKAGE,
    SYMBOL_VERSIONS,
    VERSION_STRING,
    identify,
    library_named,
    real_file_name,
    scan_version_strings,
)
from tests.elfbuild import build_shared_object


def _with_strings(workdir: Path, name: str, *strings: str, code: str = "int f(void) { return 1; }\n",
                  link=()) -> Path:
    body = "".join(f'__attribute__((used)) const char s{i}[] = "{s}";\n' for i, s in enumerate(strings))
    return build_shared_object(workdir, name, body + code, link=link)


def _identify(path: Path, member: str):
    data = path.read_bytes()
    info = read_elf(data)
    return identify(member, scan_version_strings(data), info.needed, info.soname)


@pytest.mark.parametrize("member, real", [
    ("pillow.libs/libpng16-bedcb7ea.so.16.37.0", "libpng16.so.16.37.0"),
    ("numpy.libs/libopenblasp-r0-b958c995.3.27.so", "libopenblasp-r0.3.27.so"),
    ("scipy.libs/libgfortran-040039e1-0352e75f.so.5.0.0", "libgfortran-040039e1.so.5.0.0"),
    ("zmq/libzmq.so.5", "libzmq.so.5"),
    ("libz.so.1.2.13", "libz.so.1.2.13"),
])
def test_real_file_name_drops_the_graft_hash(member: str, real: str) -> None:
    assert real_file_name(member) == real


@pytest.mark.parametrize("file_name, project", [
    ("libssl.so.3", "openssl"), ("libcrypto.so.1.1", "openssl"),
    ("libpng16.so.16.37.0", "libpng"), ("libpng16-rasterio.so.16.35.0", "libpng"),
    ("libldap_r-2.4.so.2", "openldap"), ("libgfortran-040039e1.so.5.0.0", "gcc"),
    ("libopenblas64_p-r0.3.21.so", "openblas"), ("libscipy_openblas64_.so", "openblas"),
    ("libz-ng.so.2", "zlib-ng"), ("libz.so.1", "zlib"), ("libzstd.so.1.5.7", "zstd"),
    ("libxcb-shape.so.0.0.0", "libxcb"), ("libavcodec.so.61", "ffmpeg"),
    ("libfoo.so.1", None), ("libzz.so.1", None), ("libsslx.so.1", None),
])
def test_library_named(file_name: str, project: str | None) -> None:
    library = library_named(file_name)
    assert (library.project if library else None) == project


def test_a_version_string_in_a_library_named_for_its_project(tmp_path: Path) -> None:
    lib = _with_strings(tmp_path, "libz.so.1.2.13", " deflate 1.2.13 Copyright 1995-2022 Jean-loup Gailly ")
    [component] = _identify(lib, "pkg.libs/libz-0a1b2c3d.so.1.2.13")
    assert (component.project, component.version, component.evidence) == ("zlib", "1.2.13", VERSION_STRING)
    assert not component.statically_linked
    assert component.detail == " deflate 1.2.13 Copyright"


def test_the_version_string_wins_over_the_file_name(tmp_path: Path) -> None:
    """A renamed file may lie about its version; the bytes of the library do not."""
    lib = _with_strings(tmp_path, "libz.so.1.2.11", " inflate 1.3.1 Copyright 1995-2024 Mark Adler ")
    [component] = _identify(lib, "pkg.libs/libz-0a1b2c3d.so.1.2.11")
    assert (component.version, component.evidence) == ("1.3.1", VERSION_STRING)


def test_the_file_name_gives_the_version_where_the_project_puts_it_there(tmp_path: Path) -> None:
    lib = _with_strings(tmp_path, "libzstd.so.1.5.6", "nothing to see")
    [component] = _identify(lib, "pkg.libs/libzstd-0a1b2c3d.so.1.5.6")
    assert (component.project, component.version, component.evidence) == ("zstd", "1.5.6", FILE_NAME)
    assert component.detail == "libzstd.so.1.5.6"


def test_a_known_library_without_version_evidence_has_no_version(tmp_path: Path) -> None:
    """libwebp's file name carries its libtool version (7.1.0), not its release: never reported as one."""
    lib = _with_strings(tmp_path, "libwebp.so.7.1.0", "WebP")
    [component] = _identify(lib, "pkg.libs/libwebp-0a1b2c3d.so.7.1.0")
    assert (component.project, component.version, component.evidence) == ("libwebp", None, NAME)


def test_an_unknown_library_is_not_identified(tmp_path: Path) -> None:
    lib = _with_strings(tmp_path, "libfoo.so.1", "foo 1.2.3")
    assert _identify(lib, "pkg.libs/libfoo-0a1b2c3d.so.1") == ()


def test_a_statically_linked_copy_inside_an_extension(tmp_path: Path) -> None:
    ext = _with_strings(tmp_path, "_rust.abi3.so", "OpenSSL 3.2.2 4 Jun 2024", "libpng version 1.6.43")
    found = {(c.project, c.version, c.statically_linked) for c in _identify(ext, "pkg/_rust.abi3.so")}
    assert found == {("openssl", "3.2.2", True), ("libpng", "1.6.43", True)}


def test_a_member_compiled_against_a_shared_copy_does_not_ship_it(tmp_path: Path) -> None:
    """An extension that needs libssl.so.3 quotes OPENSSL_VERSION_TEXT from the headers it was
    compiled with; the library it runs with is the one it loads."""
    libssl = build_shared_object(tmp_path / "ssl", "libssl.so.3", "int SSL_new(void) { return 0; }\n",
                                 soname="libssl.so.3")
    ext = _with_strings(tmp_path, "_ssl.so", "OpenSSL 3.0.13 30 Jan 2024",
                        code="int SSL_new(void);\nint f(void) { return SSL_new(); }\n", link=[libssl])
    assert "libssl.so.3" in read_elf(ext.read_bytes()).needed
    assert _identify(ext, "pkg/_ssl.so") == ()


def test_two_versions_in_one_member_are_both_reported(tmp_path: Path) -> None:
    """Two copies of a library in one binary: say so, do not pick one."""
    ext = _with_strings(tmp_path, "_two.so", "OpenSSL 1.1.1w  11 Sep 2023", "OpenSSL 3.0.13 30 Jan 2024")
    found = sorted((c.project, c.version) for c in _identify(ext, "pkg/_two.so"))
    assert found == [("openssl", "1.1.1w"), ("openssl", "3.0.13")]


def test_text_that_only_resembles_a_version_string_is_not_one(tmp_path: Path) -> None:
    ext = _with_strings(tmp_path, "_prose.so", "Update your FFmpeg version to the newest one",
                        "requires OpenSSL 3 or later", "libkeyutils-1.2.so")
    assert _identify(ext, "pkg/_prose.so") == ()


def test_a_hostile_member_repeating_anchors_is_bounded() -> None:
    data = (b"OpenSSL 3.0.13 30 Jan 2024\0" + b"libpng version 1.6.43\0") * 200_000
    found = identify("pkg/evil.so", scan_version_strings(data))
    assert sorted((c.project, c.version) for c in found) == [("libpng", "1.6.43"), ("openssl", "3.0.13")]


def test_a_spooled_member_is_scanned_in_chunks_that_miss_nothing(tmp_path: Path) -> None:
    """A member spooled to a file is an mmap, scanned 64 MiB at a time: a version string across a
    chunk boundary is still found, once."""
    import mmap

    import fastaudit.vendored as vendored

    text = b"OpenSSL 3.0.13 30 Jan 2024\0"
    size = vendored._CHUNK + (1 << 20)
    path = tmp_path / "spooled"
    with path.open("wb") as f:
        f.truncate(size)
        f.seek(vendored._CHUNK - 10)  # straddles the first boundary
        f.write(text)
        f.seek(size - 100)
        f.write(b" deflate 1.3.1 Copyright")
    with path.open("r+b") as f, mmap.mmap(f.fileno(), 0) as mapped:
        found = scan_version_strings(mapped)
        assert found == scan_version_strings(bytes(mapped))
    assert set(found) == {"openssl", "zlib"} and list(found["openssl"]) == ["3.0.13"]


# -- only the image's constant data is scanned --------------------------------------------------

_OPENSSL = "OpenSSL 3.0.13 30 Jan 2024"


def _constant_sections(path: Path) -> list[tuple[int, int]]:
    """pyelftools' view of what the scan reads: loaded, non-executable PROGBITS sections but the
    record-only ones."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    records = {".eh_frame", ".eh_frame_hdr", ".gcc_except_table", ".got", ".got.plt", ".data.rel.ro",
               ".tm_clone_table"}
    with path.open("rb") as f:
        return sorted((s["sh_offset"], s["sh_offset"] + s["sh_size"]) for s in ELFFile(f).iter_sections()
                      if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & SH_FLAGS.SHF_ALLOC
                      and not s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s.name not in records and s["sh_size"])


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in ranges:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _without_section_headers(path: Path) -> bytes:
    """The image as `sstrip` leaves it: e_shoff, e_shnum and e_shstrndx zeroed (ELF64)."""
    data = bytearray(path.read_bytes())
    data[0x28:0x30] = bytes(8)
    data[0x3C:0x40] = bytes(4)
    return bytes(data)


def test_the_scan_reads_the_constant_sections_as_pyelftools_lists_them_and_not_the_code(tmp_path: Path) -> None:
    from elftools.elf.elffile import ELFFile

    from fastaudit._elfstrings import constant_data_ranges

    lib = _with_strings(tmp_path, "libssl.so.3", _OPENSSL, code="int f(int x) { return x * 3 + 1; }\n")
    ranges = constant_data_ranges(lib.read_bytes())
    assert ranges == _merged(_constant_sections(lib))
    with lib.open("rb") as f:
        text = ELFFile(f).get_section_by_name(".text")
        code = (text["sh_offset"], text["sh_offset"] + text["sh_size"])
    assert all(end <= code[0] or start >= code[1] for start, end in ranges)
    assert sum(end - start for start, end in ranges) < lib.stat().st_size / 2
    assert list(scan_version_strings(lib.read_bytes())["openssl"]) == ["3.0.13"]


def test_a_version_string_in_writable_data_is_found(tmp_path: Path) -> None:
    """`char v[] = "..."` (not const) lands in .data, which is scanned too."""
    lib = build_shared_object(tmp_path, "libz.so.1",
                              'char v[] = " deflate 1.2.13 Copyright";\nint f(void) { return v[0]; }\n')
    assert list(scan_version_strings(lib.read_bytes())["zlib"]) == ["1.2.13"]


def test_a_version_string_outside_the_loaded_data_is_not_read(tmp_path: Path) -> None:
    """A section the loader never maps (what objcopy adds, like debug data) is not scanned: the bound
    is real, not a whole-file scan in disguise."""
    import subprocess

    lib = _with_strings(tmp_path, "libfoo.so.1", "nothing here")
    blob = tmp_path / "blob"
    blob.write_bytes(f"\0{_OPENSSL}\0".encode())
    subprocess.run(["objcopy", "--add-section", f".comment.vendored={blob}", str(lib)], check=True)
    data = lib.read_bytes()
    assert _OPENSSL.encode() in data
    assert scan_version_strings(data) == {}


@pytest.mark.parametrize("separate_code", [True, False], ids=["separate-code", "noseparate-code"])
def test_an_image_without_section_headers_is_scanned_by_its_segments(tmp_path: Path, separate_code: bool) -> None:
    """With rodata in its own read-only segment (-z separate-code, ld's default on x86-64) the
    non-executable segments are read; without it rodata shares the code's segment and the whole
    image is read. Either way the version string is found."""
    from fastaudit._elfstrings import constant_data_ranges

    flag = "-Wl,-z,separate-code" if separate_code else "-Wl,-z,noseparate-code"
    source = f'const char v[] = "{_OPENSSL}";\nint f(void) {{ return v[1]; }}\n'
    lib = build_shared_object(tmp_path, "libssl.so.3", source, ldflags=[flag])
    data = _without_section_headers(lib)
    ranges = constant_data_ranges(data)
    assert (ranges == [(0, len(data))]) is not separate_code
    assert list(scan_version_strings(data)["openssl"]) == ["3.0.13"]


@pytest.mark.parametrize("damage", ["shoff past the end", "shentsize too small", "names past the end", "not elf"])
def test_a_damaged_header_makes_the_whole_image_scanned(tmp_path: Path, damage: str) -> None:
    """What the reader would refuse, or a section table it cannot trust, hides nothing."""
    from fastaudit._elfstrings import constant_data_ranges

    lib = _with_strings(tmp_path, "libssl.so.3", _OPENSSL)
    data = bytearray(lib.read_bytes())
    if damage == "shoff past the end":
        data[0x28:0x30] = (len(data) + 64).to_bytes(8, "little")
    elif damage == "shentsize too small":
        data[0x3A:0x3C] = (8).to_bytes(2, "little")
    elif damage == "names past the end":   # the names are unreadable: the sections are still told by type and flags
        shoff, shstrndx = int.from_bytes(data[0x28:0x30], "little"), int.from_bytes(data[0x3E:0x40], "little")
        at = shoff + shstrndx * 64 + 0x18   # that section header's sh_offset
        data[at:at + 8] = (len(data) + 1).to_bytes(8, "little")
    else:
        data[0:4] = b"\x7fELG"
    ranges = constant_data_ranges(bytes(data))
    if damage == "names past the end":
        assert ranges != [(0, len(data))] and ranges
    else:
        assert ranges == [(0, len(data))]
    assert list(scan_version_strings(bytes(data))["openssl"]) == ["3.0.13"]


def test_constant_data_ranges_of_tiny_and_empty_buffers() -> None:
    from fastaudit._elfstrings import constant_data_ranges

    assert constant_data_ranges(b"") == []
    assert constant_data_ranges(b"\x7fELF") == [(0, 4)]
    assert constant_data_ranges(b"\x7fELF\x02\x01\x01" + bytes(9)) == [(0, 16)]


# -- exported version objects, symbol version names, auditwheel's SBOM ----------------------------

def test_exported_version_objects_of_every_form(tmp_path: Path) -> None:
    """The four forms, in a library gcc builds here: a char array, a pointer to text (relocated),
    a LIBXSLT_VERSION-style integer and libiconv's major << 8 | minor."""
    lib = build_shared_object(tmp_path, "libexample.so.1", (
        'const char sqlite3_version[] = "3.45.1";\n'
        'const char *const xmlParserVersion = "21207";\n'
        'const int xsltLibxsltVersion = 10142;\n'
        'int _libiconv_version = 0x0111;\n'))
    strings = scan_version_strings(lib.read_bytes())
    assert strings == {"sqlite": {"3.45.1": b"sqlite3_version = 3.45.1"},
                       "libxml2": {"2.12.7": b"xmlParserVersion = 21207"},
                       "libxslt": {"1.1.42": b"xsltLibxsltVersion = 10142"},
                       "libiconv": {"1.17": b"_libiconv_version = 1.17"}}
    found = {(c.project, c.version, c.evidence, c.statically_linked) for c in identify("pkg/_ext.so", strings)}
    assert found == {("sqlite", "3.45.1", EXPORTED_SYMBOL, True), ("libxml2", "2.12.7", EXPORTED_SYMBOL, True),
                     ("libxslt", "1.1.42", EXPORTED_SYMBOL, True), ("libiconv", "1.17", EXPORTED_SYMBOL, True)}


def test_a_pointer_the_linker_left_zero_is_read_through_its_rela_entry(tmp_path: Path) -> None:
    """lld (and ld with some options) leaves a relocated pointer's slot zero: the addend of the
    R_X86_64_RELATIVE entry is the address then."""
    from elftools.elf.elffile import ELFFile

    lib = build_shared_object(tmp_path, "libxml2.so.2", 'const char *const xmlParserVersion = "21406";\n')
    with lib.open("rb") as f:
        elf = ELFFile(f)
        [sym] = elf.get_section_by_name(".dynsym").get_symbol_by_name("xmlParserVersion")
        at = next(s["p_offset"] + sym["st_value"] - s["p_vaddr"] for s in elf.iter_segments()
                  if s["p_type"] == "PT_LOAD" and s["p_vaddr"] <= sym["st_value"] < s["p_vaddr"] + s["p_filesz"])
    data = bytearray(lib.read_bytes())
    assert int.from_bytes(data[at:at + 8], "little") != 0
    data[at:at + 8] = bytes(8)
    assert scan_version_strings(bytes(data)) == {"libxml2": {"2.14.6": b"xmlParserVersion = 21406"}}


def test_a_symbol_that_is_only_needed_or_is_not_a_version_is_not_evidence(tmp_path: Path) -> None:
    """An extension that calls into a shared libsqlite3 has sqlite3_version undefined; text that is
    no release ("banana") or an object too short to hold an integer gives nothing."""
    sqlite = build_shared_object(tmp_path / "s", "libsqlite3.so.0", 'const char sqlite3_version[] = "3.45.1";\n',
                                 soname="libsqlite3.so.0")
    ext = build_shared_object(tmp_path, "_ext.so", 'extern const char sqlite3_version[];\n'
                              'const char *f(void) { return sqlite3_version; }\n', link=[sqlite])
    assert scan_version_strings(ext.read_bytes()) == {}
    odd = build_shared_object(tmp_path, "_odd.so", 'const char sqlite3_version[] = "banana";\n'
                              'const char xsltLibxsltVersion = 3;\nconst char *const xmlParserVersion = 0;\n')
    assert scan_version_strings(odd.read_bytes()) == {}


def test_exported_objects_in_a_damaged_image_are_bounded(tmp_path: Path) -> None:
    """A symbol whose value lies outside every segment, or whose size runs past the file, and a
    string table cut short are skipped, never read past the buffer."""
    import struct

    from elftools.elf.elffile import ELFFile

    from fastaudit._elfstrings import exported_objects

    lib = build_shared_object(tmp_path, "libsqlite3.so.0", 'const char sqlite3_version[] = "3.45.1";\n')
    with lib.open("rb") as f:
        elf = ELFFile(f)
        dynsym = elf.get_section_by_name(".dynsym")
        index = next(i for i, s in enumerate(dynsym.iter_symbols()) if s.name == "sqlite3_version")
        entry = dynsym["sh_offset"] + index * dynsym["sh_entsize"]
    for value, size in ((0xFFFF_FFFF_0000, 7), (0, 1 << 40), (len(lib.read_bytes()) - 2, 64)):
        data = bytearray(lib.read_bytes())
        data[entry + 8:entry + 24] = struct.pack("<QQ", value, size)
        assert "sqlite" not in scan_version_strings(bytes(data))
        exported_objects(bytes(data), [b"sqlite3_version"])   # no crash, whatever it reads
    assert exported_objects(lib.read_bytes()[:200], [b"sqlite3_version"]) == {}


@pytest.mark.parametrize("definitions, bound", [
    (["libssl.so.3", "OPENSSL_3.0.0", "OPENSSL_3.2.0", "OPENSSL_3.10.0", "OPENSSL_3.9.0"],
     ("OPENSSL_3.10.0", "3.10.0")),
    (["OPENSSL_1_1_0", "OPENSSL_1_1_1", "OPENSSL_1_1_1d", "OPENSSL_1_1_0i"], ("OPENSSL_1_1_1d", "1.1.1d")),
    (["GCC_3.0", "GCC_4.5.0", "GCC_7.0.0", "GCC_11.0", "GCC_13.0.0"], ("GCC_13.0.0", "13.0.0")),
    (["GLIBCXX_3.4.30", "CXXABI_1.3"], None),
])
def test_the_highest_own_version_name_is_the_lower_bound(definitions: list[str], bound) -> None:
    library = library_named("libssl.so.3" if definitions[0].startswith(("lib", "OPENSSL")) else "libgcc_s.so.1")
    assert library.release_at_least(definitions) == bound


def test_a_lower_bound_is_reported_only_without_a_version_and_never_as_one(tmp_path: Path) -> None:
    [bounded] = identify("pkg.libs/libssl-0a1b2c3d.so.3", {}, definitions=["libssl.so.3", "OPENSSL_3.0.0"])
    assert (bounded.version, bounded.evidence, bounded.at_least) == (None, SYMBOL_VERSIONS, "3.0.0")
    [exact] = identify("pkg.libs/libssl-0a1b2c3d.so.3", {"openssl": {"3.0.13": b"OpenSSL 3.0.13 30 Jan 2024"}},
                       definitions=["OPENSSL_3.0.0"])
    assert (exact.version, exact.evidence, exact.at_least) == ("3.0.13", VERSION_STRING, None)


def _auditwheel_sbom(*components: tuple[str, str, str, str]) -> bytes:
    import hashlib
    import json

    return json.dumps({"bomFormat": "CycloneDX", "components": [
        {"type": "library", "bom-ref": "pkg:pypi/x@1", "name": "x", "version": "1", "purl": "pkg:pypi/x@1"},
        *({"type": "library", "bom-ref": f"{purl}#{hashlib.sha256(path.encode()).hexdigest()}", "name": name,
           "version": version, "purl": purl} for path, name, version, purl in components)]}).encode()


def test_auditwheel_sbom_places_each_package_on_the_file_its_path_hash_names() -> None:
    from fastaudit.vendored import PackageEvidence, auditwheel_packages

    document = _auditwheel_sbom(("/lib64/libXau.so.6.0.0", "libXau", "1.0.9-3.el8",
                                 "pkg:rpm/almalinux/libXau@1.0.9-3.el8"),
                                ("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", "zlib1g", "1:1.2.13.dfsg-1",
                                 "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1"),
                                ("/opt/custom/libfoo.so.1", "foo", "2.0-1", "pkg:rpm/x/foo@2.0-1"))
    members = ["x.libs/libXau-154567c4.so.6.0.0", "x.libs/libz-0a1b2c3d.so.1.2.13", "x.libs/libfoo-01234567.so.1",
               "x/libXau.so.6.0.0"]
    found = auditwheel_packages(document, members)
    assert set(found) == {"x.libs/libXau-154567c4.so.6.0.0", "x.libs/libz-0a1b2c3d.so.1.2.13"}
    assert found["x.libs/libz-0a1b2c3d.so.1.2.13"].upstream == "1.2.13"
    assert found["x.libs/libXau-154567c4.so.6.0.0"].upstream == "1.0.9"
    [component] = identify("x.libs/libXau-154567c4.so.6.0.0", {}, package=found["x.libs/libXau-154567c4.so.6.0.0"])
    assert (component.project, component.version, component.evidence) == ("libxau", "1.0.9", OS_PACKAGE)
    assert PackageEvidence("p", "14.2.0-r6", "pkg:apk/alpine/p@14.2.0-r6").upstream == "14.2.0"
    assert PackageEvidence("p", "git20240101-1", "pkg:deb/p").upstream is None


@pytest.mark.parametrize("document", [b"", b"not json", b"[]", b'{"components": 3}',
                                      b'{"components": [1, {"bom-ref": 2}]}',
                                      b'{"components": [{"bom-ref": "a#b", "name": null}]}',
                                      b"[" * 200_000, b'{"components": ' + b"[" * 200_000, b"\xff\xfe{"])
def test_a_malformed_auditwheel_sbom_gives_nothing(document: bytes) -> None:
    from fastaudit.vendored import auditwheel_packages

    assert auditwheel_packages(document, ["x.libs/libz-0a1b2c3d.so.1"]) == {}


def test_the_report_schema_names_every_evidence_kind() -> None:
    import json
    from importlib import resources

    from fastaudit.vendored import CONFIDENCE

    schema = json.loads(resources.files("fastaudit").joinpath("schema/report-v1.json").read_text())
    item = schema["properties"]["vendored_libraries"]["items"]["properties"]["evidence"]["items"]
    assert set(item["enum"]) == set(CONFIDENCE)
