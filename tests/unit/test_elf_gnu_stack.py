"""PT_GNU_STACK: the executable-stack flag, checked against readelf on objects gcc builds."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fastaudit import read_elf
from tests import elfbuild


def readelf_stack_flags(path: Path) -> str | None:
    text = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"GNU_STACK(?:\s+0x[0-9a-f]+){5}\s+(\S+)", text)
    return match.group(1) if match else None


@pytest.mark.parametrize("ldflag, executable", [("-Wl,-z,noexecstack", False), ("-Wl,-z,execstack", True)])
def test_executable_stack_matches_readelf(tmp_path: Path, ldflag: str, executable: bool) -> None:
    path = elfbuild.build_shared_object(tmp_path, "libstack.so", "int fa_stack(void) { return 1; }\n",
                                        ldflags=[ldflag])
    flags = readelf_stack_flags(path)
    assert flags is not None and ("E" in flags) == executable
    assert read_elf(path.read_bytes()).executable_stack is executable
