"""Build tiny real shared objects with gcc and pack them as wheels, for tests.

Stub libraries (a libc.so.6, libz.so.1 and libstdc++.so.6 of our own) are link inputs only: a linker
version script gives each export an exact symbol version, so whatever links against a stub gets
exactly the verneed entries a scenario wants (GLIBC_2.17 and nothing newer, say). Every object is
linked with -nostdlib, so the real libc never adds versions of its own. Nothing here is ever loaded.

A stub is never packed into a wheel: auditwheel resolves libc.so.6 and friends on the host, and a
stub libc.so.6 inside the wheel (reachable through an $ORIGIN RPATH) would shadow the host's and
turn a system library into a "grafted" one.

The scenarios build one wheel each; `Scenario` records what `auditwheel show --json` (auditwheel
6.8.2) says about it, and tests/unit/test_fixtures.py re-runs auditwheel to keep that true.
`reference_facts` reads any ELF image with pyelftools into the shape of fastaudit's ElfInfo: the
oracle of the fixture and differential tests.
"""
from __future__ import annotations

import base64
import csv
import functools
import hashlib
import io
import re
import shutil
import struct
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.sections import SymbolTableSection
from elftools.elf.segments import InterpSegment

EXTENSION_SUFFIX = ".cpython-311-x86_64-linux-gnu.so"
DEFAULT_TAG = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"

# No stack protector or CET: either would pull in symbols or notes a scenario did not ask for.
CFLAGS = ("-O1", "-fPIC", "-fno-stack-protector", "-fcf-protection=none")
LDFLAGS = ("-shared", "-nostdlib", "-Wl,--hash-style=gnu", "-Wl,--build-id=sha1")

DT_RUNPATH = 29
DT_AUXILIARY = 0x7FFFFFFD

_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class BuildError(RuntimeError):
    """gcc is missing, is not an x86-64 compiler, or rejected a fixture."""


@functools.cache
def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("gcc is required to build the test fixtures (apt-get install gcc)")
    target = subprocess.run([gcc, "-dumpmachine"], capture_output=True, text=True, check=True).stdout
    if not target.startswith("x86_64-"):
        raise BuildError(f"the fixtures need an x86-64 gcc, found one for {target.strip()}")
    return gcc


