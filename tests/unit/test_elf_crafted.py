"""read_elf on images written byte by byte (tests/elfcraft.py): valid ones across classes, byte
orders and hash styles, stripped of sections or not; and malformed ones, which must raise an
ELFError subclass, never anything else and never hang."""
from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from fastaudit import errors
from fastaudit.elf import ElfInfo, read_elf
from tests import elfcraft

VALID = elfcraft.valid_images()
FACT_FIELDS = tuple(elfcraft.expected_facts(elfcraft.ElfSpec()))
ARCH_BY_MACHINE = {(c, le, m): arch for c, le, m, _, arch in elfcraft.MACHINES}

# One image per class and byte order, with and without sections, and each hash style stripped.
MALFORMED_BASES = (
    "x86_64-sections", "x86_64-stripped", "i686-sections", "i686-stripped", "s390x-sections",
    "ppc64-stripped", "ppc32-sections", "ppc32-stripped", "x86_64-sysv-stripped", "x86_64-both-sections",
)
MALFORMED = [(base, case) for base in MALFORMED_BASES for case in elfcraft.malformed_cases(VALID[base])]
HANG_TIMEOUT_S = 30


def facts_of(info: ElfInfo) -> dict[str, object]:
    """Every fact, symbol names included: some are decoded lazily, and decoding may raise too."""
    facts = {name: getattr(info, name) for name in FACT_FIELDS}
    facts["version_requirements"] = dict(info.version_requirements)
    facts["symbol_names"] = info.symbols.names
    return facts


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_image_gives_the_facts_it_was_built_with(name: str) -> None:
    image = VALID[name]
    spec = image.spec
    info = read_elf(image.data)
    facts = facts_of(info)
    assert facts.pop("symbol_names") == image.symbol_names
    assert facts == elfcraft.expected_facts(spec)
    assert info.arch == ARCH_BY_MACHINE.get((spec.elf_class, spec.little_endian, spec.machine))


@pytest.mark.parametrize("name", sorted(n for n in VALID if n.endswith("-stripped")))
def test_stripped_image_falls_back_to_the_dynamic_segment(name: str) -> None:
    """Without section headers every fact must come through PT_DYNAMIC, PT_LOAD, PT_NOTE."""
    stripped = read_elf(VALID[name].data)
    sectioned = read_elf(VALID[name.replace("-stripped", "-sections")].data)
    assert facts_of(stripped) == facts_of(sectioned)
    for column in ("bind", "type", "visibility", "shndx", "version"):
        assert np.array_equal(getattr(stripped.symbols, column), getattr(sectioned.symbols, column)), column


@pytest.mark.parametrize("name", ["x86_64-sections", "i686-stripped", "s390x-sections", "ppc32-stripped"])
def test_symbol_columns_match_the_spec(name: str) -> None:
    image = VALID[name]
    symbols = read_elf(image.data).symbols
    columns = [symbols.bind, symbols.type, symbols.visibility, symbols.shndx, symbols.version]
    assert all(len(c) == len(symbols.names) for c in columns)
    assert [n for n in symbols.names if n] == [n for n in image.symbol_names if n]
    by_name = {s.name: s for s in image.spec.symbols}
    versym = dict(zip(image.symbol_names, image.symbol_versions))
    for row, name_ in enumerate(symbols.names):
        if not name_:
            continue
        sym = by_name[name_]
        assert int(symbols.bind[row]) == sym.bind, name_
        assert int(symbols.type[row]) == sym.type, name_
        assert int(symbols.visibility[row]) == sym.visibility, name_
        assert (int(symbols.shndx[row]) != 0) == sym.defined, name_
        # Raw versym or masked: either way the low 15 bits are the version index.
        assert int(symbols.version[row]) & 0x7FFF == versym[name_] & 0x7FFF, name_


