"""ELF executables in `<dist>-<ver>.data/scripts/` (issue 14, item 2).

pip installs scripts into the environment's bin folder, from where no RPATH reaches the grafted
libraries, so repair moves an ELF script that needs them to `<distribution>.scripts/` and leaves a
launcher in its place, as auditwheel 6 does. The executables here are built by gcc: one calls into
a library built here (found only through LD_LIBRARY_PATH) and into Debian's libsqlite3; beside it
an ELF script that needs nothing grafted, a static one and a shell script, which stay as they are.
Each wheel is repaired by fastaudit and by auditwheel, compared, installed into a fresh venv and
its console scripts run with the library folder gone. Then the odd and hostile cases."""
from __future__ import annotations

import stat
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from wheel.wheelfile import WheelFile

from fastaudit.elf import read_elf
from fastaudit.errors import RepairError
from fastaudit.repair import RepairOptions, plan_repair
from tests import elfcheck
from tests.elfbuild import _run, pack_wheel
from tests.extbuild import PY_TAG, SQLITE
from tests.integration.test_repair import (
    BIN,
    auditwheel_tag,
    environment,
    fastaudit_repair,
    files_of,
    installed_in_a_fresh_venv,
    only_wheel,
    run,
    wheel_file_bytes,
)

TAG = f"{PY_TAG}-{PY_TAG}-linux_x86_64"
DATA = "fa_tool-1.0.data/scripts"
ODD = "fa-odd 'é\"\\ -> bin"  # a quote, a backslash, spaces, "->", a non-ASCII letter: the launcher holds them

_GRAFT_C = "int fagraft_answer(void) { return 42; }\n"

# prints what it got, which copies of the libraries it runs with, and exits 7 (the launcher execs it,
# so that status is the console script's)
_TOOL_C = r"""
#include <stdio.h>
#include <string.h>
int fagraft_answer(void);
const char *sqlite3_libversion(void);
int main(int argc, char **argv) {
    printf("answer=%d sqlite=%s\n", fagraft_answer(), sqlite3_libversion());
    for (int i = 1; i < argc; i++) printf("arg=%s\n", argv[i]);
    char line[4096];
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps && fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (path && (strstr(path, "/libfagraft") || strstr(path, "/libsqlite3"))) printf("map=%s", path);
    }
    return 7;
}
"""

_PLAIN_C = '#include <stdio.h>\nint main(void) { puts("plain"); return 0; }\n'

PT_NULL, PT_NOTE, PT_GNU_PROPERTY = 0, 4, 0x6474E553


@dataclass(frozen=True)
class Built:
    deps: Path                 # libfagraft.so.1, on LD_LIBRARY_PATH only
    tool: Path                 # as gcc links it: no free program-header entry
    tool_with_free_slot: Path  # the same, with a spare entry
    plain: Path                # needs only libc
    static: Path               # no PT_DYNAMIC at all


def with_a_free_program_header_slot(source: Path, target: Path) -> Path:
    """The executable with its duplicate PT_NOTE entry (the one over .note.gnu.property, which
    PT_GNU_PROPERTY also covers and the kernel reads) made PT_NULL: the free entry the rewriter
    needs today for an executable's new segment (issue 14 item 3 removes that need)."""
    data = bytearray(source.read_bytes())
    assert data[:6] == b"\x7fELF\x02\x01", "an ELF64 little-endian executable"
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    headers = [(i, *struct.unpack_from("<I4xQ16xQ", data, phoff + i * phentsize)) for i in range(phnum)]
    property_range = next(((off, size) for _, kind, off, size in headers if kind == PT_GNU_PROPERTY), None)
    duplicate = next((i for i, kind, off, size in headers if kind == PT_NOTE and (off, size) == property_range), None)
    if duplicate is None:
        pytest.skip("SKIPPED LOUDLY: this gcc writes no PT_NOTE that duplicates PT_GNU_PROPERTY")
    struct.pack_into("<I", data, phoff + duplicate * phentsize, PT_NULL)
    target.write_bytes(data)
    target.chmod(0o755)
    return target


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("scripts")
    deps = work / "deps"
    deps.mkdir()
    (work / "graft.c").write_text(_GRAFT_C)
    _run(["gcc", "-shared", "-fPIC", "-O1", "-Wl,-soname,libfagraft.so.1", "-o", deps / "libfagraft.so.1",
          work / "graft.c"])
    (work / "tool.c").write_text(_TOOL_C)
    _run(["gcc", "-O1", "-o", work / "tool", work / "tool.c", f"-L{deps}", "-l:libfagraft.so.1", f"-l:{SQLITE}"])
    (work / "plain.c").write_text(_PLAIN_C)
    _run(["gcc", "-O1", "-o", work / "plain", work / "plain.c"])
    _run(["gcc", "-O1", "-static", "-o", work / "static", work / "plain.c"])
    for program in ("tool", "plain", "static"):
        assert subprocess.run([work / program], env=environment(deps), capture_output=True).returncode in (0, 7)
    return Built(deps, work / "tool", with_a_free_program_header_slot(work / "tool", work / "tool-slot"),
                 work / "plain", work / "static")


