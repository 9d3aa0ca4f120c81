# cython: language_level=3
"""The ELF rewriter: apply an edit plan to the dynamic section of a copy of an image.

What changes: DT_NEEDED values (and the Elf_Verneed vn_file that names the same library),
DT_SONAME, DT_RPATH, DT_RUNPATH. Strings already in .dynstr are reused; a new string that fits
where the old one was, and shares no byte with any other reference, is written in place. When
strings have to be added, the whole .dynstr is copied (every existing offset stays valid) with the
new strings after it into a new PT_LOAD at the end of the file; .dynamic follows it when it needs
more entries than it has room for, and the program header table follows when it has no slot for
the new segment. The section headers of .dynstr and .dynamic are moved along, so readelf, strip
and eu-elflint read the same tables the loader uses.

Failures come back as (status, offset, what), like the walkers in _elf.pyx.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from fastaudit._elfbytes cimport *

cdef extern from *:
    """
    #define PT_NULL 0
    #define SHT_SYMTAB 2
    #define PT_PHDR 6
    #define PF_W 2
    #define PF_R 4
    #define DT_AUXILIARY 0x7ffffffd
    #define DT_FILTER 0x7fffffff
    #define DT_CONFIG 0x6ffffefa
    #define DT_DEPAUDIT 0x6ffffefb
    #define DT_AUDIT 0x6ffffefc
    """
    const uint64_t PT_NULL
    const uint64_t SHT_SYMTAB
    const uint64_t PT_PHDR
    const uint64_t PF_W
    const uint64_t PF_R
    const uint64_t DT_AUXILIARY
    const uint64_t DT_FILTER
    const uint64_t DT_CONFIG
    const uint64_t DT_DEPAUDIT
    const uint64_t DT_AUDIT

# dynamic entries whose value is an offset into .dynstr
_STRING_TAGS = frozenset({DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_AUXILIARY, DT_FILTER,
                          DT_CONFIG, DT_DEPAUDIT, DT_AUDIT})
# dynamic entries whose value is an address (gABI d_ptr, and GNU's), checked to lie in a PT_LOAD
_ADDRESS_TAGS = {3: "DT_PLTGOT", 4: "DT_HASH", 5: "DT_STRTAB", 6: "DT_SYMTAB", 7: "DT_RELA", 12: "DT_INIT",
                 13: "DT_FINI", 17: "DT_REL", 23: "DT_JMPREL", 25: "DT_INIT_ARRAY", 26: "DT_FINI_ARRAY",
                 32: "DT_PREINIT_ARRAY", 0x6ffffef5: "DT_GNU_HASH", 0x6ffffff0: "DT_VERSYM",
                 0x6ffffffc: "DT_VERDEF", 0x6ffffffe: "DT_VERNEED"}
# the most entries a version chain may have in an image of n bytes: each entry is at least 8 bytes
_MIN_VERSION_ENTRY = 8


class _Fail(Exception):
    """Raised inside the rewriter, returned to the caller as (status, offset, what)."""


cdef inline void wr32(uint8_t* q, bint le, uint32_t v) noexcept nogil:
    cdef int i
    for i in range(4):
        q[i if le else 3 - i] = <uint8_t>(v >> (8 * i))


cdef inline void wr64(uint8_t* q, bint le, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        q[i if le else 7 - i] = <uint8_t>(v >> (8 * i))


cdef inline void wr16(uint8_t* q, bint le, uint16_t v) noexcept nogil:
    q[0 if le else 1] = <uint8_t>v
    q[1 if le else 0] = <uint8_t>(v >> 8)


cdef class _Image:
    """The source image (read-only) and its geometry."""
    cdef Image im
    cdef Header h
    cdef const uint8_t[::1] buf
    cdef uint64_t word, phsize, shsize, dynent, symsize

    def __init__(self, const uint8_t[::1] buf):
        self.buf = buf
        self.im.p = &buf[0]
        self.im.n = buf.shape[0]
        self.im.status = ST_OK
        self.im.err_offset = 0
        self.im.err_what = b""
        if read_header(&self.im, &self.h) < 0:
            raise _Fail(self.im.status, self.im.err_offset, self.im.err_what.decode())
        self.word = 8 if self.im.is64 else 4
        self.phsize = 56 if self.im.is64 else 32
        self.shsize = 64 if self.im.is64 else 40
        self.dynent = 16 if self.im.is64 else 8
        self.symsize = 24 if self.im.is64 else 16

    cdef uint64_t u16(self, uint64_t off) except? 0xffffffffffffffff:
        self.need(off, 2, "field")
        return rd16(&self.im, off)

    cdef uint64_t u32(self, uint64_t off) except? 0xffffffffffffffff:
        self.need(off, 4, "field")
        return rd32(&self.im, off)

    cdef uint64_t word_at(self, uint64_t off) except? 0xffffffffffffffff:
        self.need(off, self.word, "field")
        return rdword(&self.im, off)

    cdef int need(self, uint64_t off, uint64_t size, str what) except -1:
        if not span_ok(self.im.n, off, size):
            raise _Fail(ST_TRUNCATED, off, what)
        return 0

    def program_headers(self) -> list:
        """[type, flags, offset, vaddr, paddr, filesz, memsz, align] per entry."""
        cdef uint64_t i, ph
        if self.h.phnum == 0:
            raise _Fail(ST_UNSUPPORTED, 0, "no program headers")
        if self.h.phentsize != self.phsize:
            raise _Fail(ST_INVALID, self.h.phoff, "e_phentsize")
        if self.h.phoff > self.im.n or self.h.phnum > (self.im.n - self.h.phoff) // self.phsize:
            raise _Fail(ST_TRUNCATED, self.h.phoff, "program header table")
        headers = []
        for i in range(self.h.phnum):
            ph = self.h.phoff + i * self.phsize
            if self.im.is64:
                headers.append([rd32(&self.im, ph), rd32(&self.im, ph + 4), rd64(&self.im, ph + 8),
                                rd64(&self.im, ph + 16), rd64(&self.im, ph + 24), rd64(&self.im, ph + 32),
                                rd64(&self.im, ph + 40), rd64(&self.im, ph + 48)])
            else:
                headers.append([rd32(&self.im, ph), rd32(&self.im, ph + 24), rd32(&self.im, ph + 4),
                                rd32(&self.im, ph + 8), rd32(&self.im, ph + 12), rd32(&self.im, ph + 16),
                                rd32(&self.im, ph + 20), rd32(&self.im, ph + 28)])
        return headers

    def section_headers(self) -> list:
        """[file position of the header, type, addr, offset, size, link] per section."""
        cdef uint64_t i, sh
        sections = []
        if self.h.shoff == 0 or self.h.shnum == 0:
            return sections
        for i in range(self.h.shnum):
            sh = self.h.shoff + i * self.h.shentsize
            if self.im.is64:
                sections.append([sh, rd32(&self.im, sh + 4), rd64(&self.im, sh + 16), rd64(&self.im, sh + 24),
                                 rd64(&self.im, sh + 32), rd32(&self.im, sh + 40)])
            else:
                sections.append([sh, rd32(&self.im, sh + 4), rd32(&self.im, sh + 12), rd32(&self.im, sh + 16),
                                 rd32(&self.im, sh + 20), rd32(&self.im, sh + 24)])
        return sections

    def dynamic_entries(self, uint64_t off, uint64_t size) -> list:
        """[tag, value] up to (not including) DT_NULL."""
        cdef uint64_t i, e, tag
        self.need(off, size, "PT_DYNAMIC")
        entries = []
        for i in range(size // self.dynent):
            e = off + i * self.dynent
            tag = rdword(&self.im, e)
            if tag == DT_NULL:
                return entries
            entries.append([tag, rdword(&self.im, e + self.word)])
        raise _Fail(ST_CORRUPT, off, "dynamic section without DT_NULL")

    def null_slots(self, uint64_t off, uint64_t size, uint64_t first) -> int:
        """How many whole zero entries there are from entry `first` on, within size:
        only those are room to grow into; PT_DYNAMIC's p_filesz alone may claim bytes that belong
        to something else."""
        cdef uint64_t i, e, n = 0
        cdef uint64_t k
        for i in range(first, size // self.dynent):
            e = off + i * self.dynent
            for k in range(self.dynent):
                if self.im.p[e + k] != 0:
                    return n
            n += 1
        return n

    def string_at(self, uint64_t table, uint64_t table_size, uint64_t off) -> bytes:
        cdef uint64_t end
        if off >= table_size:
            raise _Fail(ST_CORRUPT, table, "string offset past the end of .dynstr")
        end = off
        while end < table_size and self.im.p[table + end] != 0:
            end += 1
        if end == table_size:
            raise _Fail(ST_CORRUPT, table, "unterminated string in .dynstr")
        return bytes(self.buf[table + off:table + end])

    def verneed_files(self, uint64_t off, uint64_t count) -> list:
        """(file position of vn_file, its value), and [vna_name values], for each Elf_Verneed."""
        cdef uint64_t i, j, entry = off, aux, vn_next, vna_next, cnt
        cdef uint64_t cap = self.im.n // _MIN_VERSION_ENTRY
        files, names = [], []
        for i in range(min(count, cap)):
            self.need(entry, 16, "Elf_Verneed")
            files.append((entry + 4, rd32(&self.im, entry + 4)))
            cnt = rd16(&self.im, entry + 2)
            aux = entry + rd32(&self.im, entry + 8)
            for j in range(min(cnt, cap)):
                self.need(aux, 16, "Elf_Vernaux")
                names.append(rd32(&self.im, aux + 8))
                vna_next = rd32(&self.im, aux + 12)
                if vna_next == 0:
                    break
                aux += vna_next
            vn_next = rd32(&self.im, entry + 12)
            if vn_next == 0:
                break
            entry += vn_next
        return [files, names]

    def verdef_names(self, uint64_t off, uint64_t count) -> list:
        cdef uint64_t i, j, entry = off, aux, vd_next, vda_next, cnt
        cdef uint64_t cap = self.im.n // _MIN_VERSION_ENTRY
        names = []
        for i in range(min(count, cap)):
            self.need(entry, 20, "Elf_Verdef")
            cnt = rd16(&self.im, entry + 6)
            aux = entry + rd32(&self.im, entry + 12)
            for j in range(min(cnt, cap)):
                self.need(aux, 8, "Elf_Verdaux")
                names.append(rd32(&self.im, aux))
                vda_next = rd32(&self.im, aux + 4)
                if vda_next == 0:
                    break
                aux += vda_next
            vd_next = rd32(&self.im, entry + 16)
            if vd_next == 0:
                break
            entry += vd_next
        return names

    def symbol_names(self, uint64_t off, uint64_t size) -> list:
        cdef uint64_t i
        self.need(off, size, ".dynsym")
        return [rd32(&self.im, off + i * self.symsize) for i in range(size // self.symsize)]

    cdef uint64_t largest_symbol(self, uint64_t off, uint64_t size) except? 0xffffffffffffffff:
        """The largest st_size in a symbol table."""
        cdef uint64_t i, largest = 0, value
        cdef uint64_t size_at = 16 if self.im.is64 else 8
        self.need(off, size, ".dynsym")
        for i in range(size // self.symsize):
            value = rdword(&self.im, off + i * self.symsize + size_at)
            if value > largest:
                largest = value
        return largest

    def vaddr_to_offset(self, list loads, uint64_t vaddr, uint64_t size, str what) -> int:
        for p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ in loads:
            if p_vaddr <= vaddr and vaddr - p_vaddr < p_filesz:
                off = p_offset + (vaddr - p_vaddr)
                self.need(off, size, what)
                return off
        raise _Fail(ST_CORRUPT, vaddr, f"{what} is in no PT_LOAD segment")


cdef uint64_t align_up(uint64_t value, uint64_t alignment):
    return value if alignment <= 1 else (value + alignment - 1) // alignment * alignment


def rewrite(const uint8_t[::1] buf not None, dict replace_needed, set remove_needed, object soname,
            object rpath, object runpath, uint64_t page_size):
    """The image with the edits applied, as bytes (the input itself when nothing changes), or
    (status, offset, what) when the image cannot be rewritten.

    replace_needed maps old to new DT_NEEDED names; soname, rpath and runpath are bytes to set,
    b"" to remove the entry, None to leave it. The caller has checked the plan against the image.
    """
    try:
        return _Rewrite(_Image(buf), page_size).apply(replace_needed, remove_needed, soname, rpath, runpath)
    except _Fail as e:
        return e.args


cdef class _Rewrite:
    cdef _Image img
    cdef uint64_t page_size
    cdef list phdrs, sections, entries, verneed
    cdef dict values
    cdef uint64_t dyn_off, dyn_size, dyn_vaddr, str_off, str_size, str_vaddr
    cdef bytearray dynstr, appended

    def __init__(self, _Image img, uint64_t page_size):
        self.img = img
        self.page_size = page_size
        self.phdrs = img.program_headers()
        self.check_loads()
        self.sections = img.section_headers()
        dynamic = [p for p in self.phdrs if p[0] == PT_DYNAMIC]
        if not dynamic:
            raise _Fail(ST_UNSUPPORTED, img.h.phoff, "PT_DYNAMIC (none: a static executable has nothing to rewrite)")
        self.dyn_off, self.dyn_vaddr, self.dyn_size = dynamic[0][2], dynamic[0][3], dynamic[0][5]
        self.entries = img.dynamic_entries(self.dyn_off, self.dyn_size)
        self.check_addresses()
        # the first entry of each tag counts, as in the loader
        self.values = values = {tag: val for tag, val in reversed(self.entries)}
        if DT_STRTAB not in values or DT_STRSZ not in values:
            raise _Fail(ST_CORRUPT, self.dyn_off, "dynamic section without DT_STRTAB or DT_STRSZ")
        self.str_vaddr, self.str_size = values[DT_STRTAB], values[DT_STRSZ]
        self.str_off = img.vaddr_to_offset(self.loads(), self.str_vaddr, self.str_size, ".dynstr")
        self.dynstr = bytearray(img.buf[self.str_off:self.str_off + self.str_size])
        self.check_linked_string_tables()
        self.verneed = [[], []]  # [(file position of vn_file, value)], [vna_name values]
        if DT_VERNEED in values:
            off = img.vaddr_to_offset(self.loads(), values[DT_VERNEED], 16, "DT_VERNEED")
            self.verneed = img.verneed_files(off, values.get(DT_VERNEEDNUM, 0))
        self.appended = bytearray()

    def loads(self) -> list:
        return [p for p in self.phdrs if p[0] == PT_LOAD]

    def check_linked_string_tables(self):
        """The string table the dynamic tables' sections link to must be the one DT_STRTAB names:
        it is moved with .dynstr, and one that is not would keep the old strings and size."""
        for _, kind, _, _, _, link in self.sections:
            if kind not in (SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_verneed, SHT_GNU_verdef):
                continue
            if link >= len(self.sections):
                raise _Fail(ST_CORRUPT, self.img.h.shoff, "sh_link out of range")
            _, link_kind, addr, offset, _, _ = self.sections[link]
            if link_kind != SHT_STRTAB or addr != self.str_vaddr or offset != self.str_off:
                raise _Fail(ST_CORRUPT, self.img.h.shoff, "sh_link of a dynamic table (not the string table DT_STRTAB names)")

    def check_addresses(self):
        """Every address the dynamic section holds must lie in a PT_LOAD: one that points nowhere
        would point into the new segment once it exists, and read as whatever is put there."""
        loads = self.loads()
        for tag, value in self.entries:
            if tag in _ADDRESS_TAGS and value and not any(
                    p[3] <= value and value - p[3] < p[6] for p in loads):
                raise _Fail(ST_CORRUPT, self.dyn_off, f"{_ADDRESS_TAGS[tag]} outside every PT_LOAD")

    def check_loads(self):
        """Refuse a layout the loader would refuse: the new segment is placed from these numbers."""
        cdef _Image img = self.img
        for index, (_, _, offset, vaddr, _, filesz, memsz, align) in enumerate(self.phdrs):
            if self.phdrs[index][0] != PT_LOAD:
                continue
            where = img.h.phoff + index * img.phsize
            if filesz > memsz:
                raise _Fail(ST_CORRUPT, where, "PT_LOAD with p_filesz larger than p_memsz")
            if not span_ok(img.im.n, offset, filesz):
                raise _Fail(ST_TRUNCATED, where, "PT_LOAD beyond the end of the file")
            if memsz > (<uint64_t>1 << 48) or vaddr > (<uint64_t>1 << 48):
                raise _Fail(ST_CORRUPT, where, "PT_LOAD beyond any address space")
            if align > 1 and (align & (align - 1) or (offset - vaddr) % align):
                raise _Fail(ST_CORRUPT, where, "PT_LOAD whose p_offset and p_vaddr disagree modulo p_align")

    def string(self, uint64_t off) -> bytes:
        return self.img.string_at(self.str_off, self.str_size, off)

    def references(self) -> list:
        """(offset into .dynstr, owner) for every string reference the image makes; owner is the
        dynamic entry's index, ("vn_file", position) or None; None when the set is incomplete."""
        refs = [(val, i) for i, (tag, val) in enumerate(self.entries) if tag in _STRING_TAGS]
        values = self.values
        files, names = self.verneed
        refs += [(val, ("vn_file", pos)) for pos, val in files] + [(val, None) for val in names]
        if DT_VERDEF in values:
            off = self.img.vaddr_to_offset(self.loads(), values[DT_VERDEF], 20, "DT_VERDEF")
            refs += [(val, None) for val in self.img.verdef_names(off, values.get(DT_VERDEFNUM, 0))]
        dynsym = [s for s in self.sections if s[1] == SHT_DYNSYM]
        if not dynsym:
            return None  # symbol names unknown without section headers: nothing may be overwritten
        refs += [(val, None) for val in self.img.symbol_names(dynsym[0][3], dynsym[0][4])]
        return refs

    def apply(self, dict replace_needed, set remove_needed, object soname, object rpath, object runpath):
        verneed = self.verneed[0]
        # group: (owners of the old string, the new string); each group gets one new offset
        groups = []
        kept = []
        for i, (tag, val) in enumerate(self.entries):
            name = self.string(val) if tag in _STRING_TAGS else None
            if tag == DT_NEEDED and name in remove_needed:
                continue
            if tag == DT_NEEDED and name in replace_needed:
                owners = [i] + [("vn_file", pos) for pos, v in verneed if v == val]
                groups.append((owners, val, replace_needed[name]))
            elif tag == DT_SONAME and soname is not None:
                if not soname:
                    continue
                groups.append(([i], val, soname))
            elif tag == DT_RPATH and (rpath is not None or runpath):
                if not rpath:
                    continue   # removed, or replaced by DT_RUNPATH below
                groups.append(([i], val, rpath))
            elif tag == DT_RUNPATH and (runpath is not None or rpath):
                if not runpath:
                    continue
                groups.append(([i], val, runpath))
            kept.append(i)
        new_entries = [list(self.entries[i]) for i in kept]
        present = {tag for tag, _ in self.entries}
        for tag, value in ((DT_SONAME, soname), (DT_RPATH, rpath), (DT_RUNPATH, runpath)):
            if value and tag not in present:
                new_entries.append([tag, None])
                groups.append(([("new", len(new_entries) - 1)], None, value))

        offsets = self.place_strings(groups)
        patches = []   # (file position, field size, value) written after everything else
        for (owners, _, _), off in zip(groups, offsets):
            for owner in owners:
                if isinstance(owner, int):
                    new_entries[kept.index(owner)][1] = off
                elif owner[0] == "new":
                    new_entries[owner[1]][1] = off
                else:
                    patches.append((owner[1], 4, off))
        new_entries = self.drop_version_requirements(remove_needed, verneed, new_entries, patches)
        return self.write(new_entries, patches)

    def drop_version_requirements(self, set remove_needed, list verneed, list new_entries, list patches) -> list:
        """Unlink the Elf_Verneed entries of removed libraries: the loader checks every entry of the
        chain against a loaded object, so one for a library no longer needed would fail the load."""
        cdef _Image img = self.img
        chain = [(pos - 4, val) for pos, val in verneed]   # (entry offset, vn_file)
        kept = [e for e in chain if self.string(e[1]) not in remove_needed]
        if len(kept) == len(chain):
            return new_entries
        for a, b in zip(kept, kept[1:]):
            if b[0] <= a[0]:
                raise _Fail(ST_UNSUPPORTED, a[0], "Elf_Verneed chain that runs backwards")
            patches.append((a[0] + 12, 4, b[0] - a[0]))
        self.unversion_symbols([e[0] for e in chain if e not in kept], patches)
        if not kept:
            # no requirement left: no DT_VERNEED, and an empty .gnu.version_r for the tools that read sections
            for pos, kind, _, sh_offset, _, _ in self.sections:
                if kind == SHT_GNU_verneed and sh_offset == chain[0][0]:
                    patches.append((pos + (44 if img.im.is64 else 28), 4, 0))
                    patches.append((pos + (32 if img.im.is64 else 20), img.word, 0))
            return [e for e in new_entries if e[0] != DT_VERNEED and e[0] != DT_VERNEEDNUM]
        patches.append((kept[len(kept) - 1][0] + 12, 4, 0))  # (no negative index: wraparound is off)
        delta = kept[0][0] - chain[0][0]
        for entry in new_entries:
            if entry[0] == DT_VERNEEDNUM:
                entry[1] = len(kept)
            elif entry[0] == DT_VERNEED:
                entry[1] += delta
        for pos, kind, sh_addr, sh_offset, sh_size, _ in self.sections:
            if kind == SHT_GNU_verneed and sh_offset == chain[0][0]:
                patches.append((pos + (44 if img.im.is64 else 28), 4, len(kept)))   # sh_info: the count
                if delta:
                    fields = (16, 24, 32) if img.im.is64 else (12, 16, 20)
                    for at, value in zip(fields, (sh_addr + delta, sh_offset + delta, sh_size - delta)):
                        patches.append((pos + at, img.word, value))
        return new_entries

    def unversion_symbols(self, list removed_entries, list patches):
        """Symbols bound to a version of a removed library become unversioned (VER_NDX_GLOBAL), so no
        .gnu.version index names a requirement that is gone."""
        cdef _Image img = self.img
        cdef uint64_t entry, aux, i, cap = img.im.n // _MIN_VERSION_ENTRY
        indexes = set()
        for entry in removed_entries:
            img.need(entry, 16, "Elf_Verneed")
            aux = entry + img.u32(entry + 8)
            for i in range(min(img.u16(entry + 2), cap)):
                indexes.add(img.u16(aux + 6) & 0x7fff)
                if img.u32(aux + 12) == 0:
                    break
                aux += img.u32(aux + 12)
        for _, kind, _, sh_offset, sh_size, _ in self.sections:
            if kind != SHT_GNU_versym:
                continue
            img.need(sh_offset, sh_size, ".gnu.version")
            for i in range(sh_size // 2):
                value = img.u16(sh_offset + 2 * i)
                if value & 0x7fff in indexes:
                    patches.append((sh_offset + 2 * i, 2, (value & 0x8000) | 1))

    def place_strings(self, list groups) -> list:
        """A .dynstr offset per group: in place when it fits and nothing else shares the old bytes,
        else an existing copy of the string, else appended."""
        offsets = [None] * len(groups)
        refs = self.references() if groups else []
        for k, (owners, old, new) in enumerate(groups):
            if old is None or refs is None:
                continue
            old_len = len(self.string(old))
            if len(new) > old_len or self.dynstr.find(bytes(new) + b"\0") >= 0:
                continue
            if any(owner not in owners and self.overlaps(r, old, old_len) for r, owner in refs):
                continue
            self.dynstr[old:old + old_len] = bytes(new) + b"\0" * (old_len - len(new))
            offsets[k] = old
        for k, (_, _, new) in enumerate(groups):
            if offsets[k] is None:
                offsets[k] = self.offset_of(bytes(new))
        return offsets

    def overlaps(self, uint64_t ref, uint64_t start, uint64_t length) -> bool:
        if ref > start + length or ref >= self.str_size:
            return False
        end = self.dynstr.find(b"\0", ref)
        return end >= start

    def offset_of(self, bytes text) -> int:
        probe = text + b"\0"
        found = self.dynstr.find(probe)
        if found >= 0:
            return found
        found = self.appended.find(probe)
        if found < 0:
            found = len(self.appended)
            self.appended += probe
        return len(self.dynstr) + found

    def write(self, list new_entries, list patches):
        cdef _Image img = self.img
        cdef bint le = img.im.le
        # the entries, their DT_NULL, and the all-zero slots after it: nothing else is ours to write
        capacity = len(self.entries) + 1 + img.null_slots(self.dyn_off, self.dyn_size, len(self.entries) + 1)
        move_dynamic = len(new_entries) + 1 > capacity
        unchanged = (not self.appended and not move_dynamic and not patches
                     and new_entries == [list(e) for e in self.entries]
                     and self.dynstr == img.buf[self.str_off:self.str_off + self.str_size])
        if unchanged:
            return bytes(img.buf)
        cdef uint8_t[::1] view
        out = bytearray(img.buf)
        if self.appended or move_dynamic:
            out += self.new_segment(new_entries, move_dynamic, out)
        else:
            out[self.str_off:self.str_off + self.str_size] = self.dynstr
        view = out
        dyn_off = self.dyn_off
        for p in self.phdrs:
            if p[0] == PT_DYNAMIC:
                dyn_off = p[2]
                break
        for i, (tag, val) in enumerate(new_entries + [[DT_NULL, 0]]):
            self.put_word(view, dyn_off + i * img.dynent, tag)
            self.put_word(view, dyn_off + i * img.dynent + img.word, val)
        if not move_dynamic:
            for i in range(len(new_entries) + 1, capacity):  # spare slots stay DT_NULL
                self.put_word(view, dyn_off + i * img.dynent, 0)
                self.put_word(view, dyn_off + i * img.dynent + img.word, 0)
        for pos, size, value in patches:
            if value < 0 or value >> (8 * size):  # only a malformed image computes such a value
                raise _Fail(ST_CORRUPT, pos, "header field (it would not fit after the edit)")
            if size == 2:
                wr16(&view[pos], le, value)
            elif size == 4:
                wr32(&view[pos], le, value)
            else:
                wr64(&view[pos], le, value)
        return bytes(out)

    cdef void put_word(self, uint8_t[::1] view, uint64_t off, uint64_t value):
        if self.img.im.is64:
            wr64(&view[off], self.img.im.le, value)
        else:
            wr32(&view[off], self.img.im.le, <uint32_t>value)

    def new_segment(self, list new_entries, bint move_dynamic, bytearray out) -> bytearray:
        """Lay out the new PT_LOAD (program headers when they must move, .dynstr, .dynamic when it
        must move), update every header that points at what moved, and return its bytes."""
        cdef _Image img = self.img
        cdef uint8_t[::1] view
        table = bytes(self.dynstr) + bytes(self.appended)
        slot = next((i for i, p in enumerate(self.phdrs) if p[0] == PT_NULL), None)
        if slot is not None and self.phdrs_overlap_a_section():
            slot = None  # rewriting the table in place would write over that section's bytes
        move_phdrs = slot is None
        if move_phdrs and any(p[0] == PT_INTERP for p in self.phdrs):
            # the kernel of an old distribution finds an executable's program headers only in
            # its first page; growing them in place means shifting every section
            raise _Fail(ST_UNSUPPORTED, img.h.phoff, "program header table (an executable with no free slot for one more segment)")
        if move_phdrs and img.h.phnum + 1 >= PN_XNUM:
            raise _Fail(ST_UNSUPPORTED, img.h.phoff, "program header count (one more would reach PN_XNUM)")
        loads = self.loads()
        alignment = max([self.page_size] + [p[7] for p in loads])
        base_off = align_up(len(out), 16)
        # past the last segment by more than the largest symbol: eu-elflint judges a relocation's
        # target as [r_offset, r_offset + st_size], and would see one spill into a read-only segment
        gap = max([0] + [img.largest_symbol(s[3], s[4]) for s in self.sections if s[1] == SHT_DYNSYM])
        if gap > (<uint64_t>1 << 40):
            raise _Fail(ST_CORRUPT, 0, "dynamic symbol size (above 1 TiB)")
        base_vaddr = align_up(max(p[3] + p[6] for p in loads) + gap, alignment) + base_off % alignment
        phdr_count = img.h.phnum + (1 if move_phdrs else 0)
        pos = phdr_count * img.phsize if move_phdrs else 0
        str_pos = pos
        pos += len(table)
        dyn_pos = align_up(pos, img.word)
        if move_dynamic:
            pos = dyn_pos + (len(new_entries) + 1) * img.dynent
        size = pos
        if not img.im.is64 and max(base_vaddr, base_off) + size > 0xFFFFFFFF:
            raise _Fail(ST_UNSUPPORTED, img.h.phoff, "new segment (it would end past 4 GiB in an ELF32 image)")
        flags = PF_R | (PF_W if move_dynamic else 0)   # the loader may write .dynamic (DT_DEBUG)
        load = [PT_LOAD, flags, base_off, base_vaddr, base_vaddr, size, size, alignment]

        if slot is not None:
            del self.phdrs[slot]
        last_load = max(i for i, p in enumerate(self.phdrs) if p[0] == PT_LOAD)
        self.phdrs.insert(last_load + 1, load)
        for p in self.phdrs:
            if p[0] == PT_PHDR and move_phdrs:
                p[2], p[3], p[4], p[5], p[6] = base_off, base_vaddr, base_vaddr, img.phsize * phdr_count, \
                    img.phsize * phdr_count
            elif p[0] == PT_DYNAMIC and move_dynamic:
                dyn_size = (len(new_entries) + 1) * img.dynent
                p[2], p[3], p[4], p[5], p[6] = base_off + dyn_pos, base_vaddr + dyn_pos, base_vaddr + dyn_pos, \
                    dyn_size, dyn_size
        for entry in new_entries:
            if entry[0] == DT_STRTAB:
                entry[1] = base_vaddr + str_pos
            elif entry[0] == DT_STRSZ:
                entry[1] = len(table)

        out += bytes(base_off - len(out))  # padding: the segment starts at base_off
        segment = bytearray(size)
        segment[str_pos:str_pos + len(table)] = table
        phoff = base_off if move_phdrs else img.h.phoff
        if move_phdrs:
            self.write_phdrs(segment, 0, phdr_count)
        else:
            self.write_phdrs(out, phoff, phdr_count)
        view = out
        if img.im.is64:
            wr64(&view[32], img.im.le, phoff)
            wr16(&view[56], img.im.le, phdr_count)
        else:
            wr32(&view[28], img.im.le, <uint32_t>phoff)
            wr16(&view[44], img.im.le, phdr_count)
        self.move_section(view, SHT_STRTAB, self.str_vaddr, self.str_off, base_vaddr + str_pos,
                          base_off + str_pos, len(table))
        if move_dynamic:
            self.move_section(view, SHT_DYNAMIC, self.dyn_vaddr, self.dyn_off, base_vaddr + dyn_pos,
                              base_off + dyn_pos, (len(new_entries) + 1) * img.dynent)
        return segment

    def phdrs_overlap_a_section(self) -> bool:
        """Whether the program header table shares bytes with a section or a table the dynamic
        section points at (only a malformed image does)."""
        start = self.img.h.phoff
        end = start + self.img.h.phnum * self.img.phsize
        if any(kind != 0 and kind != 8 and size and offset < end and start < offset + size  # SHT_NULL, SHT_NOBITS
               for _, kind, _, offset, size, _ in self.sections):
            return True
        for tag, value in self.entries:
            if tag in _ADDRESS_TAGS and value:
                for p in self.loads():
                    if p[3] <= value and value - p[3] < p[5] and start <= p[2] + (value - p[3]) < end:
                        return True
        return False

    def write_phdrs(self, bytearray target, uint64_t at, uint64_t count):
        cdef uint8_t[::1] view = target
        cdef bint le = self.img.im.le
        cdef uint64_t ph
        for i, (p_type, flags, off, vaddr, paddr, filesz, memsz, align) in enumerate(self.phdrs):
            ph = at + i * self.img.phsize
            wr32(&view[ph], le, p_type)
            if self.img.im.is64:
                wr32(&view[ph + 4], le, flags)
                for k, value in enumerate((off, vaddr, paddr, filesz, memsz, align)):
                    wr64(&view[ph + 8 + 8 * k], le, value)
            else:
                for k, value in enumerate((off, vaddr, paddr, filesz, memsz)):
                    wr32(&view[ph + 4 + 4 * k], le, value)
                wr32(&view[ph + 24], le, flags)
                wr32(&view[ph + 28], le, align)

    cdef move_section(self, uint8_t[::1] view, uint64_t sh_type, uint64_t old_addr, uint64_t old_off,
                      uint64_t addr, uint64_t off, uint64_t size):
        cdef bint le = self.img.im.le
        for index, (pos, kind, sh_addr, sh_offset, _, _) in enumerate(self.sections):
            if kind != sh_type or sh_addr != old_addr or sh_offset != old_off:
                continue
            self.move_section_symbols(view, index, old_addr, self.sections[index][4], addr)
            if self.img.im.is64:
                wr64(&view[pos + 16], le, addr)
                wr64(&view[pos + 24], le, off)
                wr64(&view[pos + 32], le, size)
            else:
                wr32(&view[pos + 12], le, <uint32_t>addr)
                wr32(&view[pos + 16], le, <uint32_t>off)
                wr32(&view[pos + 20], le, <uint32_t>size)

    cdef move_section_symbols(self, uint8_t[::1] view, uint64_t index, uint64_t old_addr, uint64_t old_size,
                              uint64_t addr):
        """Symbols defined in a moved section (its section symbol, _DYNAMIC) move with it."""
        cdef _Image img = self.img
        cdef uint64_t sym, first, end, value
        cdef uint64_t shndx_at = 6 if img.im.is64 else 14
        cdef uint64_t value_at = 8 if img.im.is64 else 4
        for _, kind, _, sh_offset, sh_size, _ in self.sections:
            if kind != SHT_SYMTAB and kind != SHT_DYNSYM:
                continue
            img.need(sh_offset, sh_size, "symbol table")
            first = sh_offset
            end = sh_offset + sh_size // img.symsize * img.symsize
            sym = first
            while sym < end:
                value = rdword(&img.im, sym + value_at)
                if rd16(&img.im, sym + shndx_at) == index and old_addr <= value <= old_addr + old_size:
                    if img.im.is64:
                        wr64(&view[sym + value_at], img.im.le, addr + (value - old_addr))
                    else:
                        wr32(&view[sym + value_at], img.im.le, <uint32_t>(addr + (value - old_addr)))
                sym += img.symsize