def _run(cmd: Sequence[str | Path]) -> None:
    """Run a compiler command; any diagnostic at all fails, so fixtures stay exactly as intended."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if result.returncode != 0 or result.stderr.strip():
        raise BuildError(f"{' '.join(map(str, cmd))}\n{result.stderr}")


def _check_identifiers(names: Sequence[str]) -> None:
    for name in names:
        if not _C_IDENTIFIER.match(name):
            raise BuildError(f"{name!r} is not a C identifier")


def build_stub_lib(workdir: Path, soname: str, versions: Mapping[str, Sequence[str]]) -> Path:
    """A shared library `workdir/soname` exporting `void f(void)` for every f, each under its version.

    Version nodes are chained in the given order (each inherits the one before), as in glibc's own
    version scripts: {"GLIBC_2.2.5": ["fa_old"], "GLIBC_2.17": ["fa_mid"]} exports fa_old@@GLIBC_2.2.5
    and fa_mid@@GLIBC_2.17.
    """
    names = [name for group in versions.values() for name in group]
    _check_identifiers(names)
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{soname}.c"
    source.write_text("".join(f"void {name}(void) {{}}\n" for name in names))
    script = workdir / f"{soname}.map"
    nodes = []
    previous = None
    for version, group in versions.items():
        body = "".join(f" {name};" for name in group)
        local = " local: *;" if previous is None else ""
        parent = f" {previous}" if previous else ""
        nodes.append(f"{version} {{ global:{body}{local} }}{parent};\n")
        previous = version
    script.write_text("".join(nodes))
    out = workdir / soname
    _run([_gcc(), *CFLAGS, *LDFLAGS, "-o", out, source, f"-Wl,-soname,{soname}",
          f"-Wl,--version-script={script}"])
    return out


def _retag_dynamic_entry(path: Path, old_tag: int, new_tag: int) -> None:
    """Rewrite the d_tag of the one entry tagged `old_tag` in .dynamic, in place (ELF64 LE only)."""
    with path.open("r+b") as f:
        dynamic = next(s for s in ELFFile(f).iter_sections() if isinstance(s, DynamicSection))
        offset, size = dynamic["sh_offset"], dynamic["sh_size"]
        f.seek(offset)
        table = f.read(size)
        hits = [i for i in range(0, size, 16) if struct.unpack_from("<q", table, i)[0] == old_tag]
        if len(hits) != 1:
            raise BuildError(f"{path}: expected one dynamic entry tagged {old_tag:#x}, found {len(hits)}")
        f.seek(offset + hits[0])
        f.write(struct.pack("<q", new_tag))


def build_shared_object(
    workdir: Path,
    name: str,
    c_source: str,
    *,
    link: Sequence[Path | str] = (),
    rpath: str | None = None,
    runpath: str | None = None,
    soname: str | None = None,
    cflags: Sequence[str] = (),
    ldflags: Sequence[str] = (),
) -> Path:
    """Compile `c_source` into the shared object `workdir/name`.

    `link` entries that are paths are linked as files (DT_NEEDED names their SONAME); strings go to
    gcc unchanged. `rpath` becomes DT_RPATH, `runpath` DT_RUNPATH. ld writes only one of the two,
    so when both are asked for, the RUNPATH string goes in as DT_AUXILIARY (-f) and that entry is
    retagged afterwards.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{name}.c"
    source.write_text(c_source)
    out = workdir / name
    cmd: list[str | Path] = [_gcc(), *CFLAGS, *cflags, *LDFLAGS, "-o", out, source]
    cmd += [str(item) for item in link]
    # Let ld find the DT_NEEDED entries of linked libraries next to them.
    for directory in dict.fromkeys(item.parent for item in link if isinstance(item, Path)):
        cmd += ["-Xlinker", "-rpath-link", "-Xlinker", str(directory)]
    if soname is not None:
        cmd += ["-Xlinker", "-soname", "-Xlinker", soname]
    if rpath is not None:
        cmd += ["-Xlinker", "--disable-new-dtags", "-Xlinker", "-rpath", "-Xlinker", rpath]
        if runpath is not None:
            cmd += ["-Xlinker", "-f", "-Xlinker", runpath]
    elif runpath is not None:
        cmd += ["-Xlinker", "--enable-new-dtags", "-Xlinker", "-rpath", "-Xlinker", runpath]
    cmd += list(ldflags)
    _run(cmd)
    if rpath is not None and runpath is not None:
        _retag_dynamic_entry(out, DT_AUXILIARY, DT_RUNPATH)
    return out


def calling_source(entry_point: str, callees: Sequence[str]) -> str:
    """C source of one exported function that calls each of `callees` once."""
    _check_identifiers([entry_point, *callees])
    declarations = "".join(f"void {name}(void);\n" for name in callees)
    calls = "".join(f"    {name}();\n" for name in callees)
    return f"{declarations}void {entry_point}(void) {{\n{calls}}}\n"


def build_extension(
    workdir: Path,
    modname: str,
    *,
    calls: Mapping[Path, Sequence[str]],
    rpath: str | None = None,
    runpath: str | None = None,
    cflags: Sequence[str] = (),
    ldflags: Sequence[str] = (),
) -> Path:
    """A fake CPython extension `workdir/<modname>.cpython-311-x86_64-linux-gnu.so`.

    It defines `PyInit_<modname>` (all auditwheel looks for; no Python headers needed), which calls
    the listed functions of each library in `calls`; the libraries are linked, so each becomes a
    DT_NEEDED entry and each called function an undefined symbol with that library's version.
    """
    callees = [name for names in calls.values() for name in names]
    return build_shared_object(
        workdir, f"{modname}{EXTENSION_SUFFIX}", calling_source(f"PyInit_{modname}", callees),
        link=list(calls), rpath=rpath, runpath=runpath, cflags=cflags, ldflags=ldflags)


