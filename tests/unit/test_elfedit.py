"""The ELF rewriter (`rewrite_elf`, `_elfedit.pyx`) on gcc-built shared objects and on the shared
objects of real PyPI wheels of five architectures, checked by patchelf, readelf, eu-elflint,
pyelftools and the dynamic loader."""
from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from fastaudit.elf import WANT_DYNAMIC, ElfEdits, read_elf, rewrite_elf
from fastaudit.errors import ELFCorruptError, ELFError, ELFUnsupportedError, RepairError
from tests import elfcheck
from tests.corpus import corpus_wheels
from tests.elfbuild import _run

LIB_C = """
#include <math.h>
double demo_root(double x) { return sqrt(x); }
int demo_answer(void) { return 42; }
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A plain library; one with a long RUNPATH; one with DT_RPATH; an executable."""
    root = tmp_path_factory.mktemp("elfedit")
    src = root / "demo.c"
    src.write_text(LIB_C)
    out = {
        "plain": root / "libdemo.so",
        "runpath": root / "libdemo-runpath.so",
        "rpath": root / "libdemo-rpath.so",
        "exe": root / "demo-exe",
    }
    common = ["gcc", "-shared", "-fPIC", "-O1", "-Wl,--no-as-needed", "-o"]
    _run([*common, out["plain"], src, "-lm"])
    _run([*common, out["runpath"], src, "-lm", "-Wl,--enable-new-dtags,-rpath,/opt/a/rather/long/runpath/entry",
          "-Wl,-soname,libdemo.so.1"])
    _run([*common, out["rpath"], src, "-lm", "-Wl,--disable-new-dtags,-rpath,/opt/rpath/entry"])
    main = root / "main.c"
    main.write_text("int main(void) { return 0; }\n")
    _run(["gcc", "-O1", "-Wl,--no-as-needed", "-o", out["exe"], main, "-lm"])
    return out


def rewritten(source: Path, edits: ElfEdits, dest: Path) -> Path:
    dest.write_bytes(rewrite_elf(source.read_bytes(), edits))
    return dest


def assert_sound(path: Path, original: Path, removes_needed: bool = False) -> None:
    """readelf reads it without a word, eu-elflint finds nothing the original did not have, and every
    dynamic entry the rewrite does not own is unchanged."""
    elfcheck.readelf_ok(path)
    assert elfcheck.elflint_complaints(path) <= elfcheck.elflint_complaints(original)
    assert (elfcheck.unchanged_entries(path.read_bytes(), removes_needed)
            == elfcheck.unchanged_entries(original.read_bytes(), removes_needed))


def renamed_libm(folder: Path) -> Path:
    """A copy of this machine's libm under a new name, for plans that rename DT_NEEDED libm.so.6."""
    libm = Path(elfcheck.run("gcc", "-print-file-name=libm.so.6").stdout.strip()).resolve()
    folder.mkdir(exist_ok=True)
    shutil.copy(libm, folder / "libm-renamed.so.6")
    return folder


EDITS: dict[str, Callable[[Path], ElfEdits]] = {
    "set soname": lambda _: ElfEdits(soname="libdemo-0123abcd.so.1"),
    "set rpath": lambda _: ElfEdits(rpath="$ORIGIN/../demo.libs:$ORIGIN"),
    "set runpath": lambda _: ElfEdits(runpath="$ORIGIN/../demo.libs"),
    "replace needed": lambda libs: ElfEdits(replace_needed={"libm.so.6": "libm-renamed.so.6"}, rpath=str(libs)),
    "remove needed": lambda _: ElfEdits(remove_needed=frozenset({"libm.so.6"})),
    "everything": lambda libs: ElfEdits(replace_needed={"libm.so.6": "libm-renamed.so.6"},
                                        soname="libdemo-0123abcd.so.1", runpath=f"$ORIGIN:{libs}"),
}


