"""Write minimal and malformed ELF images byte by byte, for tests of the ELF reader.

`build_image(ElfSpec(...))` lays out a small but complete shared object: ELF header, program
headers (PT_INTERP, two PT_LOAD with different vaddr-to-offset deltas, PT_DYNAMIC, PT_NOTE,
PT_GNU_PROPERTY), .interp, .note.gnu.property, .note.gnu.build-id, .hash / .gnu.hash, .dynsym,
.dynstr, .gnu.version, .gnu.version_d, .gnu.version_r, .text, .dynamic, .shstrtab and section
headers. With `sections=False` the section headers are left out, so a reader must find everything
through PT_DYNAMIC (DT_STRTAB, DT_SYMTAB, DT_VERNEED, ...) and map addresses through PT_LOAD.

`malformed_cases(image)` and `truncations(image)` derive broken variants of a valid image, each
with the exception classes (by name, from fastaudit.errors) a reader should raise.

Nothing here imports fastaudit: the fixtures must work before the reader exists.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

# ---- ELF constants, spelled as in the gABI and <elf.h> so a grep matches readelf output ----
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
EV_CURRENT = 1
ELFOSABI_NONE, ELFOSABI_GNU = 0, 3
ET_EXEC, ET_DYN = 2, 3

EM_386 = 3
EM_PPC = 20
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_LOONGARCH = 258
EF_ARM_EABI_VER5 = 0x05000000
EF_ARM_ABI_FLOAT_HARD = 0x00000400

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
PT_GNU_PROPERTY = 0x6474E553
PF_X, PF_W, PF_R = 1, 2, 4

SHT_NULL, SHT_PROGBITS, SHT_STRTAB, SHT_HASH, SHT_DYNAMIC, SHT_NOTE, SHT_DYNSYM = 0, 1, 3, 5, 6, 7, 11
SHT_GNU_HASH = 0x6FFFFFF6
SHT_GNU_verdef = 0x6FFFFFFD
SHT_GNU_verneed = 0x6FFFFFFE
SHT_GNU_versym = 0x6FFFFFFF
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
SHN_UNDEF = 0

DT_NULL, DT_NEEDED, DT_HASH, DT_STRTAB, DT_SYMTAB = 0, 1, 4, 5, 6
DT_STRSZ, DT_SYMENT, DT_SONAME, DT_RPATH, DT_DEBUG, DT_RUNPATH = 10, 11, 14, 15, 21, 29
DT_GNU_HASH = 0x6FFFFEF5
DT_VERSYM = 0x6FFFFFF0
DT_FLAGS_1 = 0x6FFFFFFB
DT_VERDEF, DT_VERDEFNUM = 0x6FFFFFFC, 0x6FFFFFFD
DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFE, 0x6FFFFFFF
DF_1_NOW, DF_1_NODELETE = 0x1, 0x8

STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2
STV_DEFAULT, STV_PROTECTED = 0, 3
VER_NDX_LOCAL, VER_NDX_GLOBAL = 0, 1
VER_FLG_BASE = 0x1
VERSYM_HIDDEN = 0x8000

NT_GNU_BUILD_ID = 3
NT_GNU_PROPERTY_TYPE_0 = 5
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002
GNU_PROPERTY_X86_ISA_1_BASELINE = 0x1
GNU_PROPERTY_X86_ISA_1_V2 = 0x2
GNU_PROPERTY_X86_ISA_1_V3 = 0x4
GNU_PROPERTY_X86_ISA_1_V4 = 0x8

# Two PT_LOAD segments with different vaddr - offset deltas (both multiples of the page size, as
# the gABI requires), so a reader that treats a d_ptr as a file offset gets wrong answers.
PAGE = 0x1000
RO_BIAS = 0x10000
RW_BIAS = 0x20000


@dataclass(frozen=True)
class Sym:
    """One .dynsym entry. `version` names a verneed version (undefined) or verdef version (defined)."""

    name: str
    defined: bool = False
    bind: int = STB_GLOBAL
    type: int = STT_FUNC
    visibility: int = STV_DEFAULT
    version: str | None = None
    hidden: bool = False  # versym bit 15: name@VER rather than the default name@@VER


@dataclass(frozen=True)
class ElfSpec:
    """What a crafted image holds; build_image turns it into bytes."""

    elf_class: int = 64
    little_endian: bool = True
    machine: int = EM_X86_64
    osabi: int = ELFOSABI_NONE
    e_flags: int = 0
    e_type: int = ET_DYN
    interpreter: str | None = None
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: str | None = None  # raw DT_RPATH string, ':'-separated
    runpath: str | None = None
    flags_1: int | None = None
    verneed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # file -> version names
    verdef: tuple[str, ...] = ()  # defined versions; the VER_FLG_BASE entry is added in front
    symbols: tuple[Sym, ...] = ()
    x86_isa_needed: int | None = None
    build_id: bytes | None = None
    hash_style: str = "gnu"  # "gnu", "sysv" or "both", like ld --hash-style
    sections: bool = True

    @property
    def base_version_name(self) -> str:
        return self.soname or "crafted.so"


def expected_facts(spec: ElfSpec) -> dict[str, object]:
    """What a correct reader reports for an image built from `spec`, keyed like ElfInfo's fields.

    Path lists are the raw string split on ':'; an empty string gives () because ld.so ignores an
    empty DT_RPATH / DT_RUNPATH (auditwheel too). Version definitions include the VER_FLG_BASE
    entry, in table order, as pyelftools lists them. Undefined symbols leave out weak ones, as
    auditwheel does.
    """
    return {
        "elf_class": spec.elf_class,
        "little_endian": spec.little_endian,
        "osabi": spec.osabi,
        "machine": spec.machine,
        "e_flags": spec.e_flags,
        "e_type": spec.e_type,
        "interpreter": spec.interpreter,
        "needed": spec.needed,
        "soname": spec.soname,
        "rpath": tuple(spec.rpath.split(":")) if spec.rpath else (),
        "runpath": tuple(spec.runpath.split(":")) if spec.runpath else (),
        "flags_1": spec.flags_1 or 0,
        "version_requirements": {f: frozenset(v) for f, v in spec.verneed.items()},
        "version_definitions": (spec.base_version_name, *spec.verdef) if spec.verdef else (),
        "undefined_symbols": frozenset(s.name for s in spec.symbols if not s.defined and s.bind != STB_WEAK),
        "defined_symbols": frozenset(s.name for s in spec.symbols if s.defined),
        "x86_isa_needed": spec.x86_isa_needed,
    }


@dataclass(frozen=True)
class Region:
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class CraftedElf:
    """A built image plus where everything sits in it, so mutators can aim at single fields."""

    spec: ElfSpec
    data: bytes
    regions: dict[str, Region]  # "ehdr", "phdrs", "shdrs" and every section by name
    section_index: dict[str, int]  # empty when the image has no section headers
    phdr_offsets: dict[int, list[int]]  # p_type -> file offsets of those program headers
    dynamic_entries: list[tuple[int, int]]  # (d_tag, file offset of the entry)
    verneed_offsets: list[int]
    vernaux_offsets: list[list[int]]
    verdef_offsets: list[int]
    symbol_names: tuple[str, ...]  # .dynsym order, index 0 included as ""
    symbol_versions: tuple[int, ...]  # the .gnu.version entry of each, hidden bit included

    @property
    def layout(self) -> StructLayout:
        return StructLayout(self.spec.elf_class, self.spec.little_endian)

    def patched(self, *edits: tuple[int, str, int]) -> bytes:
        """Copy of the image with (offset, struct code, value) edits; the byte order is the image's."""
        out = bytearray(self.data)
        for offset, code, value in edits:
            self.layout.pack_into(out, offset, code, value)
        return bytes(out)

    def field(self, record: str, name: str, base: int = 0) -> tuple[int, str]:
        """File offset and struct code of a field of the record that starts at `base`."""
        rel, code = self.layout.field(record, name)
        return base + rel, code

    def dynamic_entry(self, tag: int) -> int:
        return next(off for t, off in self.dynamic_entries if t == tag)


