# cython: language_level=3
"""One pass over a buffer for many literal anchors at once: the version strings vendored libraries
carry ("OpenSSL 3.0.13 30 Jan 2024", " deflate 1.2.13 Copyright", ...) all start from a literal.

Every occurrence of an anchor at least W bytes long holds W - 1 consecutive byte pairs, so one of
them starts at a multiple of W - 1: the loop looks only at the pairs there, in a 64 Kbit table of
all the pairs the anchors' first W bytes hold. Only where a pair is in the table are the W - 1
starts around it compared, by their first pair and then byte by byte. The iterations do not
depend on each other, so the processor overlaps them; the loop runs without the GIL. Hits are
capped per anchor, so a hostile member repeating an anchor millions of times costs one pass and a
bounded list, never a list as long as the member.
"""
from libc.stdint cimport uint8_t, uint16_t, int32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcmp, memset

from fastaudit._elfbytes cimport *

cdef enum:
    SHT_PROGBITS = 1
    SHF_ALLOC = 2
    SHF_EXECINSTR = 4
    PF_X = 1
    PF_W = 2
    SHDR_NAME = 0      # sh_name's offset in both classes' Shdr
    SHDR_FLAGS = 8     # sh_flags' offset in both classes' Shdr (a word)
    SHT_RELA = 4
    STT_OBJECT = 1
    OBJECT_BYTES = 64  # what is read of an exported object, and of the string it points to

# Loaded sections of data that the toolchain fills with records, never with a string literal
_RECORD_SECTIONS = (b".eh_frame", b".eh_frame_hdr", b".gcc_except_table", b".got", b".got.plt",
                    b".data.rel.ro", b".tm_clone_table")


cdef inline bint has_pair(const uint8_t* table, uint16_t pair) noexcept nogil:
    return table[pair >> 3] & (1 << (pair & 7))


cdef inline void add_pair(uint8_t* table, uint16_t pair) noexcept:
    table[pair >> 3] |= <uint8_t>(1 << (pair & 7))


cdef class AnchorSet:
    """The anchors of the pattern data, compiled once per process and reused for every member."""
    cdef bytes _joined           # every anchor, back to back
    cdef int32_t* _start         # anchor i is _joined[_start[i]:_start[i] + _length[i]]
    cdef int32_t* _length
    cdef int32_t* _next          # the next anchor with the same first two bytes, or -1
    cdef int32_t* _head          # 65536 entries: the first anchor starting with each byte pair
    cdef uint8_t _first[8192]    # one bit per byte pair that starts some anchor
    cdef uint8_t _inside[8192]   # one bit per byte pair within the first W bytes of some anchor
    cdef int _stride             # W - 1, W being the shortest anchor's length
    cdef readonly int count

    def __cinit__(self, anchors):
        cdef int i, j, n = len(anchors)
        cdef uint16_t pair
        encoded = [bytes(a) for a in anchors]
        if any(len(a) < 2 for a in encoded):
            raise ValueError("every anchor needs at least two bytes")
        self.count = n
        self._joined = b"".join(encoded)
        self._start = <int32_t*>malloc(max(n, 1) * sizeof(int32_t))
        self._length = <int32_t*>malloc(max(n, 1) * sizeof(int32_t))
        self._next = <int32_t*>malloc(max(n, 1) * sizeof(int32_t))
        self._head = <int32_t*>malloc(65536 * sizeof(int32_t))
        if not (self._start and self._length and self._next and self._head):
            raise MemoryError()
        self._stride = min([len(a) for a in encoded] + [256]) - 1
        memset(self._first, 0, sizeof(self._first))
        memset(self._inside, 0, sizeof(self._inside))
        for i in range(65536):
            self._head[i] = -1
        offset = 0
        for i in range(n):
            self._start[i] = offset
            self._length[i] = len(encoded[i])
            offset += len(encoded[i])
            for j in range(self._stride):
                add_pair(self._inside, encoded[i][j] | (encoded[i][j + 1] << 8))
        for i in range(n - 1, -1, -1):  # pushed backwards, so each chain lists its anchors in order
            pair = encoded[i][0] | (encoded[i][1] << 8)
            self._next[i] = self._head[pair]
            self._head[pair] = i
            add_pair(self._first, pair)

    def __dealloc__(self):
        free(self._start)
        free(self._length)
        free(self._next)
        free(self._head)

    def find(self, const uint8_t[::1] data, Py_ssize_t start=0, Py_ssize_t end=-1, int max_hits=16):
        """(anchor index, offset) of each occurrence in data[start:end], at most `max_hits` per
        anchor, in offset order."""
        cdef Py_ssize_t n = data.shape[0]
        if end < 0 or end > n:
            end = n
        if start < 0:
            start = 0
        hits = []
        if self.count == 0 or end - start < 2:
            return hits
        cdef int* counts = <int*>malloc(self.count * sizeof(int))
        cdef Py_ssize_t cap = <Py_ssize_t>self.count * max_hits
        cdef int32_t* found_anchor = <int32_t*>malloc(max(cap, 1) * sizeof(int32_t))
        cdef Py_ssize_t* found_offset = <Py_ssize_t*>malloc(max(cap, 1) * sizeof(Py_ssize_t))
        cdef Py_ssize_t found = 0, k, at, s, unchecked = start
        if not (counts and found_anchor and found_offset):
            free(counts); free(found_anchor); free(found_offset)
            raise MemoryError()
        memset(counts, 0, self.count * sizeof(int))
        cdef const uint8_t* p = &data[0]
        cdef const uint8_t* joined = <const uint8_t*><char*>self._joined
        cdef uint16_t pair
        cdef int32_t a
        with nogil:
            s = start
            while s + 1 < end and found < cap:
                if has_pair(self._inside, p[s] | (p[s + 1] << 8)):
                    # an occurrence holding this pair starts within the stride before it
                    at = max(s - self._stride + 1, unchecked)
                    while at <= s and found < cap:
                        pair = p[at] | (p[at + 1] << 8)
                        if has_pair(self._first, pair):
                            a = self._head[pair]
                            while a >= 0:
                                if (counts[a] < max_hits and self._length[a] <= end - at
                                        and memcmp(p + at, joined + self._start[a], self._length[a]) == 0):
                                    counts[a] += 1
                                    found_anchor[found] = a
                                    found_offset[found] = at
                                    found += 1
                                a = self._next[a]
                        at += 1
                    unchecked = s + 1
                s += self._stride
        for k in range(found):
            hits.append((found_anchor[k], found_offset[k]))
        free(counts); free(found_anchor); free(found_offset)
        return hits


