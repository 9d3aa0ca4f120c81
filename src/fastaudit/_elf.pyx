# cython: language_level=3
"""Walkers over the bytes of an ELF image: headers, dynamic table, version tables, dynsym, notes.

Only loops over bytes live here. Every offset or count read from the image goes through
`span_ok` before it is dereferenced; chains are capped by counts derived from the buffer size, so
a hostile image can neither read out of bounds nor loop forever. The walkers run without the GIL
and report failure as a status code plus the offset and a short static description; `elf.py` turns
those into exceptions through the table in `errors.py`.
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

# Status codes, mapped to exception classes in errors.py.
STATUS_OK = 0
STATUS_TRUNCATED = 1
STATUS_INVALID = 2
STATUS_CORRUPT = 3
STATUS_UNSUPPORTED = 4

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


cdef int read_segments(Image* im, const Header* h, Segments* s) noexcept nogil:
    cdef uint64_t phsize = 56 if im.is64 else 32
    cdef uint64_t i, ph, p_type, p_offset, p_filesz
    if h.phnum == 0:
        return 0
    if h.phentsize < phsize:
        return fail(im, ST_INVALID, h.phoff, "e_phentsize")
    if h.phoff > im.n or h.phnum > (im.n - h.phoff) // h.phentsize:
        return fail(im, ST_TRUNCATED, h.phoff, "program header table")
    for i in range(h.phnum):
        ph = h.phoff + i * h.phentsize
        p_type = rd32(im, ph)
        if im.is64:
            p_offset = rd64(im, ph + 8)
            p_filesz = rd64(im, ph + 32)
        else:
            p_offset = rd32(im, ph + 4)
            p_filesz = rd32(im, ph + 16)
        if p_type == PT_DYNAMIC and not s.has_dynamic:
            if not span_ok(im.n, p_offset, p_filesz):
                return fail(im, ST_TRUNCATED, ph, "PT_DYNAMIC")
            if p_offset % (8 if im.is64 else 4) != 0:
                return fail(im, ST_CORRUPT, ph, "misaligned PT_DYNAMIC")
            s.has_dynamic = True
            s.dyn_off = p_offset
            s.dyn_size = p_filesz
        elif p_type == PT_INTERP and not s.has_interp:
            if not span_ok(im.n, p_offset, p_filesz):
                return fail(im, ST_TRUNCATED, ph, "PT_INTERP")
            if p_filesz == 0 or im.p[p_offset + p_filesz - 1] != 0:
                return fail(im, ST_CORRUPT, ph, "unterminated PT_INTERP")
            s.has_interp = True
            s.interp_off = p_offset
            s.interp_size = p_filesz
        elif p_type == PT_NOTE or p_type == PT_GNU_PROPERTY:
            s.note_count += 1
        elif p_type == PT_GNU_STACK and not s.has_gnu_stack:
            s.has_gnu_stack = True
            s.stack_flags = rd32(im, ph + 4) if im.is64 else rd32(im, ph + 24)
    return 0


cdef int vaddr_to_offset(const Image* im, const Header* h, uint64_t vaddr, uint64_t* out) noexcept nogil:
    # map a virtual address through the PT_LOAD segment that contains it in the file image
    cdef uint64_t i, ph, p_offset, p_vaddr, p_filesz
    for i in range(h.phnum):
        ph = h.phoff + i * h.phentsize
        if rd32(im, ph) != PT_LOAD:
            continue
        if im.is64:
            p_offset = rd64(im, ph + 8)
            p_vaddr = rd64(im, ph + 16)
            p_filesz = rd64(im, ph + 32)
        else:
            p_offset = rd32(im, ph + 4)
            p_vaddr = rd32(im, ph + 8)
            p_filesz = rd32(im, ph + 16)
        if vaddr >= p_vaddr and vaddr - p_vaddr < p_filesz:
            out[0] = p_offset + (vaddr - p_vaddr)
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
    cdef uint64_t sh
    if link == SHN_UNDEF or link >= h.shnum:
        return fail(im, ST_CORRUPT, h.shoff, "sh_link out of range")
    sh = h.shoff + link * h.shentsize
    if rd32(im, sh + 4) != SHT_STRTAB:
        return fail(im, ST_CORRUPT, sh, "sh_link does not name a string table")
    if im.is64:
        t.str_off = rd64(im, sh + 24)
        t.str_size = rd64(im, sh + 32)
    else:
        t.str_off = rd32(im, sh + 16)
        t.str_size = rd32(im, sh + 20)
    if not span_ok(im.n, t.str_off, t.str_size):
        return fail(im, ST_TRUNCATED, sh, "string table")
    return 0


cdef int read_sections(Image* im, const Header* h, Sections* s, uint64_t* note_sections) noexcept nogil:
    cdef uint64_t i, sh, sh_type, off, size, link, info, align, entsize
    cdef Table* t
    for i in range(h.shnum):
        sh = h.shoff + i * h.shentsize
        sh_type = rd32(im, sh + 4)
        if sh_type == SHT_DYNAMIC:
            t = &s.dynamic
        elif sh_type == SHT_DYNSYM:
            t = &s.dynsym
        elif sh_type == SHT_GNU_versym:
            t = &s.versym
        elif sh_type == SHT_GNU_verneed:
            t = &s.verneed
        elif sh_type == SHT_GNU_verdef:
            t = &s.verdef
        elif sh_type == SHT_NOTE:
            note_sections[0] += 1
            continue
        else:
            continue
        if t.present:
            continue   # the first table of a kind wins, as in the loader and readelf
        if im.is64:
            off = rd64(im, sh + 24)
            size = rd64(im, sh + 32)
            link = rd32(im, sh + 40)
            info = rd32(im, sh + 44)
            align = rd64(im, sh + 48)
            entsize = rd64(im, sh + 56)
        else:
            off = rd32(im, sh + 16)
            size = rd32(im, sh + 20)
            link = rd32(im, sh + 24)
            info = rd32(im, sh + 28)
            align = rd32(im, sh + 32)
            entsize = rd32(im, sh + 36)
        if not span_ok(im.n, off, size):
            return fail(im, ST_TRUNCATED, sh, "section extends past the end of the file")
        t.present = True
        t.off = off
        t.size = size
        t.entsize = entsize
        t.align = align
        t.count = info if (sh_type == SHT_GNU_verneed or sh_type == SHT_GNU_verdef) else 0
        if sh_type != SHT_GNU_versym:
            if section_strtab(im, h, link, t) < 0:
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
    bint has_syment


cdef int walk_dynamic(Image* im, uint64_t off, uint64_t size, DynamicValues* d,
                      uint64_t* needed, uint64_t* n_needed) noexcept nogil:
    # needed[] has room for size // entsize offsets
    cdef uint64_t entsize = 16 if im.is64 else 8
    cdef uint64_t count = size // entsize
    cdef uint64_t i, e, tag, val
    cdef bint terminated = False
    d.soname = -1
    d.rpath = -1
    d.runpath = -1
    for i in range(count):
        e = off + i * entsize
        if im.is64:
            tag = rd64(im, e)
            val = rd64(im, e + 8)
        else:
            tag = rd32(im, e)
            val = rd32(im, e + 4)
        if tag == DT_NULL:
            terminated = True
            break
        elif tag == DT_NEEDED:
            needed[n_needed[0]] = val
            n_needed[0] += 1
        elif tag == DT_SONAME:
            d.soname = <int64_t>(val if val < STR_OFFSET_LIMIT else STR_OFFSET_LIMIT)
        elif tag == DT_RPATH:
            d.rpath = <int64_t>(val if val < STR_OFFSET_LIMIT else STR_OFFSET_LIMIT)
        elif tag == DT_RUNPATH:
            d.runpath = <int64_t>(val if val < STR_OFFSET_LIMIT else STR_OFFSET_LIMIT)
        elif tag == DT_STRTAB:
            d.strtab = val
            d.has_strtab = True
        elif tag == DT_STRSZ:
            d.strsz = val
        elif tag == DT_SYMTAB:
            d.symtab = val
            d.has_symtab = True
        elif tag == DT_SYMENT:
            d.syment = val
            d.has_syment = True
        elif tag == DT_HASH:
            d.hash = val
            d.has_hash = True
        elif tag == DT_GNU_HASH:
            d.gnu_hash = val
            d.has_gnu_hash = True
        elif tag == DT_VERSYM:
            d.versym = val
            d.has_versym = True
        elif tag == DT_VERNEED:
            d.verneed = val
            d.has_verneed = True
        elif tag == DT_VERNEEDNUM:
            d.verneednum = val
        elif tag == DT_VERDEF:
            d.verdef = val
            d.has_verdef = True
        elif tag == DT_VERDEFNUM:
            d.verdefnum = val
        elif tag == DT_FLAGS_1:
            d.flags_1 = val
    if not terminated:
        return fail(im, ST_CORRUPT, off, "dynamic table without DT_NULL")
    return 0


cdef int dynamic_tables(Image* im, const Header* h, DynamicValues* d, Sections* s) noexcept nogil:
    # Fill tables that the section headers did not give (stripped files) from the dynamic table.
    cdef uint64_t strtab_off = 0
    cdef uint64_t off, nsym
    cdef bint have_str = False
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


cdef int walk_verneed(Image* im, const Table* t, uint64_t cap,
                      uint32_t* files, uint32_t* names, uint16_t* flags, uint16_t* others,
                      uint64_t* n_out) noexcept nogil:
    # Elf_Verneed: vn_version(2) vn_cnt(2) vn_file(4) vn_aux(4) vn_next(4)
    # Elf_Vernaux: vna_hash(4) vna_flags(2) vna_other(2) vna_name(4) vna_next(4)
    # Every entry is 16 bytes, so a table of size S holds at most S // 16 of them: that caps both
    # chains, and a loop in vn_next or vna_next ends in an error instead of a hang.
    cdef uint64_t entry = t.off
    cdef uint64_t limit = t.off + t.size
    cdef uint64_t n_entries = 0
    cdef uint64_t aux, j, vn_cnt, vn_file, vn_next, vna_next
    cdef uint64_t want = t.count
    while True:
        if not span_ok(limit, entry, 16):
            return fail(im, ST_TRUNCATED, entry, "Elf_Verneed entry")
        if rd16(im, entry) != 1:
            return fail(im, ST_UNSUPPORTED, entry, "vn_version")
        vn_cnt = rd16(im, entry + 2)
        vn_file = rd32(im, entry + 4)
        aux = entry + rd32(im, entry + 8)
        vn_next = rd32(im, entry + 12)
        for j in range(vn_cnt):
            if n_out[0] >= cap:
                return fail(im, ST_CORRUPT, aux, "too many Elf_Vernaux entries")
            if not span_ok(limit, aux, 16):
                return fail(im, ST_TRUNCATED, aux, "Elf_Vernaux entry")
            files[n_out[0]] = <uint32_t>vn_file
            flags[n_out[0]] = rd16(im, aux + 4)
            others[n_out[0]] = rd16(im, aux + 6)
            names[n_out[0]] = rd32(im, aux + 8)
            n_out[0] += 1
            vna_next = rd32(im, aux + 12)
            if vna_next == 0:
                if j + 1 < vn_cnt:
                    return fail(im, ST_CORRUPT, aux, "vna_next ends before vn_cnt entries")
                break
            aux += vna_next
        n_entries += 1
        if want and n_entries >= want:
            break
        if vn_next == 0:
            if want:
                return fail(im, ST_CORRUPT, entry, "vn_next ends before the Elf_Verneed count")
            break
        if n_entries >= cap:
            return fail(im, ST_CORRUPT, entry, "too many Elf_Verneed entries")
        entry += vn_next
    return 0


cdef int walk_verdef(Image* im, const Table* t, uint64_t cap,
                     uint32_t* names, uint16_t* flags, uint16_t* indexes, uint64_t* n_out) noexcept nogil:
    # Elf_Verdef: vd_version(2) vd_flags(2) vd_ndx(2) vd_cnt(2) vd_hash(4) vd_aux(4) vd_next(4)
    # Elf_Verdaux: vda_name(4) vda_next(4). Only the first aux names the version; the rest
    # name its parents, which the audit does not use.
    cdef uint64_t entry = t.off
    cdef uint64_t limit = t.off + t.size
    cdef uint64_t aux, vd_next
    cdef uint64_t want = t.count
    while True:
        if n_out[0] >= cap:
            return fail(im, ST_CORRUPT, entry, "too many Elf_Verdef entries")
        if not span_ok(limit, entry, 20):
            return fail(im, ST_TRUNCATED, entry, "Elf_Verdef entry")
        if rd16(im, entry) != 1:
            return fail(im, ST_UNSUPPORTED, entry, "vd_version")
        flags[n_out[0]] = rd16(im, entry + 2)
        indexes[n_out[0]] = rd16(im, entry + 4)
        aux = entry + rd32(im, entry + 12)
        vd_next = rd32(im, entry + 16)
        if rd16(im, entry + 6) == 0:
            return fail(im, ST_CORRUPT, entry, "Elf_Verdef without a name")
        if not span_ok(limit, aux, 8):
            return fail(im, ST_TRUNCATED, aux, "Elf_Verdaux entry")
        names[n_out[0]] = rd32(im, aux)
        n_out[0] += 1
        if want and n_out[0] >= want:
            break
        if vd_next == 0:
            if want:
                return fail(im, ST_CORRUPT, entry, "vd_next ends before the Elf_Verdef count")
            break
        entry += vd_next
    return 0


cdef int walk_dynsym(Image* im, const Table* t, uint64_t count,
                     uint32_t* names, uint8_t* infos, uint8_t* others, uint16_t* shndx) noexcept nogil:
    cdef uint64_t i, e
    for i in range(count):
        e = t.off + i * t.entsize
        names[i] = rd32(im, e)
        if im.is64:
            infos[i] = im.p[e + 4]
            others[i] = im.p[e + 5]
            shndx[i] = rd16(im, e + 6)
        else:
            infos[i] = im.p[e + 12]
            others[i] = im.p[e + 13]
            shndx[i] = rd16(im, e + 14)
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
    cdef uint64_t i, rec, kind, off, size, align
    cdef uint64_t count = h.shnum if use_sections else h.phnum
    for i in range(count):
        if use_sections:
            rec = h.shoff + i * h.shentsize
            if rd32(im, rec + 4) != SHT_NOTE:
                continue
            if im.is64:
                off = rd64(im, rec + 24)
                size = rd64(im, rec + 32)
                align = rd64(im, rec + 48)
            else:
                off = rd32(im, rec + 16)
                size = rd32(im, rec + 20)
                align = rd32(im, rec + 32)
        else:
            rec = h.phoff + i * h.phentsize
            kind = rd32(im, rec)
            if kind != PT_NOTE and kind != PT_GNU_PROPERTY:
                continue
            if im.is64:
                off = rd64(im, rec + 8)
                size = rd64(im, rec + 32)
                align = rd64(im, rec + 48)
            else:
                off = rd32(im, rec + 4)
                size = rd32(im, rec + 16)
                align = rd32(im, rec + 28)
        if find_isa_needed(im, off, size, align, isa, found) < 0:
            return -1
        if found[0]:
            return 0
    return 0


def parse(const uint8_t[::1] buf not None, int want=WANT_ALL):
    """Walk the tables of one ELF image and return them as a dict of ints, bytes and numpy arrays.

    On failure returns (status, offset, what) instead, for `elf.py` to raise.
    """
    cdef Image im
    cdef Header h
    cdef Segments segs
    cdef Sections secs
    cdef DynamicValues dyn
    cdef uint64_t note_sections = 0
    cdef uint64_t n_needed = 0
    cdef uint64_t n_vn = 0
    cdef uint64_t n_vd = 0
    cdef uint64_t nsym = 0
    cdef uint64_t cap
    cdef uint32_t isa = 0
    cdef bint isa_found = False
    cdef int rc = 0
    cdef cnp.ndarray needed_arr, vn_file, vn_name, vn_flags, vn_other, vd_name, vd_flags, vd_ndx
    cdef cnp.ndarray sym_name, sym_info, sym_other, sym_shndx, sym_version

    im.p = &buf[0] if buf.shape[0] > 0 else NULL
    im.n = buf.shape[0]
    im.status = ST_OK
    im.err_offset = 0
    im.err_what = b""
    segs = Segments(False, 0, 0, False, 0, 0, 0, 0, False)
    secs.dynamic.present = secs.dynsym.present = secs.versym.present = False
    secs.verneed.present = secs.verdef.present = False
    dyn = DynamicValues(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, False, -1, -1, -1,
                        False, False, False, False, False, False, False, False)

    if im.n == 0:
        return (ST_TRUNCATED, 0, "ELF identification")
    with nogil:
        rc = read_header(&im, &h)
        if rc == 0:
            rc = read_segments(&im, &h, &segs)
        if rc == 0 and h.shnum:
            rc = read_sections(&im, &h, &secs, &note_sections)
    if rc < 0:
        return (im.status, im.err_offset, im.err_what.decode())

    # The dynamic table: the PT_DYNAMIC segment as the loader uses it, else the section.
    if not segs.has_dynamic and secs.dynamic.present:
        segs.has_dynamic = True
        segs.dyn_off = secs.dynamic.off
        segs.dyn_size = secs.dynamic.size
    needed_arr = np.empty(segs.dyn_size // (16 if im.is64 else 8) if segs.has_dynamic else 0,
                          dtype=np.uint64)
    if segs.has_dynamic:
        with nogil:
            rc = walk_dynamic(&im, segs.dyn_off, segs.dyn_size, &dyn,
                              <uint64_t*>cnp.PyArray_DATA(needed_arr), &n_needed)
            if rc == 0:
                rc = dynamic_tables(&im, &h, &dyn, &secs)
        if rc < 0:
            return (im.status, im.err_offset, im.err_what.decode())

    result = {
        "elf_class": 64 if im.is64 else 32,
        "little_endian": bool(im.le),
        "osabi": h.osabi,
        "abiversion": h.abiversion,
        "e_type": h.e_type,
        "machine": h.e_machine,
        "e_flags": h.e_flags,
        "has_sections": h.shnum > 0,
        "interpreter": bytes(buf[segs.interp_off:segs.interp_off + segs.interp_size])
        if segs.has_interp else None,
        "has_dynamic": bool(segs.has_dynamic),
        "needed": needed_arr[:n_needed],
        "soname": dyn.soname,
        "rpath": dyn.rpath,
        "runpath": dyn.runpath,
        "flags_1": dyn.flags_1,
        "stack_flags": segs.stack_flags if segs.has_gnu_stack else None,
    }
    # The string table for dynamic tags: the one DT_STRTAB names, else the section's link.
    if dyn.strtab_mapped:
        result["dynstr"] = bytes(buf[dyn.strtab_off:dyn.strtab_off + dyn.strsz])
    elif secs.dynamic.present:
        result["dynstr"] = bytes(buf[secs.dynamic.str_off:secs.dynamic.str_off + secs.dynamic.str_size])
    else:
        result["dynstr"] = b""

    if want & WANT_VERSIONS:
        cap = (secs.verneed.size // 16) if secs.verneed.present else 0
        vn_file = np.empty(cap, dtype=np.uint32)
        vn_name = np.empty(cap, dtype=np.uint32)
        vn_flags = np.empty(cap, dtype=np.uint16)
        vn_other = np.empty(cap, dtype=np.uint16)
        if cap:
            with nogil:
                rc = walk_verneed(&im, &secs.verneed, cap,
                                  <uint32_t*>cnp.PyArray_DATA(vn_file), <uint32_t*>cnp.PyArray_DATA(vn_name),
                                  <uint16_t*>cnp.PyArray_DATA(vn_flags), <uint16_t*>cnp.PyArray_DATA(vn_other),
                                  &n_vn)
            if rc < 0:
                return (im.status, im.err_offset, im.err_what.decode())
            result["verneed_strtab"] = bytes(buf[secs.verneed.str_off:secs.verneed.str_off + secs.verneed.str_size])
        result["verneed_file"] = vn_file[:n_vn]
        result["verneed_name"] = vn_name[:n_vn]
        result["verneed_flags"] = vn_flags[:n_vn]
        result["verneed_other"] = vn_other[:n_vn]

        cap = (secs.verdef.size // 20) if secs.verdef.present else 0
        vd_name = np.empty(cap, dtype=np.uint32)
        vd_flags = np.empty(cap, dtype=np.uint16)
        vd_ndx = np.empty(cap, dtype=np.uint16)
        if cap:
            with nogil:
                rc = walk_verdef(&im, &secs.verdef, cap, <uint32_t*>cnp.PyArray_DATA(vd_name),
                                 <uint16_t*>cnp.PyArray_DATA(vd_flags), <uint16_t*>cnp.PyArray_DATA(vd_ndx),
                                 &n_vd)
            if rc < 0:
                return (im.status, im.err_offset, im.err_what.decode())
            result["verdef_strtab"] = bytes(buf[secs.verdef.str_off:secs.verdef.str_off + secs.verdef.str_size])
        result["verdef_name"] = vd_name[:n_vd]
        result["verdef_flags"] = vd_flags[:n_vd]
        result["verdef_index"] = vd_ndx[:n_vd]

    if want & WANT_DYNSYM:
        if secs.dynsym.present:
            if secs.dynsym.entsize < (24 if im.is64 else 16):
                return (ST_CORRUPT, secs.dynsym.off, "dynsym sh_entsize")
            nsym = secs.dynsym.size // secs.dynsym.entsize
            if nsym > MAX_SYMBOLS:
                return (ST_UNSUPPORTED, secs.dynsym.off, "more dynamic symbols than supported")
        sym_name = np.empty(nsym, dtype=np.uint32)
        sym_info = np.empty(nsym, dtype=np.uint8)
        sym_other = np.empty(nsym, dtype=np.uint8)
        sym_shndx = np.empty(nsym, dtype=np.uint16)
        sym_version = np.zeros(nsym, dtype=np.uint16)
        if nsym:
            with nogil:
                walk_dynsym(&im, &secs.dynsym, nsym, <uint32_t*>cnp.PyArray_DATA(sym_name),
                            <uint8_t*>cnp.PyArray_DATA(sym_info), <uint8_t*>cnp.PyArray_DATA(sym_other),
                            <uint16_t*>cnp.PyArray_DATA(sym_shndx))
                if secs.versym.present and secs.versym.size // 2 >= nsym:
                    walk_versym(&im, &secs.versym, nsym, <uint16_t*>cnp.PyArray_DATA(sym_version))
            result["dynsym_strtab"] = bytes(buf[secs.dynsym.str_off:secs.dynsym.str_off + secs.dynsym.str_size])
        result["sym_name"] = sym_name
        result["sym_info"] = sym_info
        result["sym_other"] = sym_other
        result["sym_shndx"] = sym_shndx
        result["sym_version"] = sym_version

    if want & WANT_NOTES:
        with nogil:
            rc = find_isa_in_notes(&im, &h, note_sections > 0, &isa, &isa_found)
        if rc < 0:
            return (im.status, im.err_offset, im.err_what.decode())
        result["x86_isa_needed"] = isa if isa_found else None
    return result
