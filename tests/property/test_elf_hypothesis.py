"""read_elf on arbitrary bytes and on randomly mutated valid images: it returns facts or raises an
ELFError subclass, nothing else, whatever subset of tables is asked for."""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastaudit import elf
from fastaudit.errors import ELFError
from tests import elfcraft

IMAGES = list(elfcraft.valid_images().values())
WANTS = (elf.WANT_ALL, elf.WANT_DYNAMIC, elf.WANT_DYNAMIC | elf.WANT_VERSIONS, elf.WANT_DYNSYM, elf.WANT_NOTES)
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_everything(data: bytes, want: int = elf.WANT_ALL) -> None:
    """read_elf, then every fact (symbol names are decoded lazily, so they may raise too)."""
    try:
        info = elf.read_elf(data, want)
        _ = (info.needed, info.soname, info.rpath, info.runpath, info.interpreter, info.arch,
             dict(info.version_requirements), info.version_definitions, info.isa_level,
             info.symbols.names, info.undefined_symbols, info.defined_symbols)
    except ELFError:
        pass


@BOUNDED
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes) -> None:
    read_everything(data)


@BOUNDED
@given(st.sampled_from([b"\x7fELF\x01\x01\x01", b"\x7fELF\x01\x02\x01",
                        b"\x7fELF\x02\x01\x01", b"\x7fELF\x02\x02\x01"]),
       st.binary(max_size=2048))
def test_bytes_behind_a_valid_elf_ident(ident: bytes, rest: bytes) -> None:
    read_everything(ident + rest)


def _field_targets(image: elfcraft.CraftedElf) -> list[tuple[int, str]]:
    """(offset, struct code) of every header and table field worth corrupting in `image`."""
    lay = image.layout
    targets = [image.field("ehdr", name) for name in ("e_phoff", "e_shoff", "e_phentsize", "e_phnum",
                                                       "e_shentsize", "e_shnum", "e_shstrndx")]
    records = [("phdr", o) for offsets in image.phdr_offsets.values() for o in offsets]
    if image.section_index:
        shdrs = image.regions["shdrs"]
        records += [("shdr", o) for o in range(shdrs.offset, shdrs.end, lay.size("shdr"))]
    records += [("dyn", o) for _, o in image.dynamic_entries]
    records += [("verneed", o) for o in image.verneed_offsets]
    records += [("vernaux", o) for aux in image.vernaux_offsets for o in aux]
    records += [("verdef", o) for o in image.verdef_offsets]
    dynsym = image.regions[".dynsym"]
    records += [("sym", o) for o in range(dynsym.offset, dynsym.end, lay.size("sym"))]
    for record, base in records:
        targets += [image.field(record, name, base) for name in elfcraft.FIELDS[record]]
    if ".note.gnu.property" in image.regions:
        note = image.regions[".note.gnu.property"].offset
        targets += [(note + word, "I") for word in (0, 4, 8, 16, 20, 24)]
    return targets


def _width(code: str, word_size: int) -> int:
    return word_size if code in "WX" else struct.calcsize(code)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    image = draw(st.sampled_from(IMAGES))
    data = bytearray(image.data)
    targets = _field_targets(image)
    for _ in range(draw(st.integers(1, 6))):
        how = draw(st.sampled_from(("field", "field", "byte", "span")))
        if how == "field":
            offset, code = draw(st.sampled_from(targets))
            top = (1 << (8 * _width(code, image.layout.word_size))) - 1
            value = draw(st.one_of(
                st.sampled_from([0, 1, 2, 3, 7, 8, 16, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                 len(data) - 1, len(data), len(data) + 1, top, top - 7, top - 15]),
                st.integers(0, top)))
            image.layout.pack_into(data, offset, code, value & top)
        elif how == "byte":
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        else:
            start = draw(st.integers(0, len(data) - 1))
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[start:start + len(chunk)] = chunk  # overwrite in place: later offsets stay valid
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))):]
    return bytes(data)


@settings(BOUNDED, max_examples=1500)
@given(mutated_images(), st.sampled_from(WANTS))
def test_mutated_valid_images(data: bytes, want: int) -> None:
    read_everything(data, want)