# ---- wheels ----

def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _expand_tags(tag: str) -> list[str]:
    """'cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64' -> one full tag per platform."""
    python, abi, platform = tag.split("-")
    return [f"{p}-{a}-{plat}" for p in python.split(".") for a in abi.split(".") for plat in platform.split(".")]


def pack_wheel(out_dir: Path, dist: str, version: str, tag: str, files: Mapping[str, Path | bytes], *,
               wheel_file: bytes | None = None, modes: Mapping[str, int] | None = None) -> Path:
    """Write the PEP 427 wheel `{dist}-{version}-{tag}.whl` holding `files` (archive name -> content).

    The .dist-info holds WHEEL (one Tag line per expanded tag, or `wheel_file` as given), METADATA
    and RECORD (urlsafe base64 sha256 without padding, and sizes). Members are deflated with fixed
    timestamps, so the same inputs give the same bytes. `modes` gives a member its st_mode (file
    type and permissions) in place of 0o100755 for shared objects and 0o100644 for the rest.
    """
    dist = re.sub(r"[^\w\d.]+", "_", dist)  # PEP 427 escaping of the distribution name
    dist_info = f"{dist}-{version}.dist-info"
    contents: dict[str, bytes] = {
        name: (value.read_bytes() if isinstance(value, Path) else value) for name, value in files.items()
    }
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    wheel_lines = ["Wheel-Version: 1.0", "Generator: fastaudit-tests", "Root-Is-Purelib: false"]
    wheel_lines += [f"Tag: {t}" for t in _expand_tags(tag)]
    contents[f"{dist_info}/WHEEL"] = wheel_file if wheel_file is not None else ("\n".join(wheel_lines) + "\n").encode()

    record_name = f"{dist_info}/RECORD"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in contents.items():
        writer.writerow([name, _record_hash(data), len(data)])
    writer.writerow([record_name, "", ""])
    contents[record_name] = record.getvalue().encode()

    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in contents.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o100755 if name.endswith(".so") or ".so." in name else 0o100644
            info.external_attr = (modes or {}).get(name, mode) << 16
            zf.writestr(info, data)
    return wheel


# ---- stub system libraries ----

@dataclass(frozen=True)
class StubLibs:
    """Link-time stand-ins for system libraries, and which function carries which version."""

    libc: Path  # fa_old@GLIBC_2.2.5, fa_mid@GLIBC_2.17, fa_new@GLIBC_2.34
    libz: Path  # _dist_code, inflate_fast @ZLIB_1.2.0 (blacklisted everywhere), uncompress2@ZLIB_1.2.9
    libstdcxx: Path  # fa_cxx_old@GLIBCXX_3.4, fa_cxx_19@GLIBCXX_3.4.19, fa_cxx_21@GLIBCXX_3.4.21


LIBC_VERSIONS = {"GLIBC_2.2.5": ["fa_old"], "GLIBC_2.17": ["fa_mid"], "GLIBC_2.34": ["fa_new"]}
# Real names from auditwheel's manylinux blacklist: _dist_code and inflate_fast are blacklisted for
# every manylinux policy, uncompress2 only up to manylinux_2_31.
LIBZ_VERSIONS = {"ZLIB_1.2.0": ["_dist_code", "inflate_fast"], "ZLIB_1.2.9": ["uncompress2"]}
LIBSTDCXX_VERSIONS = {"GLIBCXX_3.4": ["fa_cxx_old"], "GLIBCXX_3.4.19": ["fa_cxx_19"], "GLIBCXX_3.4.21": ["fa_cxx_21"]}


