"""ElfInfo: the facts of one ELF image, read by the Cython walkers in `_elf`.

This is the only module that imports the extensions (the walkers, and the rewriter's byte loops
behind `rewrite_elf`, which carry out the plan elfedit.py makes over the walkers' layout). Strings
are decoded here, once per offset and within a budget, losslessly (`surrogateescape`), from the
raw string tables the walkers hand back, and encoded the same way for the rewriter.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Union

import numpy as np

from fastaudit import _elf, _elfedit
from fastaudit.elfedit import RewritePlan, StringEdits, plan_clear_executable_stack, plan_rewrite
from fastaudit.errors import ELFCorruptError, ELFError, ELFUnsupportedError, RepairError, elf_error_for_status

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]

WANT_DYNAMIC = _elf.WANT_DYNAMIC
WANT_VERSIONS = _elf.WANT_VERSIONS
WANT_DYNSYM = _elf.WANT_DYNSYM
WANT_NOTES = _elf.WANT_NOTES
WANT_ALL = _elf.WANT_ALL


EM_386 = 3
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_LOONGARCH = 258

# (e_machine, class, little endian) -> the architecture name used in platform tags
_ARCH_BY_MACHINE: Mapping[tuple[int, int, bool], str] = {
    (EM_386, 32, True): "i686",
    (EM_X86_64, 64, True): "x86_64",
    (EM_PPC64, 64, True): "ppc64le",
    (EM_PPC64, 64, False): "ppc64",
    (EM_RISCV, 64, True): "riscv64",
    (EM_AARCH64, 64, True): "aarch64",
    (EM_S390, 64, False): "s390x",
    (EM_ARM, 32, True): "armv7l",
    (EM_LOONGARCH, 64, True): "loongarch64",
}

EF_ARM_EABIMASK = 0xFF000000
EF_ARM_EABI_VER5 = 0x05000000
EF_ARM_ABI_FLOAT_HARD = 0x00000400

PF_X = 1
STB_WEAK = 2
STT_NOTYPE = 0
STT_FUNC = 2
SHN_UNDEF = 0

# GNU_PROPERTY_X86_ISA_1_NEEDED bits: baseline, v2, v3, v4
_ISA_V2, _ISA_V3, _ISA_V4 = 2, 4, 8


# Names are decoded once per string-table offset, and all the names of one image together may
# decode to at most this multiple of its size (plus the slack): many symbols or version entries
# pointing into one long string would otherwise copy it once per reference, turning megabytes of
# input into gigabytes of text.
DECODE_LIMIT_FACTOR = 4
DECODE_LIMIT_SLACK = 1 << 20


class _DecodeBudget:
    """The bytes one image's names may still decode to."""

    def __init__(self, image_size: int) -> None:
        self.limit = DECODE_LIMIT_FACTOR * image_size + DECODE_LIMIT_SLACK
        self.left = self.limit

    def spend(self, size: int, what: str) -> None:
        self.left -= size
        if self.left < 0:
            raise ELFUnsupportedError(f"{what}: the names decode to more than {self.limit} bytes "
                                      f"({DECODE_LIMIT_FACTOR} times the image's size, plus {DECODE_LIMIT_SLACK})")


class StringTable:
    """One raw string table and the names decoded from it so far (losslessly, surrogateescape)."""

    def __init__(self, table: bytes, budget: _DecodeBudget) -> None:
        self.table = table
        self._budget = budget
        self._decoded: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.table)

    def string_at(self, offset: int, what: str) -> str:
        name = self._decoded.get(offset)
        if name is not None:
            return name
        table = self.table
        if offset < 0 or offset >= len(table):
            raise ELFCorruptError(f"{what}: string offset {offset} is past the string table ({len(table)} bytes)")
        end = table.find(b"\0", offset)
        if end < 0:
            raise ELFCorruptError(f"{what}: unterminated string at string table offset {offset}")
        self._budget.spend(end - offset, what)
        name = self._decoded[offset] = table[offset:end].decode("utf-8", "surrogateescape")
        return name