@pytest.mark.parametrize("kind", ["plain", "runpath", "rpath"])
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_each_edit_reads_back_everywhere_and_loads(built: dict[str, Path], tmp_path: Path, kind: str,
                                                    edit: str) -> None:
    source = built[kind]
    libs = renamed_libm(tmp_path / "libs")
    edits = EDITS[edit](libs)
    out = rewritten(source, edits, tmp_path / "out.so")
    before, after = read_elf(source.read_bytes()), read_elf(out.read_bytes())

    needed = tuple(edits.replace_needed.get(n, n) for n in before.needed if n not in edits.remove_needed)
    soname = edits.soname if edits.soname is not None else before.soname
    if edits.rpath is not None:
        rpath, runpath = tuple(edits.rpath.split(":")), ()
    elif edits.runpath is not None:
        rpath, runpath = (), tuple(edits.runpath.split(":"))
    else:
        rpath, runpath = before.rpath, before.runpath
    assert (after.needed, after.soname, after.rpath, after.runpath) == (needed, soname, rpath, runpath)
    assert after.version_requirements.keys() == {edits.replace_needed.get(k, k)
                                                 for k in before.version_requirements} - edits.remove_needed
    assert elfcheck.patchelf_view(out) == (needed, ":".join(runpath or rpath), soname)
    assert_sound(out, source, removes_needed=bool(edits.remove_needed))
    assert elfcheck.elflint_complaints(out) == set()
    loaded = elfcheck.dlopen(out)
    assert loaded.returncode == 0, loaded.stderr


def test_a_plan_that_changes_nothing_returns_the_same_bytes(built: dict[str, Path]) -> None:
    data = built["runpath"].read_bytes()
    info = read_elf(data)
    same = ElfEdits(soname=info.soname, runpath=":".join(info.runpath))
    assert rewrite_elf(data, same) == data
    assert rewrite_elf(data, ElfEdits()) == data


def test_repeating_a_plan_neither_changes_nor_grows_the_file(built: dict[str, Path], tmp_path: Path) -> None:
    edits = ElfEdits(replace_needed={"libm.so.6": "libm-renamed.so.6"}, soname="libdemo-0123abcd.so.1",
                     rpath="$ORIGIN/../demo.libs")
    once = rewrite_elf(built["plain"].read_bytes(), edits)
    again = rewrite_elf(once, ElfEdits(soname=edits.soname, rpath=edits.rpath))
    assert again == once


def test_a_string_that_fits_is_written_in_place(built: dict[str, Path], tmp_path: Path) -> None:
    source = built["runpath"]
    out = rewritten(source, ElfEdits(runpath="$ORIGIN/short"), tmp_path / "out.so")
    assert out.stat().st_size == source.stat().st_size
    assert read_elf(out.read_bytes()).runpath == ("$ORIGIN/short",)
    assert_sound(out, source)
    assert elfcheck.dlopen(out).returncode == 0


def test_a_shared_string_is_not_overwritten(built: dict[str, Path], tmp_path: Path) -> None:
    # the SONAME "libdemo.so.1" and a symbol name could share bytes; the DT_NEEDED "libm.so.6" is
    # also the vn_file of its version requirements, which the rename moves along with it
    source = built["runpath"]
    out = rewritten(source, ElfEdits(replace_needed={"libm.so.6": "libq.so.6"}), tmp_path / "out.so")
    info = read_elf(out.read_bytes())
    assert info.needed == ("libq.so.6", "libc.so.6")
    assert "libq.so.6" in info.version_requirements and "libm.so.6" not in info.version_requirements
    assert read_elf(out.read_bytes()).symbols.names == read_elf(source.read_bytes()).symbols.names
    assert_sound(out, source)


def _dynamic_without_spare_slots(source: Path, dest: Path) -> Path:
    """The library as a linker that reserves no spare DT_NULL slots would write it: PT_DYNAMIC and
    the .dynamic section hold exactly the entries and one DT_NULL."""
    data = bytearray(source.read_bytes())
    used = (len(elfcheck.dynamic_entries(bytes(data))) + 1) * 16
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    for i in range(phnum):
        ph = phoff + i * 56
        if struct.unpack_from("<I", data, ph)[0] == 2:  # PT_DYNAMIC: p_filesz, p_memsz
            struct.pack_into("<QQ", data, ph + 32, used, used)
    shoff, = struct.unpack_from("<Q", data, 40)
    shnum, = struct.unpack_from("<H", data, 60)
    for i in range(shnum):
        sh = shoff + i * 64
        if struct.unpack_from("<I", data, sh + 4)[0] == 6:  # SHT_DYNAMIC: sh_size
            struct.pack_into("<Q", data, sh + 32, used)
    dest.write_bytes(bytes(data))
    return dest


