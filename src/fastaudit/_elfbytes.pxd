# cython: language_level=3
"""Shared by the ELF walkers (_elf.pyx) and the rewriter (_elfedit.pyx): the gABI constants, the
bounds check every offset read from a file goes through, endian-aware field readers and the ELF
header reader."""
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
    #define ST_OK 0
    #define ST_TRUNCATED 1
    #define ST_INVALID 2
    #define ST_CORRUPT 3
    #define ST_UNSUPPORTED 4
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
    const int ST_OK
    const int ST_TRUNCATED
    const int ST_INVALID
    const int ST_CORRUPT
    const int ST_UNSUPPORTED


cdef struct Image:
    const uint8_t* p
    uint64_t n
    bint le
    bint is64
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


cdef inline int fail(Image* im, int status, uint64_t off, const char* what) noexcept nogil:
    if im.status == ST_OK:
        im.status = status
        im.err_offset = off
        im.err_what = what
    return -1


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


cdef struct Header:
    uint16_t e_type
    uint16_t e_machine
    uint32_t e_flags
    uint8_t osabi
    uint8_t abiversion
    uint64_t phoff
    uint64_t shoff
    uint64_t phentsize
    uint64_t phnum
    uint64_t shentsize
    uint64_t shnum
    uint64_t shstrndx


cdef inline int read_header(Image* im, Header* h) noexcept nogil:
    cdef uint64_t ehsize
    if im.n < 16:
        return fail(im, ST_TRUNCATED, 0, "ELF identification")
    if memcmp(im.p, b"\x7fELF", 4) != 0:
        return fail(im, ST_INVALID, 0, "ELF magic")
    if im.p[4] == 1:
        im.is64 = False
    elif im.p[4] == 2:
        im.is64 = True
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
    h.abiversion = im.p[8]
    ehsize = 64 if im.is64 else 52
    if not span_ok(im.n, 0, ehsize):
        return fail(im, ST_TRUNCATED, 16, "ELF header")
    h.e_type = rd16(im, 16)
    h.e_machine = rd16(im, 18)
    if im.is64:
        h.phoff = rd64(im, 32)
        h.shoff = rd64(im, 40)
        h.e_flags = rd32(im, 48)
        h.phentsize = rd16(im, 54)
        h.phnum = rd16(im, 56)
        h.shentsize = rd16(im, 58)
        h.shnum = rd16(im, 60)
        h.shstrndx = rd16(im, 62)
    else:
        h.phoff = rd32(im, 28)
        h.shoff = rd32(im, 32)
        h.e_flags = rd32(im, 36)
        h.phentsize = rd16(im, 42)
        h.phnum = rd16(im, 44)
        h.shentsize = rd16(im, 46)
        h.shnum = rd16(im, 48)
        h.shstrndx = rd16(im, 50)
    return read_extended_counts(im, h)


cdef inline int read_extended_counts(Image* im, Header* h) noexcept nogil:
    # gABI: when the real counts do not fit, section header 0 holds them
    cdef uint64_t sh0
    cdef uint64_t shsize = 64 if im.is64 else 40
    if h.shoff == 0:
        if h.phnum == PN_XNUM:
            return fail(im, ST_CORRUPT, h.phoff, "PN_XNUM without section headers")
        h.shnum = 0
        return 0
    if h.shentsize < shsize:
        return fail(im, ST_INVALID, h.shoff, "e_shentsize")
    if not span_ok(im.n, h.shoff, shsize):
        return fail(im, ST_TRUNCATED, h.shoff, "section header 0")
    sh0 = h.shoff
    if h.shnum == 0:
        h.shnum = rdword(im, sh0 + (32 if im.is64 else 20))
    if h.shstrndx == SHN_XINDEX:
        h.shstrndx = rd32(im, sh0 + (40 if im.is64 else 24))
    if h.phnum == PN_XNUM:
        h.phnum = rd32(im, sh0 + (44 if im.is64 else 28))
    if h.shnum > (im.n - h.shoff) // h.shentsize:
        return fail(im, ST_TRUNCATED, h.shoff, "section header table")
    if h.shstrndx != SHN_UNDEF and h.shstrndx >= h.shnum:
        return fail(im, ST_CORRUPT, h.shoff, "e_shstrndx")
    return 0


