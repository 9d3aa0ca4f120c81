"""`fastaudit repair` of a wheel whose executable needs a library found only through
LD_LIBRARY_PATH (issue 14, item 3): the executable has no free program-header slot, so the new
segment's entry is made by growing its table in place; the repaired wheel installs into a fresh
venv and the installed program runs with the library folder gone."""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from tests.elfbuild import _run, pack_wheel
from tests.integration.test_repair import environment, fastaudit_repair, installed_in_a_fresh_venv, only_wheel, run
from tests.unit.test_elfedit import assert_table_grew_in_place

LIB_C = "int fa_answer(void) { return 42; }\n"
TOOL_C = '#include <stdio.h>\nint fa_answer(void);\nint main(void) { printf("answer %d\\n", fa_answer()); return 0; }\n'


@pytest.mark.parametrize("flags", [[], ["-no-pie"]], ids=["pie", "exec"])
def test_a_wheel_with_an_executable_is_repaired_and_its_program_runs(tmp_path: Path, flags: list[str]) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (tmp_path / "fa.c").write_text(LIB_C)
    (tmp_path / "tool.c").write_text(TOOL_C)
    _run(["gcc", "-shared", "-fPIC", "-o", host / "libfa_exe.so.1", "-Wl,-soname,libfa_exe.so.1", tmp_path / "fa.c"])
    tool = tmp_path / "tool"
    _run(["gcc", *flags, "-O1", "-o", tool, tmp_path / "tool.c", f"-L{host}", "-l:libfa_exe.so.1"])
    wheel = pack_wheel(tmp_path / "in", "exetool", "1.0", "py3-none-linux_x86_64",
                       {"exetool/__init__.py": b"", "exetool/bin/tool": tool})

    repaired = fastaudit_repair(wheel, tmp_path / "out", env=environment(host))
    assert repaired.returncode == 0, repaired.stderr
    out = only_wheel(tmp_path / "out")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        rewritten = zf.read("exetool/bin/tool")
    assert any(n.startswith("exetool.libs/libfa_exe-") for n in names), names
    assert_table_grew_in_place(tool.read_bytes(), rewritten)

    venv = installed_in_a_fresh_venv(out, tmp_path / "venv")
    installed = next((venv / "lib").glob("python*/site-packages/exetool/bin/tool"))
    installed.chmod(installed.stat().st_mode | stat.S_IXUSR)
    ran = run(installed, env=environment())   # no LD_LIBRARY_PATH: the grafted copy is found by RPATH
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "answer 42\n"