def _arch_of(machine: int, elf_class: int, little_endian: bool, e_flags: int) -> str | None:
    arch = _ARCH_BY_MACHINE.get((machine, elf_class, little_endian))
    if arch == "armv7l":
        # armv7l wheels mean EABI version 5, hard float; anything else is a different platform
        if (e_flags & EF_ARM_EABIMASK) != EF_ARM_EABI_VER5 or not e_flags & EF_ARM_ABI_FLOAT_HARD:
            return None
    return arch


@dataclass(frozen=True)
class DynamicSymbols:
    """The dynamic symbol table, columnar; names are decoded only for the rows asked for."""

    name_offsets: np.ndarray
    info: np.ndarray
    other: np.ndarray
    shndx: np.ndarray
    version: np.ndarray
    strings: StringTable = field(repr=False)

    @property
    def strtab(self) -> bytes:
        return self.strings.table

    def __len__(self) -> int:
        return int(self.name_offsets.shape[0])

    @property
    def bind(self) -> np.ndarray:
        return self.info >> 4

    @property
    def type(self) -> np.ndarray:
        return self.info & 0xF

    @property
    def visibility(self) -> np.ndarray:
        return self.other & 0x3

    @cached_property
    def names(self) -> tuple[str, ...]:
        return self._names_of(np.arange(len(self)))

    def _names_of(self, rows: np.ndarray) -> tuple[str, ...]:
        string_at = self.strings.string_at
        return tuple(string_at(off, "dynamic symbol name") for off in self.name_offsets[rows].tolist())

    def names_where(self, mask: np.ndarray) -> tuple[str, ...]:
        return self._names_of(np.flatnonzero(mask))

    def _offsets_named(self, name: str) -> np.ndarray:
        # a name may also occur as the tail of a longer string: collect every exact occurrence
        needle = name.encode("utf-8", "surrogateescape") + b"\0"
        found = []
        start = self.strtab.find(needle)
        while start >= 0:
            found.append(start)
            start = self.strtab.find(needle, start + 1)
        return np.asarray(found, dtype=self.name_offsets.dtype)

    def rows_named(self, name: str) -> np.ndarray:
        offsets = self._offsets_named(name)
        if offsets.size == 0:
            return np.zeros(len(self), dtype=bool)
        return np.isin(self.name_offsets, offsets)

    def defines(self, name: str, sym_type: int = STT_FUNC) -> bool:
        offsets = self._offsets_named(name)
        if offsets.size == 0:  # most lookups: no such name, and no array work to say so
            return False
        rows = np.isin(self.name_offsets, offsets)
        return bool(np.any(rows & (self.shndx != SHN_UNDEF) & (self.type == sym_type)))

    @cached_property
    def undefined_mask(self) -> np.ndarray:
        mask = self.shndx == SHN_UNDEF
        if len(self):
            mask[0] = False  # index 0 is the reserved null symbol
        return mask


@dataclass(frozen=True)
class ElfInfo:
    elf_class: int
    little_endian: bool
    osabi: int
    machine: int
    e_flags: int
    e_type: int
    arch: str | None
    interpreter: str | None
    has_sections: bool
    needed: tuple[str, ...]
    soname: str | None
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    flags_1: int
    version_requirements: Mapping[str, frozenset[str]]
    version_definitions: tuple[str, ...]
    x86_isa_needed: int | None
    stack_flags: int | None   # the last PT_GNU_STACK's p_flags (glibc's loader reads that one); None without
    symbols: DynamicSymbols

    @property
    def executable_stack(self) -> bool | None:
        """Whether the loader must make the stack executable (PF_X on PT_GNU_STACK); None when the
        image has no PT_GNU_STACK, where the loader's default applies."""
        return None if self.stack_flags is None else bool(self.stack_flags & PF_X)

    def footprint(self) -> int:
        """Roughly the bytes these facts hold, for bounding caches of them."""
        sym = self.symbols
        arrays = sum(a.nbytes for a in (sym.name_offsets, sym.info, sym.other, sym.shndx, sym.version))
        return arrays + len(sym.strtab) + 4096

    @property
    def isa_level(self) -> int:
        """The x86-64 micro-architecture level the image declares it needs (1 = baseline)."""
        bits = self.x86_isa_needed or 0
        if bits & _ISA_V4:
            return 4
        if bits & _ISA_V3:
            return 3
        if bits & _ISA_V2:
            return 2
        return 1

    @property
    def unknown_isa_bits(self) -> int:
        """ISA_1_NEEDED bits beyond the levels v1-v4: an ISA no policy knows."""
        return (self.x86_isa_needed or 0) & ~0xF

    @cached_property
    def undefined_symbols(self) -> frozenset[str]:
        """Undefined, non-weak dynamic symbols: what the image needs someone else to provide."""
        sym = self.symbols
        return frozenset(sym.names_where(sym.undefined_mask & (sym.bind != STB_WEAK))) - {""}

    @cached_property
    def defined_symbols(self) -> frozenset[str]:
        """Named symbols the image defines (unnamed STT_SECTION entries are left out)."""
        sym = self.symbols
        mask = sym.shndx != SHN_UNDEF
        if len(sym):
            mask[0] = False
        return frozenset(sym.names_where(mask)) - {""}