@pytest.mark.parametrize("bits, level", [
    (None, 1),
    (elfcraft.GNU_PROPERTY_X86_ISA_1_BASELINE, 1),
    (elfcraft.GNU_PROPERTY_X86_ISA_1_BASELINE | elfcraft.GNU_PROPERTY_X86_ISA_1_V2, 2),
    (elfcraft.GNU_PROPERTY_X86_ISA_1_V3, 3),
    (0x7, 3),
    (elfcraft.GNU_PROPERTY_X86_ISA_1_V4, 4),
])
@pytest.mark.parametrize("sections", [True, False])
def test_x86_isa_level(bits: int | None, level: int, sections: bool) -> None:
    info = read_elf(elfcraft.build_image(elfcraft.full_spec(x86_isa_needed=bits, sections=sections)).data)
    assert info.x86_isa_needed == bits
    assert info.isa_level == level


@pytest.mark.parametrize("name", ["s390x-sections", "i686-stripped"])
def test_isa_level_is_baseline_off_x86_64(name: str) -> None:
    info = read_elf(VALID[name].data)
    assert info.x86_isa_needed is None
    assert info.isa_level == 1


def test_soft_float_arm_is_not_armv7l() -> None:
    spec = elfcraft.full_spec(elf_class=32, machine=elfcraft.EM_ARM, e_flags=elfcraft.EF_ARM_EABI_VER5)
    assert read_elf(elfcraft.build_image(spec).data).arch is None


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy"])
def test_every_buffer_kind_gives_the_same_facts(kind: str) -> None:
    data = VALID["x86_64-sections"].data
    buffer = {
        "bytes": lambda: data,
        "bytearray": lambda: bytearray(data),
        "memoryview": lambda: memoryview(data),
        "numpy": lambda: np.frombuffer(data, dtype=np.uint8),
    }[kind]()
    assert facts_of(read_elf(buffer)) == facts_of(read_elf(data))


def test_a_slice_of_a_larger_buffer_reads_only_the_slice() -> None:
    data = VALID["x86_64-stripped"].data
    padded = np.frombuffer(b"\0" * 64 + data + b"\xff" * 64, dtype=np.uint8)
    assert facts_of(read_elf(padded[64:64 + len(data)])) == facts_of(read_elf(data))


# ---- malformed images ----

def _read_ignoring_errors(data: bytes) -> None:
    try:
        facts_of(read_elf(data))
    except Exception:  # noqa: BLE001 - only termination matters in the child
        pass


def _assert_terminates(data: bytes) -> None:
    """Run read_elf in a forked child first, so an uncapped loop fails the test instead of hanging it."""
    child = multiprocessing.get_context("fork").Process(target=_read_ignoring_errors, args=(data,))
    child.start()
    child.join(HANG_TIMEOUT_S)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"read_elf still running after {HANG_TIMEOUT_S} s: a chain or count is not capped")


@pytest.mark.parametrize(("base", "case"), MALFORMED, ids=[f"{b}-{c.name}" for b, c in MALFORMED])
def test_malformed_image_raises_the_documented_error(base: str, case: elfcraft.MalformedCase) -> None:
    if case.may_hang:
        _assert_terminates(case.data)
    with pytest.raises(errors.ELFError) as raised:
        facts_of(read_elf(case.data))
    acceptable = tuple(getattr(errors, name) for name in case.expected)
    assert isinstance(raised.value, acceptable), f"{type(raised.value).__name__}: {raised.value}"


@pytest.mark.parametrize("base", MALFORMED_BASES)
def test_every_truncation_raises_truncated(base: str) -> None:
    wrong = {}
    for cut, data in elfcraft.truncations(VALID[base]):
        try:
            facts_of(read_elf(data))
        except errors.ELFTruncatedError:
            continue
        except errors.ELFInvalidError as e:
            if cut < 4:  # not even the magic: "not an ELF image" is as right as "truncated"
                continue
            wrong[cut] = repr(e)
        except errors.ELFError as e:
            wrong[cut] = repr(e)
        else:
            wrong[cut] = "no error"
    assert not wrong, f"{len(wrong)} cuts of {len(VALID[base].data)} bytes: {wrong}"