def test_a_full_dynamic_section_moves_to_the_new_segment(built: dict[str, Path], tmp_path: Path) -> None:
    source = _dynamic_without_spare_slots(built["plain"], tmp_path / "tight.so")
    assert elfcheck.dlopen(source).returncode == 0
    out = rewritten(source, ElfEdits(soname="libdemo-0123abcd.so.1", rpath="$ORIGIN"), tmp_path / "out.so")
    def dynamic_offset(dump: str) -> str:
        return dump.split("Dynamic section at offset")[1].split()[0]
    assert dynamic_offset(elfcheck.readelf_ok(out)) != dynamic_offset(elfcheck.readelf_ok(source))
    info = read_elf(out.read_bytes())
    assert (info.soname, info.rpath) == ("libdemo-0123abcd.so.1", ("$ORIGIN",))
    assert elfcheck.patchelf_view(out)[1:] == ("$ORIGIN", "libdemo-0123abcd.so.1")
    assert_sound(out, source)
    assert elfcheck.dlopen(out).returncode == 0


def _note_as_null(source: Path, dest: Path) -> Path:
    """The library with its PT_NOTE entry turned into PT_NULL: a free program header slot."""
    data = bytearray(source.read_bytes())
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    for i in range(phnum):
        if struct.unpack_from("<I", data, phoff + i * 56)[0] == 4:
            struct.pack_into("<I", data, phoff + i * 56, 0)
            break
    else:
        pytest.fail("gcc wrote no PT_NOTE")
    dest.write_bytes(bytes(data))
    return dest


def test_a_free_program_header_slot_is_used_in_place(built: dict[str, Path], tmp_path: Path) -> None:
    source = _note_as_null(built["plain"], tmp_path / "slot.so")
    out = rewritten(source, ElfEdits(rpath="$ORIGIN/" + "x" * 200), tmp_path / "out.so")
    header = out.read_bytes()[:64]
    assert header[32:40] == source.read_bytes()[32:40]  # e_phoff: the table stayed
    assert header[56:58] == source.read_bytes()[56:58]  # e_phnum: no entry added
    assert "NULL" not in elfcheck.readelf_ok(out).split("Program Headers:")[1].split("Section to Segment")[0]
    assert elfcheck.dlopen(out).returncode == 0


def test_without_a_free_slot_the_program_headers_move(built: dict[str, Path], tmp_path: Path) -> None:
    source = built["plain"]
    out = rewritten(source, ElfEdits(rpath="$ORIGIN/" + "x" * 200), tmp_path / "out.so")
    data = out.read_bytes()
    assert struct.unpack_from("<Q", data, 32)[0] >= source.stat().st_size
    assert struct.unpack_from("<H", data, 56)[0] == struct.unpack_from("<H", source.read_bytes(), 56)[0] + 1
    assert_sound(out, source)
    assert elfcheck.dlopen(out).returncode == 0


EXE_C = """
#include <math.h>
#include <stdio.h>
int main(int argc, char **argv) { printf("root %g\\n", sqrt((double)argc + 3.0)); return 0; }
"""


def _program_headers(data: bytes) -> tuple[int, int, list[tuple[int, int, int, int, int]]]:
    """(e_phoff, e_phentsize, [(p_type, p_offset, p_vaddr, p_filesz, p_memsz)]) of an image."""
    elf = ELFFile(io.BytesIO(data))
    rows = [(s["p_type"], s["p_offset"], s["p_vaddr"], s["p_filesz"], s["p_memsz"]) for s in elf.iter_segments()]
    kinds = {"PT_LOAD": 1, "PT_INTERP": 3, "PT_PHDR": 6, "PT_NULL": 0}
    return elf["e_phoff"], elf["e_phentsize"], [(kinds.get(t, -1), *rest) for t, *rest in rows]


def assert_table_grew_in_place(source: bytes, out: bytes) -> None:
    """The program header table is where it was, one entry longer, inside the first PT_LOAD, and
    the address an older kernel hands the program (first PT_LOAD's p_vaddr - p_offset + e_phoff)
    is PT_PHDR's: the table moved nowhere, what followed it did."""
    phoff, phentsize, before = _program_headers(source)
    out_phoff, _, after = _program_headers(out)
    assert 0 not in [row[0] for row in before], "the executable had a free slot: not the case under test"
    assert out_phoff == phoff and len(after) == len(before) + 1
    first_load = next(row for row in after if row[0] == 1)
    phdr = next(row for row in after if row[0] == 6)
    assert phdr[1] == phoff and phdr[3] == phdr[4] == len(after) * phentsize
    assert first_load[2] - first_load[1] + phoff == phdr[2]
    assert phoff + len(after) * phentsize <= first_load[1] + first_load[3]
    interp = next(row for row in after if row[0] == 3)
    assert interp[1] >= len(source)   # .interp went to the new segment
    assert read_elf(out).interpreter == read_elf(source).interpreter