# --- ElfInfo as bytes, for the store's cross-run ELF cache --------------------------------------

_DUMP_MAGIC = b"FAELF\x01"
_DUMP_HEAD = struct.Struct("<I")   # the length of the JSON part
_SYMBOL_COLUMNS = ("name_offsets", "info", "other", "shndx", "version")
_DUMPABLE_DTYPES = frozenset({"|u1", "<u2", "<u4", "<u8", "<i8", "|i1", "<i2", "<i4"})
_SCALARS = {"elf_class": int, "little_endian": bool, "osabi": int, "machine": int, "e_flags": int, "e_type": int,
            "has_sections": bool, "flags_1": int}
_OPTIONAL = {"arch": str, "interpreter": str, "soname": str, "x86_isa_needed": int, "stack_flags": int}
_NAME_LISTS = ("needed", "rpath", "runpath", "version_definitions")


def dump_elf_info(info: ElfInfo) -> bytes:
    """The facts as bytes that load_elf_info turns back into equal facts: every field, the dynamic
    symbols' columns and string table, and what is left of the decode budget. Dump facts fresh
    from read_elf, before any symbol name is decoded, so the loaded copy spends its budget as the
    original would have."""
    sym = info.symbols
    columns = [np.ascontiguousarray(getattr(sym, name)) for name in _SYMBOL_COLUMNS]
    fields: dict[str, object] = {name: getattr(info, name) for name in (*_SCALARS, *_OPTIONAL)}
    fields.update({name: list(getattr(info, name)) for name in _NAME_LISTS})
    fields["version_requirements"] = {k: sorted(v) for k, v in info.version_requirements.items()}
    fields["columns"] = [[c.dtype.str, int(c.shape[0])] for c in columns]
    fields["strtab"] = len(sym.strtab)
    budget = sym.strings._budget
    fields["budget"] = [budget.limit, budget.left]
    head = json.dumps(fields, sort_keys=True).encode("ascii")   # names keep their surrogates as \udcxx
    return b"".join((_DUMP_MAGIC, _DUMP_HEAD.pack(len(head)), head, *(c.tobytes() for c in columns), sym.strtab))


def load_elf_info(blob: bytes) -> ElfInfo:
    """The ElfInfo dump_elf_info wrote; ValueError for bytes that are not one, whole and consistent
    (a damaged or forged cache row must never pass for an image's facts, nor crash the reader)."""
    try:
        return _load(memoryview(blob))
    except (KeyError, TypeError, IndexError, UnicodeError, struct.error, json.JSONDecodeError) as e:
        raise ValueError(f"not a dump of ELF facts: {e!r}") from e


def _typed(value: object, kind: type, what: str) -> object:
    if type(value) is not kind:  # bool is not taken for an int, nor an int for a bool
        raise ValueError(f"{what}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _names(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{what}: expected a list")
    return tuple(_typed(v, str, what) for v in value)  # type: ignore[misc]


