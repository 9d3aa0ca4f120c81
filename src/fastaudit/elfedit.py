"""The ELF rewriter's planner: which bytes change, decided in Python over the reader's checked layout.

What changes: DT_NEEDED values (and the Elf_Verneed vn_file that names the same library),
DT_SONAME, DT_RPATH, DT_RUNPATH. Strings already in .dynstr are reused; a new string that fits
where the old one was, and shares no byte with any other reference, is written in place. When
strings have to be added, the whole .dynstr is copied (every existing offset stays valid) with the
new strings after it into a new PT_LOAD at the end of the file; .dynamic follows it when it needs
more entries than it has room for, and the program header table follows when it has no slot for
the new segment. An executable's table stays where it is and grows by one entry over the .interp
and notes that follow it, which move to the new segment instead (the address an older kernel
hands the program for its headers is only right for a table in the first segment). The section
headers of .dynstr and .dynamic (and of what moved with them) are moved along, so readelf, strip
and eu-elflint read the same tables the loader uses. Removing a DT_NEEDED unlinks its Elf_Verneed
entry, and symbols bound to its versions become unversioned.

The planner reads only what `_elf.parse(..., WANT_LAYOUT)` found (the image is walked once, by the
reader, with its bounds checks and chain budgets) and returns a `RewritePlan`: byte ranges, header
fields, copies of the image's own bytes, and the two symbol loops (section-symbol moves,
.gnu.version scan) that `_elfedit.write` carries out on a copy. Nothing here reads the image's bytes.
"""
from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fastaudit.errors import ELFError, elf_error_for_status

if TYPE_CHECKING:
    from fastaudit._elf import ElfLayout, ElfTables

# Spelled as in the gABI and <elf.h>, so a grep matches readelf's output.
PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_PHDR = 0, 1, 2, 3, 4, 6
PT_GNU_PROPERTY = 0x6474E553
PF_W, PF_R = 2, 4
PN_XNUM = 0xFFFF
SHT_NULL, SHT_SYMTAB, SHT_STRTAB, SHT_DYNAMIC, SHT_NOBITS, SHT_DYNSYM = 0, 2, 3, 6, 8, 11
SHT_GNU_verdef, SHT_GNU_verneed, SHT_GNU_versym = 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
DT_AUXILIARY, DT_FILTER, DT_CONFIG, DT_DEPAUDIT, DT_AUDIT = 0x7FFFFFFD, 0x7FFFFFFF, 0x6FFFFEFA, 0x6FFFFEFB, 0x6FFFFEFC
VER_NDX_GLOBAL = 1
VERSYM_HIDDEN = 0x8000
VERSYM_INDEX = 0x7FFF
VN_FILE, VN_NEXT = 4, 12   # Elf_Verneed field offsets, the same in both classes
ADDRESS_SPACE_LIMIT = 1 << 48
SYMBOL_SIZE_LIMIT = 1 << 40
ELF32_LIMIT = 0xFFFFFFFF

# dynamic entries whose value is an offset into .dynstr
STRING_TAGS = frozenset({DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_AUXILIARY, DT_FILTER,
                         DT_CONFIG, DT_DEPAUDIT, DT_AUDIT})
# dynamic entries whose value is an address (gABI d_ptr, and GNU's), checked to lie in a PT_LOAD
ADDRESS_TAGS = {3: "DT_PLTGOT", 4: "DT_HASH", 5: "DT_STRTAB", 6: "DT_SYMTAB", 7: "DT_RELA", 12: "DT_INIT",
                13: "DT_FINI", 17: "DT_REL", 23: "DT_JMPREL", 25: "DT_INIT_ARRAY", 26: "DT_FINI_ARRAY",
                32: "DT_PREINIT_ARRAY", 0x6FFFFEF5: "DT_GNU_HASH", 0x6FFFFFF0: "DT_VERSYM",
                0x6FFFFFFC: "DT_VERDEF", 0x6FFFFFFE: "DT_VERNEED"}
# tags the planner reads one value of: two entries that disagree leave no one answer
SINGLE_TAGS = {DT_STRTAB: "DT_STRTAB", DT_STRSZ: "DT_STRSZ", DT_VERNEED: "DT_VERNEED",
               DT_VERNEEDNUM: "DT_VERNEEDNUM", DT_VERDEF: "DT_VERDEF", DT_VERDEFNUM: "DT_VERDEFNUM"}



def _fail(status: str, offset: int, what: str) -> ELFError:
    return elf_error_for_status(status, what, offset)


def align_up(value: int, alignment: int) -> int:
    return value if alignment <= 1 else (value + alignment - 1) // alignment * alignment


class RecordFormat(NamedTuple):
    """Field offsets of the ELF records for one class: the reader's one table (Format in
    _elfbytes.pxd), handed over with the layout. *_word fields are Elf_Addr/Off/Xword sized."""

    word: int
    ehsize: int
    phsize: int
    shsize: int
    dynsize: int
    symsize: int
    e_phoff: int
    e_shoff: int
    e_flags: int
    e_phentsize: int
    e_phnum: int
    e_shentsize: int
    e_shnum: int
    e_shstrndx: int
    p_type: int
    p_flags: int
    p_offset: int
    p_vaddr: int
    p_paddr: int
    p_filesz: int
    p_memsz: int
    p_align: int
    sh_type: int
    sh_addr: int
    sh_offset: int
    sh_size: int
    sh_link: int
    sh_info: int
    sh_addralign: int
    sh_entsize: int
    d_tag: int
    d_val: int
    st_name: int
    st_value: int
    st_size: int
    st_info: int
    st_other: int
    st_shndx: int