def _host_library(name: str, flags: list[str]) -> Path:
    return Path(elfcheck.run("gcc", *flags, f"-print-file-name={name}").stdout.strip()).resolve()


@pytest.mark.parametrize("flags", [[], ["-no-pie"], ["-m32"], ["-m32", "-no-pie"]],
                         ids=["x86_64-pie", "x86_64-exec", "i386-pie", "i386-exec"])
def test_an_executable_without_a_free_slot_grows_its_table_in_place(tmp_path: Path, flags: list[str]) -> None:
    src, exe = tmp_path / "main.c", tmp_path / "main"
    src.write_text(EXE_C)
    try:
        _run(["gcc", *flags, "-O1", "-Wl,--no-as-needed", "-o", exe, src, "-lm"])
    except Exception as e:   # noqa: BLE001 - gcc-multilib missing is a skip, said loudly
        if "-m32" in flags:
            pytest.skip(f"SKIPPED LOUDLY: gcc -m32 cannot link here ({e})")
        raise
    libs = tmp_path / "libs"
    libs.mkdir()
    shutil.copy(_host_library("libm.so.6", flags), libs / "libm-0123abcd.so.6")
    edits = ElfEdits(replace_needed={"libm.so.6": "libm-0123abcd.so.6"}, rpath=f"{libs}:$ORIGIN/../" + "x" * 100)
    out = rewritten(exe, edits, tmp_path / "main-rewritten")
    out.chmod(0o755)
    assert_table_grew_in_place(exe.read_bytes(), out.read_bytes())
    assert elfcheck.patchelf_view(out)[:2] == (("libm-0123abcd.so.6", "libc.so.6"), edits.rpath)
    elfcheck.readelf_ok(out)
    assert elfcheck.elflint_complaints(out) <= elfcheck.elflint_complaints(exe)
    ran, original = elfcheck.run(out), elfcheck.run(exe)
    assert ran.returncode == 0 and ran.stdout == original.stdout, ran.stderr
    # patchelf, the oracle, makes the same edit by the same kind of move; both outputs run alike
    oracle = tmp_path / "main-patchelf"
    shutil.copy(exe, oracle)
    patched = elfcheck.run(elfcheck.tool("patchelf"), "--replace-needed", "libm.so.6", "libm-0123abcd.so.6",
                           "--set-rpath", edits.rpath, "--force-rpath", oracle)
    assert patched.returncode == 0, patched.stderr
    assert elfcheck.patchelf_view(oracle)[:2] == elfcheck.patchelf_view(out)[:2]
    assert elfcheck.run(oracle).stdout == ran.stdout


def test_an_executable_whose_note_reaches_past_the_file_is_refused(built: dict[str, Path]) -> None:
    # the notes after the table are copied whole into the new segment: a PT_NOTE that claims a
    # terabyte would be an output of that size, so it is a typed refusal before anything is made
    data = bytearray(built["exe"].read_bytes())
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    note = next(phoff + 56 * i for i in range(phnum) if struct.unpack_from("<I", data, phoff + 56 * i)[0] == 4)
    struct.pack_into("<QQ", data, note + 32, 1 << 40, 1 << 40)   # p_filesz, p_memsz
    with pytest.raises(ELFError, match="PT_NOTE beyond the end of the file"):
        rewrite_elf(bytes(data), ElfEdits(rpath="$ORIGIN/../" + "x" * 100))


REAL_EXECUTABLES = {   # wheel file name pattern in the cache: the executable inside it
    "ruff-0.17.6-py3-none-manylinux_2_17_x86_64.*.whl": "ruff-0.17.6.data/scripts/ruff",
    "uv-0.13.9-py3-none-manylinux_2_17_x86_64.*.whl": "uv-0.13.9.data/scripts/uv",
    "cmake-4.4.5-py3-none-manylinux2014_x86_64.*.whl": "cmake/data/bin/cmake",
    "ninja-1.13.2-py3-none-manylinux2014_x86_64.*.whl": "ninja-1.13.2.data/scripts/ninja",
    "ninja-1.11.1.1-py2.py3-none-manylinux1_x86_64.*.whl": "ninja/data/bin/ninja",
}
WHEEL_CACHE = Path(os.environ.get("FASTAUDIT_WHEEL_CACHE", Path.home() / ".cache" / "fastaudit" / "wheels"))


