"""Type stub for the Cython ELF walkers (src/fastaudit/_elf.pyx)."""
import numpy as np

WANT_DYNAMIC: int
WANT_VERSIONS: int
WANT_DYNSYM: int
WANT_NOTES: int
WANT_ALL: int
WANT_LAYOUT: int

class ElfLayout:
    """Where the rewriter's tables sit (with WANT_LAYOUT)."""

    format: dict[str, int]          # the Format record layout of this ELF class (_elfbytes.pxd)
    phoff: int
    phentsize: int
    shoff: int
    shentsize: int
    program_headers: np.ndarray     # (n, 8) uint64: the Phdr fields, p_type, p_flags, p_offset ... p_align
    section_headers: np.ndarray     # (n, 5) uint64: sh_type, sh_addr, sh_offset, sh_size, sh_link
    dynamic: np.ndarray             # (n, 2) uint64: d_tag, d_val of the entries before DT_NULL
    dynamic_offset: int
    dynamic_size: int
    dynamic_spare: int              # whole zero entries after the DT_NULL, within dynamic_size
    dt_strtab_offset: int           # the file offset DT_STRTAB maps to; -1: none
    largest_symbol_size: int        # the largest st_size of the dynamic symbols

class ElfTables:
    """The tables of one ELF image as the walkers found them; string fields are offsets into the
    raw string tables, -1 when absent."""

    elf_class: int
    little_endian: bool
    osabi: int
    e_type: int
    machine: int
    e_flags: int
    has_sections: bool
    interpreter: bytes | None
    needed: np.ndarray              # uint64 offsets into dynstr
    soname: int
    rpath: int
    runpath: int
    flags_1: int
    stack_flags: int | None
    dynstr: bytes
    verneed_strtab: bytes
    verdef_strtab: bytes
    dynsym_strtab: bytes
    verneed_offset: np.ndarray      # per Elf_Verneed: file offset (uint64), vn_file (uint32)
    verneed_file: np.ndarray
    vernaux_entry: np.ndarray       # per Elf_Vernaux: index of its Elf_Verneed, vna_name, vna_other
    vernaux_name: np.ndarray
    vernaux_other: np.ndarray
    verdef_name: np.ndarray         # per Elf_Verdef: the name it defines (its first Elf_Verdaux)
    verdaux_name: np.ndarray        # every Elf_Verdaux's vda_name, parents included
    sym_name: np.ndarray
    sym_info: np.ndarray
    sym_other: np.ndarray
    sym_shndx: np.ndarray
    sym_version: np.ndarray
    x86_isa_needed: int | None
    layout: ElfLayout | None

def parse(buf: bytes | bytearray | memoryview | np.ndarray, want: int = ...) -> ElfTables | tuple[str, int, str]:
    """The tables of one ELF image, or (status name, offset, what) when the image is malformed."""
