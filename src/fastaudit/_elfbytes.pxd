# cython: language_level=3
"""Shared by the ELF walkers (_elf.pyx) and the patch writer (_elfedit.pyx): the gABI constants,
the status codes, the bounds check every offset read from a file goes through, the byte-order
aware field readers, and the one table of record layouts (field offsets per ELF class) that the
Phdr/Shdr/Dyn/Sym readers and the writer share."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp

# Constants keep the gABI's spelling, so a grep matches readelf's output.
cdef extern from *:
    """
    #define PT_LOAD 1
    #define PT_DYNAMIC 2
    #define PT_INTERP 3
    #define PT_NOTE 4
    #define PT_GNU_PROPERTY 0x6474e553
    #define PT_GNU_STACK 0x6474e551
    #define SHT_STRTAB 3
    #define SHT_DYNAMIC 6
    #define SHT_NOTE 7
    #define SHT_DYNSYM 11
    #define SHT_GNU_verdef 0x6ffffffd
    #define SHT_GNU_verneed 0x6ffffffe
    #define SHT_GNU_versym 0x6fffffff
    #define SHN_UNDEF 0
    #define SHN_XINDEX 0xffff
    #define PN_XNUM 0xffff
    #define DT_NULL 0
    #define DT_NEEDED 1
    #define DT_HASH 4
    #define DT_STRTAB 5
    #define DT_SYMTAB 6
    #define DT_STRSZ 10
    #define DT_SYMENT 11
    #define DT_SONAME 14
    #define DT_RPATH 15
    #define DT_RUNPATH 29
    #define DT_GNU_HASH 0x6ffffef5
    #define DT_VERSYM 0x6ffffff0
    #define DT_FLAGS_1 0x6ffffffb
    #define DT_VERDEF 0x6ffffffc
    #define DT_VERDEFNUM 0x6ffffffd
    #define DT_VERNEED 0x6ffffffe
    #define DT_VERNEEDNUM 0x6fffffff
    #define NT_GNU_PROPERTY_TYPE_0 5
    #define GNU_PROPERTY_X86_ISA_1_NEEDED 0xc0008002
    #define MAX_SYMBOLS (1ULL << 26)  /* larger dynamic symbol tables are refused, not allocated */
    #define STR_OFFSET_LIMIT 0x7fffffffffffffffULL  /* keeps string offsets positive as int64 */
    #define VERNEED_SIZE 16  /* Elf_Verneed and Elf_Vernaux: the same in both classes */
    #define VERDEF_SIZE 20
    #define VERDAUX_SIZE 8

    /* Where each field of the records sits, per ELF class: the one layout table. Fields named
       *_word are Elf_Addr/Elf_Off/Elf_Xword (4 bytes in ELF32, 8 in ELF64); the others have the
       width of their gABI type in both classes. */
    typedef struct {
        unsigned char word, ehsize, phsize, shsize, dynsize, symsize;
        unsigned char e_phoff, e_shoff, e_flags, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx;
        unsigned char p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
        unsigned char sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize;
        unsigned char d_tag, d_val;
        unsigned char st_name, st_value, st_size, st_info, st_other, st_shndx;
    } Format;
    static const Format ELF32_FORMAT = {4, 52, 32, 40, 8, 16,
                                        28, 32, 36, 42, 44, 46, 48, 50,
                                        0, 24, 4, 8, 12, 16, 20, 28,
                                        4, 12, 16, 20, 24, 28, 32, 36,
                                        0, 4,
                                        0, 4, 8, 12, 13, 14};
    static const Format ELF64_FORMAT = {8, 64, 56, 64, 16, 24,
                                        32, 40, 48, 54, 56, 58, 60, 62,
                                        0, 4, 8, 16, 24, 32, 40, 48,
                                        4, 16, 24, 32, 40, 44, 48, 56,
                                        0, 8,
                                        0, 8, 16, 4, 5, 6};

    /* Status codes of the walkers and the writer: defined here only. Python sees them by name
       (status_name_of), and errors.py keys its exception table by those names. */
    enum { ST_OK, ST_TRUNCATED, ST_INVALID, ST_CORRUPT, ST_UNSUPPORTED };
    static const char* status_name_of(int status) {
        static const char* const names[] = {"ST_OK", "ST_TRUNCATED", "ST_INVALID", "ST_CORRUPT",
                                            "ST_UNSUPPORTED"};
        return status >= ST_OK && status <= ST_UNSUPPORTED ? names[status] : "ST_CORRUPT";
    }
    """
    const uint64_t PT_LOAD
    const uint64_t PT_DYNAMIC
    const uint64_t PT_INTERP
    const uint64_t PT_NOTE
    const uint64_t PT_GNU_PROPERTY
    const uint64_t PT_GNU_STACK
    const uint64_t SHT_STRTAB
    const uint64_t SHT_DYNAMIC
    const uint64_t SHT_NOTE
    const uint64_t SHT_DYNSYM
    const uint64_t SHT_GNU_verdef
    const uint64_t SHT_GNU_verneed
    const uint64_t SHT_GNU_versym
    const uint64_t SHN_UNDEF
    const uint64_t SHN_XINDEX
    const uint64_t PN_XNUM
    const uint64_t DT_NULL
    const uint64_t DT_NEEDED
    const uint64_t DT_HASH
    const uint64_t DT_STRTAB
    const uint64_t DT_SYMTAB
    const uint64_t DT_STRSZ
    const uint64_t DT_SYMENT
    const uint64_t DT_SONAME
    const uint64_t DT_RPATH
    const uint64_t DT_RUNPATH
    const uint64_t DT_GNU_HASH
    const uint64_t DT_VERSYM
    const uint64_t DT_FLAGS_1
    const uint64_t DT_VERDEF
    const uint64_t DT_VERDEFNUM
    const uint64_t DT_VERNEED
    const uint64_t DT_VERNEEDNUM
    const uint64_t NT_GNU_PROPERTY_TYPE_0
    const uint64_t GNU_PROPERTY_X86_ISA_1_NEEDED
    const uint64_t MAX_SYMBOLS
    const uint64_t STR_OFFSET_LIMIT
    const uint64_t VERNEED_SIZE
    const uint64_t VERDEF_SIZE
    const uint64_t VERDAUX_SIZE

    ctypedef struct Format:
        uint8_t word, ehsize, phsize, shsize, dynsize, symsize
        uint8_t e_phoff, e_shoff, e_flags, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        uint8_t p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        uint8_t sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize
        uint8_t d_tag, d_val
        uint8_t st_name, st_value, st_size, st_info, st_other, st_shndx
    const Format ELF32_FORMAT
    const Format ELF64_FORMAT

    enum:
        ST_OK
        ST_TRUNCATED
        ST_INVALID
        ST_CORRUPT
        ST_UNSUPPORTED
    const char* status_name_of(int status)


cdef struct Image:
    const uint8_t* p
    uint64_t n
    bint le
    bint is64
    const Format* f
    # status of the walk: code, file offset and a static description of what failed
    int status
    uint64_t err_offset
    const char* err_what


cdef struct Table:
    # a table located in the file: offset, size, entry size and, for string-linked tables,
    # the string table's offset and size
    bint present
    uint64_t off
    uint64_t size
    uint64_t entsize
    uint64_t str_off
    uint64_t str_size
    uint64_t count   # count from the dynamic table or sh_info, 0 when unknown
    uint64_t align


cdef inline bint span_ok(uint64_t n, uint64_t off, uint64_t size) noexcept nogil:
    # overflow-safe: never computes off + size
    return off <= n and size <= n - off


cdef inline void open_image(Image* im, const uint8_t* p, uint64_t n) noexcept nogil:
    im.p = p
    im.n = n
    im.le = True
    im.is64 = False
    im.f = &ELF32_FORMAT
    im.status = ST_OK
    im.err_offset = 0
    im.err_what = b""


cdef inline int fail(Image* im, int status, uint64_t off, const char* what) noexcept nogil:
    if im.status == ST_OK:
        im.status = status
        im.err_offset = off
        im.err_what = what
    return -1


cdef inline tuple failure(const Image* im):
    """A failed walk as Python sees it: (status name, file offset, what)."""
    return (status_name_of(im.status).decode(), im.err_offset, im.err_what.decode())


cdef inline uint16_t rd16(const Image* im, uint64_t off) noexcept nogil:
    cdef const uint8_t* q = im.p + off
    if im.le:
        return <uint16_t>(q[0] | (<uint16_t>q[1] << 8))
    return <uint16_t>(q[1] | (<uint16_t>q[0] << 8))


cdef inline uint32_t rd32(const Image* im, uint64_t off) noexcept nogil:
    cdef const uint8_t* q = im.p + off
    if im.le:
        return (<uint32_t>q[0] | (<uint32_t>q[1] << 8) | (<uint32_t>q[2] << 16)
                | (<uint32_t>q[3] << 24))
    return (<uint32_t>q[3] | (<uint32_t>q[2] << 8) | (<uint32_t>q[1] << 16)
            | (<uint32_t>q[0] << 24))


cdef inline uint64_t rd64(const Image* im, uint64_t off) noexcept nogil:
    cdef uint64_t lo = rd32(im, off)
    cdef uint64_t hi = rd32(im, off + 4)
    if im.le:
        return lo | (hi << 32)
    return hi | (lo << 32)


cdef inline uint64_t rdword(const Image* im, uint64_t off) noexcept nogil:
    # an address-sized field: Elf32_Addr/Off or Elf64_Addr/Off/Xword
    if im.is64:
        return rd64(im, off)
    return rd32(im, off)


# The records, filled from a checked position by the readers below (the caller has checked that
# the whole record lies in the buffer).
cdef struct Phdr:
    uint64_t p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align


cdef struct Shdr:
    uint64_t sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize


cdef struct Dyn:
    uint64_t d_tag, d_val


cdef struct Sym:
    uint64_t st_name, st_value, st_size
    uint8_t st_info, st_other
    uint16_t st_shndx


cdef inline void read_phdr(const Image* im, uint64_t at, Phdr* ph) noexcept nogil:
    cdef const Format* f = im.f
    ph.p_type = rd32(im, at + f.p_type)
    ph.p_flags = rd32(im, at + f.p_flags)
    ph.p_offset = rdword(im, at + f.p_offset)
    ph.p_vaddr = rdword(im, at + f.p_vaddr)
    ph.p_paddr = rdword(im, at + f.p_paddr)
    ph.p_filesz = rdword(im, at + f.p_filesz)
    ph.p_memsz = rdword(im, at + f.p_memsz)
    ph.p_align = rdword(im, at + f.p_align)


cdef inline void read_shdr(const Image* im, uint64_t at, Shdr* sh) noexcept nogil:
    cdef const Format* f = im.f
    sh.sh_type = rd32(im, at + f.sh_type)
    sh.sh_addr = rdword(im, at + f.sh_addr)
    sh.sh_offset = rdword(im, at + f.sh_offset)
    sh.sh_size = rdword(im, at + f.sh_size)
    sh.sh_link = rd32(im, at + f.sh_link)
    sh.sh_info = rd32(im, at + f.sh_info)
    sh.sh_addralign = rdword(im, at + f.sh_addralign)
    sh.sh_entsize = rdword(im, at + f.sh_entsize)


cdef inline void read_dyn(const Image* im, uint64_t at, Dyn* d) noexcept nogil:
    d.d_tag = rdword(im, at + im.f.d_tag)
    d.d_val = rdword(im, at + im.f.d_val)


cdef inline void read_sym(const Image* im, uint64_t at, Sym* s) noexcept nogil:
    cdef const Format* f = im.f
    s.st_name = rd32(im, at + f.st_name)
    s.st_value = rdword(im, at + f.st_value)
    s.st_size = rdword(im, at + f.st_size)
    s.st_info = im.p[at + f.st_info]
    s.st_other = im.p[at + f.st_other]
    s.st_shndx = rd16(im, at + f.st_shndx)


cdef struct Header:
    uint16_t e_type
    uint16_t e_machine
    uint32_t e_flags
    uint8_t osabi
    uint64_t phoff
    uint64_t shoff
    uint64_t phentsize
    uint64_t phnum
    uint64_t shentsize
    uint64_t shnum
    uint64_t shstrndx


cdef inline int read_header(Image* im, Header* h) noexcept nogil:
    cdef const Format* f
    if im.n < 16:
        return fail(im, ST_TRUNCATED, 0, "ELF identification")
    if memcmp(im.p, b"\x7fELF", 4) != 0:
        return fail(im, ST_INVALID, 0, "ELF magic")
    if im.p[4] == 1:
        im.is64 = False
        im.f = &ELF32_FORMAT
    elif im.p[4] == 2:
        im.is64 = True
        im.f = &ELF64_FORMAT
    else:
        return fail(im, ST_INVALID, 4, "EI_CLASS")
    if im.p[5] == 1:
        im.le = True
    elif im.p[5] == 2:
        im.le = False
    else:
        return fail(im, ST_INVALID, 5, "EI_DATA")
    if im.p[6] != 1:
        return fail(im, ST_UNSUPPORTED, 6, "EI_VERSION")
    h.osabi = im.p[7]
    f = im.f
    if not span_ok(im.n, 0, f.ehsize):
        return fail(im, ST_TRUNCATED, 16, "ELF header")
    h.e_type = rd16(im, 16)
    h.e_machine = rd16(im, 18)
    h.phoff = rdword(im, f.e_phoff)
    h.shoff = rdword(im, f.e_shoff)
    h.e_flags = rd32(im, f.e_flags)
    h.phentsize = rd16(im, f.e_phentsize)
    h.phnum = rd16(im, f.e_phnum)
    h.shentsize = rd16(im, f.e_shentsize)
    h.shnum = rd16(im, f.e_shnum)
    h.shstrndx = rd16(im, f.e_shstrndx)
    return read_extended_counts(im, h)


cdef inline int read_extended_counts(Image* im, Header* h) noexcept nogil:
    # gABI: when the real counts do not fit, section header 0 holds them
    cdef Shdr sh0
    if h.shoff == 0:
        if h.phnum == PN_XNUM:
            return fail(im, ST_CORRUPT, h.phoff, "PN_XNUM without section headers")
        h.shnum = 0
        return 0
    if h.shentsize < im.f.shsize:
        return fail(im, ST_INVALID, h.shoff, "e_shentsize")
    if not span_ok(im.n, h.shoff, im.f.shsize):
        return fail(im, ST_TRUNCATED, h.shoff, "section header 0")
    read_shdr(im, h.shoff, &sh0)
    if h.shnum == 0:
        h.shnum = sh0.sh_size
    if h.shstrndx == SHN_XINDEX:
        h.shstrndx = sh0.sh_link
    if h.phnum == PN_XNUM:
        h.phnum = sh0.sh_info
    if h.shnum > (im.n - h.shoff) // h.shentsize:
        return fail(im, ST_TRUNCATED, h.shoff, "section header table")
    if h.shstrndx != SHN_UNDEF and h.shstrndx >= h.shnum:
        return fail(im, ST_CORRUPT, h.shoff, "e_shstrndx")
    return 0