@pytest.mark.parametrize("pattern", sorted(REAL_EXECUTABLES), ids=lambda p: p.split("-py")[0])
def test_real_executables_from_wheels_run_after_the_edit(tmp_path: Path, pattern: str) -> None:
    """What repair does to an executable that needs a grafted library: its DT_NEEDED renamed to
    the grafted copy and an RPATH to the copy's folder; the program still runs."""
    wheels = sorted(WHEEL_CACHE.glob(pattern))
    if not wheels:
        pytest.skip(f"SKIPPED LOUDLY: {pattern} is not in {WHEEL_CACHE} (bench/fetch_wheels.py --set all)")
    exe = tmp_path / Path(REAL_EXECUTABLES[pattern]).name
    with zipfile.ZipFile(wheels[0]) as zf:
        exe.write_bytes(zf.read(REAL_EXECUTABLES[pattern]))
    exe.chmod(0o755)
    libs = tmp_path / "tool.libs"
    libs.mkdir()
    shutil.copy(_host_library("libgcc_s.so.1", []), libs / "libgcc_s-0123abcd.so.1")
    edits = ElfEdits(replace_needed={"libgcc_s.so.1": "libgcc_s-0123abcd.so.1"}, rpath=f"$ORIGIN/../x:{libs}")
    out = rewritten(exe, edits, tmp_path / "rewritten")
    out.chmod(0o755)
    assert_table_grew_in_place(exe.read_bytes(), out.read_bytes())
    needed = tuple(edits.replace_needed.get(n, n) for n in read_elf(exe.read_bytes()).needed)
    assert elfcheck.patchelf_view(out)[:2] == (needed, edits.rpath)
    ran, original = elfcheck.run(out, "--version"), elfcheck.run(exe, "--version")
    assert ran.returncode == original.returncode == 0, ran.stderr
    assert ran.stdout == original.stdout
    loaded = subprocess.run([out, "--version"], capture_output=True, text=True, env={**os.environ, "LD_DEBUG": "libs"})
    assert f"{libs}/libgcc_s-0123abcd.so.1" in loaded.stderr   # the renamed library, found by the RPATH


def test_an_executable_edit_that_fits_is_made(built: dict[str, Path], tmp_path: Path) -> None:
    out = rewritten(built["exe"], ElfEdits(remove_needed=frozenset({"libm.so.6"})), tmp_path / "exe")
    out.chmod(0o755)
    assert read_elf(out.read_bytes()).needed == ("libc.so.6",)
    assert elfcheck.run(out).returncode == 0


@pytest.mark.parametrize(("edits", "message"), [
    (ElfEdits(replace_needed={"libnope.so": "libx.so"}), "libnope.so is not a DT_NEEDED entry"),
    (ElfEdits(remove_needed=frozenset({"libnope.so"})), "libnope.so is not a DT_NEEDED entry"),
    (ElfEdits(replace_needed={"libm.so.6": "a"}, remove_needed=frozenset({"libm.so.6"})), "both replaced and removed"),
    (ElfEdits(rpath="/a", runpath="/b"), "not both"),
    (ElfEdits(replace_needed={"libm.so.6": ""}), "invalid DT_NEEDED name"),
    (ElfEdits(soname="a\0b"), "invalid DT_SONAME"),
])
def test_a_plan_that_does_not_fit_is_refused_before_writing(built: dict[str, Path], edits: ElfEdits,
                                                            message: str) -> None:
    with pytest.raises(RepairError, match=message):
        rewrite_elf(built["plain"].read_bytes(), edits)


@pytest.mark.parametrize("cut", [0, 3, 20, 63, 100, 1000])
def test_a_truncated_image_is_an_elf_error(built: dict[str, Path], cut: int) -> None:
    with pytest.raises(ELFError):
        rewrite_elf(built["plain"].read_bytes()[:cut], ElfEdits(soname="x"))


# --- real shared objects from PyPI wheels: ELF32 and ELF64, both byte orders, 4 and 64 KiB pages --------