def build_stubs(workdir: Path) -> StubLibs:
    """Build the stubs into `workdir`, which must hold nothing a wheel ships or an RPATH names."""
    return StubLibs(
        libc=build_stub_lib(workdir, "libc.so.6", LIBC_VERSIONS),
        libz=build_stub_lib(workdir, "libz.so.1", LIBZ_VERSIONS),
        libstdcxx=build_stub_lib(workdir, "libstdc++.so.6", LIBSTDCXX_VERSIONS),
    )


# ---- scenarios ----

@dataclass(frozen=True)
class Scenario:
    """A built wheel and the verdict `auditwheel show --json` (6.8.2) gives for it.

    The verdict does not depend on the host, except that `external_libs` in auditwheel's JSON maps
    each soname to a host path or null; only the sonames are recorded.
    """

    name: str
    wheel: Path
    overall_tag: str  # auditwheel's "overall_tag"
    sym_tag: str  # auditwheel's "sym_tag": the best tag the symbol versions alone allow
    external_libs: tuple[str, ...] = ()  # sonames that would have to be grafted
    blacklisted_symbols: tuple[str, ...] = ()  # union over policy_upgrades[*].blacklisted_symbols
    unsupported_isa: bool = False
    summary: str = ""

    @property
    def claimed_platforms(self) -> tuple[str, ...]:
        """The platform tags in the wheel's file name."""
        return tuple(self.wheel.name.removesuffix(".whl").split("-")[-1].split("."))


MANYLINUX_2_17 = "manylinux_2_17_x86_64"
LINUX = "linux_x86_64"


def _init_py(package: str) -> dict[str, bytes]:
    return {f"{package}/__init__.py": b""}