def scripts_wheel(out: Path, files: dict[str, Path | bytes], *, modes: dict[str, int] | None = None,
                  wheel_file: bytes | None = None) -> Path:
    """fa_tool-1.0 with `files` (and a package), every script executable unless `modes` says otherwise."""
    contents: dict[str, Path | bytes] = {"fa_tool/__init__.py": b"", **files}
    all_modes = {name: 0o100755 for name in files if "/scripts/" in name} | (modes or {})
    return pack_wheel(out, "fa_tool", "1.0", TAG, contents, modes=all_modes, wheel_file=wheel_file)


def main_files(built: Built, tool: Path) -> dict[str, Path | bytes]:
    return {f"{DATA}/fa-tool": tool, f"{DATA}/{ODD}": tool, f"{DATA}/fa-plain": built.plain,
            f"{DATA}/fa-static": built.static, f"{DATA}/fa-shell": b'#!/bin/sh\necho "shell $*"\n'}


def repair_both(wheel: Path, out: Path, env: dict[str, str]) -> tuple[Path, Path]:
    ours = fastaudit_repair(wheel, out / "fastaudit", env=env)
    if ours.returncode == 2 and "no free slot" in ours.stderr:
        pytest.skip("SKIPPED LOUDLY: the rewriter does not yet add a segment to an executable without a free "
                    f"program-header entry (issue 14 item 3): {ours.stderr.strip()}")
    assert ours.returncode == 0, ours.stderr
    theirs = run(BIN / "auditwheel", "repair", "-w", out / "auditwheel", wheel, env=env)
    assert theirs.returncode == 0, theirs.stderr
    return only_wheel(out / "fastaudit"), only_wheel(out / "auditwheel")