REAL_WHEELS = {
    "Pillow-8.0.1-cp38-cp38-manylinux1_i686.whl": "i686, ELF32",
    "regex-2024.9.11-cp311-cp311-manylinux_2_17_s390x.manylinux2014_s390x.whl": "s390x, big-endian",
    "pydantic_core-2.27.2-cp312-cp312-musllinux_1_1_aarch64.whl": "aarch64, 64 KiB pages",
    "orjson-3.10.15-cp312-cp312-musllinux_1_2_armv7l.whl": "armv7l, ELF32 musl",
    "cffi-1.16.0-cp311-cp311-manylinux_2_17_ppc64le.manylinux2014_ppc64le.whl": "ppc64le",
    "pillow-11.1.0-cp311-cp311-manylinux_2_28_x86_64.whl": "x86_64, grafted libraries",
}


def _ci_wheel(name: str) -> Path:
    wheels = [w for w in corpus_wheels("ci") if isinstance(w, Path)]
    if not wheels:
        pytest.skip("SKIPPED LOUDLY: the ci wheel set is unavailable")
    matches = [w for w in wheels if w.name == name]
    assert matches, f"{name} is not in the ci set"
    return matches[0]


@pytest.mark.parametrize("wheel_name", sorted(REAL_WHEELS), ids=lambda n: REAL_WHEELS[n])
def test_real_shared_objects_of_every_kind(wheel_name: str, tmp_path: Path) -> None:
    with zipfile.ZipFile(_ci_wheel(wheel_name)) as zf:
        members = [n for n in zf.namelist() if n.endswith(".so") or ".so." in n]
        assert members
        for index, member in enumerate(members[:4]):
            source = tmp_path / f"in{index}.so"
            source.write_bytes(zf.read(member))
            before = read_elf(source.read_bytes())
            edits = ElfEdits(replace_needed={before.needed[0]: "libfastaudit-test.so.9"} if before.needed else {},
                             soname=f"lib{index}-fastaudit.so", rpath="$ORIGIN/../x.libs:$ORIGIN")
            out = rewritten(source, edits, tmp_path / f"out{index}.so")
            after = read_elf(out.read_bytes())
            assert after.soname == edits.soname and after.rpath == ("$ORIGIN/../x.libs", "$ORIGIN"), member
            assert after.needed == tuple(edits.replace_needed.get(n, n) for n in before.needed), member
            assert elfcheck.patchelf_view(out) == (after.needed, "$ORIGIN/../x.libs:$ORIGIN", edits.soname)
            assert after.version_definitions == before.version_definitions
            assert after.symbols.names == before.symbols.names
            assert_sound(out, source)


def test_a_load_segment_larger_in_the_file_than_in_memory_is_refused(built: dict[str, Path]) -> None:
    # found by fuzzing: the new segment was placed after p_memsz while the bad p_filesz still
    # covered its address, so the rewritten image did not read back
    data = bytearray(built["plain"].read_bytes())
    phoff, = struct.unpack_from("<Q", data, 32)
    struct.pack_into("<Q", data, phoff + 32, 0x6E04A0)  # the first PT_LOAD's p_filesz
    with pytest.raises(ELFError, match="p_filesz larger than p_memsz"):
        rewrite_elf(bytes(data), ElfEdits(rpath="$ORIGIN/" + "x" * 100))


def test_a_program_header_table_over_a_section_is_not_rewritten_in_place() -> None:
    # found by the property test: e_phnum raised to 12 makes the table run over .note.gnu.build-id,
    # the 12th "entry" reads as PT_NULL, and reusing that slot rewrote the note's bytes
    seed = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "elf" / "gcc-x86_64-versioned.elf"
    data = bytearray(seed.read_bytes())
    data[56] = 12
    out = rewrite_elf(bytes(data), ElfEdits(replace_needed={"libc.so.6": "libz" + "q" * 40 + ".so"}))
    assert out[:len(data)][0x238:0x25C] == bytes(data[0x238:0x25C])  # the note, untouched
    assert read_elf(out).needed == ("libz" + "q" * 40 + ".so",)