cdef bytes section_name(const Image* im, uint64_t names_off, uint64_t names_size, uint64_t at):
    cdef uint64_t start = rd32(im, at + SHDR_NAME), end
    if start >= names_size:
        return b""
    end = start
    while end < names_size and im.p[names_off + end] != 0 and end - start < 32:
        end += 1
    return bytes(im.p[names_off + start:names_off + end])


def constant_data_ranges(const uint8_t[::1] data not None):
    """The (start, end) byte ranges of an ELF image where constant data such as a version string
    lives: its loaded, non-executable PROGBITS sections (.rodata, .data, ...) but those the
    toolchain fills with records (unwind tables, the GOT, relocated pointers). Machine code, symbol
    and string tables of symbol names, debug data and the rest are left out. An image without
    section headers gives its PT_LOAD segments without PF_X when one of them after the first is
    read-only (-z separate-code: rodata has a segment of its own), else the whole image; so does
    anything the reader would refuse, so a version string is never hidden by a damaged header.
    Sorted, and touching ranges merged."""
    cdef Image im
    cdef Header h
    cdef Shdr sh
    cdef Phdr ph
    cdef uint64_t i, at, names_off = 0, names_size = 0, n = data.shape[0]
    cdef bint has_names = False, rodata_segment = False
    whole = [(0, n)]
    if n == 0:
        return []
    open_image(&im, &data[0], n)
    if read_header(&im, &h) < 0:
        return whole
    ranges = []
    if h.shnum > 1 and h.shentsize >= im.f.shsize and span_ok(n, h.shoff, h.shnum * h.shentsize):
        if h.shstrndx != 0 and h.shstrndx < h.shnum:
            read_shdr(&im, h.shoff + h.shstrndx * h.shentsize, &sh)
            if span_ok(n, sh.sh_offset, sh.sh_size):
                names_off, names_size, has_names = sh.sh_offset, sh.sh_size, True
        for i in range(1, h.shnum):
            at = h.shoff + i * h.shentsize
            read_shdr(&im, at, &sh)
            if sh.sh_type != SHT_PROGBITS or sh.sh_size == 0 or not span_ok(n, sh.sh_offset, sh.sh_size):
                continue
            if (rdword(&im, at + SHDR_FLAGS) & (SHF_ALLOC | SHF_EXECINSTR)) != SHF_ALLOC:
                continue
            if has_names and section_name(&im, names_off, names_size, at) in _RECORD_SECTIONS:
                continue
            ranges.append((sh.sh_offset, sh.sh_offset + sh.sh_size))
    elif h.phnum and h.phentsize >= im.f.phsize and span_ok(n, h.phoff, h.phnum * h.phentsize):
        for i in range(h.phnum):
            read_phdr(&im, h.phoff + i * h.phentsize, &ph)
            if ph.p_type != PT_LOAD or not span_ok(n, ph.p_offset, ph.p_filesz):
                continue
            if ph.p_flags & PF_X == 0 and ph.p_filesz:
                rodata_segment |= ph.p_offset > 0 and ph.p_flags & PF_W == 0
                ranges.append((ph.p_offset, ph.p_offset + ph.p_filesz))
        if not rodata_segment:
            return whole
    else:
        return whole
    ranges.sort()
    merged = []   # the module is compiled without wraparound: no negative indexes
    for start, end in ranges:
        if merged and start <= merged[len(merged) - 1][1]:
            last = merged.pop()
            merged.append((last[0], max(last[1], end)))
        else:
            merged.append((start, end))
    return merged