# Field tables: record -> field -> (offset in ELF32, offset in ELF64, code). Code "W" is an address
# or offset word: 4 bytes in ELF32, 8 in ELF64; "X" is d_tag, signed of the same width.
FIELDS: dict[str, dict[str, tuple[int, int, str]]] = {
    "ehdr": {
        "e_type": (16, 16, "H"), "e_machine": (18, 18, "H"), "e_version": (20, 20, "I"),
        "e_entry": (24, 24, "W"), "e_phoff": (28, 32, "W"), "e_shoff": (32, 40, "W"),
        "e_flags": (36, 48, "I"), "e_ehsize": (40, 52, "H"), "e_phentsize": (42, 54, "H"),
        "e_phnum": (44, 56, "H"), "e_shentsize": (46, 58, "H"), "e_shnum": (48, 60, "H"),
        "e_shstrndx": (50, 62, "H"),
    },
    "phdr": {
        "p_type": (0, 0, "I"), "p_offset": (4, 8, "W"), "p_vaddr": (8, 16, "W"),
        "p_paddr": (12, 24, "W"), "p_filesz": (16, 32, "W"), "p_memsz": (20, 40, "W"),
        "p_flags": (24, 4, "I"), "p_align": (28, 48, "W"),
    },
    "shdr": {
        "sh_name": (0, 0, "I"), "sh_type": (4, 4, "I"), "sh_flags": (8, 8, "W"),
        "sh_addr": (12, 16, "W"), "sh_offset": (16, 24, "W"), "sh_size": (20, 32, "W"),
        "sh_link": (24, 40, "I"), "sh_info": (28, 44, "I"), "sh_addralign": (32, 48, "W"),
        "sh_entsize": (36, 56, "W"),
    },
    "dyn": {"d_tag": (0, 0, "X"), "d_val": (4, 8, "W")},
    "sym": {
        "st_name": (0, 0, "I"), "st_value": (4, 8, "W"), "st_size": (8, 16, "W"),
        "st_info": (12, 4, "B"), "st_other": (13, 5, "B"), "st_shndx": (14, 6, "H"),
    },
    "verneed": {
        "vn_version": (0, 0, "H"), "vn_cnt": (2, 2, "H"), "vn_file": (4, 4, "I"),
        "vn_aux": (8, 8, "I"), "vn_next": (12, 12, "I"),
    },
    "vernaux": {
        "vna_hash": (0, 0, "I"), "vna_flags": (4, 4, "H"), "vna_other": (6, 6, "H"),
        "vna_name": (8, 8, "I"), "vna_next": (12, 12, "I"),
    },
    "verdef": {
        "vd_version": (0, 0, "H"), "vd_flags": (2, 2, "H"), "vd_ndx": (4, 4, "H"),
        "vd_cnt": (6, 6, "H"), "vd_hash": (8, 8, "I"), "vd_aux": (12, 12, "I"),
        "vd_next": (16, 16, "I"),
    },
    "verdaux": {"vda_name": (0, 0, "I"), "vda_next": (4, 4, "I")},
}
_SIZES = {  # record -> (size in ELF32, size in ELF64)
    "ehdr": (52, 64), "phdr": (32, 56), "shdr": (40, 64), "dyn": (8, 16), "sym": (16, 24),
    "verneed": (16, 16), "vernaux": (16, 16), "verdef": (20, 20), "verdaux": (8, 8),
}


@dataclass(frozen=True)
class StructLayout:
    """Field offsets, sizes and packing for one ELF class and byte order."""

    elf_class: int
    little_endian: bool

    @property
    def is64(self) -> bool:
        return self.elf_class == 64

    @property
    def word_size(self) -> int:
        return 8 if self.is64 else 4

    @property
    def max_word(self) -> int:
        return (1 << (8 * self.word_size)) - 1

    def size(self, record: str) -> int:
        return _SIZES[record][self.is64]

    def field(self, record: str, name: str) -> tuple[int, str]:
        off32, off64, code = FIELDS[record][name]
        return (off64 if self.is64 else off32), code

    def _fmt(self, code: str) -> str:
        order = "<" if self.little_endian else ">"
        if code == "W":
            return order + ("Q" if self.is64 else "I")
        if code == "X":
            return order + ("q" if self.is64 else "i")
        return order + code

    def pack_into(self, buf: bytearray, offset: int, code: str, value: int) -> None:
        fmt = self._fmt(code)
        if code == "X" and value >= 1 << (8 * self.word_size - 1):
            value -= 1 << (8 * self.word_size)  # tags above 2**63 are written as their bit pattern
        struct.pack_into(fmt, buf, offset, value)

    def record(self, name: str, **values: int) -> bytes:
        buf = bytearray(self.size(name))
        for key, value in values.items():
            off, code = self.field(name, key)
            self.pack_into(buf, off, code, value)
        return bytes(buf)

    def words(self, code: str, values: list[int]) -> bytes:
        fmt = self._fmt(code)
        return b"".join(struct.pack(fmt, v) for v in values)


def elf_hash(name: bytes) -> int:
    """The SysV ELF hash (DT_HASH, vna_hash, vd_hash)."""
    h = 0
    for byte in name:
        h = ((h << 4) + byte) & 0xFFFFFFFF
        high = h & 0xF0000000
        if high:
            h ^= high >> 24
        h &= ~high & 0xFFFFFFFF
    return h


def gnu_hash(name: bytes) -> int:
    """The DJB-style hash of DT_GNU_HASH."""
    h = 5381
    for byte in name:
        h = (h * 33 + byte) & 0xFFFFFFFF
    return h


class StringTable:
    """A .dynstr / .shstrtab under construction: index 0 is the empty string, entries are shared."""

    def __init__(self) -> None:
        self._data = bytearray(b"\0")
        self._offsets: dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        if text not in self._offsets:
            self._offsets[text] = len(self._data)
            self._data += text.encode("utf-8", "surrogateescape") + b"\0"
        return self._offsets[text]

    def __bytes__(self) -> bytes:
        return bytes(self._data)


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _is_exported(sym: Sym) -> bool:
    return sym.defined and sym.bind != STB_LOCAL