def scenario_glibc_2_17(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(a) An extension needing GLIBC_2.2.5 and GLIBC_2.17 only: manylinux2014 is right."""
    ext = build_extension(workdir / "glibc_2_17", "_core", calls={stubs.libc: ["fa_old", "fa_mid"]})
    wheel = pack_wheel(out_dir, "fa_glibc217", "1.0", DEFAULT_TAG,
                       {**_init_py("fa_glibc217"), f"fa_glibc217/{ext.name}": ext})
    return Scenario("glibc_2_17", wheel, MANYLINUX_2_17, MANYLINUX_2_17,
                    summary="needs GLIBC_2.17 at most; consistent with its manylinux2014 name")


def scenario_glibc_2_34(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(b) An extension needing GLIBC_2.34 in a wheel named manylinux2014: the name over-promises."""
    ext = build_extension(workdir / "glibc_2_34", "_core", calls={stubs.libc: ["fa_mid", "fa_new"]})
    wheel = pack_wheel(out_dir, "fa_glibc234", "1.0", DEFAULT_TAG,
                       {**_init_py("fa_glibc234"), f"fa_glibc234/{ext.name}": ext})
    return Scenario("glibc_2_34", wheel, "manylinux_2_34_x86_64", "manylinux_2_34_x86_64",
                    summary="needs GLIBC_2.34 but is named manylinux_2_17: over-promises")


def scenario_external_libfoo(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(c) DT_NEEDED libfoo.so.1: not whitelisted, not in the wheel, not on the host."""
    here = workdir / "external_libfoo"
    libfoo = build_stub_lib(here / "not_shipped", "libfoo.so.1", {"FOO_1.0": ["fa_foo"]})
    ext = build_extension(here, "_core", calls={stubs.libc: ["fa_mid"], libfoo: ["fa_foo"]})
    wheel = pack_wheel(out_dir, "fa_libfoo", "1.0", DEFAULT_TAG,
                       {**_init_py("fa_libfoo"), f"fa_libfoo/{ext.name}": ext})
    return Scenario("external_libfoo", wheel, LINUX, MANYLINUX_2_17, external_libs=("libfoo.so.1",),
                    summary="needs libfoo.so.1, which no policy allows and the wheel does not ship")


def scenario_zlib_blacklist_partial(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(d) uncompress2 from libz.so.1: blacklisted up to manylinux_2_31, allowed from 2_34 on."""
    ext = build_extension(workdir / "zlib_partial", "_core",
                          calls={stubs.libc: ["fa_mid"], stubs.libz: ["uncompress2"]})
    wheel = pack_wheel(out_dir, "fa_zlib_partial", "1.0", DEFAULT_TAG,
                       {**_init_py("fa_zlib_partial"), f"fa_zlib_partial/{ext.name}": ext})
    # ZLIB_1.2.9 alone allows manylinux_2_27; the blacklist then pushes the verdict to 2_34.
    return Scenario("zlib_blacklist_partial", wheel, "manylinux_2_34_x86_64", "manylinux_2_27_x86_64",
                    blacklisted_symbols=("uncompress2",),
                    summary="uses uncompress2, blacklisted by manylinux_2_5 .. 2_31")


def scenario_zlib_blacklist_all(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(d') _dist_code and inflate_fast: blacklisted by every manylinux policy."""
    ext = build_extension(workdir / "zlib_all", "_core",
                          calls={stubs.libc: ["fa_mid"], stubs.libz: ["_dist_code", "inflate_fast"]})
    wheel = pack_wheel(out_dir, "fa_zlib_all", "1.0", DEFAULT_TAG,
                       {**_init_py("fa_zlib_all"), f"fa_zlib_all/{ext.name}": ext})
    return Scenario("zlib_blacklist_all", wheel, LINUX, MANYLINUX_2_17,
                    blacklisted_symbols=("_dist_code", "inflate_fast"),
                    summary="uses zlib internals that every manylinux policy blacklists")


def scenario_isa_v3(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(e) An extension whose GNU property note says it needs x86-64-v3 (ld -z x86-64-v3)."""
    ext = build_extension(workdir / "isa_v3", "_core", calls={stubs.libc: ["fa_mid"]},
                          ldflags=["-Wl,-z,x86-64-v3"])
    wheel = pack_wheel(out_dir, "fa_isa_v3", "1.0", DEFAULT_TAG,
                       {**_init_py("fa_isa_v3"), f"fa_isa_v3/{ext.name}": ext})
    return Scenario("isa_v3", wheel, LINUX, MANYLINUX_2_17, unsupported_isa=True,
                    summary="GNU_PROPERTY_X86_ISA_1_NEEDED = x86-64-v3 (bits 0x4)")


GRAFTED_BAR = "libbar-1234abcd.so.1"
GRAFTED_BAZ = "libbaz-5678ef90.so.1"


def scenario_origin_chain(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(f) Extension --RPATH $ORIGIN/../fa_origin.libs--> libbar --RUNPATH $ORIGIN--> libbaz.

    Both grafted libraries sit in the wheel, so every DT_NEEDED resolves inside it.
    """
    libs = workdir / "origin_chain" / "fa_origin.libs"
    baz = build_shared_object(libs, GRAFTED_BAZ, calling_source("fa_baz", ["fa_old"]),
                              link=[stubs.libc], soname=GRAFTED_BAZ)
    bar = build_shared_object(libs, GRAFTED_BAR, calling_source("fa_bar", ["fa_baz", "fa_mid"]),
                              link=[baz, stubs.libc], soname=GRAFTED_BAR, runpath="$ORIGIN")
    ext = build_extension(workdir / "origin_chain" / "fa_origin", "_chain",
                          calls={bar: ["fa_bar"], stubs.libc: ["fa_old"]}, rpath="$ORIGIN/../fa_origin.libs")
    wheel = pack_wheel(out_dir, "fa_origin", "1.0", DEFAULT_TAG, {
        **_init_py("fa_origin"),
        f"fa_origin/{ext.name}": ext,
        f"fa_origin.libs/{GRAFTED_BAR}": bar,
        f"fa_origin.libs/{GRAFTED_BAZ}": baz,
    })
    return Scenario("origin_chain", wheel, MANYLINUX_2_17, MANYLINUX_2_17,
                    summary="$ORIGIN RPATH then $ORIGIN RUNPATH, both resolving inside the wheel")


def scenario_rpath_vs_runpath(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(g) One extension with both DT_RPATH ($ORIGIN/rpath_dir) and DT_RUNPATH ($ORIGIN/runpath_dir).

    Both folders hold a libqux.so.1. When DT_RUNPATH is present the loader ignores DT_RPATH, so the
    clean runpath_dir copy is used; the rpath_dir copy needs libfoo.so.1, which nobody ships, and
    would make the wheel linux-only if a resolver wrongly searched DT_RPATH first.
    """
    here = workdir / "rpath_vs_runpath"
    libfoo = build_stub_lib(here / "not_shipped", "libfoo.so.1", {"FOO_1.0": ["fa_foo"]})
    good = build_shared_object(here / "fa_prec" / "runpath_dir", "libqux.so.1",
                               calling_source("fa_qux", ["fa_mid"]), link=[stubs.libc], soname="libqux.so.1")
    bad = build_shared_object(here / "fa_prec" / "rpath_dir", "libqux.so.1",
                              calling_source("fa_qux", ["fa_mid", "fa_foo"]), link=[stubs.libc, libfoo],
                              soname="libqux.so.1")
    ext = build_extension(here / "fa_prec", "_prec", calls={good: ["fa_qux"], stubs.libc: ["fa_mid"]},
                          rpath="$ORIGIN/rpath_dir", runpath="$ORIGIN/runpath_dir")
    wheel = pack_wheel(out_dir, "fa_prec", "1.0", DEFAULT_TAG, {
        **_init_py("fa_prec"),
        f"fa_prec/{ext.name}": ext,
        "fa_prec/runpath_dir/libqux.so.1": good,
        "fa_prec/rpath_dir/libqux.so.1": bad,
    })
    return Scenario("rpath_vs_runpath", wheel, MANYLINUX_2_17, MANYLINUX_2_17,
                    summary="DT_RUNPATH wins over DT_RPATH; the RPATH copy would need libfoo.so.1")


def scenario_glibcxx_3_4_21(workdir: Path, stubs: StubLibs, out_dir: Path) -> Scenario:
    """(h) GLIBCXX_3.4.21 from libstdc++.so.6: first allowed by manylinux_2_24."""
    ext = build_extension(workdir / "glibcxx", "_core",
                          calls={stubs.libc: ["fa_mid"], stubs.libstdcxx: ["fa_cxx_old", "fa_cxx_21"]})
    wheel = pack_wheel(out_dir, "fa_glibcxx", "1.0", DEFAULT_TAG,
                       {**_init_py("fa_glibcxx"), f"fa_glibcxx/{ext.name}": ext})
    return Scenario("glibcxx_3_4_21", wheel, "manylinux_2_24_x86_64", "manylinux_2_24_x86_64",
                    summary="needs GLIBCXX_3.4.21 (manylinux2014 stops at 3.4.19)")


SCENARIOS: dict[str, Callable[[Path, StubLibs, Path], Scenario]] = {
    "glibc_2_17": scenario_glibc_2_17,
    "glibc_2_34": scenario_glibc_2_34,
    "external_libfoo": scenario_external_libfoo,
    "zlib_blacklist_partial": scenario_zlib_blacklist_partial,
    "zlib_blacklist_all": scenario_zlib_blacklist_all,
    "isa_v3": scenario_isa_v3,
    "origin_chain": scenario_origin_chain,
    "rpath_vs_runpath": scenario_rpath_vs_runpath,
    "glibcxx_3_4_21": scenario_glibcxx_3_4_21,
}


def build_scenarios(workdir: Path, stubs: StubLibs, out_dir: Path) -> dict[str, Scenario]:
    return {name: build(workdir, stubs, out_dir) for name, build in SCENARIOS.items()}


# ---- reading back, with pyelftools as the reference ----

@dataclass(frozen=True)
class ReferenceFacts:
    """What pyelftools says about an ELF image, in the shape of fastaudit's ElfInfo."""

    elf_class: int
    little_endian: bool
    osabi: int
    machine: int
    e_flags: int
    e_type: int
    interpreter: str | None
    needed: tuple[str, ...]
    soname: str | None
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    flags_1: int
    version_requirements: dict[str, frozenset[str]]
    version_definitions: tuple[str, ...]
    undefined_symbols: frozenset[str]  # non-weak undefined .dynsym names, as auditwheel counts them
    defined_symbols: frozenset[str]
    x86_isa_needed: int | None


def reference_facts(data: bytes) -> ReferenceFacts:
    """Read `data` with pyelftools. Versions and symbols come from sections, so they must exist."""
    elf = ELFFile(io.BytesIO(data))
    order = "<" if elf.little_endian else ">"
    e_type, machine = struct.unpack_from(order + "HH", data, 16)
    e_flags = elf.header["e_flags"]

    tags: dict[str, list[object]] = {}
    dynamic = next((s for s in elf.iter_segments() if s.header.p_type == "PT_DYNAMIC"), None)
    if dynamic is not None:
        for tag in dynamic.iter_tags():
            value = {"DT_NEEDED": "needed", "DT_SONAME": "soname", "DT_RPATH": "rpath",
                     "DT_RUNPATH": "runpath"}.get(tag.entry.d_tag)
            tags.setdefault(tag.entry.d_tag, []).append(getattr(tag, value) if value else tag.entry.d_val)
    interpreter = next((s.get_interp_name() for s in elf.iter_segments() if isinstance(s, InterpSegment)), None)

    requirements: dict[str, set[str]] = {}
    definitions: list[str] = []
    undefined: set[str] = set()
    defined: set[str] = set()
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for verneed, auxes in section.iter_versions():
                requirements.setdefault(verneed.name, set()).update(a.name for a in auxes)
        elif isinstance(section, GNUVerDefSection):
            definitions += [next(iter(auxes)).name for _, auxes in section.iter_versions()]
        elif isinstance(section, SymbolTableSection) and section["sh_type"] == "SHT_DYNSYM":
            for sym in section.iter_symbols():
                if not sym.name:
                    continue
                if sym["st_shndx"] != "SHN_UNDEF":
                    defined.add(sym.name)
                elif sym["st_info"]["bind"] != "STB_WEAK":
                    undefined.add(sym.name)

    def path_list(key: str) -> tuple[str, ...]:
        # ld.so ignores an empty DT_RPATH / DT_RUNPATH string altogether
        return tuple(str(tags[key][0]).split(":")) if tags.get(key, [""])[0] else ()

    return ReferenceFacts(
        elf_class=elf.elfclass,
        little_endian=elf.little_endian,
        osabi=data[7],
        machine=machine,
        e_flags=e_flags,
        e_type=e_type,
        interpreter=interpreter,
        needed=tuple(str(n) for n in tags.get("DT_NEEDED", [])),
        soname=str(tags["DT_SONAME"][0]) if "DT_SONAME" in tags else None,
        rpath=path_list("DT_RPATH"),
        runpath=path_list("DT_RUNPATH"),
        flags_1=int(tags["DT_FLAGS_1"][0]) if "DT_FLAGS_1" in tags else 0,  # type: ignore[call-overload]
        version_requirements={k: frozenset(v) for k, v in requirements.items()},
        version_definitions=tuple(definitions),
        undefined_symbols=frozenset(undefined),
        defined_symbols=frozenset(defined),
        x86_isa_needed=_x86_isa_needed(elf),
    )


def _x86_isa_needed(elf: ELFFile) -> int | None:
    for segment in elf.iter_segments():
        if segment.header.p_type != "PT_NOTE":
            continue
        for note in segment.iter_notes():
            if note["n_type"] != "NT_GNU_PROPERTY_TYPE_0" or note["n_name"] != "GNU":
                continue
            for prop in note["n_desc"]:
                if prop.pr_type == "GNU_PROPERTY_X86_ISA_1_NEEDED":
                    return int(prop.pr_data)
    return None


# ---- musl ----

MUSL_LIBC = "libc.musl-x86_64.so.1"  # Alpine's name for musl's libc, which musllinux wheels record
MUSL_I386_LIBC = "libc.musl-x86.so.1"


@functools.cache
def musl_gcc() -> str:
    """Debian's musl-gcc wrapper (package musl-tools): gcc with musl's headers and libc."""
    path = shutil.which("musl-gcc")
    if path is None:
        raise BuildError("musl-gcc is required to build musl objects (apt-get install musl-tools)")
    return path


@functools.cache
def _musl_libc_so() -> Path:
    """The real musl libc.so that musl-gcc links against, as the linker reports it."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "empty.c"
        source.write_text("int fastaudit_probe;\n")
        trace = subprocess.run([musl_gcc(), "-shared", "-fPIC", "-o", str(Path(tmp) / "probe.so"), str(source),
                                "-Wl,--trace"], capture_output=True, text=True)
    found = [line.strip() for line in trace.stdout.splitlines() if line.strip().endswith("/libc.so")]
    if trace.returncode != 0 or not found:
        raise BuildError(f"musl-gcc could not link a shared object: {trace.stderr}")
    return Path(found[0])


def build_musl_object(workdir: Path, name: str, c_source: str, *, link: Sequence[Path] = (),
                      libc_name: str = MUSL_LIBC, soname: str | None = None, rpath: str | None = None) -> Path:
    """Compile `c_source` with musl-gcc (musl's own headers) into the shared object `workdir/name`,
    linked against the real musl libc.so.

    The libc is linked under `libc_name`, so DT_NEEDED records that name: Alpine's by default, as in
    a musllinux wheel; "libc.so" is what Debian's musl and Rust toolchains record. `link` entries
    are further libraries to link (DT_NEEDED names their SONAME); `soname` sets DT_SONAME, `rpath` DT_RUNPATH.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    libc_dir = workdir / "musl-libc"
    libc_dir.mkdir(exist_ok=True)
    if not (libc_dir / libc_name).exists():
        (libc_dir / libc_name).symlink_to(_musl_libc_so())
    source = workdir / f"{name}.c"
    source.write_text(c_source)
    out = workdir / name
    _run([musl_gcc(), *CFLAGS, "-shared", "-nodefaultlibs", "-Wl,--hash-style=gnu", "-o", out, source,
          *link, f"-L{libc_dir}", f"-l:{libc_name}", *([f"-Wl,-soname,{soname}"] if soname else []),
          *([f"-Wl,-rpath,{rpath}"] if rpath else [])])
    return out


def build_i386_musl_stub(workdir: Path, symbols: Sequence[str]) -> Path:
    """A 32-bit stand-in for musl's i386 libc (`libc.musl-x86.so.1`) exporting `void f(void)` for
    each symbol, as a link input: Debian ships no i386 musl. Needs gcc -m32 (gcc-multilib)."""
    _check_identifiers(symbols)
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{MUSL_I386_LIBC}.c"
    source.write_text("".join(f"void {name}(void) {{}}\n" for name in symbols))
    out = workdir / MUSL_I386_LIBC
    _run([_gcc(), "-m32", *CFLAGS, *LDFLAGS, "-o", out, source, f"-Wl,-soname,{MUSL_I386_LIBC}"])
    return out