cdef int64_t file_offset(const Image* im, const Header* h, uint64_t vaddr, uint64_t size) noexcept nogil:
    """The file offset of [vaddr, vaddr + size) through the PT_LOAD that maps it, or -1."""
    cdef uint64_t i
    cdef Phdr ph
    if h.phentsize < im.f.phsize or not span_ok(im.n, h.phoff, h.phnum * h.phentsize):
        return -1
    for i in range(h.phnum):
        read_phdr(im, h.phoff + i * h.phentsize, &ph)
        if ph.p_type == PT_LOAD and vaddr >= ph.p_vaddr and vaddr - ph.p_vaddr < ph.p_filesz \
                and size <= ph.p_filesz - (vaddr - ph.p_vaddr) and span_ok(im.n, ph.p_offset, ph.p_filesz):
            return <int64_t>(ph.p_offset + (vaddr - ph.p_vaddr))
    return -1


cdef uint64_t relocated_word(const Image* im, const Header* h, uint64_t vaddr, int64_t at):
    """The address a pointer at vaddr holds once relocated: its stored word, or where the linker
    left it zero (lld, REL-less RELA output) the addend of the RELA entry for that slot."""
    cdef uint64_t word = rdword(im, at), i, j, entry_size = 24 if im.is64 else 12, sat
    cdef Shdr sh
    if word != 0:
        return word
    for i in range(1, h.shnum):
        sat = h.shoff + i * h.shentsize
        read_shdr(im, sat, &sh)
        if sh.sh_type != SHT_RELA or not span_ok(im.n, sh.sh_offset, sh.sh_size):
            continue
        for j in range(sh.sh_size // entry_size):
            if rdword(im, sh.sh_offset + j * entry_size) == vaddr:
                return rdword(im, sh.sh_offset + j * entry_size + entry_size * 2 // 3)
    return 0


def exported_objects(const uint8_t[::1] data not None, names):
    """{name: (its bytes, the string its first word points to or None)} for each defined data
    object of the dynamic symbol table named in `names` (bytes): what a library exports as its
    version (sqlite3_version, xmlParserVersion, xsltLibxsltVersion, ...). At most 64 bytes of
    each; a symbol outside the file's loaded bytes is left out. Images without section headers,
    or that the reader would refuse, give {}."""
    cdef Image im
    cdef Header h
    cdef Shdr sh, strtab
    cdef Sym sym
    cdef uint64_t i, at, n = data.shape[0], count, k, length, limit, address
    cdef int64_t where, target
    cdef const uint8_t* name
    wanted = [bytes(x) for x in names]
    found = {}
    if n == 0 or not wanted:
        return found
    open_image(&im, &data[0], n)
    if read_header(&im, &h) < 0 or h.shnum < 2:
        return found
    for i in range(1, h.shnum):
        at = h.shoff + i * h.shentsize
        read_shdr(&im, at, &sh)
        if sh.sh_type == SHT_DYNSYM:
            break
    else:
        return found
    if sh.sh_entsize < im.f.symsize or not span_ok(n, sh.sh_offset, sh.sh_size) or sh.sh_link >= h.shnum:
        return found
    read_shdr(&im, h.shoff + sh.sh_link * h.shentsize, &strtab)
    if not span_ok(n, strtab.sh_offset, strtab.sh_size):
        return found
    count = sh.sh_size // sh.sh_entsize
    for i in range(1, count):
        read_sym(&im, sh.sh_offset + i * sh.sh_entsize, &sym)
        if sym.st_shndx == SHN_UNDEF or (sym.st_info & 0xF) != STT_OBJECT or sym.st_name >= strtab.sh_size:
            continue
        name = im.p + strtab.sh_offset + sym.st_name
        limit = strtab.sh_size - sym.st_name
        for k in range(len(wanted)):
            length = len(<bytes>wanted[k])
            if length < limit and name[length] == 0 and memcmp(name, <const char*><bytes>wanted[k], length) == 0:
                break
        else:
            continue
        size = min(sym.st_size, OBJECT_BYTES)
        where = file_offset(&im, &h, sym.st_value, size)
        if where < 0:
            continue
        pointed = None
        address = relocated_word(&im, &h, sym.st_value, where) if size >= im.f.word else 0
        if address != 0:   # a null pointer points to nothing, though vaddr 0 may map the ELF header
            target = file_offset(&im, &h, address, 1)
            if target >= 0:
                length = 0
                while length < OBJECT_BYTES and <uint64_t>target + length < n and im.p[target + length] != 0:
                    length += 1
                pointed = bytes(im.p[target:target + length])
        found[(<bytes>wanted[k]).decode("ascii")] = (bytes(im.p[where:where + size]), pointed)
    return found