def test_an_elf32_image_whose_new_segment_would_pass_4_gib_is_refused() -> None:
    # found by fuzz/fuzz_rewrite.py under ASan: a mutated symbol size pushed the new segment's
    # address past 32 bits and the program header write overflowed (an OverflowError, not a typed error)
    crashes = Path(__file__).resolve().parents[1] / "data" / "rewrite-crashes"
    image = (crashes / "elf32-segment-past-4gib.elf").read_bytes()
    edits = ElfEdits(replace_needed={"libm.so.6": "libaa.so"}, soname="libx.so", rpath="$ORIGIN/../ppppppppp")
    with pytest.raises(ELFUnsupportedError, match="past 4 GiB"):
        rewrite_elf(image, edits)


def test_a_program_header_table_over_a_dynamic_table_is_not_rewritten_in_place() -> None:
    # found by fuzz/fuzz_rewrite.py: e_phnum so large that the table runs over DT_GNU_HASH, a PT_NULL
    # "entry" in it, and the in-place rewrite of the table overwrote the hash table
    crashes = Path(__file__).resolve().parents[1] / "data" / "rewrite-crashes"
    image = (crashes / "phdrs-over-gnu-hash.elf").read_bytes()
    out = rewrite_elf(image, ElfEdits(soname="l.so", runpath="$ORIGIN/../"))
    assert out[0xD8:0xE8] == image[0xD8:0xE8]  # the DT_GNU_HASH header, untouched
    assert read_elf(out, WANT_DYNAMIC).soname == "l.so"  # its notes are garbage: the dynamic part only


def test_only_zero_slots_after_dynamic_are_room_to_grow() -> None:
    # found by the property test: a PT_DYNAMIC p_filesz raised by 768 claimed the section headers
    # that follow .dynamic, and filling its "spare slots" with DT_NULL zeroed them
    seed = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "elf" / "crafted-ppc64-sections.elf"
    data = bytearray(seed.read_bytes())
    data[214] = 3
    before = read_elf(bytes(data))
    out = rewrite_elf(bytes(data), ElfEdits(rpath=""))
    assert read_elf(out).needed == before.needed and read_elf(out).rpath == ()


def test_a_field_that_would_not_fit_is_a_typed_error() -> None:
    # found by fuzz/fuzz_rewrite.py: removing the first Elf_Verneed of a mutated image shrank a
    # .gnu.version_r section below zero bytes (an OverflowError before)
    crashes = Path(__file__).resolve().parents[1] / "data" / "rewrite-crashes"
    image = (crashes / "verneed-section-shorter-than-its-chain.elf").read_bytes()
    with pytest.raises(ELFError):
        rewrite_elf(image, ElfEdits(remove_needed=frozenset({"libc.so.6"}), soname="", rpath=""))


def test_a_dynamic_table_linked_to_another_string_table_is_refused() -> None:
    # found by the property test: one flipped byte made .gnu.version_r link to a section that is not
    # the .dynstr DT_STRTAB names, so that section kept the old strings and vn_file read past them
    seed = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "elf" / "crafted-ppc64-sections.elf"
    data = bytearray(seed.read_bytes())
    data[4776] = 1
    needed = read_elf(bytes(data)).needed
    with pytest.raises(ELFError, match="not the string table DT_STRTAB names"):
        rewrite_elf(bytes(data), ElfEdits(replace_needed={needed[0]: "libz" + "q" * 40 + ".so"}))


def test_a_version_table_over_the_program_headers_is_refused() -> None:
    # found by fuzz/fuzz_rewrite.py (2026-12-01): a mutated .gnu.version section lay over the ELF and
    # program headers, so unversioning the removed library's symbols rewrote e_phnum and a p_flags,
    # and the output had no PT_DYNAMIC left (the build before the Python planner did the same). The
    # file is the fuzzer's input: four plan bytes (remove DT_NEEDED 1, SONAME and RPATH), then the image.
    crashes = Path(__file__).resolve().parents[1] / "data" / "rewrite-crashes"
    image = (crashes / "versym-over-the-program-headers.fuzz").read_bytes()[4:]
    needed = read_elf(image, WANT_DYNAMIC).needed
    with pytest.raises(ELFError, match="version table .over the ELF or program headers"):
        rewrite_elf(image, ElfEdits(remove_needed=frozenset({needed[1]}), soname="", rpath=""))