def _load(view: memoryview) -> ElfInfo:
    if bytes(view[:len(_DUMP_MAGIC)]) != _DUMP_MAGIC:
        raise ValueError("not a dump of ELF facts (no magic)")
    position = len(_DUMP_MAGIC) + _DUMP_HEAD.size
    (head_size,) = _DUMP_HEAD.unpack_from(view, len(_DUMP_MAGIC))
    if head_size > len(view) - position:
        raise ValueError("the dump is cut short")
    fields = json.loads(bytes(view[position:position + head_size]))
    position += head_size
    if not isinstance(fields, dict):
        raise ValueError("the dump's fields are not an object")
    values: dict[str, object] = {name: _typed(fields[name], kind, name) for name, kind in _SCALARS.items()}
    values.update({name: None if fields[name] is None else _typed(fields[name], kind, name)
                   for name, kind in _OPTIONAL.items()})
    values.update({name: _names(fields[name], name) for name in _NAME_LISTS})
    requirements = fields["version_requirements"]
    if not isinstance(requirements, dict):
        raise ValueError("version_requirements: expected an object")
    values["version_requirements"] = {k: frozenset(_names(v, "version_requirements"))
                                      for k, v in requirements.items()}
    columns = []
    specs = fields["columns"]
    if not isinstance(specs, list) or len(specs) != len(_SYMBOL_COLUMNS):
        raise ValueError("columns: expected one per symbol column")
    for dtype, count in specs:
        if _typed(dtype, str, "column dtype") not in _DUMPABLE_DTYPES or _typed(count, int, "column length") < 0:
            raise ValueError(f"column: bad type {dtype!r} or length {count!r}")
        size = np.dtype(dtype).itemsize * count
        if size > len(view) - position:
            raise ValueError("the dump is cut short")
        columns.append(np.frombuffer(view[position:position + size], dtype=dtype))
        position += size
    if len({c.shape[0] for c in columns}) != 1:
        raise ValueError("the symbol columns differ in length")
    strtab_size = _typed(fields["strtab"], int, "strtab")
    if strtab_size != len(view) - position:
        raise ValueError("the string table's size does not match the dump's")
    strtab = bytes(view[position:])
    offsets = columns[0]
    if offsets.size and (int(offsets.max()) >= strtab_size or strtab[-1:] != b"\0" or int(offsets.min()) < 0):
        raise ValueError("a symbol name points past the string table")
    limit, left = fields["budget"]
    budget = _DecodeBudget(0)
    budget.limit, budget.left = _typed(limit, int, "budget"), _typed(left, int, "budget")
    if not 0 <= budget.left <= budget.limit:
        raise ValueError("the decode budget is out of range")
    symbols = DynamicSymbols(*columns, StringTable(strtab, budget))
    return ElfInfo(**values, symbols=symbols)  # type: ignore[arg-type]


def _view(buffer: Buffer) -> memoryview | np.ndarray:
    return memoryview(buffer).cast("B") if not isinstance(buffer, np.ndarray) else buffer.reshape(-1).view(np.uint8)


def _parse(view: memoryview | np.ndarray, want: int) -> _elf.ElfTables:
    raw = _elf.parse(view, want)
    if isinstance(raw, tuple):
        status, offset, what = raw
        raise elf_error_for_status(status, what, offset)
    return raw


def read_elf(buffer: Buffer, want: int = WANT_ALL) -> ElfInfo:
    """Read the facts of one ELF image from a buffer; raises an ELFError subclass on bad input."""
    view = _view(buffer)
    raw = _parse(view, want)
    try:
        return _build(raw, want, _DecodeBudget(len(view)))
    except ELFError:
        raise
    except (IndexError, ValueError) as e:  # a decoded table that does not hold together
        raise ELFCorruptError(f"inconsistent tables: {e}") from e


def _split_paths(dynstr: StringTable, offset: int, what: str) -> tuple[str, ...]:
    if offset < 0:
        return ()
    value = dynstr.string_at(offset, what)
    return tuple(value.split(":")) if value else ()