# the reader's format table, one per ELF class (the byte order does not move a field)
_RECORD_FORMATS: dict[int, RecordFormat] = {}


def _record_format(elf_class: int, layout: ElfLayout) -> RecordFormat:
    fmt = _RECORD_FORMATS.get(elf_class)
    if fmt is None:
        fmt = _RECORD_FORMATS[elf_class] = RecordFormat(**layout.format)
    return fmt


@functools.cache
def _record_struct(fields: tuple[tuple[str, bool], ...], elf_class: int, itemsize: int,
                   little: bool) -> tuple[str, tuple[int, ...] | None]:
    """The struct format of one record (the byte order first): its fields at their offsets in the
    reader's format table, 4 bytes when narrow, else a word of the class; and the order, by offset,
    in which it takes the fields (None when it is the order of `fields`)."""
    fmt = _RECORD_FORMATS[elf_class]
    word = "Q" if fmt.word == 8 else "I"
    placed = sorted((getattr(fmt, name), "I" if narrow else word, i) for i, (name, narrow) in enumerate(fields))
    code, at = "<" if little else ">", 0
    for offset, kind, _ in placed:
        code += "x" * (offset - at) + kind
        at = offset + (8 if kind == "Q" else 4)
    order = tuple(i for _, _, i in placed)
    return code + "x" * (itemsize - at), None if order == tuple(range(len(fields))) else order


class ProgramHeader(NamedTuple):
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int


class SectionHeader(NamedTuple):
    position: int   # file offset of the header itself
    type: int
    addr: int
    offset: int
    size: int
    link: int


class Patch(NamedTuple):
    """A field of `width` bytes at file position `position`, written in the image's byte order."""

    position: int
    width: int
    value: int


class SymbolMove(NamedTuple):
    """Symbols of section `section_index` in [old_addr, old_addr + old_size] move by the section's
    move (its section symbol, _DYNAMIC), in the symbol tables at `tables` (offset, size)."""

    tables: tuple[tuple[int, int], ...]
    section_index: int
    old_addr: int
    old_size: int
    new_addr: int


class Unversion(NamedTuple):
    """.gnu.version entries (in `tables`) whose index is set in the `indexes` bitmap become
    VER_NDX_GLOBAL, keeping their hidden bit."""

    tables: tuple[tuple[int, int], ...]
    indexes: bytes


@dataclass
class RewritePlan:
    """What `_elfedit.write` does to a copy of the image, in this order."""

    size: int                                   # of the output: the image, padding, the new segment
    copies: list[tuple[int, int, int]] = field(default_factory=list)   # (to, from, length) of the image's bytes
    blobs: list[tuple[int, bytes]] = field(default_factory=list)
    patches: list[Patch] = field(default_factory=list)
    symbol_moves: list[SymbolMove] = field(default_factory=list)
    unversion: Unversion | None = None


@dataclass(frozen=True)
class StringEdits:
    """The edits as bytes: replace_needed maps old to new DT_NEEDED names; soname, rpath and
    runpath are the value to set, b"" to remove the entry, None to leave it."""

    replace_needed: dict[bytes, bytes]
    remove_needed: frozenset[bytes]
    soname: bytes | None
    rpath: bytes | None
    runpath: bytes | None