def test_a_version_table_over_dynamic_is_refused_by_the_planner() -> None:
    # found by fuzz/fuzz_rewrite.py (2026-12-01, "new-dynstr-does-not-read-back"): a mutated ELF32 ARM
    # image whose .gnu.version section header covers 0x34-0x1138, over the old program headers,
    # .dynsym, .dynamic and the section headers. Removing DT_NEEDED libc.so.6 unversions the
    # symbols of its versions, and that scan, run after .dynamic was written, turned DT_STRSZ (10)
    # and DT_SYMENT (11), whose low halves are the removed version indexes, into DT_NEEDED: the
    # output had no DT_STRSZ, so its .dynstr read as 0 bytes. The file is the fuzzer's input: four
    # plan bytes (rename DT_NEEDED 0, remove DT_NEEDED 2, SONAME "l.so", RUNPATH "$ORIGIN/../"),
    # then the image. The planner refuses it itself, before anything is written (not the read-back).
    crashes = Path(__file__).resolve().parents[1] / "data" / "rewrite-crashes"
    image = (crashes / "new-dynstr-does-not-read-back.fuzz").read_bytes()[4:]
    needed = read_elf(image, WANT_DYNAMIC).needed
    edits = ElfEdits(replace_needed={needed[0]: "libaaaaaa.so"}, remove_needed=frozenset({needed[2]}),
                     soname="l.so", runpath="$ORIGIN/../")
    with pytest.raises(ELFCorruptError, match=r"version table \(over symbol table\)"):
        rewrite_elf(image, edits)


SHT_STRTAB, SHT_SYMTAB, SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_versym = 3, 2, 6, 11, 0x6FFFFFFF


def _section_laid_over(source: bytes, kind: int, target: int) -> bytes:
    """An x86-64 image whose section header of type `kind` gives the file offset of the section of
    type `target`: the two tables now share bytes, as a hostile file can declare."""
    data = bytearray(source)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, = struct.unpack_from("<H", data, 0x3C)
    headers = [shoff + 64 * i for i in range(shnum)]
    def type_of(at: int) -> int:
        return struct.unpack_from("<I", data, at + 4)[0]
    target_offset, = struct.unpack_from("<Q", data, next(h for h in headers if type_of(h) == target) + 24)
    moved = [h for h in headers if type_of(h) == kind]
    assert moved, f"no section of type {kind:#x}"
    for at in moved:
        struct.pack_into("<Q", data, at + 24, target_offset)
    return bytes(data)


LONG_SONAME = "lib" + "x" * 80 + ".so"
REMOVE_LIBM = frozenset({"libm.so.6"})


@pytest.mark.parametrize(("kind", "target", "edits", "message"), [
    # the loops' tables over a table the plan rewrites
    (SHT_GNU_versym, SHT_DYNAMIC, ElfEdits(remove_needed=REMOVE_LIBM), r"version table \(over \.dynamic\)"),
    (SHT_GNU_versym, SHT_DYNAMIC, ElfEdits(remove_needed=REMOVE_LIBM, runpath="$ORIGIN/" + "x" * 100),
     r"version table \(over \.dynamic\)"),
    (SHT_GNU_versym, SHT_STRTAB, ElfEdits(remove_needed=REMOVE_LIBM, replace_needed={"libc.so.6": "libc.so"}),
     r"version table \(over \.dynstr\)"),
    (SHT_SYMTAB, SHT_DYNAMIC, ElfEdits(soname=LONG_SONAME), r"symbol table \(over \.dynamic\)"),
    (SHT_DYNSYM, SHT_DYNAMIC, ElfEdits(soname=LONG_SONAME), r"symbol table \(over \.dynamic\)"),
    # and over each other
    (SHT_SYMTAB, SHT_GNU_versym, ElfEdits(soname=LONG_SONAME, remove_needed=REMOVE_LIBM),
     r"version table \(over symbol table\)"),
], ids=["versym-dynamic", "versym-dynamic-new-segment", "versym-dynstr-in-place", "symtab-dynamic",
        "dynsym-dynamic", "symtab-versym"])
def test_writes_that_would_share_bytes_are_refused(built: dict[str, Path], kind: int, target: int,
                                                   edits: ElfEdits, message: str) -> None:
    source = built["plain"].read_bytes()
    assert read_elf(rewrite_elf(source, edits)).needed  # the same plan on the intact library is made
    image = _section_laid_over(source, kind, target)
    read_elf(image)   # the reader takes the image: the rewrite is what must refuse it
    with pytest.raises(ELFCorruptError, match=message):
        rewrite_elf(image, edits)