@pytest.fixture(scope="module", params=["a free program-header slot", "as gcc links it"])
def repaired(request: pytest.FixtureRequest, built: Built,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(the input, fastaudit's repaired wheel, auditwheel's)."""
    root = tmp_path_factory.mktemp("repaired")
    tool = built.tool_with_free_slot if request.param == "a free program-header slot" else built.tool
    wheel = scripts_wheel(root / "dist", main_files(built, tool))
    return (wheel, *repair_both(wheel, root, environment(built.deps)))


def members(wheel: Path) -> dict[str, tuple[bytes, int]]:
    with zipfile.ZipFile(wheel) as zf:
        return {i.filename: (zf.read(i), i.external_attr >> 16) for i in zf.infolist() if not i.is_dir()}


MOVED = {f"{DATA}/fa-tool": "fa_tool.scripts/fa-tool", f"{DATA}/{ODD}": f"fa_tool.scripts/{ODD}"}


def test_an_elf_script_that_needs_grafts_moves_where_auditwheel_moves_it(repaired: tuple[Path, Path, Path],
                                                                        tmp_path: Path) -> None:
    wheel, ours, theirs = repaired
    assert ours.name == theirs.name
    assert files_of(ours) == files_of(theirs)
    assert auditwheel_tag(ours) == auditwheel_tag(theirs) == ours.name.removesuffix(".whl").rsplit("-", 1)[1]
    assert wheel_file_bytes(ours) == wheel_file_bytes(theirs)
    before, after, oracle = members(wheel), members(ours), members(theirs)
    assert set(MOVED.values()) <= set(after)
    assert {n for n in after if n.startswith("fa_tool.scripts/")} == set(MOVED.values())
    for name in ("fa-plain", "fa-static", "fa-shell"):  # nothing to graft, or not ELF: left as they are
        assert after[f"{DATA}/{name}"] == before[f"{DATA}/{name}"] == oracle[f"{DATA}/{name}"], name
    for script, home in MOVED.items():
        launcher, mode = after[script]
        assert launcher.startswith(b"#!python\n") and b"\x7fELF" not in launcher
        assert stat.S_ISREG(mode) and mode & 0o111 and after[home][1] == mode, oct(mode)
        compile(launcher, script, "exec")  # valid Python, whatever the name holds
        ours_elf, theirs_elf = read_elf(after[home][0]), read_elf(oracle[home][0])
        assert ours_elf.needed == theirs_elf.needed and ours_elf.rpath == theirs_elf.rpath == \
            ("$ORIGIN/../fa_tool.libs",)
        copy = tmp_path / Path(home).name
        copy.write_bytes(after[home][0])
        assert elfcheck.patchelf_view(copy) == (ours_elf.needed, "$ORIGIN/../fa_tool.libs", None)
        elfcheck.readelf_ok(copy)
    with WheelFile(ours) as wf:  # raises on a member RECORD does not state truly
        for name in wf.namelist():
            wf.read(name)


def _run_tool(venv: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run(venv / "bin" / script, *args, env=environment(), cwd=venv)


def test_the_installed_console_scripts_run_without_the_library_folder(repaired: tuple[Path, Path, Path],
                                                                      built: Built, tmp_path: Path) -> None:
    _, ours, theirs = repaired
    venvs = {"ours": installed_in_a_fresh_venv(ours, tmp_path / "ours"),
             "theirs": installed_in_a_fresh_venv(theirs, tmp_path / "theirs")}
    hidden = built.deps.with_name("deps-hidden")
    built.deps.rename(hidden)
    try:
        ran = {(who, script): _run_tool(venv, script, "one", "two words", "é")
               for who, venv in venvs.items() for script in ("fa-tool", ODD, "fa-plain", "fa-static", "fa-shell")}
    finally:
        hidden.rename(built.deps)
    for who, venv in venvs.items():
        for script in ("fa-tool", ODD):
            result = ran[who, script]
            assert result.returncode == 7, (who, script, result.stderr)
            lines = result.stdout.splitlines()
            assert lines[0].startswith("answer=42 sqlite=3.")
            assert [line for line in lines if line.startswith("arg=")] == ["arg=one", "arg=two words", "arg=é"]
            maps = {line.removeprefix("map=") for line in lines if line.startswith("map=")}
            assert len(maps) == 2 and all(m.startswith(str(venv)) and "/site-packages/fa_tool.libs/" in m
                                          for m in maps), (who, maps)
        assert ran[who, "fa-plain"].stdout == ran[who, "fa-static"].stdout == "plain\n"
        assert ran[who, "fa-shell"].stdout == "shell one two words é\n"
    assert [line for line in ran["ours", "fa-tool"].stdout.splitlines() if not line.startswith("map=")] == \
        [line for line in ran["theirs", "fa-tool"].stdout.splitlines() if not line.startswith("map=")]


def test_repairing_the_repaired_wheel_changes_nothing(repaired: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, ours, _ = repaired
    again = fastaudit_repair(ours, tmp_path / "again", env=environment())
    assert again.returncode == 0, again.stderr
    assert "moved:" not in again.stdout
    assert only_wheel(tmp_path / "again").read_bytes() == ours.read_bytes()


def test_a_script_below_a_subfolder_moves_too_where_auditwheels_breaks(built: Built, tmp_path: Path) -> None:
    """pip installs `scripts/sub/x` as `bin/sub/x`; auditwheel leaves it there with an RPATH that
    only resolves inside the unpacked wheel, so its installed copy cannot start. fastaudit moves it
    to `<dist>.scripts/sub/x` (README: a deliberate difference)."""
    nested = f"{DATA}/sub/fa-nested"
    wheel = scripts_wheel(tmp_path / "dist", {nested: built.tool_with_free_slot})
    ours, theirs = repair_both(wheel, tmp_path, environment(built.deps))
    assert "fa_tool.scripts/sub/fa-nested" in files_of(ours) and nested in files_of(ours)
    assert "fa_tool.scripts/sub/fa-nested" not in files_of(theirs) and nested in files_of(theirs)
    venvs = {who: installed_in_a_fresh_venv(w, tmp_path / who) for who, w in (("ours", ours), ("theirs", theirs))}
    mine, auditwheels = (run(venvs[who] / "bin" / "sub" / "fa-nested", env=environment()) for who in venvs)
    assert mine.returncode == 7 and mine.stdout.startswith("answer=42"), mine.stderr
    assert auditwheels.returncode != 0 and "libfagraft" in auditwheels.stderr


def test_a_root_is_purelib_wheel_gets_a_launcher_into_purelib(built: Built, tmp_path: Path) -> None:
    wheel_file = f"Wheel-Version: 1.0\nGenerator: fastaudit-tests\nRoot-Is-Purelib: true\nTag: {TAG}\n".encode()
    wheel = scripts_wheel(tmp_path / "dist", {f"{DATA}/fa-tool": built.tool_with_free_slot}, wheel_file=wheel_file)
    result = fastaudit_repair(wheel, tmp_path / "out", env=environment(built.deps))
    assert result.returncode == 0, result.stderr
    launcher = members(only_wheel(tmp_path / "out"))[f"{DATA}/fa-tool"][0]
    assert b"get_path('purelib')" in launcher and b"platlib" not in launcher
    venv = installed_in_a_fresh_venv(only_wheel(tmp_path / "out"), tmp_path / "venv")
    ran = _run_tool(venv, "fa-tool")
    assert ran.returncode == 7 and ran.stdout.startswith("answer=42"), ran.stderr


# --- where the ELF file would go is taken: refused, where auditwheel overwrites or crashes ----------

TAKEN = {
    "a package file of that name": ({"fa_tool.scripts/fa-tool": b"package data\n"},
                                    "to fa_tool.scripts/fa-tool: fa_tool.scripts/fa-tool is already in the wheel"),
    "a file named like the folder": ({"fa_tool.scripts": b"not a folder\n"},
                                     "fa_tool.scripts is a file in the wheel"),
    "a folder of that name": ({"fa_tool.scripts/fa-tool/readme.txt": b"a folder\n"},
                              "fa_tool.scripts/fa-tool is a folder in the wheel"),
    "the same name in a second .data folder": ({"other-1.0.data/scripts/fa-tool": "tool"},
                                               "fa_tool.scripts/fa-tool: fa_tool-1.0.data/scripts/fa-tool goes there "
                                               "too"),
}


@pytest.mark.parametrize("case", list(TAKEN))
def test_a_taken_destination_is_refused_and_nothing_is_written(built: Built, tmp_path: Path, case: str) -> None:
    extra, phrase = TAKEN[case]
    files: dict[str, Path | bytes] = {f"{DATA}/fa-tool": built.tool_with_free_slot}
    files |= {n: built.tool_with_free_slot if v == "tool" else v for n, v in extra.items()}
    wheel = scripts_wheel(tmp_path / "dist", files)
    env = environment(built.deps)
    with pytest.raises(RepairError, match="cannot move the ELF script") as refused:
        plan_repair(wheel, RepairOptions(ld_library_path=str(built.deps)))
    assert phrase in str(refused.value)
    ours = fastaudit_repair(wheel, tmp_path / "out", env=env)
    assert ours.returncode == 2 and "Traceback" not in ours.stderr
    assert len(ours.stderr.splitlines()) == 1 and phrase in ours.stderr, ours.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    if case == "a package file of that name":  # what auditwheel does instead: the package file is lost
        theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "aw", wheel, env=env)
        assert theirs.returncode == 0, theirs.stderr
        assert members(only_wheel(tmp_path / "aw"))["fa_tool.scripts/fa-tool"][0].startswith(b"\x7fELF")
    if case == "a file named like the folder":  # auditwheel fails with a traceback, the input left behind
        theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "aw", wheel, env=env)
        assert theirs.returncode == 1 and "FileExistsError" in theirs.stderr
    if case == "the same name in a second .data folder":  # auditwheel: two launchers, one of the two files
        theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "aw", wheel, env=env)
        assert theirs.returncode == 0, theirs.stderr
        kept = members(only_wheel(tmp_path / "aw"))
        assert [n for n in kept if n.startswith("fa_tool.scripts/")] == ["fa_tool.scripts/fa-tool"]
        assert all(kept[n][0].startswith(b"#!python") for n in (f"{DATA}/fa-tool", "other-1.0.data/scripts/fa-tool"))


def test_a_symbolic_link_entry_among_the_scripts_is_refused(built: Built, tmp_path: Path) -> None:
    """A zip entry whose mode says symbolic link (its data the ELF file) is refused as unsafe,
    before any planning: extracted, it would be a link to a path made of ELF bytes, or a file."""
    link = f"{DATA}/fa-link"
    wheel = scripts_wheel(tmp_path / "dist", {f"{DATA}/fa-tool": built.tool_with_free_slot,
                                              link: built.tool_with_free_slot}, modes={link: 0o120777})
    ours = fastaudit_repair(wheel, tmp_path / "out", env=environment(built.deps))
    assert ours.returncode == 2 and "Traceback" not in ours.stderr
    assert len(ours.stderr.splitlines()) == 1 and "fa-link" in ours.stderr and "link" in ours.stderr, ours.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
