"""Identification of vendored native libraries on shared objects built here by gcc."""
from __future__ import annotations

from pathlib import Path

import pytest

from fastaudit.elf import read_elf
from fastaudit.vendored import (
    FILE_NAME,
    NAME,
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