def _build(raw: _elf.ElfTables, want: int, budget: _DecodeBudget) -> ElfInfo:
    dynstr = StringTable(raw.dynstr, budget)
    needed = tuple(dynstr.string_at(off, "DT_NEEDED") for off in raw.needed.tolist())
    soname = dynstr.string_at(raw.soname, "DT_SONAME") if raw.soname >= 0 else None
    interp = raw.interpreter
    interpreter = interp.split(b"\0", 1)[0].decode("utf-8", "surrogateescape") if interp is not None else None

    requirements: dict[str, set[str]] = {}
    definitions: tuple[str, ...] = ()
    if want & WANT_VERSIONS:
        strtab = StringTable(raw.verneed_strtab, budget)
        files = raw.verneed_file[raw.vernaux_entry].tolist()
        for file_off, name_off in zip(files, raw.vernaux_name.tolist()):
            file = strtab.string_at(file_off, "vn_file")
            requirements.setdefault(file, set()).add(strtab.string_at(name_off, "vna_name"))
        strtab_d = StringTable(raw.verdef_strtab, budget)
        definitions = tuple(strtab_d.string_at(off, "vda_name") for off in raw.verdef_name.tolist())

    if want & WANT_DYNSYM:
        symbols = DynamicSymbols(raw.sym_name, raw.sym_info, raw.sym_other, raw.sym_shndx, raw.sym_version,
                                 StringTable(raw.dynsym_strtab, budget))
    else:
        empty = np.empty(0, dtype=np.uint8)
        symbols = DynamicSymbols(empty, empty, empty, empty, empty, StringTable(b"", budget))

    arch = _arch_of(raw.machine, raw.elf_class, raw.little_endian, raw.e_flags)
    return ElfInfo(
        elf_class=raw.elf_class,
        little_endian=raw.little_endian,
        osabi=raw.osabi,
        machine=raw.machine,
        e_flags=raw.e_flags,
        e_type=raw.e_type,
        arch=arch,
        interpreter=interpreter,
        has_sections=raw.has_sections,
        needed=needed,
        soname=soname,
        rpath=_split_paths(dynstr, raw.rpath, "DT_RPATH"),
        runpath=_split_paths(dynstr, raw.runpath, "DT_RUNPATH"),
        flags_1=raw.flags_1,
        version_requirements={k: frozenset(v) for k, v in requirements.items()},
        version_definitions=definitions,
        x86_isa_needed=raw.x86_isa_needed,
        stack_flags=raw.stack_flags,
        symbols=symbols,
    )


# The largest page size each architecture's kernels use: a segment aligned to it loads on all of them.
_MAX_PAGE_SIZE: Mapping[str, int] = {"aarch64": 0x10000, "ppc64le": 0x10000, "ppc64": 0x10000,
                                     "loongarch64": 0x10000}
_DEFAULT_PAGE_SIZE = 0x1000


@dataclass(frozen=True)
class ElfEdits:
    """An edit plan for one image's dynamic section: None leaves a value alone, "" removes it."""

    replace_needed: Mapping[str, str] = field(default_factory=dict)
    remove_needed: frozenset[str] = frozenset()
    soname: str | None = None
    rpath: str | None = None      # DT_RPATH; setting it drops DT_RUNPATH
    runpath: str | None = None    # DT_RUNPATH; setting it drops DT_RPATH
    clear_execstack: bool = False  # clear PF_X in PT_GNU_STACK (add a non-executable one if there is none)

    def __bool__(self) -> bool:
        return bool(self.replace_needed or self.remove_needed or self.clear_execstack) or any(
            v is not None for v in (self.soname, self.rpath, self.runpath))


def _encoded(value: str, what: str, allow_empty: bool = False) -> bytes:
    raw = value.encode("utf-8", "surrogateescape")
    if b"\0" in raw or (not raw and not allow_empty):
        raise RepairError(f"invalid {what}: {value!r}")
    return raw


def check_edits(needed: tuple[str, ...], edits: ElfEdits) -> None:
    """Refuse a plan that does not fit an image needing `needed`, before any byte is written."""
    for name in (*edits.replace_needed, *edits.remove_needed):
        if name not in needed:
            needs = ", ".join(needed) or "nothing"
            raise RepairError(f"{name} is not a DT_NEEDED entry (the image needs {needs})")
    both = set(edits.replace_needed) & edits.remove_needed
    if both:
        raise RepairError(f"{', '.join(sorted(both))} both replaced and removed")
    if edits.rpath and edits.runpath:
        raise RepairError("an image gets DT_RPATH or DT_RUNPATH, not both")
    for new in edits.replace_needed.values():
        _encoded(new, "DT_NEEDED name")


# the reader's tables the planner uses, and its layout of the image
_REWRITE_WANT = WANT_DYNAMIC | WANT_VERSIONS | WANT_DYNSYM | _elf.WANT_LAYOUT


