"""read_elf against pyelftools (and readelf -n for the x86 ISA bits) on real objects: what gcc builds
for the scenarios, up to 200 libraries of this system, and every ELF member of the wheels in the
download cache (when there is one)."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from fastaudit.elf import ElfInfo, read_elf
from tests import elfbuild

SYSTEM_LIB_DIR = Path("/usr/lib/x86_64-linux-gnu")
MAX_SYSTEM_LIBS = 200
WHEEL_CACHE = Path.home() / ".cache" / "fastaudit" / "wheels"
FACT_FIELDS = tuple(f.name for f in dataclasses.fields(elfbuild.ReferenceFacts))

# readelf -n names for GNU_PROPERTY_X86_ISA_1_NEEDED bits
ISA_BITS = {"x86-64-baseline": 0x1, "x86-64-v2": 0x2, "x86-64-v3": 0x4, "x86-64-v4": 0x8, "<None>": 0}


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def _system_libraries() -> list[Path]:
    """Up to MAX_SYSTEM_LIBS distinct ELF files, spread evenly over the sorted directory."""
    unique = {}
    for path in sorted(SYSTEM_LIB_DIR.glob("*.so*")):
        real = path.resolve()
        if real.is_file() and real not in unique and _is_elf(real):  # skips linker scripts like libc.so
            unique[real] = None
    found = list(unique)
    return found[:: max(1, len(found) // MAX_SYSTEM_LIBS)][:MAX_SYSTEM_LIBS]


SYSTEM_LIBS = _system_libraries()
CACHED_WHEELS = sorted(WHEEL_CACHE.glob("*.whl")) if WHEEL_CACHE.is_dir() else []


def facts_of(info: ElfInfo) -> dict[str, object]:
    facts = {name: getattr(info, name) for name in FACT_FIELDS}
    facts["version_requirements"] = dict(info.version_requirements)
    return facts


def differences(data: bytes) -> dict[str, tuple[object, object]]:
    """Fields where read_elf and pyelftools disagree: name -> (read_elf, pyelftools)."""
    mine = facts_of(read_elf(data))
    theirs = dataclasses.asdict(elfbuild.reference_facts(data))
    return {k: (mine[k], theirs[k]) for k in FACT_FIELDS if mine[k] != theirs[k]}


def readelf_isa_needed(paths: Sequence[Path]) -> dict[Path, int | None]:
    """GNU_PROPERTY_X86_ISA_1_NEEDED bits of each file as `readelf -n` prints them (None: no note)."""
    out = subprocess.run(["readelf", "-n", "-W", *map(str, paths)], capture_output=True, text=True).stdout
    # With several files readelf starts each one's output with "File: <path>".
    chunks = re.split(r"^File: (.*)$", out, flags=re.M)
    by_file = dict(zip(chunks[1::2], chunks[2::2])) if len(paths) > 1 else {str(paths[0]): out}
    result: dict[Path, int | None] = {}
    for path in paths:
        found = re.search(r"x86 ISA needed: (.*)$", by_file.get(str(path), ""), re.M)
        result[path] = None if found is None else sum(_isa_bit(t) for t in found.group(1).split(", "))
    return result


def _isa_bit(token: str) -> int:
    token = token.strip()
    if token in ISA_BITS:
        return ISA_BITS[token]
    unknown = re.fullmatch(r"<unknown: ([0-9a-f]+)>", token)
    if unknown is None:
        raise ValueError(f"readelf printed an ISA name this test does not know: {token!r}")
    return int(unknown.group(1), 16)


# ---- objects gcc built for the scenarios ----

def test_built_objects_match_pyelftools_and_readelf(built_objects: list[Path]) -> None:
    wrong = {p.name: d for p in built_objects if (d := differences(p.read_bytes()))}
    assert not wrong
    isa = readelf_isa_needed(built_objects)
    assert {p: read_elf(p.read_bytes()).x86_isa_needed for p in built_objects} == isa
    assert 0x4 in isa.values()  # the x86-64-v3 scenario is among them


# ---- this system's libraries ----

@pytest.mark.parametrize("path", SYSTEM_LIBS, ids=[p.name for p in SYSTEM_LIBS])
def test_system_library_matches_pyelftools(path: Path) -> None:
    assert differences(path.read_bytes()) == {}


def test_system_libraries_isa_bits_match_readelf() -> None:
    if not SYSTEM_LIBS:
        pytest.skip(f"no ELF libraries in {SYSTEM_LIB_DIR}")
    expected = readelf_isa_needed(SYSTEM_LIBS)
    assert {p: read_elf(p.read_bytes()).x86_isa_needed for p in SYSTEM_LIBS} == expected


# ---- the wheels in the download cache ----

@pytest.mark.slow
@pytest.mark.parametrize("wheel", CACHED_WHEELS, ids=[w.name for w in CACHED_WHEELS])
def test_cached_wheel_members_match_pyelftools(wheel: Path, tmp_path: Path) -> None:
    wrong: dict[str, object] = {}
    isa_by_file: dict[Path, int | None] = {}
    with zipfile.ZipFile(wheel) as zf:
        for index, member in enumerate(zf.infolist()):
            with zf.open(member) as f:
                if f.read(4) != b"\x7fELF":
                    continue
            data = zf.read(member)
            if diff := differences(data):
                wrong[member.filename] = diff
            on_disk = tmp_path / str(index)
            on_disk.write_bytes(data)
            isa_by_file[on_disk] = read_elf(data).x86_isa_needed
    assert not wrong
    if isa_by_file:
        assert isa_by_file == readelf_isa_needed(list(isa_by_file))