class _Image:
    """The reader's layout of one image, checked for what the rewrite relies on."""

    def __init__(self, tables: ElfTables, size: int) -> None:
        layout: ElfLayout | None = tables.layout
        if layout is None:
            raise ValueError("the image was parsed without WANT_LAYOUT")
        self.tables = tables
        self.size = size
        self.fmt = fmt = _record_format(tables.elf_class, layout)
        self.is64 = tables.elf_class == 64
        self.phoff = layout.phoff
        self.phdrs = list(map(ProgramHeader._make, layout.program_headers.tolist()))
        if not self.phdrs:
            raise _fail("ST_UNSUPPORTED", 0, "no program headers")
        if layout.phentsize != fmt.phsize:
            raise _fail("ST_INVALID", layout.phoff, "e_phentsize")
        self.check_loads()
        # section headers are named on demand, by type: most of them are never looked at
        self._shdrs: list[list[int]] = layout.section_headers.tolist()
        self._shoff, self._shentsize = layout.shoff, layout.shentsize
        self.section_count = len(self._shdrs)
        self._types = [row[0] for row in self._shdrs]
        self._by_type: dict[int, list[tuple[int, SectionHeader]]] = {}
        dynamic = next((p for p in self.phdrs if p.type == PT_DYNAMIC), None)
        if dynamic is None:
            raise _fail("ST_UNSUPPORTED", layout.phoff,
                        "PT_DYNAMIC (none: a static executable has nothing to rewrite)")
        self.dyn_off, self.dyn_vaddr, self.dyn_size = dynamic.offset, dynamic.vaddr, dynamic.filesz
        self.entries: list[tuple[int, int]] = list(map(tuple, layout.dynamic.tolist()))
        self.dyn_spare = layout.dynamic_spare
        self.phdrs_moved = False   # set when the plan moves the program header table
        self.check_addresses()
        # the first entry of each tag counts, as in the loader
        self.values = values = dict(reversed(self.entries))
        self.check_single_values()
        if DT_STRTAB not in values or DT_STRSZ not in values:
            raise _fail("ST_CORRUPT", self.dyn_off, "dynamic section without DT_STRTAB or DT_STRSZ")
        self.str_vaddr, self.str_size = values[DT_STRTAB], values[DT_STRSZ]
        if layout.dt_strtab_offset < 0:
            raise _fail("ST_CORRUPT", self.str_vaddr, ".dynstr is in no PT_LOAD segment")
        self.str_off = layout.dt_strtab_offset
        self.dynstr: bytes = tables.dynstr
        self.check_linked_string_tables()
        # (file offset, vn_file) of each Elf_Verneed: the reader has checked that DT_VERNEED, when
        # there is one, names this chain (and DT_VERNEEDNUM its length)
        self.verneed = list(zip(tables.verneed_offset.tolist(), tables.verneed_file.tolist()))

    def loads(self) -> list[ProgramHeader]:
        return [p for p in self.phdrs if p.type == PT_LOAD]

    def check_loads(self) -> None:
        """Refuse a layout the loader would refuse: the new segment is placed from these numbers."""
        size = self.size
        for index, (kind, _, offset, vaddr, _, filesz, memsz, align) in enumerate(self.phdrs):
            if kind != PT_LOAD:
                continue
            if filesz > memsz:
                problem = "ST_CORRUPT", "PT_LOAD with p_filesz larger than p_memsz"
            elif offset > size or filesz > size - offset:
                problem = "ST_TRUNCATED", "PT_LOAD beyond the end of the file"
            elif memsz > ADDRESS_SPACE_LIMIT or vaddr > ADDRESS_SPACE_LIMIT:
                problem = "ST_CORRUPT", "PT_LOAD beyond any address space"
            elif align > 1 and (align & (align - 1) or (offset - vaddr) % align):
                problem = "ST_CORRUPT", "PT_LOAD whose p_offset and p_vaddr disagree modulo p_align"
            else:
                continue
            raise _fail(problem[0], self.phoff + index * self.fmt.phsize, problem[1])

    def check_addresses(self) -> None:
        """Every address the dynamic section holds must lie in a PT_LOAD: one that points nowhere
        would point into the new segment once it exists, and read as whatever is put there."""
        ranges = [(p.vaddr, p.vaddr + p.memsz) for p in self.phdrs if p.type == PT_LOAD]
        for tag, value in [e for e in self.entries if e[0] in ADDRESS_TAGS and e[1]]:
            for start, end in ranges:
                if start <= value < end:
                    break
            else:
                raise _fail("ST_CORRUPT", self.dyn_off, f"{ADDRESS_TAGS[tag]} outside every PT_LOAD")

    def check_single_values(self) -> None:
        """The planner reads the first of repeated entries, the reader the last: a table named
        twice, differently, has no one place to rewrite."""
        last = dict(self.entries)
        for tag, name in SINGLE_TAGS.items():
            if tag in last and last[tag] != self.values[tag]:
                raise _fail("ST_CORRUPT", self.dyn_off, f"{name} (twice, with different values)")

    def check_linked_string_tables(self) -> None:
        """The string table the dynamic tables' sections link to must be the one DT_STRTAB names:
        it is moved with .dynstr, and one that is not would keep the old strings and size."""
        dynstr = [SHT_STRTAB, self.str_vaddr, self.str_off]
        for kind in (SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_verneed, SHT_GNU_verdef):
            for _, section in self.sections_of(kind):
                if section.link >= self.section_count:
                    raise _fail("ST_CORRUPT", self._shoff, "sh_link out of range")
                if self._shdrs[section.link][:3] != dynstr:
                    raise _fail("ST_CORRUPT", self._shoff,
                                "sh_link of a dynamic table (not the string table DT_STRTAB names)")

    def string(self, offset: int) -> bytes:
        """The string at `offset` of the original .dynstr."""
        if offset >= self.str_size:
            raise _fail("ST_CORRUPT", self.str_off, "string offset past the end of .dynstr")
        end = self.dynstr.find(b"\0", offset)
        if end < 0:
            raise _fail("ST_CORRUPT", self.str_off, "unterminated string in .dynstr")
        return self.dynstr[offset:end]

    def records(self, fields: tuple[tuple[str, bool], ...], rows: list, itemsize: int, at: int) -> bytes:
        """Rows of a record (program headers, dynamic entries) as the image's bytes."""
        code, order = _record_struct(fields, self.tables.elf_class, itemsize, self.tables.little_endian)
        values = chain.from_iterable(rows) if order is None else [row[i] for row in rows for i in order]
        try:
            return struct.pack(code[0] + code[1:] * len(rows), *values)
        except struct.error as e:   # only a malformed image computes a value that does not fit
            raise _fail("ST_CORRUPT", at, "header field (it would not fit after the edit)") from e

    def section(self, index: int) -> SectionHeader:
        return SectionHeader(self._shoff + index * self._shentsize, *self._shdrs[index])

    def sections_of(self, kind: int) -> list[tuple[int, SectionHeader]]:
        """(index, header) of the sections of one type, in the table's order."""
        found = self._by_type.get(kind)
        if found is None:
            found, index, types = [], -1, self._types
            for _ in range(types.count(kind)):
                index = types.index(kind, index + 1)
                found.append((index, self.section(index)))
            self._by_type[kind] = found
        return found

    def all_sections(self) -> list[SectionHeader]:
        return [self.section(i) for i in range(self.section_count)]

    def checked_tables(self, kind: int, what: str) -> tuple[tuple[int, int], ...]:
        """(offset, size) of every section of a kind, each checked to lie in the file."""
        tables = []
        for _, s in self.sections_of(kind):
            if s.offset > self.size or s.size > self.size - s.offset:
                raise _fail("ST_TRUNCATED", s.offset, what)
            tables.append((s.offset, s.size))
        return tuple(tables)