def _ordered_symbols(spec: ElfSpec) -> tuple[list[Sym], int, int]:
    """.dynsym order (locals, then imports, then exports sorted by GNU hash bucket) and bucket count."""
    locals_ = [s for s in spec.symbols if s.bind == STB_LOCAL]
    imports = [s for s in spec.symbols if s.bind != STB_LOCAL and not s.defined]
    exports = [s for s in spec.symbols if _is_exported(s)]
    nbuckets = max(1, len(exports) // 2 + 1)
    if spec.hash_style in ("gnu", "both"):
        # DT_GNU_HASH requires the hashed symbols to be grouped by bucket.
        exports.sort(key=lambda s: gnu_hash(s.name.encode("utf-8", "surrogateescape")) % nbuckets)
    ordered = [Sym("", bind=STB_LOCAL, type=STT_NOTYPE), *locals_, *imports, *exports]
    return ordered, len(ordered) - len(exports), nbuckets


def _sysv_hash_table(layout: StructLayout, names: list[bytes]) -> bytes:
    nbucket = max(1, len(names) // 2)
    buckets = [0] * nbucket
    chains = [0] * len(names)
    for index in range(1, len(names)):
        bucket = elf_hash(names[index]) % nbucket
        chains[index] = buckets[bucket]
        buckets[bucket] = index
    return layout.words("I", [nbucket, len(names), *buckets, *chains])


def _gnu_hash_table(layout: StructLayout, names: list[bytes], symoffset: int, nbuckets: int) -> bytes:
    bloom_bits = 8 * layout.word_size
    bloom_shift = 6
    bloom = 0
    buckets = [0] * nbuckets
    chain: list[int] = []
    hashes = [gnu_hash(n) for n in names[symoffset:]]
    for position, h in enumerate(hashes):
        bloom |= 1 << (h % bloom_bits) | 1 << ((h >> bloom_shift) % bloom_bits)
        bucket = h % nbuckets
        if buckets[bucket] == 0:
            buckets[bucket] = symoffset + position
        is_last = position + 1 == len(hashes) or hashes[position + 1] % nbuckets != bucket
        chain.append((h & ~1) | int(is_last))
    header = layout.words("I", [nbuckets, symoffset, 1, bloom_shift])
    return header + layout.words("W", [bloom]) + layout.words("I", buckets + chain)


def _property_note(layout: StructLayout, isa_bits: int) -> bytes:
    # Property descriptors are padded to the word size (8 in ELF64), unlike other notes.
    prop = layout.words("I", [GNU_PROPERTY_X86_ISA_1_NEEDED, 4, isa_bits])
    prop += b"\0" * (_align(len(prop), layout.word_size) - len(prop))
    return layout.words("I", [4, len(prop), NT_GNU_PROPERTY_TYPE_0]) + b"GNU\0" + prop


def _build_id_note(layout: StructLayout, build_id: bytes) -> bytes:
    desc = build_id + b"\0" * (_align(len(build_id), 4) - len(build_id))
    return layout.words("I", [4, len(build_id), NT_GNU_BUILD_ID]) + b"GNU\0" + desc


@dataclass
class _Section:
    name: str
    sh_type: int
    data: bytes
    align: int
    flags: int = SHF_ALLOC
    entsize: int = 0
    link: str | None = None
    info: int = 0
    offset: int = 0
    addr: int = 0


class _ImageBuilder:
    """One build_image call: strings and version indexes, tables, layout, then the headers."""

    def __init__(self, spec: ElfSpec) -> None:
        self.spec = spec
        self.lay = StructLayout(spec.elf_class, spec.little_endian)
        self.symbols, self.symoffset, self.nbuckets = _ordered_symbols(spec)
        # Version indexes: 1 is the base verdef (or *global*), then verdef entries, then vernaux.
        self.verdef_names = [spec.base_version_name, *spec.verdef] if spec.verdef else []
        self.def_index = {name: i + 1 for i, name in enumerate(self.verdef_names)}
        self.need_index: dict[tuple[str, str], int] = {}
        for file, versions in spec.verneed.items():
            for version in versions:
                self.need_index[(file, version)] = max(2, len(self.verdef_names) + 1) + len(self.need_index)
        # Every string goes in first, so .dynstr is complete before anything is sized.
        self.dynstr = StringTable()
        for text in (*spec.needed, spec.soname, spec.rpath, spec.runpath, *(s.name for s in self.symbols),
                     *self.verdef_names, *spec.verneed, *(v for _, v in self.need_index)):
            if text is not None:
                self.dynstr.add(text)
        self.sections: list[_Section] = []
        self.dyn_tags: list[tuple[int, int | str]] = []  # a str value is the address of that section
        self.verdef_rel: list[int] = []
        self.verneed_rel: list[int] = []
        self.vernaux_rel: list[list[int]] = []

    def versym_of(self, sym: Sym) -> int:
        if not sym.name or sym.bind == STB_LOCAL:
            return VER_NDX_LOCAL
        if sym.version is None:
            return VER_NDX_GLOBAL
        if sym.defined:
            index = self.def_index[sym.version]
        else:
            index = next(i for (_, v), i in self.need_index.items() if v == sym.version)
        return index | (VERSYM_HIDDEN if sym.hidden else 0)

    def build(self) -> CraftedElf:
        self._add_tables()
        self._add_dynamic()
        end = self._lay_out()
        self._fill_in_addresses()
        image = bytearray(end)
        for section in self.sections:
            image[section.offset:section.offset + len(section.data)] = section.data
        regions = {s.name: Region(s.offset, len(s.data)) for s in self.sections}
        section_index = self._append_section_headers(image, regions) if self.spec.sections else {}
        phdr_offsets = self._write_program_headers(image, regions)
        self._write_elf_header(image, regions, section_index, sum(map(len, phdr_offsets.values())))
        by_name = self._by_name()
        verneed_base = by_name[".gnu.version_r"].offset if self.verneed_rel else 0
        verdef_base = by_name[".gnu.version_d"].offset if self.verdef_rel else 0
        dyn_size = self.lay.size("dyn")
        return CraftedElf(
            spec=self.spec,
            data=bytes(image),
            regions=regions,
            section_index=section_index,
            phdr_offsets=phdr_offsets,
            dynamic_entries=[(tag, by_name[".dynamic"].offset + i * dyn_size)
                             for i, (tag, _) in enumerate(self.dyn_tags)],
            verneed_offsets=[verneed_base + r for r in self.verneed_rel],
            vernaux_offsets=[[verneed_base + r for r in aux] for aux in self.vernaux_rel],
            verdef_offsets=[verdef_base + r for r in self.verdef_rel],
            symbol_names=tuple(s.name for s in self.symbols),
            symbol_versions=tuple(self.versym_of(s) for s in self.symbols),
        )

    def _by_name(self) -> dict[str, _Section]:
        return {s.name: s for s in self.sections}

    def _add_tables(self) -> None:
        spec, lay, word = self.spec, self.lay, self.lay.word_size
        add = self.sections.append
        names = [s.name.encode("utf-8", "surrogateescape") for s in self.symbols]
        if spec.interpreter is not None:
            add(_Section(".interp", SHT_PROGBITS, spec.interpreter.encode() + b"\0", 1))
        if spec.x86_isa_needed is not None:
            add(_Section(".note.gnu.property", SHT_NOTE, _property_note(lay, spec.x86_isa_needed), word))
        if spec.build_id is not None:
            add(_Section(".note.gnu.build-id", SHT_NOTE, _build_id_note(lay, spec.build_id), 4))
        if spec.hash_style in ("sysv", "both"):
            add(_Section(".hash", SHT_HASH, _sysv_hash_table(lay, names), 4, entsize=4, link=".dynsym"))
        if spec.hash_style in ("gnu", "both"):
            gnu = _gnu_hash_table(lay, names, self.symoffset, self.nbuckets)
            add(_Section(".gnu.hash", SHT_GNU_HASH, gnu, word, link=".dynsym"))
        # .dynsym holds addresses: its data is written once the layout is known.
        locals_ = sum(1 for s in spec.symbols if s.bind == STB_LOCAL)
        add(_Section(".dynsym", SHT_DYNSYM, bytes(lay.size("sym") * len(self.symbols)), word,
                     entsize=lay.size("sym"), link=".dynstr", info=1 + locals_))
        add(_Section(".dynstr", SHT_STRTAB, bytes(self.dynstr), 1))
        versym = lay.words("H", [self.versym_of(s) for s in self.symbols])
        add(_Section(".gnu.version", SHT_GNU_versym, versym, 2, entsize=2, link=".dynsym"))
        if self.verdef_names:
            add(_Section(".gnu.version_d", SHT_GNU_verdef, self._verdef_table(), word,
                         link=".dynstr", info=len(self.verdef_names)))
        if spec.verneed:
            add(_Section(".gnu.version_r", SHT_GNU_verneed, self._verneed_table(), word,
                         link=".dynstr", info=len(spec.verneed)))
        add(_Section(".text", SHT_PROGBITS, b"\xc3" * 16, 16, flags=SHF_ALLOC | SHF_EXECINSTR))

    def _verdef_table(self) -> bytes:
        lay, blob = self.lay, bytearray()
        for i, name in enumerate(self.verdef_names):
            self.verdef_rel.append(len(blob))
            last = i + 1 == len(self.verdef_names)
            blob += lay.record(
                "verdef", vd_version=1, vd_flags=VER_FLG_BASE if i == 0 else 0, vd_ndx=i + 1,
                vd_cnt=1, vd_hash=elf_hash(name.encode()), vd_aux=lay.size("verdef"),
                vd_next=0 if last else lay.size("verdef") + lay.size("verdaux"))
            blob += lay.record("verdaux", vda_name=self.dynstr.add(name), vda_next=0)
        return bytes(blob)

    def _verneed_table(self) -> bytes:
        lay, blob = self.lay, bytearray()
        files = list(self.spec.verneed.items())
        for i, (file, versions) in enumerate(files):
            self.verneed_rel.append(len(blob))
            blob += lay.record(
                "verneed", vn_version=1, vn_cnt=len(versions), vn_file=self.dynstr.add(file),
                vn_aux=lay.size("verneed") if versions else 0,
                vn_next=0 if i + 1 == len(files) else lay.size("verneed") + lay.size("vernaux") * len(versions))
            aux_offsets = []
            for j, version in enumerate(versions):
                aux_offsets.append(len(blob))
                blob += lay.record(
                    "vernaux", vna_hash=elf_hash(version.encode()), vna_flags=0,
                    vna_other=self.need_index[(file, version)], vna_name=self.dynstr.add(version),
                    vna_next=0 if j + 1 == len(versions) else lay.size("vernaux"))
            self.vernaux_rel.append(aux_offsets)
        return bytes(blob)

    def _add_dynamic(self) -> None:
        spec, tags, strings = self.spec, self.dyn_tags, self.dynstr
        tags += [(DT_NEEDED, strings.add(n)) for n in spec.needed]
        for tag, text in ((DT_SONAME, spec.soname), (DT_RPATH, spec.rpath), (DT_RUNPATH, spec.runpath)):
            if text is not None:
                tags.append((tag, strings.add(text)))
        if spec.hash_style in ("sysv", "both"):
            tags.append((DT_HASH, ".hash"))
        if spec.hash_style in ("gnu", "both"):
            tags.append((DT_GNU_HASH, ".gnu.hash"))
        tags += [(DT_STRTAB, ".dynstr"), (DT_SYMTAB, ".dynsym"), (DT_STRSZ, len(bytes(strings))),
                 (DT_SYMENT, self.lay.size("sym")), (DT_VERSYM, ".gnu.version")]
        if self.verdef_names:
            tags += [(DT_VERDEF, ".gnu.version_d"), (DT_VERDEFNUM, len(self.verdef_names))]
        if spec.verneed:
            tags += [(DT_VERNEED, ".gnu.version_r"), (DT_VERNEEDNUM, len(spec.verneed))]
        if spec.flags_1 is not None:
            tags.append((DT_FLAGS_1, spec.flags_1))
        tags.append((DT_NULL, 0))
        self.sections.append(_Section(".dynamic", SHT_DYNAMIC, bytes(self.lay.size("dyn") * len(tags)),
                                      self.lay.word_size, flags=SHF_ALLOC | SHF_WRITE,
                                      entsize=self.lay.size("dyn"), link=".dynstr"))

    def _program_header_count(self) -> int:
        notes = sum(1 for s in self.sections if s.sh_type == SHT_NOTE)
        extra = (self.spec.interpreter is not None) + (self.spec.x86_isa_needed is not None)
        return 3 + notes + extra  # two PT_LOAD and PT_DYNAMIC, plus notes, PT_INTERP, PT_GNU_PROPERTY

    def _lay_out(self) -> int:
        """Give every section its offset and address; return the end of the loaded part."""
        offset = self.lay.size("ehdr") + self.lay.size("phdr") * self._program_header_count()
        for section in self.sections:
            if section.name == ".dynamic":
                # The writable segment starts on a fresh page, as ld does.
                offset = _align(offset, PAGE)
                section.addr = offset + RW_BIAS
            else:
                offset = _align(offset, section.align)
                section.addr = offset + RO_BIAS
            section.offset = offset
            offset += len(section.data)
        return offset

    def _fill_in_addresses(self) -> None:
        lay, by_name = self.lay, self._by_name()
        text = by_name[".text"]
        # Defined symbols point at .text; a stripped image keeps the index, as sstrip does.
        text_index = self.sections.index(text) + 1
        symbols = bytearray()
        for sym in self.symbols:
            defined = sym.defined and bool(sym.name)
            symbols += lay.record(
                "sym", st_name=self.dynstr.add(sym.name), st_value=text.addr if defined else 0,
                st_size=int(defined), st_info=(sym.bind << 4) | (sym.type if sym.name else 0),
                st_other=sym.visibility, st_shndx=text_index if defined else SHN_UNDEF)
        by_name[".dynsym"].data = bytes(symbols)
        by_name[".dynamic"].data = b"".join(
            lay.record("dyn", d_tag=tag, d_val=by_name[value].addr if isinstance(value, str) else value)
            for tag, value in self.dyn_tags)

    def _append_section_headers(self, image: bytearray, regions: dict[str, Region]) -> dict[str, int]:
        lay = self.lay
        section_index = {s.name: i for i, s in enumerate(self.sections, start=1)}
        section_index[".shstrtab"] = len(self.sections) + 1
        shstrtab = StringTable()
        for name in section_index:
            shstrtab.add(name)
        regions[".shstrtab"] = Region(len(image), len(bytes(shstrtab)))
        image += bytes(shstrtab)
        image += bytes(_align(len(image), lay.word_size) - len(image))
        headers = lay.record("shdr")  # index 0, SHT_NULL
        for s in self.sections:
            headers += lay.record(
                "shdr", sh_name=shstrtab.add(s.name), sh_type=s.sh_type, sh_flags=s.flags, sh_addr=s.addr,
                sh_offset=s.offset, sh_size=len(s.data), sh_link=section_index[s.link] if s.link else 0,
                sh_info=s.info, sh_addralign=s.align, sh_entsize=s.entsize)
        headers += lay.record("shdr", sh_name=shstrtab.add(".shstrtab"), sh_type=SHT_STRTAB,
                              sh_offset=regions[".shstrtab"].offset, sh_size=regions[".shstrtab"].size,
                              sh_addralign=1)
        regions["shdrs"] = Region(len(image), len(headers))
        image += headers
        return section_index

    def _write_program_headers(self, image: bytearray, regions: dict[str, Region]) -> dict[int, list[int]]:
        lay, word, by_name = self.lay, self.lay.word_size, self._by_name()
        phoff = lay.size("ehdr")
        headers = bytearray()
        offsets: dict[int, list[int]] = {}

        def add(p_type: int, flags: int, section: _Section, align: int) -> None:
            offsets.setdefault(p_type, []).append(phoff + len(headers))
            headers.extend(lay.record(
                "phdr", p_type=p_type, p_flags=flags, p_offset=section.offset, p_vaddr=section.addr,
                p_paddr=section.addr, p_filesz=len(section.data), p_memsz=len(section.data), p_align=align))

        dynamic = by_name[".dynamic"]
        if ".interp" in by_name:
            add(PT_INTERP, PF_R, by_name[".interp"], 1)  # the gABI wants it before any PT_LOAD
        read_only_end = max(s.offset + len(s.data) for s in self.sections if s is not dynamic)
        add(PT_LOAD, PF_R | PF_X, _Section("", 0, bytes(read_only_end), 0, addr=RO_BIAS), PAGE)
        add(PT_LOAD, PF_R | PF_W, dynamic, PAGE)
        add(PT_DYNAMIC, PF_R | PF_W, dynamic, word)
        for note in (s for s in self.sections if s.sh_type == SHT_NOTE):
            add(PT_NOTE, PF_R, note, note.align)
        if ".note.gnu.property" in by_name:
            add(PT_GNU_PROPERTY, PF_R, by_name[".note.gnu.property"], word)
        image[phoff:phoff + len(headers)] = headers
        regions["phdrs"] = Region(phoff, len(headers))
        return offsets

    def _write_elf_header(self, image: bytearray, regions: dict[str, Region], section_index: dict[str, int],
                          phnum: int) -> None:
        spec, lay = self.spec, self.lay
        header = bytearray(lay.record(
            "ehdr", e_type=spec.e_type, e_machine=spec.machine, e_version=EV_CURRENT, e_entry=0,
            e_phoff=lay.size("ehdr"), e_shoff=regions["shdrs"].offset if section_index else 0,
            e_flags=spec.e_flags, e_ehsize=lay.size("ehdr"), e_phentsize=lay.size("phdr"), e_phnum=phnum,
            e_shentsize=lay.size("shdr") if section_index else 0,
            e_shnum=len(section_index) + 1 if section_index else 0,
            e_shstrndx=section_index.get(".shstrtab", 0)))
        header[:16] = b"\x7fELF" + bytes([ELFCLASS64 if lay.is64 else ELFCLASS32,
                                          ELFDATA2LSB if spec.little_endian else ELFDATA2MSB,
                                          EV_CURRENT, spec.osabi]) + bytes(8)
        image[:len(header)] = header
        regions["ehdr"] = Region(0, len(header))


def build_image(spec: ElfSpec) -> CraftedElf:
    """Lay out and serialise the shared object that `spec` describes."""
    return _ImageBuilder(spec).build()


# ---- ready-made specs ----

def full_spec(*, elf_class: int = 64, little_endian: bool = True, machine: int = EM_X86_64,
              sections: bool = True, hash_style: str = "gnu", **overrides: object) -> ElfSpec:
    """A spec that uses every table the reader handles: two verneed files, verdef, hidden versions."""
    is_x86_64 = machine == EM_X86_64
    values: dict[str, object] = dict(
        elf_class=elf_class, little_endian=little_endian, machine=machine,
        e_flags=EF_ARM_EABI_VER5 | EF_ARM_ABI_FLOAT_HARD if machine == EM_ARM else 0,
        interpreter="/lib64/ld-linux-x86-64.so.2" if is_x86_64 else None,
        needed=("libm.so.6", "libfoo.so.1", "libc.so.6"),
        soname="libcrafted.so.1",
        rpath="$ORIGIN/../lib:/opt/crafted",
        runpath="$ORIGIN",
        flags_1=DF_1_NOW | DF_1_NODELETE,
        verneed={"libc.so.6": ("GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.34"), "libm.so.6": ("GLIBC_2.29",)},
        verdef=("CRAFTED_1.0", "CRAFTED_2.0"),
        symbols=(
            Sym("malloc", version="GLIBC_2.2.5"),
            Sym("memcpy", version="GLIBC_2.17"),
            Sym("pthread_once", version="GLIBC_2.34"),
            Sym("exp", version="GLIBC_2.29"),
            Sym("foo_init"),
            Sym("__gmon_start__", bind=STB_WEAK, type=STT_NOTYPE),
            Sym("crafted_old", defined=True, version="CRAFTED_1.0", hidden=True),
            Sym("crafted_new", defined=True, version="CRAFTED_2.0"),
            Sym("crafted_table", defined=True, type=STT_OBJECT, version="CRAFTED_2.0"),
            Sym("crafted_weak", defined=True, bind=STB_WEAK, version="CRAFTED_2.0"),
            Sym("crafted_protected", defined=True, visibility=STV_PROTECTED),
        ),
        x86_isa_needed=GNU_PROPERTY_X86_ISA_1_BASELINE | GNU_PROPERTY_X86_ISA_1_V2 if is_x86_64 else None,
        build_id=bytes(range(20)),
        hash_style=hash_style,
        sections=sections,
    )
    values.update(overrides)
    return ElfSpec(**values)  # type: ignore[arg-type]


# (elf_class, little_endian, machine, e_flags, arch the reader should report)
MACHINES: tuple[tuple[int, bool, int, int, str | None], ...] = (
    (64, True, EM_X86_64, 0, "x86_64"),
    (32, True, EM_386, 0, "i686"),
    (64, True, EM_AARCH64, 0, "aarch64"),
    (64, True, EM_PPC64, 2, "ppc64le"),
    (64, False, EM_PPC64, 1, "ppc64"),
    (64, False, EM_S390, 0, "s390x"),
    (32, True, EM_ARM, EF_ARM_EABI_VER5 | EF_ARM_ABI_FLOAT_HARD, "armv7l"),
    (64, True, EM_RISCV, 0x5, "riscv64"),
    (64, True, EM_LOONGARCH, 0x43, "loongarch64"),
    (32, False, EM_PPC, 0, None),
)


def valid_images() -> dict[str, CraftedElf]:
    """Valid images across classes, byte orders, hash styles and with or without sections."""
    images: dict[str, CraftedElf] = {}
    for elf_class, little, machine, flags, arch in MACHINES:
        for sections in (True, False):
            name = f"{arch or 'ppc32'}-{'sections' if sections else 'stripped'}"
            images[name] = build_image(full_spec(elf_class=elf_class, little_endian=little,
                                                 machine=machine, e_flags=flags, sections=sections))
    for hash_style in ("sysv", "both"):
        for sections in (True, False):
            name = f"x86_64-{hash_style}-{'sections' if sections else 'stripped'}"
            images[name] = build_image(full_spec(hash_style=hash_style, sections=sections))
    images["x86_64-isa-v3"] = build_image(full_spec(
        x86_isa_needed=GNU_PROPERTY_X86_ISA_1_BASELINE | GNU_PROPERTY_X86_ISA_1_V2 | GNU_PROPERTY_X86_ISA_1_V3))
    images["x86_64-isa-v4"] = build_image(full_spec(x86_isa_needed=GNU_PROPERTY_X86_ISA_1_V4))
    images["x86_64-isa-none"] = build_image(full_spec(x86_isa_needed=None))
    images["x86_64-minimal"] = build_image(ElfSpec())
    images["x86_64-no-versions"] = build_image(ElfSpec(needed=("libc.so.6",), symbols=(Sym("puts"),)))
    images["x86_64-empty-runpath"] = build_image(ElfSpec(needed=("libc.so.6",), runpath=""))
    return images


# ---- malformed variants ----

TRUNCATED, INVALID, CORRUPT = "ELFTruncatedError", "ELFInvalidError", "ELFCorruptError"
UNSUPPORTED = "ELFUnsupportedError"
ANY_ELF_ERROR = (TRUNCATED, INVALID, CORRUPT, UNSUPPORTED)

Edit = tuple[int, str, int]  # (file offset, struct code, value)


@dataclass(frozen=True)
class MalformedCase:
    name: str
    data: bytes
    expected: tuple[str, ...]  # names of the fastaudit.errors classes a reader may raise
    may_hang: bool = False  # a loop that a reader without a cap would follow (nearly) forever


def truncations(image: CraftedElf) -> Iterator[tuple[int, bytes]]:
    """The image cut at every header, field, table and entry boundary (and next to them)."""
    lay = image.layout
    cuts = {0, 1, 4, 5, 6, 7, 15, 16, len(image.data) - 1}
    cuts.update(image.field("ehdr", name)[0] for name in FIELDS["ehdr"])
    for region in image.regions.values():
        cuts.update((region.offset, region.offset + 1, region.end - 1, region.end))
    for offsets in image.phdr_offsets.values():
        cuts.update(o + d for o in offsets for d in (0, lay.size("phdr") - 1))
    cuts.update(o + d for _, o in image.dynamic_entries for d in (0, lay.size("dyn") // 2))
    cuts.update(image.verneed_offsets)
    cuts.update(o for aux in image.vernaux_offsets for o in aux)
    cuts.update(image.verdef_offsets)
    for cut in sorted(c for c in cuts if 0 <= c < len(image.data)):
        yield cut, image.data[:cut]


class _Cases:
    """Collects malformed variants of one image; helpers locate fields by name."""

    def __init__(self, image: CraftedElf) -> None:
        self.image = image
        self.items: list[MalformedCase] = []

    def add(self, name: str, expected: tuple[str, ...], *edits: Edit, may_hang: bool = False) -> None:
        self.items.append(MalformedCase(name, self.image.patched(*edits), expected, may_hang))

    def add_bytes(self, name: str, data: bytes, expected: tuple[str, ...]) -> None:
        self.items.append(MalformedCase(name, data, expected))

    def ehdr(self, name: str) -> tuple[int, str]:
        return self.image.field("ehdr", name)

    def phdr(self, p_type: int, name: str) -> tuple[int, str]:
        return self.image.field("phdr", name, self.image.phdr_offsets[p_type][0])

    def shdr(self, section: str, name: str) -> tuple[int, str]:
        base = self.image.regions["shdrs"].offset + self.image.section_index[section] * self.image.layout.size("shdr")
        return self.image.field("shdr", name, base)

    def dyn_val(self, tag: int) -> tuple[int, str]:
        return self.image.field("dyn", "d_val", self.image.dynamic_entry(tag))

    def segment_and_section(self, p_type: int, p_field: str, section: str, value: int) -> list[Edit]:
        """The same change to a program header and to the section header over the same bytes, so
        the case holds whichever of the two a reader consults."""
        edits: list[Edit] = [(*self.phdr(p_type, p_field), value)]
        if self.image.section_index:
            sh_field = {"p_offset": "sh_offset", "p_filesz": "sh_size"}[p_field]
            edits.append((*self.shdr(section, sh_field), value))
        return edits

    def count(self, dt_tag: int, section: str, value: int) -> list[Edit]:
        """Set an entry count both in the dynamic tag and in the section's sh_info."""
        edits: list[Edit] = [(*self.dyn_val(dt_tag), value)]
        if self.image.section_index:
            edits.append((*self.shdr(section, "sh_info"), value))
        return edits


def malformed_cases(image: CraftedElf) -> list[MalformedCase]:
    """Broken variants of a valid image built from `full_spec` (verneed, verdef and symbols present)."""
    cases = _Cases(image)
    _header_cases(cases)
    _segment_cases(cases)
    _dynamic_cases(cases)
    _version_cases(cases)
    if image.section_index:
        _section_cases(cases)
    return cases.items


def _header_cases(c: _Cases) -> None:
    data, big = c.image.data, c.image.layout.max_word
    c.add_bytes("bad-magic", b"\x7fELG" + data[4:], (INVALID,))
    c.add_bytes("zip-magic", b"PK\x03\x04" + data[4:], (INVALID,))
    c.add_bytes("ei_class-0", data[:4] + b"\x00" + data[5:], (INVALID,))
    c.add_bytes("ei_class-3", data[:4] + b"\x03" + data[5:], (INVALID, UNSUPPORTED))
    c.add_bytes("ei_data-3", data[:5] + b"\x03" + data[6:], (INVALID, UNSUPPORTED))
    c.add("e_phoff-past-end", (TRUNCATED,), (*c.ehdr("e_phoff"), len(data) + 8))
    # Near 2**64 (2**32 in ELF32) a naive `off + size > n` wraps around and passes.
    c.add("e_phoff-near-max", (TRUNCATED,), (*c.ehdr("e_phoff"), big - 7))
    # 0xffff is PN_XNUM (the count then lives in section 0): stay one below it.
    c.add("e_phnum-huge", (TRUNCATED,), (*c.ehdr("e_phnum"), 0xFFFE))
    c.add("e_phentsize-zero", (INVALID,), (*c.ehdr("e_phentsize"), 0))
    c.add("e_phentsize-short", (INVALID,), (*c.ehdr("e_phentsize"), c.image.layout.size("phdr") - 4))


def _segment_cases(c: _Cases) -> None:
    image, big = c.image, c.image.layout.max_word
    dyn = image.regions[".dynamic"]
    c.add("pt_dynamic-offset-past-end", (TRUNCATED,),
          *c.segment_and_section(PT_DYNAMIC, "p_offset", ".dynamic", len(image.data) + 16))
    c.add("pt_dynamic-offset-near-max", (TRUNCATED,),
          *c.segment_and_section(PT_DYNAMIC, "p_offset", ".dynamic", big - 15))
    c.add("pt_dynamic-filesz-near-max", (TRUNCATED, CORRUPT),
          *c.segment_and_section(PT_DYNAMIC, "p_filesz", ".dynamic", big))
    # Shifted by one byte but still inside the file: only an alignment check tells garbage apart.
    c.add("pt_dynamic-misaligned", (CORRUPT, INVALID),
          *c.segment_and_section(PT_DYNAMIC, "p_offset", ".dynamic", dyn.offset + 1),
          *c.segment_and_section(PT_DYNAMIC, "p_filesz", ".dynamic", dyn.size - image.layout.size("dyn")))
    # The last entry becomes DT_DEBUG: no DT_NULL before the end of the table.
    c.add("pt_dynamic-without-dt_null", (CORRUPT, TRUNCATED),
          (*image.field("dyn", "d_tag", image.dynamic_entry(DT_NULL)), DT_DEBUG))
    if PT_INTERP in image.phdr_offsets:
        interp = image.regions[".interp"]
        c.add("pt_interp-past-end", (TRUNCATED,),
              *c.segment_and_section(PT_INTERP, "p_offset", ".interp", len(image.data)))
        c.add("pt_interp-unterminated", (CORRUPT,),
              *c.segment_and_section(PT_INTERP, "p_filesz", ".interp", interp.size - 1))
    if PT_GNU_PROPERTY in image.phdr_offsets:
        # The x86 ISA note is what the reader must parse, so break that one.
        note = image.regions[".note.gnu.property"]
        c.add("pt_note-filesz-near-max", (TRUNCATED, CORRUPT),
              *c.segment_and_section(PT_NOTE, "p_filesz", ".note.gnu.property", big),
              (*c.phdr(PT_GNU_PROPERTY, "p_filesz"), big))
        c.add("note-namesz-huge", (TRUNCATED, CORRUPT), (note.offset, "I", 0xFFFFFFFF))
        c.add("note-descsz-huge", (TRUNCATED, CORRUPT), (note.offset + 4, "I", 0xFFFFFFF0))
        c.add("note-pr_datasz-huge", (TRUNCATED, CORRUPT), (note.offset + 20, "I", 0xFFFFFFF0))


def _dynamic_cases(c: _Cases) -> None:
    image, big = c.image, c.image.layout.max_word
    strsz = image.regions[".dynstr"].size
    c.add("dt_needed-past-dynstr", (CORRUPT, TRUNCATED), (*c.dyn_val(DT_NEEDED), strsz + 100))
    c.add("dt_soname-past-dynstr", (CORRUPT, TRUNCATED), (*c.dyn_val(DT_SONAME), 0xFFFFFFFF))
    c.add("dt_rpath-at-dynstr-end", (CORRUPT, TRUNCATED), (*c.dyn_val(DT_RPATH), strsz))
    c.add("dt_runpath-near-max", (CORRUPT, TRUNCATED), (*c.dyn_val(DT_RUNPATH), big))
    dynstr = image.regions[".dynstr"]
    c.add_bytes("dynstr-unterminated", image.data[:dynstr.end - 1] + b"X" + image.data[dynstr.end:], (CORRUPT,))
    symtab = image.regions[".dynsym"]
    c.add("st_name-past-dynstr", (CORRUPT, TRUNCATED),
          (*image.field("sym", "st_name", symtab.offset + image.layout.size("sym")), strsz + 3))
    if image.section_index:
        return
    # Without sections these values are the only way to the tables.
    c.add("dt_strtab-unmapped", (CORRUPT, INVALID, TRUNCATED), (*c.dyn_val(DT_STRTAB), 0x5))
    c.add("dt_strtab-near-max", (CORRUPT, INVALID, TRUNCATED), (*c.dyn_val(DT_STRTAB), big - 3))
    c.add("dt_strsz-near-max", (TRUNCATED, CORRUPT), (*c.dyn_val(DT_STRSZ), big))
    c.add("dt_symtab-unmapped", (CORRUPT, INVALID, TRUNCATED), (*c.dyn_val(DT_SYMTAB), RW_BIAS - 8))
    c.add("dt_syment-zero", (INVALID, CORRUPT), (*c.dyn_val(DT_SYMENT), 0))
    c.add("dt_verneed-near-max", (CORRUPT, INVALID, TRUNCATED), (*c.dyn_val(DT_VERNEED), big))
    # The read-only PT_LOAD claims more file than there is, and DT_STRTAB points into the gap.
    past_end = len(image.data) + PAGE
    c.add("pt_load-filesz-past-end", (TRUNCATED, CORRUPT),
          (*c.phdr(PT_LOAD, "p_filesz"), past_end), (*c.phdr(PT_LOAD, "p_memsz"), past_end),
          (*c.dyn_val(DT_STRTAB), RO_BIAS + len(image.data) + 64))


def _version_cases(c: _Cases) -> None:
    image, lay = c.image, c.image.layout
    strsz = image.regions[".dynstr"].size
    first_need, second_need = image.verneed_offsets[0], image.verneed_offsets[1]
    first_aux = image.vernaux_offsets[0]
    many = 0x7FFFFFFF

    def need(name: str, base: int = first_need) -> tuple[int, str]:
        return image.field("verneed", name, base)

    def aux(name: str, base: int) -> tuple[int, str]:
        return image.field("vernaux", name, base)

    c.add("vn_file-past-dynstr", (CORRUPT, TRUNCATED), (*need("vn_file"), strsz + 1))
    c.add("vna_name-past-dynstr", (CORRUPT, TRUNCATED), (*aux("vna_name", first_aux[0]), 0xFFFFFFFF))
    c.add("vn_aux-past-end", (TRUNCATED, CORRUPT), (*need("vn_aux"), 0xFFFFFFF0))
    # A misaligned entry is read as garbage unless alignment is checked: any ELFError will do.
    c.add("vn_aux-misaligned", ANY_ELF_ERROR, (*need("vn_aux"), 17))
    c.add("vn_next-misaligned", ANY_ELF_ERROR, (*need("vn_next"), 3))
    # vn_next wraps (in 32-bit arithmetic) back to the first entry while the count wants more.
    c.add("vn_next-loops-back", (CORRUPT, TRUNCATED),
          (*need("vn_next", second_need), (first_need - second_need) & 0xFFFFFFFF),
          *c.count(DT_VERNEEDNUM, ".gnu.version_r", many), may_hang=True)
    # The chain ends (vn_next = 0) long before the count: re-reading the last entry would loop.
    c.add("vn_next-zero-count-huge", (CORRUPT,), *c.count(DT_VERNEEDNUM, ".gnu.version_r", many), may_hang=True)
    c.add("vn_cnt-huge-vna_next-zero", (CORRUPT,), (*need("vn_cnt"), 0xFFFF))
    c.add("vna_next-zero-before-vn_cnt", (CORRUPT,), (*aux("vna_next", first_aux[0]), 0))
    c.add("vna_next-loops-back", (CORRUPT, TRUNCATED),
          (*aux("vna_next", first_aux[-1]), (first_aux[0] - first_aux[-1]) & 0xFFFFFFFF),
          (*need("vn_cnt"), 0xFFFF))

    first_def = image.verdef_offsets[0]
    c.add("vd_next-zero-count-huge", (CORRUPT,), (*image.field("verdef", "vd_next", first_def), 0),
          *c.count(DT_VERDEFNUM, ".gnu.version_d", many), may_hang=True)
    c.add("vd_aux-past-end", (TRUNCATED, CORRUPT), (*image.field("verdef", "vd_aux", first_def), 0xFFFFFFF8))
    c.add("vda_name-past-dynstr", (CORRUPT, TRUNCATED),
          (*image.field("verdaux", "vda_name", first_def + lay.size("verdef")), strsz + 7))


def _section_cases(c: _Cases) -> None:
    image, lay, big = c.image, c.image.layout, c.image.layout.max_word
    index = image.section_index
    c.add("e_shoff-past-end", (TRUNCATED,), (*c.ehdr("e_shoff"), len(image.data) + 8))
    c.add("e_shoff-near-max", (TRUNCATED,), (*c.ehdr("e_shoff"), big - 15))
    c.add("e_shnum-huge", (TRUNCATED,), (*c.ehdr("e_shnum"), 0xFEFF))
    c.add("e_shentsize-zero", (INVALID,), (*c.ehdr("e_shentsize"), 0))
    c.add("e_shstrndx-out-of-range", (INVALID, CORRUPT), (*c.ehdr("e_shstrndx"), len(index) + 5))
    c.add("dynsym-offset-near-max", (TRUNCATED,), (*c.shdr(".dynsym", "sh_offset"), big - 7))
    c.add("dynsym-size-near-max", (TRUNCATED, CORRUPT), (*c.shdr(".dynsym", "sh_size"), big))
    c.add("dynsym-entsize-zero", (INVALID, CORRUPT), (*c.shdr(".dynsym", "sh_entsize"), 0))
    c.add("dynsym-entsize-odd", (INVALID, CORRUPT), (*c.shdr(".dynsym", "sh_entsize"), lay.size("sym") + 1))
    c.add("dynstr-offset-past-end", (TRUNCATED,), (*c.shdr(".dynstr", "sh_offset"), len(image.data) + 1))
    c.add("dynstr-size-near-max", (TRUNCATED, CORRUPT), (*c.shdr(".dynstr", "sh_size"), big))
    c.add("verneed-offset-near-max", (TRUNCATED,), (*c.shdr(".gnu.version_r", "sh_offset"), big - 15))
    # sh_link must name the string table (the symbol table, for .gnu.version).
    c.add("sh_link-out-of-range", (CORRUPT, INVALID), (*c.shdr(".dynsym", "sh_link"), 0xFFFF))
    c.add("sh_link-self", (CORRUPT, INVALID), (*c.shdr(".dynsym", "sh_link"), index[".dynsym"]))
    c.add("sh_link-cycle", (CORRUPT, INVALID), (*c.shdr(".dynsym", "sh_link"), index[".gnu.version"]),
          (*c.shdr(".gnu.version", "sh_link"), index[".dynsym"]))
    c.add("verneed-sh_link-out-of-range", (CORRUPT, INVALID), (*c.shdr(".gnu.version_r", "sh_link"), len(index) + 9))
    c.add("verneed-sh_link-to-dynsym", (CORRUPT, INVALID), (*c.shdr(".gnu.version_r", "sh_link"), index[".dynsym"]))
    c.add("dynamic-sh_link-out-of-range", (CORRUPT, INVALID), (*c.shdr(".dynamic", "sh_link"), 0xFFFFFFFF))


# ---- amplification: small images whose tables declare, or decode to, far more than their size ----
#
# Each builder starts from a valid image and appends a blob the image's last PT_LOAD is stretched to
# cover (so DT_* addresses into it map, as the loader would map them), then points the dynamic
# entries and, when `sections`, the section headers at the tables in the blob.

class _Grown:
    """A valid image with room to append loaded tables to, and the helpers to re-point its headers."""

    def __init__(self, image: CraftedElf) -> None:
        self.image = image
        self.lay = image.layout
        self.data = bytearray(image.data)
        load = image.phdr_offsets[PT_LOAD][-1]
        self.load = load
        self.load_offset = self._get(load, "phdr", "p_offset")
        self.load_vaddr = self._get(load, "phdr", "p_vaddr")

    def _get(self, base: int, record: str, name: str) -> int:
        off, code = self.lay.field(record, name)
        fmt = self.lay._fmt(code)
        return struct.unpack_from(fmt, self.data, base + off)[0]

    def put(self, base: int, record: str, name: str, value: int) -> None:
        off, code = self.lay.field(record, name)
        self.lay.pack_into(self.data, base + off, code, value)

    def append(self, blob: bytes, align: int = 16) -> tuple[int, int]:
        """Append a loaded blob; (file offset, address) of its start."""
        self.data += bytes(_align(len(self.data), align) - len(self.data))
        offset = len(self.data)
        self.data += blob
        end = len(self.data) - self.load_offset
        self.put(self.load, "phdr", "p_filesz", end)
        self.put(self.load, "phdr", "p_memsz", end)
        return offset, offset - self.load_offset + self.load_vaddr

    def set_dynamic(self, tag: int, value: int) -> None:
        self.put(self.image.dynamic_entry(tag), "dyn", "d_val", value)

    def shdr(self, section: str) -> int:
        return self.image.regions["shdrs"].offset + self.image.section_index[section] * self.lay.size("shdr")

    def move_section(self, section: str, offset: int, addr: int, size: int, info: int | None = None) -> None:
        if not self.image.section_index:
            return
        base = self.shdr(section)
        self.put(base, "shdr", "sh_offset", offset)
        self.put(base, "shdr", "sh_addr", addr)
        self.put(base, "shdr", "sh_size", size)
        if info is not None:
            self.put(base, "shdr", "sh_info", info)

    def field_of(self, record: str, name: str, base: int) -> int:
        return self._get(base, record, name)


def shared_chain_verneed(entries: int = 64, aux: int = 0xFFFF, *, sections: bool = True,
                         section_too: bool = True) -> bytes:
    """Elf_Verneed entries that each declare `aux` Elf_Vernaux entries, all in one shared chain: the
    chain covers `aux` * 16 bytes but, walked once per entry, `entries` times as many. With
    `section_too` False the .gnu.version_r section keeps the valid table and only DT_VERNEED (what
    the loader follows) names the hostile one."""
    grown = _Grown(build_image(full_spec(sections=sections)))
    lay, first = grown.lay, grown.image.verneed_offsets[0]
    file_name = grown.field_of("verneed", "vn_file", first)
    version = grown.field_of("vernaux", "vna_name", grown.image.vernaux_offsets[0][0])
    chain_start = entries * lay.size("verneed")
    blob = bytearray()
    for i in range(entries):
        blob += lay.record("verneed", vn_version=1, vn_cnt=aux, vn_file=file_name,
                           vn_aux=chain_start - len(blob), vn_next=0 if i + 1 == entries else lay.size("verneed"))
    for j in range(aux):
        blob += lay.record("vernaux", vna_hash=0, vna_other=2, vna_name=version,
                           vna_next=0 if j + 1 == aux else lay.size("vernaux"))
    offset, addr = grown.append(bytes(blob))
    grown.set_dynamic(DT_VERNEED, addr)
    grown.set_dynamic(DT_VERNEEDNUM, entries)
    if section_too:
        grown.move_section(".gnu.version_r", offset, addr, len(blob), info=entries)
    return bytes(grown.data)


def shared_chain_verdef(entries: int = 64, aux: int = 0xFFFF, *, sections: bool = True) -> bytes:
    """Elf_Verdef entries that each declare `aux` Elf_Verdaux entries in one shared chain."""
    grown = _Grown(build_image(full_spec(sections=sections)))
    lay, first = grown.lay, grown.image.verdef_offsets[0]
    name = grown.field_of("verdaux", "vda_name", first + lay.size("verdef"))
    chain_start = entries * lay.size("verdef")
    blob = bytearray()
    for i in range(entries):
        blob += lay.record("verdef", vd_version=1, vd_ndx=i + 1, vd_cnt=aux, vd_aux=chain_start - len(blob),
                           vd_next=0 if i + 1 == entries else lay.size("verdef"))
    for j in range(aux):
        blob += lay.record("verdaux", vda_name=name, vda_next=0 if j + 1 == aux else lay.size("verdaux"))
    offset, addr = grown.append(bytes(blob))
    grown.set_dynamic(DT_VERDEF, addr)
    grown.set_dynamic(DT_VERDEFNUM, entries)
    grown.move_section(".gnu.version_d", offset, addr, len(blob), info=entries)
    return bytes(grown.data)


def _long_string_table(grown: _Grown, length: int) -> tuple[int, int]:
    """A new .dynstr: the old one and a string of `length` bytes after it. Returns the new string's
    offset in the table, and the table's size."""
    old = grown.image.regions[".dynstr"]
    table = grown.image.data[old.offset:old.offset + old.size] + b"n" * length + b"\0"
    offset, addr = grown.append(table)
    grown.set_dynamic(DT_STRTAB, addr)
    grown.set_dynamic(DT_STRSZ, len(table))
    grown.move_section(".dynstr", offset, addr, len(table))
    return old.size, len(table)


def symbols_into_one_string(count: int = 30_000, length: int = 200_000, *, distinct: bool = True) -> bytes:
    """`count` undefined dynamic symbols whose names start inside one long string: at distinct offsets
    (each name a different suffix: decoding them all copies about count * length bytes), or all at
    its start (one name, shared)."""
    grown = _Grown(build_image(full_spec(interpreter=None)))
    lay = grown.lay
    base, _ = _long_string_table(grown, length)
    symbols = bytearray(lay.size("sym"))   # index 0, the null symbol
    for i in range(count):
        symbols += lay.record("sym", st_name=base + (i % length if distinct else 0),
                              st_info=(STB_GLOBAL << 4) | STT_FUNC)
    offset, addr = grown.append(bytes(symbols), lay.word_size)
    grown.set_dynamic(DT_SYMTAB, addr)
    grown.move_section(".dynsym", offset, addr, len(symbols))
    return bytes(grown.data)


def version_names_into_one_string(count: int = 40_000, length: int = 200_000, *, sections: bool = True) -> bytes:
    """One Elf_Verneed with `count` Elf_Vernaux, each naming a different suffix of one long string."""
    grown = _Grown(build_image(full_spec(sections=sections, interpreter=None)))
    lay = grown.lay
    file_name = grown.field_of("verneed", "vn_file", grown.image.verneed_offsets[0])
    base, _ = _long_string_table(grown, length)
    blob = bytearray(lay.record("verneed", vn_version=1, vn_cnt=count, vn_file=file_name,
                                vn_aux=lay.size("verneed"), vn_next=0))
    for j in range(count):
        blob += lay.record("vernaux", vna_other=2, vna_name=base + j % length,
                           vna_next=0 if j + 1 == count else lay.size("vernaux"))
    offset, addr = grown.append(bytes(blob))
    grown.set_dynamic(DT_VERNEED, addr)
    grown.set_dynamic(DT_VERNEEDNUM, 1)
    grown.move_section(".gnu.version_r", offset, addr, len(blob), info=1)
    return bytes(grown.data)


def needed_into_one_string(count: int = 40_000, length: int = 200_000) -> bytes:
    """A .dynamic (moved into the blob) with `count` DT_NEEDED entries, each a different suffix of
    one long string."""
    image = build_image(full_spec(interpreter=None))
    grown = _Grown(image)
    lay = grown.lay
    base, _ = _long_string_table(grown, length)
    entries = [(tag, grown.field_of("dyn", "d_val", off)) for tag, off in image.dynamic_entries
               if tag not in (DT_NEEDED, DT_NULL)]
    table = b"".join(lay.record("dyn", d_tag=DT_NEEDED, d_val=base + i % length) for i in range(count))
    table += b"".join(lay.record("dyn", d_tag=tag, d_val=value) for tag, value in entries)
    table += lay.record("dyn", d_tag=DT_NULL, d_val=0)
    offset, addr = grown.append(table, lay.word_size)
    dynamic = image.phdr_offsets[PT_DYNAMIC][0]
    for name, value in (("p_offset", offset), ("p_vaddr", addr), ("p_paddr", addr), ("p_filesz", len(table)),
                        ("p_memsz", len(table))):
        grown.put(dynamic, "phdr", name, value)
    grown.move_section(".dynamic", offset, addr, len(table))
    return bytes(grown.data)


# ---- extended program header numbering (PN_XNUM: e_phnum 0xffff, the count in section 0's sh_info) ----

PN_XNUM = 0xFFFF
PT_NULL = 0
PT_LOPROC = 0x70000000  # a type nothing here reads


def extended_phnum(extra: int = 0, *, free_slot: bool = False) -> bytes:
    """A valid image (no PT_INTERP, so its headers may move) whose e_phnum is PN_XNUM, with the real
    count in section 0's sh_info. With `extra`, that many PT_LOPROC entries (one PT_NULL among them
    when `free_slot`) follow the real ones in a table moved to the end of the file, so the count
    need not fit 16 bits."""
    image = build_image(full_spec(interpreter=None))
    lay = image.layout
    data = bytearray(image.data)
    phdrs = image.regions["phdrs"]
    table = bytearray(data[phdrs.offset:phdrs.end])
    count = phdrs.size // lay.size("phdr")
    if free_slot and not extra:
        note = image.phdr_offsets[PT_NOTE][0] - phdrs.offset
        lay.pack_into(table, note, "I", PT_NULL)
        data[phdrs.offset:phdrs.end] = table
    if extra:
        fillers = [lay.record("phdr", p_type=PT_LOPROC)] * extra
        if free_slot:
            fillers[extra // 2] = lay.record("phdr", p_type=PT_NULL)
        data += bytes(_align(len(data), lay.word_size) - len(data))
        phoff = len(data)
        data += table + b"".join(fillers)
        count += extra
        off, code = lay.field("ehdr", "e_phoff")
        lay.pack_into(data, off, code, phoff)
    off, code = lay.field("ehdr", "e_phnum")
    lay.pack_into(data, off, code, PN_XNUM)
    off, code = lay.field("shdr", "sh_info")
    lay.pack_into(data, image.regions["shdrs"].offset + off, code, count)
    return bytes(data)
