"""Write src/fastaudit/data/native-libraries.json: how fastaudit recognises the third-party native
libraries wheels vendor, and the evidence each one's version can be read from.

The facts are ours, checked against real binaries of real PyPI wheels (each pattern has a test in
tests/integration/test_vendored.py on a member that carries it):
- `name`: the library's file name once auditwheel's `-<8 hex>` is removed and everything from
  the first `.` on is cut (libpng16-bedcb7ea.so.16.37.0 -> libpng16), as a regular expression;
  null for a project only ever linked statically;
- `strings`: a literal `anchor` the scanner finds in one pass (_elfstrings.pyx), and a `regex`
  around it whose group, when it has one, is the version (the format each project prints in its version
  string; e.g. OpenSSL's OPENSSL_VERSION_TEXT, zlib's deflate_copyright, libpng's header);
- `file_version`: for projects whose shared library's file name ends in the release version
  itself (zlib, bzip2, xz, zstd, openjpeg, geos, blosc), the regex over the real file name
  (hash removed) and how its groups spell the release;
- `symbols`: data objects a library exports as its own version (sqlite3_version, xmlParserVersion),
  read from the dynamic symbol table, statically linked copies included where they are exported
  (lxml's etree exports libxml2's and libxslt's). `form` says how the object becomes text:
  "string" (the object is the text), "points-to" (its first word points to the text), "int" (a
  32-bit integer, in decimal) or "int-major-minor" (a 32-bit integer, major << 8 | minor); then
  `regex` over that text, its groups spelled by `format` (digit groups lose leading zeros);
- `symbol_versions`: a regex over the library's own symbol version names (OPENSSL_3.0.0,
  LIBXML2_2.9.0) and how its groups spell a release. A library defines the names of every release
  that added symbols, so the highest says the library is *at least* that release: reported as a
  lower bound, never as the version;
- `cpe`: the CPE 2.3 vendor:product that vulnerability databases (NVD, OSV) use for the project.
A project without `strings`, `symbols` or `file_version` is recognised by name only: its version
is reported as unknown (or bounded below by its symbol versions), never guessed.

    python scripts/native_libraries.py    # rewrites the JSON; run after editing LIBRARIES
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from fastaudit.vendored import spell_release  # the examples are checked the way the scan reads them

OUT = Path(__file__).resolve().parents[1] / "src" / "fastaudit" / "data" / "native-libraries.json"


@dataclass(frozen=True)
class VersionString:
    anchor: str        # the literal the scanner finds
    regex: str         # tried around the anchor; its group, when it has one, is the version
    example: str       # the string as seen in a real binary of a real wheel
    version: str | None  # what the regex must read from the example


FORMS = ("string", "points-to", "int", "int-major-minor")


@dataclass(frozen=True)
class ExportedVersion:
    symbol: str        # a data object of the dynamic symbol table
    form: str          # one of FORMS: how the object becomes text
    regex: str         # fullmatched over the text
    format: str        # how its groups spell the release
    example: str       # the text as read from a real binary of a real wheel
    version: str


@dataclass(frozen=True)
class SymbolVersions:
    regex: str         # fullmatched over a version name the library defines
    format: str
    example: str       # a name defined by a real binary of a real wheel
    version: str


@dataclass(frozen=True)
class Library:
    project: str
    cpe: str           # CPE 2.3 vendor:product
    name: str | None   # regex over the file name's stem; None: only ever linked statically
    strings: tuple[VersionString, ...]
    file_version: tuple[str, str] | None   # regex over the real file name, and the release it spells
    symbols: tuple[ExportedVersion, ...]
    symbol_versions: SymbolVersions | None


def library(project: str, cpe: str, name: str | None, *strings: VersionString,
            file_version: tuple[str, str] | None = None, symbols: tuple[ExportedVersion, ...] = (),
            symbol_versions: SymbolVersions | None = None) -> Library:
    return Library(project, cpe, name, strings, file_version, symbols, symbol_versions)


_OPENSSL_VERSION_TEXT = r'OpenSSL (\d+\.\d+\.\d+[a-z]{0,2})(?:-[A-Za-z0-9.]+)? {1,2}\d{1,2} [A-Z][a-z]{2} \d{4}'
# LIBXML_VERSION and LIBXSLT_VERSION as text: major * 10000 + minor * 100 + micro ("21406")
_XYYZZ = r'([1-9])(\d\d)(\d\d)(?:-.*)?'


def version_string(anchor: str, regex: str, example: str, version: str | None) -> VersionString:
    return VersionString(anchor, regex, example, version)


# By name, the first match wins (a project whose name extends another's comes first: zlib-ng before
# zlib), unless a later project of the same name has its version string in the member.
LIBRARIES: tuple[Library, ...] = (
    library('openssl', 'openssl:openssl', r'lib(ssl|crypto)',
        # one anchor per major release: libcrypto says "OpenSSL " in dozens of messages, and a
        # member's first hits of an anchor are all that is looked at (vendored._MAX_HITS)
        *(version_string(f'OpenSSL {major}.', _OPENSSL_VERSION_TEXT, f'OpenSSL {major}.5.1 1 Jul 2025', f'{major}.5.1')
          for major in (0, 1, 3, 4, 5)),
        # 1.1.x names its versions OPENSSL_1_1_1a, 3.x OPENSSL_3.0.0
        symbol_versions=SymbolVersions(r'OPENSSL_(\d+)[._](\d+)[._](\d+)([a-z]?)', '{0}.{1}.{2}{3}',
                                       'OPENSSL_3.0.0', '3.0.0'),
    ),
    library('boringssl', 'google:boringssl', None,
        version_string('BoringSSL', r'\x00BoringSSL\x00',
                       '\x00BoringSSL\x00', None),
    ),
    library('zlib-ng', 'zlib-ng:zlib-ng', r'libz-ng'),
    library('zlib', 'zlib:zlib', r'libz',
        version_string('flate ', r' (?:de|in)flate (\d+\.\d+(?:\.\d+){0,2}) Copyright',
                       ' deflate 1.2.3 Copyright 1995-2005 Jean-loup Gailly ', '1.2.3'),
        file_version=(r'libz\.so\.(\d+\.\d+(?:\.\d+){0,2})', '{0}'),
        symbol_versions=SymbolVersions(r'ZLIB_(\d+\.\d+(?:\.\d+){0,2})', '{0}', 'ZLIB_1.2.9', '1.2.9'),
    ),
    library('libpng', 'libpng:libpng', r'libpng(1[0-9])?',
        version_string('libpng version ', r'libpng version (\d+\.\d+\.\d+)',
                       'libpng version 1.6.37 - April 14, 2019', '1.6.37'),
        file_version=(r'libpng16\.so\.16\.(\d+)\.\d+', '1.6.{0}'),
    ),
    library('libtiff', 'libtiff:libtiff', r'libtiff',
        version_string('LIBTIFF, Version ', r'LIBTIFF, Version (\d+\.\d+\.\d+)',
                       'LIBTIFF, Version 4.1.0', '4.1.0'),
    ),
    # libjpeg.so is IJG's or libjpeg-turbo's: the name alone says IJG's generic project, and the
    # turbo's version string, when present, says which (a name shared by two projects: the one
    # whose string the member carries wins)
    library('libjpeg', 'ijg:libjpeg', r'libjpeg'),
    library('libjpeg-turbo', 'libjpeg-turbo:libjpeg-turbo', r'libjpeg',
        version_string('libjpeg-turbo version ', r'libjpeg-turbo version (\d+\.\d+\.\d+)',
                       'libjpeg-turbo version 3.1.0 (build 20250102)', '3.1.0'),
    ),
    library('libwebp', 'webmproject:libwebp', r'lib(webp|webpmux|webpdemux|sharpyuv)'),
    library('openjpeg', 'uclouvain:openjpeg', r'libopenjp2',
            file_version=(r'libopenjp2\.so\.(\d+\.\d+\.\d+)', '{0}')),
    library('freetype', 'freetype:freetype', r'libfreetype'),
    library('harfbuzz', 'harfbuzz_project:harfbuzz', r'libharfbuzz(-subset)?'),
    library('lcms2', 'littlecms:little_cms_color_engine', r'liblcms2'),
    library('libavif', 'aomedia:libavif', r'libavif'),
    library('libaom', 'aomedia:aomedia', r'libaom',
        version_string('AOMedia Project AV1 ',
                       r'AOMedia Project AV1 (?:Encoder|Decoder) (?:Inspector )?v?(\d+\.\d+\.\d+)',
                       'AOMedia Project AV1 Encoder 3.14.1', '3.14.1'),
    ),
    library('dav1d', 'videolan:dav1d', r'libdav1d'),
    library('libvpx', 'webmproject:libvpx', r'libvpx',
        version_string('WebM Project VP', r'WebM Project VP[89] (?:Encoder|Decoder) v(\d+\.\d+\.\d+)',
                       'WebM Project VP9 Encoder v1.17.0', '1.17.0'),
    ),
    library('x264', 'videolan:x264', r'libx264'),
    library('x265', 'multicorewareinc:x265', r'libx265'),
    library('svt-av1', 'aomedia:svt-av1', r'libSvtAv1(Enc|Dec)'),
    library('vmaf', 'netflix:vmaf', r'libvmaf'),
    library('opus', 'opus-codec:opus', r'libopus',
        version_string('libopus ', r'libopus (\d+\.\d+(?:\.\d+)?)',
                       'libopus 1.6.1', '1.6.1'),
    ),
    library('ffmpeg', 'ffmpeg:ffmpeg', r'lib(avcodec|avformat|avutil|avfilter|avdevice|swscale|swresample|postproc)',
        version_string('FFmpeg version ', r'FFmpeg version n?(\d+\.\d+(?:\.\d+)?)',
                       'FFmpeg version 9.0.2', '9.0.2'),
    ),
    library('libxcb', 'x.org:libxcb', r'libxcb(-[a-z0-9_-]+)?'),
    library('libxau', 'x.org:libxau', r'libXau'),
    library('libxdmcp', 'x.org:libxdmcp', r'libXdmcp'),
    library('libx11', 'x.org:libx11', r'libX11(-xcb)?'),
    library('libxkbcommon', 'xkbcommon:libxkbcommon', r'libxkbcommon(-x11)?'),
    library('qt', 'qt:qt', r'libQt[56][A-Za-z]+',
        version_string('QtCore library version Qt ', r'QtCore library version Qt (\d+\.\d+\.\d+)',
                       'This is the QtCore library version Qt 5.15.0 (x86_64-little_endian-lp64 shared (dynamic)',
                       '5.15.0'),
    ),
    library('krb5', 'mit:kerberos_5', r'lib(krb5|krb5support|k5crypto|gssapi_krb5)',
        version_string('KRB5_BRAND: krb5-', r'KRB5_BRAND: krb5-(\d+\.\d+(?:\.\d+)?)-final',
                       'KRB5_BRAND: krb5-1.15.1-final 1.15.1 20170302', '1.15.1'),
    ),
    library('e2fsprogs', 'e2fsprogs_project:e2fsprogs', r'libcom_err'),
    library('keyutils', 'keyutils_project:keyutils', r'libkeyutils',
        version_string('keyutils-', r'(?<![A-Za-z])keyutils-(\d+\.\d+\.\d+)',
                       'keyutils-1.5.8', '1.5.8'),
    ),
    library('postgresql', 'postgresql:postgresql', r'libpq'),
    library('cyrus-sasl', 'cyrusimap:cyrus-sasl', r'libsasl2'),
    library('openldap', 'openldap:openldap', r'lib(ldap|ldap_r|lber)'),
    # libgcc_s names the GCC release that added symbols (GCC_12.0.0); libstdc++'s GLIBCXX_3.4.x are not releases
    library('gcc', 'gnu:gcc', r'lib(gcc_s|stdc\+\+|gfortran|quadmath|gomp|atomic)',
            symbol_versions=SymbolVersions(r'GCC_(\d+\.\d+\.\d+)', '{0}', 'GCC_7.0.0', '7.0.0')),
    library('openblas', 'openblas_project:openblas', r'lib(openblas|scipy_openblas)[a-z0-9_]*(-r0)?',
        version_string('OpenBLAS ', r'OpenBLAS (\d+\.\d+\.\d+(?:\.dev)?) ',
                       'OpenBLAS 0.3.27 DYNAMIC_ARCH NO_AFFINITY ', '0.3.27'),
    ),
    library('xz', 'tukaani:xz', r'liblzma', file_version=(r'liblzma\.so\.(\d+\.\d+\.\d+)', '{0}'),
            symbol_versions=SymbolVersions(r'XZ_(\d+\.\d+)', '{0}', 'XZ_5.2', '5.2')),
    library('bzip2', 'bzip:bzip2', r'libbz2', file_version=(r'libbz2\.so\.(\d+\.\d+\.\d+)', '{0}')),
    library('zstd', 'facebook:zstandard', r'libzstd', file_version=(r'libzstd\.so\.(\d+\.\d+\.\d+)', '{0}')),
    library('brotli', 'google:brotli', r'libbrotli(common|dec|enc)'),
    library('libdeflate', 'libdeflate_project:libdeflate', r'libdeflate'),
    library('libaec', 'dkrz:libaec', r'lib(aec|sz)'),
    library('blosc', 'blosc:c-blosc', r'libblosc', file_version=(r'libblosc\.so\.(\d+\.\d+\.\d+)', '{0}')),
    library('hdf5', 'hdfgroup:hdf5', r'libhdf5(_hl|_cpp|_hl_cpp)?',
        version_string('HDF5 library version: ', r'HDF5 library version: (\d+\.\d+\.\d+)',
                       'HDF5 library version: 1.14.2', '1.14.2'),
    ),
    library('netcdf', 'unidata:netcdf-c', r'libnetcdf'),
    library('curl', 'haxx:libcurl', r'libcurl',
        version_string('libcurl/', r'libcurl/(\d+\.\d+\.\d+)',
                       'libcurl/8.14.1', '8.14.1'),
    ),
    library('nghttp2', 'nghttp2:nghttp2', r'libnghttp2'),
    library('nghttp3', 'ngtcp2:nghttp3', r'libnghttp3'),
    library('ngtcp2', 'ngtcp2:ngtcp2', r'libngtcp2(_crypto_[a-z]+)?'),
    library('libssh2', 'libssh2:libssh2', r'libssh2',
        version_string('SSH-2.0-libssh2_', r'SSH-2.0-libssh2_(\d+\.\d+\.\d+)',
                       'SSH-2.0-libssh2_1.11.1_DEV', '1.11.1'),
    ),
    library('libpsl', 'rockdaboot:libpsl', r'libpsl',
        version_string(' (+libidn2/', r'(\d+\.\d+\.\d+) \(\+libidn2/',
                       '0.21.5 (+libidn2/2.3.7)', '0.21.5'),
    ),
    library('libidn2', 'gnu:libidn2', r'libidn2'),
    library('libunistring', 'gnu:libunistring', r'libunistring'),
    library('libiconv', 'gnu:libiconv', r'lib(iconv|charset)',
            symbols=(ExportedVersion('_libiconv_version', 'int-major-minor', r'(\d+)\.(\d+)', '{0}.{1}',
                                     '1.18', '1.18'),)),
    library('gnutls', 'gnu:gnutls', r'libgnutls',
        version_string('Enabled GnuTLS ', r'Enabled GnuTLS (\d+\.\d+\.\d+) logging',
                       'Enabled GnuTLS 3.8.13 logging...', '3.8.13'),
    ),
    library('nettle', 'nettle_project:nettle', r'lib(nettle|hogweed)'),
    library('gmp', 'gmplib:gmp', r'libgmp'),
    library('libffi', 'libffi_project:libffi', r'libffi'),
    library('libsodium', 'libsodium_project:libsodium', r'libsodium'),
    library('zeromq', 'zeromq:libzmq', r'libzmq'),
    # OpenCV's build information (cv::getBuildInformation), compiled into every build of it
    library('opencv', 'opencv:opencv', r'libopencv_[a-z0-9_]+',
        version_string('General configuration for OpenCV ', r'General configuration for OpenCV (\d+\.\d+\.\d+)',
                       'General configuration for OpenCV 5.0.0 =====', '5.0.0'),
    ),
    # LZ4F_getErrorName's table comes right after LZ4_versionString's string
    library('lz4', 'lz4_project:lz4', r'liblz4',
        version_string('Unspecified error code\x00OK_NoError',
                       r'\x00(\d+\.\d+\.\d+)\x00Unspecified error code\x00OK_NoError',
                       '\x001.9.4\x00Unspecified error code\x00OK_NoError', '1.9.4'),
    ),
    # ares_version's string follows the last of ares_strerror's messages
    library('c-ares', 'c-ares:c-ares', r'libcares',
        version_string('Could not find GetNetworkParams function\x00',
                       r'Could not find GetNetworkParams function\x00(\d+\.\d+\.\d+)\x00',
                       'Could not find GetNetworkParams function\x001.19.0\x000123456789', '1.19.0'),
    ),
    # the hOCR renderer's <meta name='ocr-system'>
    library('tesseract', 'tesseract_project:tesseract', r'libtesseract',
        version_string("content='tesseract ", r"content='tesseract (\d+\.\d+\.\d+)",
                       "<meta name='ocr-system' content='tesseract 5.0.0-alpha' />", '5.0.0'),
    ),
    library('librdkafka', 'confluent:librdkafka', r'librdkafka(\+\+)?'),
    library('sqlite', 'sqlite:sqlite', r'libsqlite3',
            symbols=(ExportedVersion('sqlite3_version', 'string', r'(3\.\d+\.\d+(?:\.\d+)?)', '{0}',
                                     '3.46.0', '3.46.0'),)),
    library('expat', 'libexpat_project:libexpat', r'libexpat',
        version_string('expat_', r'expat_(\d+\.\d+\.\d+)',
                       'expat_2.2.6', '2.2.6'),
    ),
    library('libxml2', 'xmlsoft:libxml2', r'libxml2',
            symbols=(ExportedVersion('xmlParserVersion', 'points-to', _XYYZZ, '{0}.{1}.{2}', '21406', '2.14.6'),),
            symbol_versions=SymbolVersions(r'LIBXML2_(\d+\.\d+\.\d+)', '{0}', 'LIBXML2_2.9.0', '2.9.0')),
    # xsltEngineVersion is LIBXSLT_VERSION_STRING; libexslt, part of libxslt's release, exports the
    # LIBXSLT_VERSION it was built with (lxml's etree exports only that one)
    library('libxslt', 'xmlsoft:libxslt', r'lib(xslt|exslt)',
            symbols=(ExportedVersion('xsltEngineVersion', 'points-to', _XYYZZ, '{0}.{1}.{2}', '10143', '1.1.43'),
                     ExportedVersion('xsltLibxsltVersion', 'int', _XYYZZ, '{0}.{1}.{2}', '10143', '1.1.43'),
                     ExportedVersion('exsltLibxsltVersion', 'int', _XYYZZ, '{0}.{1}.{2}', '10143', '1.1.43')),
            symbol_versions=SymbolVersions(r'LIBXSLT_(\d+\.\d+\.\d+)', '{0}', 'LIBXSLT_1.1.26', '1.1.26')),
    library('pcre2', 'pcre:pcre2', r'libpcre2-(8|16|32)'),
    library('pcre', 'pcre:pcre', r'libpcre'),
    library('proj', 'osgeo:proj', r'libproj',
        version_string('Rel. ', r'Rel\. (\d+\.\d+\.\d+), [A-Z][a-z]+ \d{1,2}(?:st|nd|rd|th)?, \d{4}',
                       'Rel. 9.3.0, September 1st, 2023', '9.3.0'),
    ),
    library('geos', 'osgeo:geos', r'libgeos(_c)?',
        version_string('-CAPI-', r'(\d+\.\d+\.\d+)-CAPI-\d+\.\d+',
                       '3.14.1-CAPI-1.20', '3.14.1'),
        file_version=(r'libgeos\.so\.(\d+\.\d+\.\d+)', '{0}'),
    ),
    library('gdal', 'osgeo:gdal', r'libgdal'),
    library('json-c', 'json-c_project:json-c', r'libjson-c'),
    library('giflib', 'giflib_project:giflib', r'libgif'),
    library('lerc', 'esri:lerc', r'libLerc'),
    library('libselinux', 'selinuxproject:libselinux', r'lib(selinux|sepol)'),
    library('libbsd', 'freedesktop:libbsd', r'lib(bsd|md)'),
    library('libxcrypt', 'besser82:libxcrypt', r'libcrypt'),
    library('alsa-lib', 'alsa-project:alsa-lib', r'libasound'),
    library('libdrm', 'freedesktop:libdrm', r'libdrm'),
    library('libvpl', 'intel:libvpl', r'libvpl'),
    library('libuuid', 'util-linux_project:util-linux', r'libuuid'),
)


def build() -> dict:
    libraries = []
    for lib in LIBRARIES:
        if lib.name is not None:
            re.compile(lib.name)
        for vs in lib.strings:
            if len(vs.anchor) > 256:  # vendored._LONGEST_ANCHOR: a spooled member is scanned in chunks
                raise ValueError(f"{lib.project}: the anchor {vs.anchor!r} is longer than 256 bytes")
            # the scanner finds the anchor and the regex is tried around it: check both on the example
            match = re.search(vs.regex, vs.example)
            found = (match.group(1) if match.re.groups else None) if match else "no match"
            if not match or found != vs.version or vs.anchor not in match.group(0):
                raise ValueError(f"{lib.project}: {vs.regex!r} and {vs.anchor!r} give {found!r} on {vs.example!r}")
        for exported in lib.symbols:
            match = re.fullmatch(exported.regex, exported.example)
            if exported.form not in FORMS or not match or spell_release(match, exported.format) != exported.version:
                raise ValueError(f"{lib.project}: {exported} does not read {exported.version!r} from its example")
        if lib.symbol_versions:
            match = re.fullmatch(lib.symbol_versions.regex, lib.symbol_versions.example)
            if not match or spell_release(match, lib.symbol_versions.format) != lib.symbol_versions.version:
                raise ValueError(f"{lib.project}: {lib.symbol_versions} does not read its example")
        entry = {"project": lib.project, "cpe": f"cpe:2.3:a:{lib.cpe}", "name": lib.name,
                 "strings": [{"anchor": vs.anchor, "regex": vs.regex} for vs in lib.strings]}
        if lib.file_version:
            entry["file_version"] = {"regex": lib.file_version[0], "format": lib.file_version[1]}
        if lib.symbols:
            entry["symbols"] = [{"symbol": e.symbol, "form": e.form, "regex": e.regex, "format": e.format}
                                for e in lib.symbols]
        if lib.symbol_versions:
            entry["symbol_versions"] = {"regex": lib.symbol_versions.regex, "format": lib.symbol_versions.format}
        libraries.append(entry)
    return {
        "about": "How fastaudit recognises vendored native libraries; written by scripts/native_libraries.py",
        "version": 1,
        "libraries": libraries,
    }


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {OUT}")