def rewrite_elf(buffer: Buffer, edits: ElfEdits) -> bytes:
    """A copy of the image with the edits applied (the same bytes when they change nothing).

    Raises RepairError for a plan that does not fit the image, an ELFError subclass for an image
    that cannot be read or rewritten: the reader's walk comes first (the plan is made over its
    layout), so a table the reader refuses is refused here with the same error.
    """
    view = _view(buffer)
    tables = _parse(view, _REWRITE_WANT)
    dynstr = StringTable(tables.dynstr, _DecodeBudget(len(view)))
    needed = tuple(dynstr.string_at(off, "DT_NEEDED") for off in tables.needed.tolist())
    check_edits(needed, edits)

    def optional(value: str | None, what: str) -> bytes | None:
        return None if value is None else _encoded(value, what, allow_empty=True)

    encoded = StringEdits(
        replace_needed={_encoded(old, "DT_NEEDED name"): _encoded(new, "DT_NEEDED name")
                        for old, new in edits.replace_needed.items()},
        remove_needed=frozenset(_encoded(name, "DT_NEEDED name") for name in edits.remove_needed),
        soname=optional(edits.soname, "DT_SONAME"), rpath=optional(edits.rpath, "DT_RPATH"),
        runpath=optional(edits.runpath, "DT_RUNPATH"),
    )
    arch = _arch_of(tables.machine, tables.elf_class, tables.little_endian, tables.e_flags)
    plan = plan_rewrite(tables, len(view), encoded, _MAX_PAGE_SIZE.get(arch or "", _DEFAULT_PAGE_SIZE))
    result = bytes(view) if plan is None else _written(view, plan)
    if plan is not None:
        _check_reads_back(result, [edits.replace_needed.get(n, n) for n in needed if n not in edits.remove_needed],
                          edits)
    if edits.clear_execstack:
        result = _without_executable_stack(result)
    return result


def _written(view: memoryview | np.ndarray | bytes, plan: RewritePlan) -> bytes:
    result = _elfedit.write(view, plan.size, plan.copies, plan.blobs, plan.patches, plan.symbol_moves,
                            plan.unversion)
    if isinstance(result, tuple):
        status, offset, what = result
        raise elf_error_for_status(status, what, offset)
    return result


def _without_executable_stack(image: bytes) -> bytes:
    """The image with PF_X cleared in its PT_GNU_STACK, over the program headers as they are after
    the other edits (they may have moved); read back to check the loader will see it."""
    plan = plan_clear_executable_stack(_parse(_view(image), _REWRITE_WANT), len(image))
    if plan is None:
        return image
    result = _written(image, plan)
    if read_elf(result, WANT_DYNAMIC).executable_stack is not False:
        raise ELFCorruptError("the image still asks for an executable stack after PF_X was cleared; refused")
    return result


def _check_reads_back(image: bytes, needed: list[str], edits: ElfEdits) -> None:
    """Refuse, rather than hand out, a rewrite the reader cannot read back with the DT_NEEDED, and
    the SONAME and search path it sets, asked for: a hostile layout the planner did not foresee
    must end in a typed error, never in a broken library in a wheel. The reader's dynamic walk
    alone, and only these strings decoded: the check costs a few microseconds."""
    try:
        tables = _parse(_view(image), WANT_DYNAMIC)
        dynstr = StringTable(tables.dynstr, _DecodeBudget(len(image)))
        found = [dynstr.string_at(off, "DT_NEEDED") for off in tables.needed.tolist()]
        if found != needed:
            raise ELFCorruptError(f"DT_NEEDED {found}, not {needed}")
        for asked, offset, what in ((edits.soname, tables.soname, "DT_SONAME"), (edits.rpath, tables.rpath, "DT_RPATH"),
                                    (edits.runpath, tables.runpath, "DT_RUNPATH")):
            if asked is not None and (dynstr.string_at(offset, what) if offset >= 0 else "") != asked:
                raise ELFCorruptError(f"{what} other than {asked!r}")
    except ELFError as e:
        raise ELFCorruptError(f"the rewritten image does not read back as planned ({e}); refused") from e