# record fields written whole: (name in RecordFormat, 4 bytes wide in both classes)
PHDR_FIELDS = (("p_type", True), ("p_flags", True), ("p_offset", False), ("p_vaddr", False), ("p_paddr", False),
               ("p_filesz", False), ("p_memsz", False), ("p_align", False))
DYN_FIELDS = (("d_tag", False), ("d_val", False))

# A reference's owner, so a string may be overwritten by the edit that owns every reference to it:
# a dynamic entry's index (>= 0) or a vn_file at file position p (-2 - p); the others have none.


def _vn_file_owner(position: int) -> int:
    return -2 - position


class _References(NamedTuple):
    """The string references into .dynstr: (offset, owner) of those an edit may own (dynamic
    entries, vn_file), and the offsets of the others (version names, symbol names) in one column."""

    owned: list[tuple[int, int]]
    anonymous: np.ndarray


class _Planner:
    def __init__(self, image: _Image, page_size: int) -> None:
        self.img = image
        self.page_size = page_size
        self.dynstr = bytearray(image.dynstr)
        self.appended = bytearray()
        self._refs: _References | None | bool = False   # False: not computed yet
        self.table_names: dict[int, str] = {}   # a rewritten table's name by its position, for errors
        self.header_patches: tuple[Patch, ...] = ()   # e_phoff and e_phnum, when the table moves
        self.symbol_tables: tuple[tuple[int, int], ...] | None = None   # (offset, size) of each, once checked

    def plan(self, edits: StringEdits) -> RewritePlan | None:
        img = self.img
        verneed = [(entry + VN_FILE, file) for entry, file in img.verneed]
        # group: (owners of the old string, the old string's offset, the new string)
        groups: list[tuple[list[int | tuple[str, int]], int | None, bytes]] = []
        kept = []
        for i, (tag, val) in enumerate(img.entries):
            if tag not in STRING_TAGS:
                kept.append(i)
                continue
            name = img.string(val)
            if tag == DT_NEEDED and name in edits.remove_needed:
                continue
            if tag == DT_NEEDED and name in edits.replace_needed:
                owners: list[int | tuple[str, int]] = [i]
                owners += [("vn_file", pos) for pos, v in verneed if v == val]
                groups.append((owners, val, edits.replace_needed[name]))
            elif tag == DT_SONAME and edits.soname is not None:
                if not edits.soname:
                    continue
                groups.append(([i], val, edits.soname))
            elif tag == DT_RPATH and (edits.rpath is not None or edits.runpath):
                if not edits.rpath:
                    continue   # removed, or replaced by DT_RUNPATH below
                groups.append(([i], val, edits.rpath))
            elif tag == DT_RUNPATH and (edits.runpath is not None or edits.rpath):
                if not edits.runpath:
                    continue
                groups.append(([i], val, edits.runpath))
            kept.append(i)
        new_entries = [list(img.entries[i]) for i in kept]
        for tag, value in ((DT_SONAME, edits.soname), (DT_RPATH, edits.rpath), (DT_RUNPATH, edits.runpath)):
            if value and tag not in img.values:
                new_entries.append([tag, 0])
                groups.append(([("new", len(new_entries) - 1)], None, value))

        offsets = self.place_strings(groups)
        patches: list[Patch] = []   # header and table fields, written after the dynamic entries
        for (owners, _, _), off in zip(groups, offsets):
            for owner in owners:
                if isinstance(owner, int):
                    new_entries[kept.index(owner)][1] = off
                elif owner[0] == "new":
                    new_entries[owner[1]][1] = off
                else:
                    patches.append(Patch(owner[1], 4, off))
        new_entries, unversion = self.drop_version_requirements(edits.remove_needed, new_entries, patches)
        return self.layout_output(new_entries, patches, unversion)

    # --- strings ---------------------------------------------------------------------------------

    def references(self) -> _References | None:
        """Every string reference the image makes into .dynstr; None when the set is incomplete
        (symbol names are unknown without a .dynsym section)."""
        if self._refs is not False:
            return self._refs   # type: ignore[return-value]
        img, tables = self.img, self.img.tables
        if not img.sections_of(SHT_DYNSYM):
            self._refs = None
            return None
        owned = [(val, i) for i, (tag, val) in enumerate(img.entries) if tag in STRING_TAGS]
        owned += [(file, _vn_file_owner(entry + VN_FILE)) for entry, file in img.verneed]
        anonymous = np.concatenate((tables.vernaux_name, tables.verdaux_name, tables.sym_name))
        self._refs = _References(owned, anonymous)
        return self._refs

    def shared_with_others(self, refs: _References, start: int, length: int,
                           owners: Iterable[int | tuple[str, int]]) -> bool:
        """Whether a reference not owned by the edit reads any byte of [start, start + length]
        (its NUL included) in .dynstr as it is now."""
        mine = {o if isinstance(o, int) else _vn_file_owner(o[1])
                for o in owners if isinstance(o, int) or o[0] == "vn_file"}
        # a reference before start reaches it when no NUL lies between: it starts after the last NUL
        first = self.dynstr.rfind(b"\0", 0, start) + 1
        last = min(start + length, self.img.str_size - 1)
        if any(first <= offset <= last and owner not in mine for offset, owner in refs.owned):
            return True
        return bool(((refs.anonymous >= first) & (refs.anonymous <= last)).any())

    def place_strings(self, groups: list[tuple[list[int | tuple[str, int]], int | None, bytes]]) -> list[int]:
        """A .dynstr offset per group: in place when it fits and nothing else shares the old bytes,
        else an existing copy of the string, else appended."""
        offsets: list[int | None] = [None] * len(groups)
        for k, (owners, old, new) in enumerate(groups):
            refs = self.references() if old is not None else None
            if refs is None:
                continue
            old_len = len(self.img.string(old))
            if len(new) > old_len or self.dynstr.find(new + b"\0") >= 0:
                continue
            if self.shared_with_others(refs, old, old_len, owners):
                continue
            self.dynstr[old:old + old_len] = new + b"\0" * (old_len - len(new))
            offsets[k] = old
        return [off if off is not None else self.offset_of(new) for off, (_, _, new) in zip(offsets, groups)]

    def offset_of(self, text: bytes) -> int:
        probe = text + b"\0"
        found = self.dynstr.find(probe)
        if found >= 0:
            return found
        found = self.appended.find(probe)
        if found < 0:
            found = len(self.appended)
            self.appended += probe
        return len(self.dynstr) + found

    # --- version requirements --------------------------------------------------------------------

    def drop_version_requirements(self, remove_needed: frozenset[bytes], new_entries: list[list[int]],
                                  patches: list[Patch]) -> tuple[list[list[int]], Unversion | None]:
        """Unlink the Elf_Verneed entries of removed libraries: the loader checks every entry of the
        chain against a loaded object, so one for a library no longer needed would fail the load."""
        img = self.img
        chain = img.verneed
        if not remove_needed:
            for _, file in chain:
                img.string(file)   # a vn_file outside .dynstr is refused whatever the plan
            return new_entries, None
        kept = [e for e in chain if img.string(e[1]) not in remove_needed]
        if len(kept) == len(chain):
            return new_entries, None
        for (a, _), (b, _) in zip(kept, kept[1:]):
            patches.append(Patch(a + VN_NEXT, 4, b - a))
        unversion = self.unversion([i for i, e in enumerate(chain) if e not in kept])
        fmt = img.fmt
        first = chain[0][0]
        verneed_sections = [s for _, s in img.sections_of(SHT_GNU_verneed) if s.offset == first]
        if not kept:
            # no requirement left: no DT_VERNEED, and an empty .gnu.version_r for the tools that read sections
            for s in verneed_sections:
                patches.append(Patch(s.position + fmt.sh_info, 4, 0))
                patches.append(Patch(s.position + fmt.sh_size, fmt.word, 0))
            return [e for e in new_entries if e[0] != DT_VERNEED and e[0] != DT_VERNEEDNUM], unversion
        patches.append(Patch(kept[-1][0] + VN_NEXT, 4, 0))
        delta = kept[0][0] - first
        for entry in new_entries:
            if entry[0] == DT_VERNEEDNUM:
                entry[1] = len(kept)
            elif entry[0] == DT_VERNEED:
                entry[1] += delta
        for s in verneed_sections:
            patches.append(Patch(s.position + fmt.sh_info, 4, len(kept)))   # sh_info: the count
            if delta:
                patches += [Patch(s.position + fmt.sh_addr, fmt.word, s.addr + delta),
                            Patch(s.position + fmt.sh_offset, fmt.word, s.offset + delta),
                            Patch(s.position + fmt.sh_size, fmt.word, s.size - delta)]
        return new_entries, unversion

    def unversion(self, removed: list[int]) -> Unversion:
        """Symbols bound to a version of a removed library become unversioned (VER_NDX_GLOBAL), so no
        .gnu.version index names a requirement that is gone."""
        tables = self.img.tables
        chain_removed = np.zeros(len(self.img.verneed), dtype=bool)
        chain_removed[removed] = True
        bitmap = bytearray((VERSYM_INDEX + 1) // 8)
        for index in (tables.vernaux_other[chain_removed[tables.vernaux_entry]] & VERSYM_INDEX).tolist():
            bitmap[index >> 3] |= 1 << (index & 7)
        return Unversion(self.img.checked_tables(SHT_GNU_versym, ".gnu.version"), bytes(bitmap))

    # --- the output ------------------------------------------------------------------------------

    def layout_output(self, new_entries: list[list[int]], patches: list[Patch],
                      unversion: Unversion | None) -> RewritePlan | None:
        img, fmt = self.img, self.img.fmt
        # the entries, their DT_NULL, and the all-zero slots after it: nothing else is ours to write
        capacity = len(img.entries) + 1 + img.dyn_spare
        move_dynamic = len(new_entries) + 1 > capacity
        unchanged = (not self.appended and not move_dynamic and not patches
                     and new_entries == [list(e) for e in img.entries] and self.dynstr == img.dynstr)
        if unchanged:
            return None
        plan = RewritePlan(size=img.size, unversion=unversion)
        if self.appended or move_dynamic:
            self.new_segment(plan, new_entries, move_dynamic)
        else:
            plan.blobs.append((img.str_off, bytes(self.dynstr)))
            self.table_names[img.str_off] = ".dynstr"
        dyn_off = next(p.offset for p in img.phdrs if p.type == PT_DYNAMIC)
        rows = new_entries + [[DT_NULL, 0]]
        if not move_dynamic:
            rows += [[DT_NULL, 0]] * (capacity - len(rows))   # spare slots stay DT_NULL
        plan.blobs.append((dyn_off, img.records(DYN_FIELDS, rows, fmt.dynsize, dyn_off)))
        self.table_names[dyn_off] = ".dynamic"
        plan.patches += patches
        self.check_writes_apart(plan)
        return plan

    def check_writes_apart(self, plan: RewritePlan) -> None:
        """Every write of the plan lands on bytes of its own: the tables it rewrites, the header
        fields it patches, the symbol and .gnu.version tables the loops write into, the ELF header
        and a program header table that stays in place. In a well-formed image these never share
        a byte; a hostile one that lays one section over another (a .gnu.version section over
        .dynamic, found by fuzzing) would have one write undo another, and the output would not
        read back as planned: there is no right way to rewrite it, so it is refused."""
        img, fmt = self.img, self.img.fmt
        # (start, end, kind): kind 0 the headers kept, 1 a rewritten table, 2 a field, 3 and 4 the
        # loops' tables (a symbol table, .gnu.version)
        spans = [(0, fmt.ehsize, 0)]
        spans += [(pos, pos + len(data), 1) for pos, data in plan.blobs if data]
        spans += [(to, to + length, 1) for to, _, length in plan.copies if length]
        spans += [(p.position, p.position + p.width, 2) for p in set(plan.patches) if p not in self.header_patches]
        spans += [(off, off + size, 3) for off, size in {t for move in plan.symbol_moves for t in move.tables} if size]
        if plan.unversion:
            spans += [(off, off + size, 4) for off, size in plan.unversion.tables if size]
        if not img.phdrs_moved:
            table = (img.phoff, img.phoff + len(img.phdrs) * fmt.phsize)
            if not any(pos == table[0] and len(data) == table[1] - table[0] for pos, data in plan.blobs):
                spans.append((*table, 0))   # not rewritten (else its rewrite is one of the tables)
        spans.sort()
        end, last = 0, spans[0]
        for span in spans:
            if span[0] < end:
                raise self.overlap(last, span)
            if span[1] > end:
                end, last = span[1], span

    def overlap(self, first: tuple[int, int, int], second: tuple[int, int, int]) -> ELFError:
        """The error for two writes that share bytes, a loop's table named first."""
        if first[2] > second[2]:
            first, second = second, first
        names = {0: "the ELF or program headers", 2: "a header field the rewrite patches", 3: "symbol table",
                 4: "version table"}
        what, subject = (names.get(kind) or self.table_names[start] for start, _, kind in (first, second))
        return _fail("ST_CORRUPT", second[0], f"{subject} (over {what})")

    def new_segment(self, plan: RewritePlan, new_entries: list[list[int]], move_dynamic: bool) -> None:
        """Lay out the new PT_LOAD (program headers when they must move, .dynstr, .dynamic when it
        must move) after the image, and update every header that points at what moved."""
        img, fmt = self.img, self.img.fmt
        table = bytes(self.dynstr) + bytes(self.appended)
        types = [p.type for p in img.phdrs]
        slot = types.index(PT_NULL) if PT_NULL in types else None
        if slot is not None and self.phdrs_overlap_a_section():
            slot = None  # rewriting the table in place would write over that section's bytes
        move_phdrs = slot is None
        phnum = len(img.phdrs)
        # An executable's table stays where it is: an older kernel gives the program the address of
        # its program headers as the first PT_LOAD's p_vaddr - p_offset + e_phoff, right only for a
        # table in the first segment. It grows by one entry over what follows it (.interp and the
        # notes), which moves to the new segment, as patchelf does.
        moved = self.blocks_after_the_table() if move_phdrs and PT_INTERP in types else []
        grow_phdrs = bool(moved)
        move_phdrs = move_phdrs and not grow_phdrs
        if (move_phdrs or grow_phdrs) and phnum + 1 >= PN_XNUM:
            # e_phnum would need extended numbering (section 0's sh_info), which we do not write
            raise _fail("ST_UNSUPPORTED", img.phoff, "program header count (one more would reach PN_XNUM)")
        loads = [p for p in img.phdrs if p.type == PT_LOAD]
        alignment = max(self.page_size, *[p.align for p in loads])
        base_off = align_up(img.size, 16)
        # past the last segment by more than the largest symbol: eu-elflint judges a relocation's
        # target as [r_offset, r_offset + st_size], and would see one spill into a read-only segment
        gap = img.tables.layout.largest_symbol_size
        if gap > SYMBOL_SIZE_LIMIT:
            raise _fail("ST_CORRUPT", 0, "dynamic symbol size (above 1 TiB)")
        base_vaddr = align_up(max(p.vaddr + p.memsz for p in loads) + gap, alignment) + base_off % alignment
        phdr_count = phnum + (1 if move_phdrs or grow_phdrs else 0)
        str_pos = phdr_count * fmt.phsize if move_phdrs else 0
        moved_at = []   # each moved block's position in the segment
        for start, end, block_align in moved:
            str_pos = align_up(str_pos, block_align)
            moved_at.append(str_pos)
            str_pos += end - start
        dyn_pos = align_up(str_pos + len(table), fmt.word)
        dyn_size = (len(new_entries) + 1) * fmt.dynsize
        size = dyn_pos + dyn_size if move_dynamic else str_pos + len(table)
        if not img.is64 and max(base_vaddr, base_off) + size > ELF32_LIMIT:
            raise _fail("ST_UNSUPPORTED", img.phoff, "new segment (it would end past 4 GiB in an ELF32 image)")
        flags = PF_R | (PF_W if move_dynamic else 0)   # the loader may write .dynamic (DT_DEBUG)
        load = ProgramHeader(PT_LOAD, flags, base_off, base_vaddr, base_vaddr, size, size, alignment)

        phdrs = list(img.phdrs)
        if slot is not None:
            del phdrs[slot]
        types = [p.type for p in phdrs]
        last_load = len(types) - 1 - types[::-1].index(PT_LOAD)
        phdrs.insert(last_load + 1, load)
        types.insert(last_load + 1, PT_LOAD)
        if move_phdrs and PT_PHDR in types:
            table_size = fmt.phsize * phdr_count
            for i in (i for i, kind in enumerate(types) if kind == PT_PHDR):
                phdrs[i] = phdrs[i]._replace(offset=base_off, vaddr=base_vaddr, paddr=base_vaddr,
                                             filesz=table_size, memsz=table_size)
        if grow_phdrs:
            self.move_blocks(plan, phdrs, moved, [(base_off + at, base_vaddr + at) for at in moved_at])
            for i in (i for i, kind in enumerate(types) if kind == PT_PHDR):
                phdrs[i] = phdrs[i]._replace(filesz=fmt.phsize * phdr_count, memsz=fmt.phsize * phdr_count)
        if move_dynamic:
            for i in (i for i, kind in enumerate(types) if kind == PT_DYNAMIC):
                phdrs[i] = phdrs[i]._replace(offset=base_off + dyn_pos, vaddr=base_vaddr + dyn_pos,
                                             paddr=base_vaddr + dyn_pos, filesz=dyn_size, memsz=dyn_size)
        img.phdrs = phdrs
        img.phdrs_moved = move_phdrs
        for entry in new_entries:
            tag = entry[0]
            if tag == DT_STRTAB:
                entry[1] = base_vaddr + str_pos
            elif tag == DT_STRSZ:
                entry[1] = len(table)

        plan.size = base_off + size
        plan.blobs.append((base_off + str_pos, table))
        self.table_names[base_off + str_pos] = ".dynstr"
        phoff = base_off if move_phdrs else img.phoff   # in place when a slot is free or the table grows
        plan.blobs.append((phoff, img.records(PHDR_FIELDS, phdrs, fmt.phsize, phoff)))
        self.table_names[phoff] = "the program header table"
        if move_phdrs:
            self.header_patches = (Patch(fmt.e_phoff, fmt.word, phoff), Patch(fmt.e_phnum, 2, phdr_count))
            plan.patches += self.header_patches
        elif grow_phdrs:
            self.header_patches = (Patch(fmt.e_phnum, 2, phdr_count),)
            plan.patches += self.header_patches
        self.move_section(plan, SHT_STRTAB, img.str_vaddr, img.str_off, base_vaddr + str_pos, base_off + str_pos,
                          len(table))
        if move_dynamic:
            self.move_section(plan, SHT_DYNAMIC, img.dyn_vaddr, img.dyn_off, base_vaddr + dyn_pos,
                              base_off + dyn_pos, dyn_size)

    def blocks_after_the_table(self) -> list[tuple[int, int, int]]:
        """The runs of bytes after the program header table that must move for it to grow by one
        entry in place, as (start, end, alignment) in the file: .interp and the notes (PT_INTERP,
        PT_NOTE, PT_GNU_PROPERTY, whole segments, overlapping ones together). Refused when
        anything else lies there, or the grown table would leave the segment that maps it."""
        img, fmt = self.img, self.img.fmt
        start, end = img.phoff, img.phoff + (len(img.phdrs) + 1) * fmt.phsize
        refuse = _fail("ST_UNSUPPORTED", img.phoff, "program header table (an executable with no free slot "
                       "for one more segment, and no .interp or notes after it that can move)")
        first = next((p for p in img.phdrs if p.type == PT_LOAD and p.offset <= start
                      and end <= p.offset + p.filesz), None)
        if first is None or not img.section_count:
            raise refuse   # without section headers, what follows the table is unknown
        units = sorted((p.offset, p.offset + p.filesz, max(p.align, 1)) for p in img.phdrs
                       if p.type in (PT_INTERP, PT_NOTE, PT_GNU_PROPERTY) and p.filesz)
        blocks: list[list[int]] = []
        for lo, hi, align in units:   # overlapping segments move together
            if blocks and lo < blocks[-1][1]:
                blocks[-1][1], blocks[-1][2] = max(blocks[-1][1], hi), max(blocks[-1][2], align)
            else:
                blocks.append([lo, hi, align])
        moved = [(lo, hi, max(align, fmt.word)) for lo, hi, align in blocks if lo < end and start < hi]
        if not moved or any(align > 64 or lo < start for lo, _, align in moved):
            raise refuse
        if any(hi > img.size for _, hi, _ in moved):   # copied whole: a segment must lie in the file
            raise _fail("ST_TRUNCATED", img.phoff, "PT_INTERP or PT_NOTE beyond the end of the file")
        # what stays (sections, tables .dynamic points at) must be clear of the grown table
        inside = lambda lo, hi: any(a <= lo and hi <= b for a, b, _ in moved)  # noqa: E731
        for s in img.all_sections():
            if (s.type not in (SHT_NULL, SHT_NOBITS) and s.size and s.offset < end and start < s.offset + s.size
                    and not inside(s.offset, s.offset + s.size)):
                raise refuse
        delta = first.vaddr - first.offset
        for tag, value in img.entries:
            if tag in ADDRESS_TAGS and value and any(a + delta <= value < b + delta for a, b, _ in moved):
                raise refuse   # a dynamic table inside a note: nothing a linker writes
            if tag in ADDRESS_TAGS and value and start + delta <= value < end + delta:
                raise refuse
        return moved

    def move_blocks(self, plan: RewritePlan, phdrs: list[ProgramHeader], moved: list[tuple[int, int, int]],
                    places: list[tuple[int, int]]) -> None:
        """Copy each moved block to its place (file offset, address) in the new segment and point
        the program headers, section headers and section symbols that name it there."""
        img, fmt = self.img, self.img.fmt
        for (lo, hi, _), (off, addr) in zip(moved, places):
            plan.copies.append((off, lo, hi - lo))
            self.table_names[off] = "a moved .interp or note"
            for i, p in enumerate(phdrs):
                if p.type != PT_LOAD and lo <= p.offset and p.offset + p.filesz <= hi and p.filesz:
                    shift = p.offset - lo
                    phdrs[i] = p._replace(offset=off + shift, vaddr=addr + shift, paddr=addr + shift)
            for index, s in enumerate(img.all_sections()):
                if s.type not in (SHT_NULL, SHT_NOBITS) and s.size and lo <= s.offset and s.offset + s.size <= hi:
                    shift = s.offset - lo
                    plan.patches += [Patch(s.position + fmt.sh_offset, fmt.word, off + shift)]
                    if s.addr:
                        plan.patches += [Patch(s.position + fmt.sh_addr, fmt.word, addr + shift)]
                        if self.symbol_tables is None:
                            self.symbol_tables = (img.checked_tables(SHT_SYMTAB, "symbol table")
                                                  + img.checked_tables(SHT_DYNSYM, "symbol table"))
                        plan.symbol_moves.append(SymbolMove(self.symbol_tables, index, s.addr, s.size, addr + shift))

    def phdrs_overlap_a_section(self) -> bool:
        """Whether the program header table shares bytes with a section or a table the dynamic
        section points at (only a malformed image does)."""
        img = self.img
        start = img.phoff
        end = start + len(img.phdrs) * img.fmt.phsize
        if any(s.type not in (SHT_NULL, SHT_NOBITS) and s.size and s.offset < end and start < s.offset + s.size
               for s in img.all_sections()):
            return True
        for tag, value in img.entries:
            if tag in ADDRESS_TAGS and value:
                for p in img.loads():
                    if p.vaddr <= value and value - p.vaddr < p.filesz and start <= p.offset + (value - p.vaddr) < end:
                        return True
        return False

    def move_section(self, plan: RewritePlan, kind: int, old_addr: int, old_off: int, addr: int, off: int,
                     size: int) -> None:
        """Point the section headers of a moved table at its new place; symbols defined in it move
        along."""
        img, fmt = self.img, self.img.fmt
        for index, s in img.sections_of(kind):
            if s.addr != old_addr or s.offset != old_off:
                continue
            if self.symbol_tables is None:
                self.symbol_tables = (img.checked_tables(SHT_SYMTAB, "symbol table")
                                      + img.checked_tables(SHT_DYNSYM, "symbol table"))
            plan.symbol_moves.append(SymbolMove(self.symbol_tables, index, old_addr, s.size, addr))
            plan.patches += [Patch(s.position + fmt.sh_addr, fmt.word, addr),
                             Patch(s.position + fmt.sh_offset, fmt.word, off),
                             Patch(s.position + fmt.sh_size, fmt.word, size)]


def plan_rewrite(tables: ElfTables, image_size: int, edits: StringEdits, page_size: int) -> RewritePlan | None:
    """The plan for one image (parsed with WANT_LAYOUT), or None when the edits change nothing.

    Raises an ELFError subclass for an image the rewrite cannot handle. The caller has checked the
    edits against the image (names it needs, one search path kind)."""
    return _Planner(_Image(tables, image_size), page_size).plan(edits)



PT_GNU_STACK, PF_X = 0x6474E551, 1


def plan_clear_executable_stack(tables: ElfTables, image_size: int) -> RewritePlan | None:
    """The patches that make an image (parsed with WANT_LAYOUT) ask for a non-executable stack, or
    None when it already does.

    glibc's loader takes the last PT_GNU_STACK, the kernel the first: PF_X is cleared in every one.
    An image without PT_GNU_STACK gets one (PF_R | PF_W) in a PT_NULL slot of its program header
    table; with no free slot (or a table that shares bytes with a section, which only a malformed
    image has) the table would have to grow or overwrite data, which is refused."""
    img = _Image(tables, image_size)   # the same layout checks as any rewrite
    fmt = img.fmt
    stacks = [i for i, p in enumerate(img.phdrs) if p.type == PT_GNU_STACK]
    patches = [Patch(img.phoff + i * fmt.phsize + fmt.p_flags, 4, img.phdrs[i].flags & ~PF_X)
               for i in stacks if img.phdrs[i].flags & PF_X]
    if not stacks:
        slot = next((i for i, p in enumerate(img.phdrs) if p.type == PT_NULL), None)
        if slot is None or _Planner(img, page_size=1).phdrs_overlap_a_section():
            raise _fail("ST_UNSUPPORTED", img.phoff,
                        "program header table (no PT_GNU_STACK, and no free slot to add one)")
        at = img.phoff + slot * fmt.phsize
        patches = [Patch(at + fmt.p_type, 4, PT_GNU_STACK), Patch(at + fmt.p_flags, 4, PF_R | PF_W)]
        patches += [Patch(at + getattr(fmt, name), fmt.word, 0 if name != "p_align" else 16)
                    for name in ("p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz", "p_align")]
    return RewritePlan(size=image_size, patches=patches) if patches else None
