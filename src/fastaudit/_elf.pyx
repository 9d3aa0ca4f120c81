# cython: language_level=3
"""Walkers over the bytes of an ELF image: headers, dynamic table, version tables, dynsym, notes.

Only loops over bytes live here. Every offset or count read from the image goes through
`span_ok` before it is dereferenced; each version chain spends one budget, the bytes of its table,
so a hostile image can neither read out of bounds nor loop forever, and every output is bounded by
the bytes it was read from. The walkers run without the GIL and report failure as a status code
plus the offset and a short static description; `elf.py` turns those into exceptions through the
table in `errors.py`. With WANT_LAYOUT the same walk also hands back the headers, the dynamic
entries and the table positions the rewriter (elfedit.py) plans over: the image is walked once.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcmp

import numpy as np
cimport numpy as cnp

cnp.import_array()

# Which tables to walk: callers ask only for what they use.
WANT_DYNAMIC = 1
WANT_VERSIONS = 2
WANT_DYNSYM = 4
WANT_NOTES = 8
WANT_ALL = 15
WANT_LAYOUT = 16   # the headers and table positions the rewriter plans over (not in WANT_ALL)

cdef enum:
    PHDR_FIELDS = 8   # the layout's rows: the Phdr struct's fields
    SHDR_FIELDS = 5   # sh_type, sh_addr, sh_offset, sh_size, sh_link

# The gABI constants, the bounds check and the field readers are shared with the rewriter.
from fastaudit._elfbytes cimport *

cdef struct Segments:
    bint has_dynamic
    uint64_t dyn_off
    uint64_t dyn_size
    bint has_interp
    uint64_t interp_off
    uint64_t interp_size
    uint64_t note_count          # PT_NOTE and PT_GNU_PROPERTY segments, used without sections
    uint64_t stack_flags
    bint has_gnu_stack


cdef int read_segments(Image* im, const Header* h, Segments* s, uint64_t* rows) noexcept nogil:
    # rows, when not NULL, has room for phnum program headers of 8 fields (the Phdr order)
    cdef uint64_t i, at
    cdef Phdr ph
    if h.phnum == 0:
        return 0
    if h.phentsize < im.f.phsize:
        return fail(im, ST_INVALID, h.phoff, "e_phentsize")
    if h.phoff > im.n or h.phnum > (im.n - h.phoff) // h.phentsize:
        return fail(im, ST_TRUNCATED, h.phoff, "program header table")
    for i in range(h.phnum):
        at = h.phoff + i * h.phentsize
        read_phdr(im, at, &ph)
        if rows != NULL:
            rows[0] = ph.p_type
            rows[1] = ph.p_flags
            rows[2] = ph.p_offset
            rows[3] = ph.p_vaddr
            rows[4] = ph.p_paddr
            rows[5] = ph.p_filesz
            rows[6] = ph.p_memsz
            rows[7] = ph.p_align
            rows += 8
        if ph.p_type == PT_DYNAMIC and not s.has_dynamic:
            if not span_ok(im.n, ph.p_offset, ph.p_filesz):
                return fail(im, ST_TRUNCATED, at, "PT_DYNAMIC")
            if ph.p_offset % im.f.word != 0:
                return fail(im, ST_CORRUPT, at, "misaligned PT_DYNAMIC")
            s.has_dynamic = True
            s.dyn_off = ph.p_offset
            s.dyn_size = ph.p_filesz
        elif ph.p_type == PT_INTERP and not s.has_interp:
            if not span_ok(im.n, ph.p_offset, ph.p_filesz):
                return fail(im, ST_TRUNCATED, at, "PT_INTERP")
            if ph.p_filesz == 0 or im.p[ph.p_offset + ph.p_filesz - 1] != 0:
                return fail(im, ST_CORRUPT, at, "unterminated PT_INTERP")
            s.has_interp = True
            s.interp_off = ph.p_offset
            s.interp_size = ph.p_filesz
        elif ph.p_type == PT_NOTE or ph.p_type == PT_GNU_PROPERTY:
            s.note_count += 1
        elif ph.p_type == PT_GNU_STACK:
            # the last one counts, as in glibc's loader (_dl_map_object_from_fd), which is what
            # refuses a shared object asking for an executable stack
            s.has_gnu_stack = True
            s.stack_flags = ph.p_flags
    return 0


cdef int vaddr_to_offset(const Image* im, const Header* h, uint64_t vaddr, uint64_t* out) noexcept nogil:
    # map a virtual address through the PT_LOAD segment that contains it in the file image
    cdef uint64_t i
    cdef Phdr ph
    for i in range(h.phnum):
        read_phdr(im, h.phoff + i * h.phentsize, &ph)
        if ph.p_type != PT_LOAD:
            continue
        if vaddr >= ph.p_vaddr and vaddr - ph.p_vaddr < ph.p_filesz:
            out[0] = ph.p_offset + (vaddr - ph.p_vaddr)
            return 0 if out[0] <= im.n else -1
    return -1


cdef struct Sections:
    Table dynamic
    Table dynsym
    Table versym
    Table verneed
    Table verdef


cdef int section_strtab(Image* im, const Header* h, uint64_t link, Table* t) noexcept nogil:
    # resolve sh_link to a string table; one level only, so sh_link cycles cannot recur
    cdef uint64_t at
    cdef Shdr sh
    if link == SHN_UNDEF or link >= h.shnum:
        return fail(im, ST_CORRUPT, h.shoff, "sh_link out of range")
    at = h.shoff + link * h.shentsize
    read_shdr(im, at, &sh)
    if sh.sh_type != SHT_STRTAB:
        return fail(im, ST_CORRUPT, at, "sh_link does not name a string table")
    t.str_off = sh.sh_offset
    t.str_size = sh.sh_size
    if not span_ok(im.n, t.str_off, t.str_size):
        return fail(im, ST_TRUNCATED, at, "string table")
    return 0


cdef int read_sections(Image* im, const Header* h, Sections* s, uint64_t* note_sections,
                       uint64_t* rows) noexcept nogil:
    # rows, when not NULL, has room for shnum section headers of SHDR_FIELDS fields
    cdef uint64_t i, at
    cdef Shdr sh
    cdef Table* t
    for i in range(h.shnum):
        at = h.shoff + i * h.shentsize
        read_shdr(im, at, &sh)
        if rows != NULL:
            rows[0] = sh.sh_type
            rows[1] = sh.sh_addr
            rows[2] = sh.sh_offset
            rows[3] = sh.sh_size
            rows[4] = sh.sh_link
            rows += SHDR_FIELDS
        if sh.sh_type == SHT_DYNAMIC:
            t = &s.dynamic
        elif sh.sh_type == SHT_DYNSYM:
            t = &s.dynsym
        elif sh.sh_type == SHT_GNU_versym:
            t = &s.versym
        elif sh.sh_type == SHT_GNU_verneed:
            t = &s.verneed
        elif sh.sh_type == SHT_GNU_verdef:
            t = &s.verdef
        elif sh.sh_type == SHT_NOTE:
            note_sections[0] += 1
            continue
        else:
            continue
        if t.present:
            continue   # the first table of a kind wins, as in the loader and readelf
        if not span_ok(im.n, sh.sh_offset, sh.sh_size):
            return fail(im, ST_TRUNCATED, at, "section extends past the end of the file")
        t.present = True
        t.off = sh.sh_offset
        t.size = sh.sh_size
        t.entsize = sh.sh_entsize
        t.align = sh.sh_addralign
        t.count = sh.sh_info if (sh.sh_type == SHT_GNU_verneed or sh.sh_type == SHT_GNU_verdef) else 0
        if sh.sh_type != SHT_GNU_versym:
            if section_strtab(im, h, sh.sh_link, t) < 0:
                return -1
    return 0


cdef struct DynamicValues:
    uint64_t strtab
    uint64_t strsz
    uint64_t symtab
    uint64_t syment
    uint64_t hash
    uint64_t gnu_hash
    uint64_t versym
    uint64_t verneed
    uint64_t verneednum
    uint64_t verdef
    uint64_t verdefnum
    uint64_t flags_1
    uint64_t strtab_off    # DT_STRTAB mapped to a file offset, valid when strtab_mapped
    bint strtab_mapped
    int64_t soname
    int64_t rpath
    int64_t runpath
    bint has_strtab
    bint has_symtab
    bint has_hash
    bint has_gnu_hash
    bint has_versym
    bint has_verneed
    bint has_verdef
    bint has_verneednum
    bint has_verdefnum
    bint has_syment


cdef int walk_dynamic(Image* im, uint64_t off, uint64_t size, DynamicValues* d,
                      uint64_t* needed, uint64_t* n_needed, uint64_t* rows, uint64_t* n_rows) noexcept nogil:
    # needed[] (and rows[], when not NULL, in pairs) has room for size // entsize entries;
    # n_rows counts the entries before DT_NULL
    cdef uint64_t entsize = im.f.dynsize
    cdef uint64_t count = size // entsize
    cdef uint64_t i
    cdef Dyn e
    cdef bint terminated = False
    d.soname = -1
    d.rpath = -1
    d.runpath = -1
    for i in range(count):
        read_dyn(im, off + i * entsize, &e)
        if e.d_tag == DT_NULL:
            terminated = True
            n_rows[0] = i
            break
        if rows != NULL:
            rows[2 * i] = e.d_tag
            rows[2 * i + 1] = e.d_val
        if e.d_tag == DT_NEEDED:
            needed[n_needed[0]] = e.d_val
            n_needed[0] += 1
        elif e.d_tag == DT_SONAME:
            d.soname = <int64_t>(e.d_val if e.d_val < STR_OFFSET_LIMIT else STR_OFFSET_LIMIT)
        elif e.d_tag == DT_RPATH:
            d.rpath = <int64_t>(e.d_val if e.d_val < STR_OFFSET_LIMIT else STR_OFFSET_LIMIT)
        elif e.d_tag == DT_RUNPATH:
            d.runpath = <int64_t>(e.d_val if e.d_val < STR_OFFSET_LIMIT else STR_OFFSET_LIMIT)
        elif e.d_tag == DT_STRTAB:
            d.strtab = e.d_val
            d.has_strtab = True
        elif e.d_tag == DT_STRSZ:
            d.strsz = e.d_val
        elif e.d_tag == DT_SYMTAB:
            d.symtab = e.d_val
            d.has_symtab = True
        elif e.d_tag == DT_SYMENT:
            d.syment = e.d_val
            d.has_syment = True
        elif e.d_tag == DT_HASH:
            d.hash = e.d_val
            d.has_hash = True
        elif e.d_tag == DT_GNU_HASH:
            d.gnu_hash = e.d_val
            d.has_gnu_hash = True
        elif e.d_tag == DT_VERSYM:
            d.versym = e.d_val
            d.has_versym = True
        elif e.d_tag == DT_VERNEED:
            d.verneed = e.d_val
            d.has_verneed = True
        elif e.d_tag == DT_VERNEEDNUM:
            d.verneednum = e.d_val
            d.has_verneednum = True
        elif e.d_tag == DT_VERDEF:
            d.verdef = e.d_val
            d.has_verdef = True
        elif e.d_tag == DT_VERDEFNUM:
            d.verdefnum = e.d_val
            d.has_verdefnum = True
        elif e.d_tag == DT_FLAGS_1:
            d.flags_1 = e.d_val
    if not terminated:
        return fail(im, ST_CORRUPT, off, "dynamic table without DT_NULL")
    return 0


cdef uint64_t zero_entries_after(const Image* im, uint64_t off, uint64_t size, uint64_t first) noexcept nogil:
    """How many whole zero entries follow entry `first` of the dynamic table, within its size:
    only those are room to grow into (p_filesz alone may claim bytes of something else)."""
    cdef uint64_t entsize = im.f.dynsize
    cdef uint64_t i, k, n = 0
    for i in range(first, size // entsize):
        for k in range(entsize):
            if im.p[off + i * entsize + k] != 0:
                return n
        n += 1
    return n


cdef int same_version_table(Image* im, const Header* h, bint has_tag, uint64_t vaddr, bint has_count,
                            uint64_t count, const Table* t, const char* outside, const char* elsewhere,
                            const char* other_count) noexcept nogil:
    # The loader follows DT_VERNEED/DT_VERDEF, readelf and the audit the section: both must name
    # one chain of one length, or the audit (and the rewrite) would judge a table the loader skips.
    cdef uint64_t off
    if not t.present or not has_tag:
        return 0
    if vaddr_to_offset(im, h, vaddr, &off) != 0:
        return fail(im, ST_CORRUPT, 0, outside)
    if off != t.off:
        return fail(im, ST_CORRUPT, off, elsewhere)
    if has_count and count != t.count:
        return fail(im, ST_CORRUPT, t.off, other_count)
    return 0


cdef int dynamic_tables(Image* im, const Header* h, DynamicValues* d, Sections* s) noexcept nogil:
    # Fill tables that the section headers did not give (stripped files) from the dynamic table.
    cdef uint64_t strtab_off = 0
    cdef uint64_t off, nsym
    cdef bint have_str = False
    if same_version_table(im, h, d.has_verneed, d.verneed, d.has_verneednum, d.verneednum, &s.verneed,
                          "DT_VERNEED outside every PT_LOAD", "DT_VERNEED (not the table .gnu.version_r holds)",
                          "DT_VERNEEDNUM (not the sh_info of .gnu.version_r)") < 0:
        return -1
    if same_version_table(im, h, d.has_verdef, d.verdef, d.has_verdefnum, d.verdefnum, &s.verdef,
                          "DT_VERDEF outside every PT_LOAD", "DT_VERDEF (not the table .gnu.version_d holds)",
                          "DT_VERDEFNUM (not the sh_info of .gnu.version_d)") < 0:
        return -1
    # A table the dynamic section names but no PT_LOAD maps is an error: skipping it would make
    # a broken file look more compatible (no version needs, no symbols).
    if d.has_strtab:
        if vaddr_to_offset(im, h, d.strtab, &strtab_off) != 0:
            if not (s.dynamic.present or s.dynsym.present):
                return fail(im, ST_CORRUPT, 0, "DT_STRTAB outside every PT_LOAD")
        elif not span_ok(im.n, strtab_off, d.strsz):
            return fail(im, ST_TRUNCATED, strtab_off, "DT_STRTAB/DT_STRSZ")
        else:
            have_str = True
    if not have_str:
        if not s.verneed.present and d.has_verneed or not s.dynsym.present and d.has_symtab:
            return fail(im, ST_CORRUPT, 0, "version or symbol table without DT_STRTAB")
        return 0
    d.strtab_off = strtab_off
    d.strtab_mapped = True
    if not s.verneed.present and d.has_verneed:
        if vaddr_to_offset(im, h, d.verneed, &off) != 0:
            return fail(im, ST_CORRUPT, 0, "DT_VERNEED outside every PT_LOAD")
        s.verneed.present = True
        s.verneed.off = off
        s.verneed.size = im.n - off
        s.verneed.count = d.verneednum
        s.verneed.str_off = strtab_off
        s.verneed.str_size = d.strsz
    if not s.verdef.present and d.has_verdef:
        if vaddr_to_offset(im, h, d.verdef, &off) != 0:
            return fail(im, ST_CORRUPT, 0, "DT_VERDEF outside every PT_LOAD")
        s.verdef.present = True
        s.verdef.off = off
        s.verdef.size = im.n - off
        s.verdef.count = d.verdefnum
        s.verdef.str_off = strtab_off
        s.verdef.str_size = d.strsz
    if not s.dynsym.present and d.has_symtab:
        if vaddr_to_offset(im, h, d.symtab, &off) != 0:
            return fail(im, ST_CORRUPT, 0, "DT_SYMTAB outside every PT_LOAD")
        if d.has_syment and d.syment < (24 if im.is64 else 16):
            return fail(im, ST_CORRUPT, 0, "DT_SYMENT")
        nsym = 0
        if symbol_count_from_hash(im, h, d, &nsym) < 0:
            return -1
        s.dynsym.present = True
        s.dynsym.off = off
        s.dynsym.entsize = d.syment if d.syment else (24 if im.is64 else 16)
        if nsym > (im.n - off) // s.dynsym.entsize:
            return fail(im, ST_TRUNCATED, off, "DT_SYMTAB")
        s.dynsym.size = nsym * s.dynsym.entsize
        s.dynsym.str_off = strtab_off
        s.dynsym.str_size = d.strsz
    if not s.versym.present and d.has_versym and s.dynsym.present and s.dynsym.entsize:
        if vaddr_to_offset(im, h, d.versym, &off) != 0:
            return fail(im, ST_CORRUPT, 0, "DT_VERSYM outside every PT_LOAD")
        s.versym.present = True
        s.versym.off = off
        s.versym.size = (s.dynsym.size // s.dynsym.entsize) * 2
        s.versym.entsize = 2
        if not span_ok(im.n, off, s.versym.size):
            return fail(im, ST_TRUNCATED, off, "DT_VERSYM")
    return 0


cdef int symbol_count_from_hash(Image* im, const Header* h, const DynamicValues* d, uint64_t* out) noexcept nogil:
    # Without section headers the symbol count comes from DT_HASH's nchain or from walking
    # the DT_GNU_HASH chains to the highest symbol index.
    cdef uint64_t off, nbuckets, symoffset, bloom_size, buckets_off, chains_off, i, top, idx, steps
    cdef uint32_t b
    cdef uint64_t wordsize = 8 if im.is64 else 4
    if d.has_hash and vaddr_to_offset(im, h, d.hash, &off) == 0:
        if not span_ok(im.n, off, 8):
            return fail(im, ST_TRUNCATED, off, "DT_HASH")
        out[0] = rd32(im, off + 4)
        return 0
    if not (d.has_gnu_hash and vaddr_to_offset(im, h, d.gnu_hash, &off) == 0):
        out[0] = 0
        return 0
    if not span_ok(im.n, off, 16):
        return fail(im, ST_TRUNCATED, off, "DT_GNU_HASH")
    nbuckets = rd32(im, off)
    symoffset = rd32(im, off + 4)
    bloom_size = rd32(im, off + 8)
    if bloom_size > (im.n - off - 16) // wordsize:
        return fail(im, ST_TRUNCATED, off, "DT_GNU_HASH bloom filter")
    buckets_off = off + 16 + bloom_size * wordsize
    if nbuckets > (im.n - buckets_off) // 4:
        return fail(im, ST_TRUNCATED, off, "DT_GNU_HASH buckets")
    chains_off = buckets_off + nbuckets * 4
    top = 0
    for i in range(nbuckets):
        b = rd32(im, buckets_off + i * 4)
        if b > top:
            top = b
    if top < symoffset:
        out[0] = symoffset
        return 0
    idx = top
    steps = 0
    while True:
        if (idx - symoffset) > (im.n - chains_off) // 4 - 1 or chains_off + 4 > im.n:
            return fail(im, ST_TRUNCATED, chains_off, "DT_GNU_HASH chains")
        if rd32(im, chains_off + (idx - symoffset) * 4) & 1:
            break
        idx += 1
        steps += 1
        if steps > MAX_SYMBOLS:
            return fail(im, ST_CORRUPT, chains_off, "DT_GNU_HASH chain never ends")
    out[0] = idx + 1
    return 0


cdef struct VerneedOut:
    # per Elf_Verneed: its file offset and vn_file; per Elf_Vernaux: its entry's index, vna_name
    # and vna_other. Each array has room for table size // VERNEED_SIZE rows.
    uint64_t* entry_offset
    uint32_t* entry_file
    uint32_t* aux_entry
    uint32_t* aux_name
    uint16_t* aux_other
    uint64_t n_entries
    uint64_t n_aux


cdef int walk_verneed(Image* im, const Table* t, VerneedOut* out) noexcept nogil:
    # Elf_Verneed: vn_version(2) vn_cnt(2) vn_file(4) vn_aux(4) vn_next(4)
    # Elf_Vernaux: vna_hash(4) vna_flags(2) vna_other(2) vna_name(4) vna_next(4)
    # One budget for the whole chain: every entry and aux read spends its 16 bytes of the table's
    # size, so time and output grow with the table, never with a count it declares, and a loop
    # in vn_next or vna_next ends in an error instead of a hang.
    cdef uint64_t entry = t.off
    cdef uint64_t limit = t.off + t.size
    cdef uint64_t budget = t.size // VERNEED_SIZE
    cdef uint64_t aux, j, vn_cnt, vn_file, vn_next, vna_next
    cdef uint64_t want = t.count
    while True:
        if budget == 0:
            return fail(im, ST_CORRUPT, entry, "too many Elf_Verneed entries")
        budget -= 1
        if not span_ok(limit, entry, VERNEED_SIZE):
            return fail(im, ST_TRUNCATED, entry, "Elf_Verneed entry")
        if rd16(im, entry) != 1:
            return fail(im, ST_UNSUPPORTED, entry, "vn_version")
        vn_cnt = rd16(im, entry + 2)
        vn_file = rd32(im, entry + 4)
        aux = entry + rd32(im, entry + 8)
        vn_next = rd32(im, entry + 12)
        out.entry_offset[out.n_entries] = entry
        out.entry_file[out.n_entries] = <uint32_t>vn_file
        for j in range(vn_cnt):
            if budget == 0:
                return fail(im, ST_CORRUPT, aux, "too many Elf_Vernaux entries")
            budget -= 1
            if not span_ok(limit, aux, VERNEED_SIZE):
                return fail(im, ST_TRUNCATED, aux, "Elf_Vernaux entry")
            out.aux_entry[out.n_aux] = <uint32_t>out.n_entries
            out.aux_other[out.n_aux] = rd16(im, aux + 6)
            out.aux_name[out.n_aux] = rd32(im, aux + 8)
            out.n_aux += 1
            vna_next = rd32(im, aux + 12)
            if vna_next == 0:
                if j + 1 < vn_cnt:
                    return fail(im, ST_CORRUPT, aux, "vna_next ends before vn_cnt entries")
                break
            aux += vna_next
        out.n_entries += 1
        if want and out.n_entries >= want:
            break
        if vn_next == 0:
            if want:
                return fail(im, ST_CORRUPT, entry, "vn_next ends before the Elf_Verneed count")
            break
        entry += vn_next
    return 0


cdef struct VerdefOut:
    # per Elf_Verdef: the name of its first Elf_Verdaux (the version it defines); and the names of
    # all its Elf_Verdaux (its parents too). Each has room for size // (VERDEF_SIZE + VERDAUX_SIZE)
    # and size // VERDAUX_SIZE rows.
    uint32_t* names
    uint32_t* aux_names
    uint64_t n
    uint64_t n_aux


cdef int walk_verdef(Image* im, const Table* t, VerdefOut* out) noexcept nogil:
    # Elf_Verdef: vd_version(2) vd_flags(2) vd_ndx(2) vd_cnt(2) vd_hash(4) vd_aux(4) vd_next(4)
    # Elf_Verdaux: vda_name(4) vda_next(4). One budget of bytes for the chain, as for verneed.
    cdef uint64_t entry = t.off
    cdef uint64_t limit = t.off + t.size
    cdef uint64_t budget = t.size
    cdef uint64_t aux, j, vd_cnt, vd_next, vda_next
    cdef uint64_t want = t.count
    while True:
        if budget < VERDEF_SIZE + VERDAUX_SIZE:
            return fail(im, ST_CORRUPT, entry, "too many Elf_Verdef entries")
        budget -= VERDEF_SIZE
        if not span_ok(limit, entry, VERDEF_SIZE):
            return fail(im, ST_TRUNCATED, entry, "Elf_Verdef entry")
        if rd16(im, entry) != 1:
            return fail(im, ST_UNSUPPORTED, entry, "vd_version")
        vd_cnt = rd16(im, entry + 6)
        aux = entry + rd32(im, entry + 12)
        vd_next = rd32(im, entry + 16)
        if vd_cnt == 0:
            return fail(im, ST_CORRUPT, entry, "Elf_Verdef without a name")
        for j in range(vd_cnt):
            if budget < VERDAUX_SIZE:
                return fail(im, ST_CORRUPT, aux, "too many Elf_Verdaux entries")
            budget -= VERDAUX_SIZE
            if not span_ok(limit, aux, VERDAUX_SIZE):
                return fail(im, ST_TRUNCATED, aux, "Elf_Verdaux entry")
            out.aux_names[out.n_aux] = rd32(im, aux)
            if j == 0:
                out.names[out.n] = out.aux_names[out.n_aux]
            out.n_aux += 1
            vda_next = rd32(im, aux + 4)
            if vda_next == 0:
                break   # vd_cnt counts parents a linker may leave out
            aux += vda_next
        out.n += 1
        if want and out.n >= want:
            break
        if vd_next == 0:
            if want:
                return fail(im, ST_CORRUPT, entry, "vd_next ends before the Elf_Verdef count")
            break
        entry += vd_next
    return 0


cdef int walk_dynsym(Image* im, const Table* t, uint64_t count, uint32_t* names, uint8_t* infos,
                     uint8_t* others, uint16_t* shndx, uint64_t* largest_size) noexcept nogil:
    # largest_size, when not NULL, gets the largest st_size (the rewriter keeps its new segment
    # further than that from the last one)
    cdef uint64_t i
    cdef Sym sym
    for i in range(count):
        read_sym(im, t.off + i * t.entsize, &sym)
        names[i] = <uint32_t>sym.st_name
        infos[i] = sym.st_info
        others[i] = sym.st_other
        shndx[i] = sym.st_shndx
        if largest_size != NULL and sym.st_size > largest_size[0]:
            largest_size[0] = sym.st_size
    return 0


cdef int walk_versym(Image* im, const Table* t, uint64_t count, uint16_t* out) noexcept nogil:
    cdef uint64_t i
    for i in range(count):
        out[i] = rd16(im, t.off + i * 2)
    return 0


cdef int find_isa_needed(Image* im, uint64_t off, uint64_t size, uint64_t align,
                         uint32_t* isa, bint* found) noexcept nogil:
    # Notes: namesz(4) descsz(4) type(4) name desc; the name is padded to 4 bytes, the desc to
    # the note alignment. Within NT_GNU_PROPERTY_TYPE_0 "GNU": pr_type(4) pr_datasz(4) pr_data,
    # each property padded to 8 bytes on ELF64 and 4 on ELF32.
    cdef uint64_t end, namesz, descsz, ntype, name_pad, desc_off, desc_end, desc_pad, prop
    cdef uint64_t pr_type, pr_datasz
    cdef uint64_t pr_align = 8 if im.is64 else 4
    if align != 8:
        align = 4
    if not span_ok(im.n, off, size):
        return fail(im, ST_TRUNCATED, off, "note")
    end = off + size
    while end - off >= 12:
        namesz = rd32(im, off)
        descsz = rd32(im, off + 4)
        ntype = rd32(im, off + 8)
        name_pad = (namesz + 3) & ~(<uint64_t>3)
        desc_pad = (descsz + align - 1) & ~(align - 1)
        if name_pad > end - off - 12 or descsz > end - off - 12 - name_pad:
            return fail(im, ST_TRUNCATED, off, "note entry")
        desc_off = off + 12 + name_pad
        if (ntype == NT_GNU_PROPERTY_TYPE_0 and namesz == 4
                and memcmp(im.p + off + 12, b"GNU\0", 4) == 0):
            prop = desc_off
            desc_end = desc_off + descsz
            while prop < desc_end and desc_end - prop >= 8:
                pr_type = rd32(im, prop)
                pr_datasz = rd32(im, prop + 4)
                if pr_datasz > desc_end - prop - 8:
                    return fail(im, ST_TRUNCATED, prop, "GNU property")
                if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED and pr_datasz == 4:
                    isa[0] = rd32(im, prop + 8)
                    found[0] = True
                    return 0
                prop += 8 + ((pr_datasz + pr_align - 1) & ~(pr_align - 1))
            return 0   # only the first property note counts, as for the loader
        if desc_pad > end - off - 12 - name_pad:
            break
        off = desc_off + desc_pad
    return 0


cdef int find_isa_in_notes(Image* im, const Header* h, bint use_sections,
                           uint32_t* isa, bint* found) noexcept nogil:
    cdef uint64_t i
    cdef Shdr sh
    cdef Phdr ph
    cdef uint64_t count = h.shnum if use_sections else h.phnum
    for i in range(count):
        if use_sections:
            read_shdr(im, h.shoff + i * h.shentsize, &sh)
            if sh.sh_type != SHT_NOTE:
                continue
            if find_isa_needed(im, sh.sh_offset, sh.sh_size, sh.sh_addralign, isa, found) < 0:
                return -1
        else:
            read_phdr(im, h.phoff + i * h.phentsize, &ph)
            if ph.p_type != PT_NOTE and ph.p_type != PT_GNU_PROPERTY:
                continue
            if find_isa_needed(im, ph.p_offset, ph.p_filesz, ph.p_align, isa, found) < 0:
                return -1
        if found[0]:
            return 0
    return 0


cdef class ElfLayout:
    """Where the rewriter's tables sit: the headers, the dynamic entries, and the file offset of
    the string table DT_STRTAB names (-1 when no PT_LOAD maps it)."""
    cdef readonly dict format                # the record layout of this class (Format in _elfbytes.pxd)
    cdef readonly uint64_t phoff, phentsize, shoff, shentsize
    cdef readonly object program_headers     # (n, 8) uint64: the Phdr fields, in that struct's order
    cdef readonly object section_headers     # (n, 5) uint64: sh_type, sh_addr, sh_offset, sh_size, sh_link
    cdef readonly object dynamic             # (n, 2) uint64: d_tag, d_val, up to DT_NULL
    cdef readonly uint64_t dynamic_offset, dynamic_size, dynamic_spare
    cdef readonly int64_t dt_strtab_offset
    cdef readonly uint64_t largest_symbol_size   # the largest st_size of the dynamic symbols


cdef class ElfTables:
    """The tables of one ELF image as the walkers found them: ints, raw string tables and numpy
    columns; elf.py decodes them."""
    cdef readonly int elf_class
    cdef readonly bint little_endian
    cdef readonly int osabi, e_type, machine
    cdef readonly uint32_t e_flags
    cdef readonly bint has_sections
    cdef readonly object interpreter         # PT_INTERP's bytes, or None
    cdef readonly object needed              # DT_NEEDED string offsets
    cdef readonly int64_t soname, rpath, runpath   # string offsets, -1 when absent
    cdef readonly uint64_t flags_1
    cdef readonly object stack_flags         # PT_GNU_STACK's p_flags, or None
    cdef readonly bytes dynstr
    cdef readonly bytes verneed_strtab, verdef_strtab, dynsym_strtab
    cdef readonly object verneed_offset, verneed_file, vernaux_entry, vernaux_name, vernaux_other
    cdef readonly object verdef_name, verdaux_name
    cdef readonly object sym_name, sym_info, sym_other, sym_shndx, sym_version
    cdef readonly object x86_isa_needed
    cdef readonly ElfLayout layout           # with WANT_LAYOUT only, else None


cdef inline bytes span_bytes(const uint8_t[::1] buf, uint64_t off, uint64_t size):
    return bytes(buf[off:off + size])


def parse(const uint8_t[::1] buf not None, int want=WANT_ALL):
    """Walk the tables of one ELF image into an ElfTables.

    On failure returns (status name, offset, what) instead, for `elf.py` to raise.
    """
    cdef Image im
    cdef Header h
    cdef Segments segs
    cdef Sections secs
    cdef DynamicValues dyn
    cdef VerneedOut vn
    cdef VerdefOut vd
    cdef uint64_t note_sections = 0
    cdef uint64_t n_needed = 0
    cdef uint64_t n_dyn = 0
    cdef uint64_t nsym = 0
    cdef uint64_t cap
    cdef uint32_t isa = 0
    cdef bint isa_found = False
    cdef bint with_layout = (want & WANT_LAYOUT) != 0
    cdef int rc = 0
    cdef cnp.ndarray needed_arr, phdr_rows, shdr_rows, dyn_rows
    cdef cnp.ndarray sym_name, sym_info, sym_other, sym_shndx, sym_version
    cdef uint64_t largest_symbol_size = 0
    cdef ElfTables r = ElfTables()
    cdef ElfLayout lay = ElfLayout() if with_layout else None

    open_image(&im, &buf[0] if buf.shape[0] > 0 else NULL, buf.shape[0])
    segs = Segments(False, 0, 0, False, 0, 0, 0, 0, False)
    secs.dynamic.present = secs.dynsym.present = secs.versym.present = False
    secs.verneed.present = secs.verdef.present = False
    dyn = DynamicValues(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, False, -1, -1, -1,
                        False, False, False, False, False, False, False, False, False, False)

    if im.n == 0:
        return ("ST_TRUNCATED", 0, "ELF identification")
    with nogil:
        rc = read_header(&im, &h)
    if rc < 0:
        return failure(&im)
    # the header tables, as rows, only for the rewriter: their size is bounded by the file's
    phdr_rows = np.zeros((h.phnum if with_layout and h.phentsize >= im.f.phsize and h.phoff <= im.n
                          and h.phnum <= (im.n - h.phoff) // h.phentsize else 0, PHDR_FIELDS), dtype=np.uint64)
    shdr_rows = np.zeros((h.shnum if with_layout else 0, SHDR_FIELDS), dtype=np.uint64)
    with nogil:
        rc = read_segments(&im, &h, &segs, <uint64_t*>cnp.PyArray_DATA(phdr_rows) if with_layout else NULL)
        if rc == 0 and h.shnum:
            rc = read_sections(&im, &h, &secs, &note_sections,
                               <uint64_t*>cnp.PyArray_DATA(shdr_rows) if with_layout else NULL)
    if rc < 0:
        return failure(&im)

    # The dynamic table: the PT_DYNAMIC segment as the loader uses it, else the section.
    if not segs.has_dynamic and secs.dynamic.present:
        segs.has_dynamic = True
        segs.dyn_off = secs.dynamic.off
        segs.dyn_size = secs.dynamic.size
    cap = segs.dyn_size // im.f.dynsize if segs.has_dynamic else 0
    needed_arr = np.empty(cap, dtype=np.uint64)
    dyn_rows = np.empty((cap if with_layout else 0, 2), dtype=np.uint64)
    if segs.has_dynamic:
        with nogil:
            rc = walk_dynamic(&im, segs.dyn_off, segs.dyn_size, &dyn,
                              <uint64_t*>cnp.PyArray_DATA(needed_arr), &n_needed,
                              <uint64_t*>cnp.PyArray_DATA(dyn_rows) if with_layout else NULL, &n_dyn)
            if rc == 0:
                rc = dynamic_tables(&im, &h, &dyn, &secs)
        if rc < 0:
            return failure(&im)

    r.elf_class = 64 if im.is64 else 32
    r.little_endian = im.le
    r.osabi = h.osabi
    r.e_type = h.e_type
    r.machine = h.e_machine
    r.e_flags = h.e_flags
    r.has_sections = h.shnum > 0
    r.interpreter = span_bytes(buf, segs.interp_off, segs.interp_size) if segs.has_interp else None
    r.needed = needed_arr[:n_needed]
    r.soname = dyn.soname
    r.rpath = dyn.rpath
    r.runpath = dyn.runpath
    r.flags_1 = dyn.flags_1
    r.stack_flags = segs.stack_flags if segs.has_gnu_stack else None
    # The string table for dynamic tags: the one DT_STRTAB names, else the section's link.
    if dyn.strtab_mapped:
        r.dynstr = span_bytes(buf, dyn.strtab_off, dyn.strsz)
    elif secs.dynamic.present:
        r.dynstr = span_bytes(buf, secs.dynamic.str_off, secs.dynamic.str_size)
    else:
        r.dynstr = b""

    r.verneed_strtab = r.verdef_strtab = r.dynsym_strtab = b""
    if want & WANT_VERSIONS:
        cap = (secs.verneed.size // VERNEED_SIZE) if secs.verneed.present else 0
        r.verneed_offset = np.empty(cap, dtype=np.uint64)
        r.verneed_file = np.empty(cap, dtype=np.uint32)
        r.vernaux_entry = np.empty(cap, dtype=np.uint32)
        r.vernaux_name = np.empty(cap, dtype=np.uint32)
        r.vernaux_other = np.empty(cap, dtype=np.uint16)
        vn = VerneedOut(<uint64_t*>cnp.PyArray_DATA(r.verneed_offset), <uint32_t*>cnp.PyArray_DATA(r.verneed_file),
                        <uint32_t*>cnp.PyArray_DATA(r.vernaux_entry), <uint32_t*>cnp.PyArray_DATA(r.vernaux_name),
                        <uint16_t*>cnp.PyArray_DATA(r.vernaux_other), 0, 0)
        if cap:
            with nogil:
                rc = walk_verneed(&im, &secs.verneed, &vn)
            if rc < 0:
                return failure(&im)
            r.verneed_strtab = span_bytes(buf, secs.verneed.str_off, secs.verneed.str_size)
        r.verneed_offset = r.verneed_offset[:vn.n_entries]
        r.verneed_file = r.verneed_file[:vn.n_entries]
        r.vernaux_entry = r.vernaux_entry[:vn.n_aux]
        r.vernaux_name = r.vernaux_name[:vn.n_aux]
        r.vernaux_other = r.vernaux_other[:vn.n_aux]

        cap = secs.verdef.size if secs.verdef.present else 0
        r.verdef_name = np.empty(cap // (VERDEF_SIZE + VERDAUX_SIZE), dtype=np.uint32)
        r.verdaux_name = np.empty(cap // VERDAUX_SIZE, dtype=np.uint32)
        vd = VerdefOut(<uint32_t*>cnp.PyArray_DATA(r.verdef_name), <uint32_t*>cnp.PyArray_DATA(r.verdaux_name), 0, 0)
        if cap:
            with nogil:
                rc = walk_verdef(&im, &secs.verdef, &vd)
            if rc < 0:
                return failure(&im)
            r.verdef_strtab = span_bytes(buf, secs.verdef.str_off, secs.verdef.str_size)
        r.verdef_name = r.verdef_name[:vd.n]
        r.verdaux_name = r.verdaux_name[:vd.n_aux]

    if want & WANT_DYNSYM:
        if secs.dynsym.present:
            if secs.dynsym.entsize < im.f.symsize:
                return ("ST_CORRUPT", secs.dynsym.off, "dynsym sh_entsize")
            nsym = secs.dynsym.size // secs.dynsym.entsize
            if nsym > MAX_SYMBOLS:
                return ("ST_UNSUPPORTED", secs.dynsym.off, "more dynamic symbols than supported")
        sym_name = np.empty(nsym, dtype=np.uint32)
        sym_info = np.empty(nsym, dtype=np.uint8)
        sym_other = np.empty(nsym, dtype=np.uint8)
        sym_shndx = np.empty(nsym, dtype=np.uint16)
        sym_version = np.zeros(nsym, dtype=np.uint16)
        if nsym:
            with nogil:
                walk_dynsym(&im, &secs.dynsym, nsym, <uint32_t*>cnp.PyArray_DATA(sym_name),
                            <uint8_t*>cnp.PyArray_DATA(sym_info), <uint8_t*>cnp.PyArray_DATA(sym_other),
                            <uint16_t*>cnp.PyArray_DATA(sym_shndx),
                            &largest_symbol_size if with_layout else NULL)
                if secs.versym.present and secs.versym.size // 2 >= nsym:
                    walk_versym(&im, &secs.versym, nsym, <uint16_t*>cnp.PyArray_DATA(sym_version))
            r.dynsym_strtab = span_bytes(buf, secs.dynsym.str_off, secs.dynsym.str_size)
        r.sym_name = sym_name
        r.sym_info = sym_info
        r.sym_other = sym_other
        r.sym_shndx = sym_shndx
        r.sym_version = sym_version
        if with_layout:
            lay.largest_symbol_size = largest_symbol_size

    if want & WANT_NOTES:
        with nogil:
            rc = find_isa_in_notes(&im, &h, note_sections > 0, &isa, &isa_found)
        if rc < 0:
            return failure(&im)
        r.x86_isa_needed = isa if isa_found else None

    if with_layout:
        lay.format = im.f[0]
        lay.phoff = h.phoff
        lay.phentsize = h.phentsize
        lay.shoff = h.shoff
        lay.shentsize = h.shentsize
        lay.program_headers = phdr_rows
        lay.section_headers = shdr_rows
        lay.dynamic = dyn_rows[:n_dyn]
        lay.dynamic_offset = segs.dyn_off
        lay.dynamic_size = segs.dyn_size
        lay.dynamic_spare = zero_entries_after(&im, segs.dyn_off, segs.dyn_size, n_dyn + 1) if segs.has_dynamic else 0
        lay.dt_strtab_offset = dyn.strtab_off if dyn.strtab_mapped else -1
        r.layout = lay
    return r
