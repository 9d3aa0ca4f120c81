"""Small images whose tables declare, or decode to, far more than their size (issue 9 defect 1,
issue 10 class 2), and extended program header numbering (PN_XNUM).

Shared version chains (every Elf_Verneed or Elf_Verdef walking one long aux chain) are refused by
the reader's one chain budget, by `read_elf` and `rewrite_elf` alike, without time or memory
growing with the counts they declare. Names that are all different suffixes of one long string
stop at the decode budget (4 x the image size): a typed error, not gigabytes. PN_XNUM images read
correctly and rewrite correctly, or are refused with a typed error. Each case also goes through
`fastaudit show` (and the shared-chain one through `fastaudit repair`) in a subprocess whose peak
RSS is measured.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from fastaudit.elf import WANT_DYNAMIC, ElfEdits, read_elf, rewrite_elf
from fastaudit.errors import ELFCorruptError, ELFError, ELFUnsupportedError
from tests import elfbuild, elfcraft

ROOT = Path(__file__).resolve().parents[2]
EDITS = ElfEdits(soname="libhostile-0123abcd.so.1", rpath="$ORIGIN/../" + "x" * 100)

SHARED_CHAINS: dict[str, Callable[[], bytes]] = {
    "verneed": elfcraft.shared_chain_verneed,
    "verneed, 4x the entries": lambda: elfcraft.shared_chain_verneed(entries=256),
    "verneed, DT_VERNEED only": lambda: elfcraft.shared_chain_verneed(section_too=False),
    "verneed, stripped": lambda: elfcraft.shared_chain_verneed(sections=False),
    "verdef": elfcraft.shared_chain_verdef,
    "verdef, 4x the entries": lambda: elfcraft.shared_chain_verdef(entries=256),
    "verdef, stripped": lambda: elfcraft.shared_chain_verdef(sections=False),
}

# (builder, what read_elf (touching every name) and rewrite_elf must do: an error class, or None
# for a correct result)
DECODED: dict[str, tuple[Callable[[], bytes], type[ELFError] | None]] = {
    "symbols, distinct suffixes": (elfcraft.symbols_into_one_string, ELFUnsupportedError),
    "symbols, one shared name": (lambda: elfcraft.symbols_into_one_string(distinct=False), None),
    "version names, distinct suffixes": (elfcraft.version_names_into_one_string, ELFUnsupportedError),
    "version names, stripped": (lambda: elfcraft.version_names_into_one_string(sections=False),
                                ELFUnsupportedError),
    "DT_NEEDED, distinct suffixes": (elfcraft.needed_into_one_string, ELFUnsupportedError),
}

XNUM: dict[str, Callable[[], bytes]] = {
    "PN_XNUM, headers move": elfcraft.extended_phnum,
    "PN_XNUM, a free slot": lambda: elfcraft.extended_phnum(free_slot=True),
    "PN_XNUM, 70000 headers and a free slot": lambda: elfcraft.extended_phnum(70_000, free_slot=True),
    "PN_XNUM, 70000 headers, no free slot": lambda: elfcraft.extended_phnum(70_000),
}


def _bounded(call: Callable[[], object]) -> tuple[object, float, int]:
    """(result or raised ELFError, seconds, peak traced bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result: object = call()
    except ELFError as e:
        result = e
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, elapsed, peak


def _touch_every_name(data: bytes) -> object:
    info = read_elf(data)
    return (info.needed, info.version_requirements, info.version_definitions, info.undefined_symbols,
            info.defined_symbols, info.symbols.names)


@pytest.mark.parametrize("case", sorted(SHARED_CHAINS))
def test_shared_version_chains_are_refused_alike_at_once(case: str) -> None:
    data = SHARED_CHAINS[case]()
    assert 0.5e6 < len(data) < 5e6
    read, read_s, read_peak = _bounded(lambda: read_elf(data))
    rewrite, rewrite_s, rewrite_peak = _bounded(lambda: rewrite_elf(data, EDITS))
    assert isinstance(read, ELFCorruptError), read
    assert type(rewrite) is type(read) and str(rewrite) == str(read)
    assert "too many" in str(read) or "not the table" in str(read)
    # generous bounds (a noisy machine): the old rewriter took seconds and hundreds of megabytes
    assert read_s < 1 and rewrite_s < 1
    assert read_peak < 50e6 and rewrite_peak < 50e6


@pytest.mark.parametrize("case", sorted(DECODED))
def test_names_decode_within_a_multiple_of_the_image(case: str) -> None:
    build, expected = DECODED[case]
    data = build()
    assert len(data) < 2e6
    read, read_s, read_peak = _bounded(lambda: _touch_every_name(data))
    if expected is None:
        assert not isinstance(read, ELFError), read
        needed, requirements, definitions, undefined, _, names = read
        assert undefined == {"n" * 200_000} and len(names) == 30_001
    else:
        assert isinstance(read, expected) and "names decode to more than" in str(read), read
    assert read_s < 5 and read_peak < 100e6
    # the rewrite decodes only the dynamic entries' names: the version names are not its business
    rewrite, rewrite_s, rewrite_peak = _bounded(lambda: rewrite_elf(data, EDITS))
    if isinstance(rewrite, ELFError):
        assert expected is not None and isinstance(rewrite, expected) and case.startswith("DT_NEEDED"), rewrite
    else:
        assert read_elf(rewrite, WANT_DYNAMIC).soname == EDITS.soname
    assert rewrite_s < 5 and rewrite_peak < 100e6


def _e_phnum(data: bytes) -> int:
    return struct.unpack_from("<H", data, 56)[0]


def _extended_count(data: bytes) -> int:
    """Section 0's sh_info: the program header count under PN_XNUM."""
    return struct.unpack_from("<I", data, struct.unpack_from("<Q", data, 40)[0] + 44)[0]


@pytest.mark.parametrize("case", sorted(XNUM))
def test_extended_program_header_numbering_reads_and_rewrites_or_is_refused(case: str) -> None:
    data = XNUM[case]()
    info = read_elf(data)
    assert info.needed == ("libm.so.6", "libfoo.so.1", "libc.so.6") and info.soname == "libcrafted.so.1"
    out, seconds, _ = _bounded(lambda: rewrite_elf(data, EDITS))
    assert seconds < 5
    if case.endswith("no free slot"):
        assert isinstance(out, ELFUnsupportedError) and "PN_XNUM" in str(out)
        return
    assert isinstance(out, bytes), out
    after = read_elf(out)
    assert (after.needed, after.soname, after.rpath) == (info.needed, EDITS.soname, (EDITS.rpath,))
    if "free slot" in case:
        assert _e_phnum(out) == elfcraft.PN_XNUM   # the count stays in section 0's sh_info
    else:
        assert _e_phnum(out) == _extended_count(data) + 1   # one more, the new PT_LOAD: a plain count again
    assert rewrite_elf(out, EDITS) == out


# --- the same through the command line, in a process whose peak RSS is measured ------------------

_PEAK = ("import atexit, sys\n"
         "def peak():\n"
         "    rss = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
         "    sys.stderr.write(f'\\nPEAK_KB {rss}\\n')\n"
         "atexit.register(peak)\n"
         "sys.argv = ['fastaudit', *sys.argv[1:]]\n"
         "from fastaudit.cli import main\n"
         "main()\n")


def _fastaudit_measured(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], float, int]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    elapsed = time.perf_counter() - start
    peak_kb = int(proc.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return proc, elapsed, peak_kb * 1024


def _wheel_holding(tmp_path: Path, data: bytes) -> Path:
    return elfbuild.pack_wheel(tmp_path, "hostile", "1.0", "cp312-cp312-manylinux_2_17_x86_64",
                               {"hostile/__init__.py": b"", "hostile/_core.cpython-312-x86_64-linux-gnu.so": data})


ALL_CASES = {**SHARED_CHAINS, **{k: v[0] for k, v in DECODED.items()}, **XNUM}


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_show_on_a_wheel_holding_each_is_bounded(case: str, tmp_path: Path) -> None:
    wheel = _wheel_holding(tmp_path, ALL_CASES[case]())
    proc, seconds, peak = _fastaudit_measured("show", "--json", wheel)
    stderr = proc.stderr.rsplit("PEAK_KB", 1)[0].strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 2:   # a typed error: one line, from the ELF reader (not the zip-bomb guard)
        assert len(stderr.splitlines()) == 1 and stderr.startswith("fastaudit: "), stderr
        assert "hostile/_core" in stderr or "dynamic symbol name" in stderr, stderr
    else:
        assert proc.returncode in (0, 1), proc.stderr
        assert json.loads(proc.stdout)["wheel"] == wheel.name
    assert seconds < 5 and peak < 500e6, (seconds, peak)


@pytest.mark.parametrize("case", ["verneed", "verdef"])
def test_repair_of_a_wheel_holding_a_shared_chain_exits_2_in_one_line(case: str, tmp_path: Path) -> None:
    data = SHARED_CHAINS[case]()
    expected = str(pytest.raises(ELFCorruptError, read_elf, data).value)
    wheel = _wheel_holding(tmp_path, data)
    proc, seconds, peak = _fastaudit_measured("repair", "-w", tmp_path / "out", wheel)
    stderr = proc.stderr.rsplit("PEAK_KB", 1)[0].strip()
    assert proc.returncode == 2, proc.stderr
    assert len(stderr.splitlines()) == 1 and stderr.startswith("fastaudit: ") and expected in stderr, stderr
    assert seconds < 5 and peak < 500e6, (seconds, peak)
