# cython: language_level=3
"""The ELF rewriter's byte loops: it carries out a plan made by elfedit.py on a copy of an image.

Planning (what moves where, which strings go in place, which checks refuse an image) is Python, in
elfedit.py, over the layout the reader (_elf.pyx) walked. What is left here loops over bytes or
symbols: the byte ranges and header fields of the plan, the symbols that move with a moved
section, and the .gnu.version entries that lose a removed requirement's version. Every position
is checked against the output's size first; failures come back as (status name, offset, what),
like the walkers in _elf.pyx.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy, memset

from fastaudit._elfbytes cimport *

cdef enum:
    VERSYM_INDEX = 0x7fff
    VERSYM_HIDDEN = 0x8000
    VER_NDX_GLOBAL = 1


cdef inline void wr16(uint8_t* q, bint le, uint16_t v) noexcept nogil:
    q[0 if le else 1] = <uint8_t>v
    q[1 if le else 0] = <uint8_t>(v >> 8)


cdef inline void wr32(uint8_t* q, bint le, uint32_t v) noexcept nogil:
    cdef int i
    for i in range(4):
        q[i if le else 3 - i] = <uint8_t>(v >> (8 * i))


cdef inline void wr64(uint8_t* q, bint le, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        q[i if le else 7 - i] = <uint8_t>(v >> (8 * i))


cdef inline void wrword(const Image* im, uint8_t* q, uint64_t v) noexcept nogil:
    if im.is64:
        wr64(q, im.le, v)
    else:
        wr32(q, im.le, <uint32_t>v)


cdef int put_fields(uint8_t* out, uint64_t size, bint le, list patches, Image* im) except -2:
    """Write (position, width, value) fields; a value the field cannot hold is corruption (only a
    malformed image computes one)."""
    cdef uint64_t pos, width
    for pos, width, value in patches:
        if value < 0 or value >> (8 * width):
            return fail(im, ST_CORRUPT, pos, "header field (it would not fit after the edit)")
        if not span_ok(size, pos, width):
            return fail(im, ST_TRUNCATED, pos, "header field")
        if width == 2:
            wr16(out + pos, le, <uint16_t>value)
        elif width == 4:
            wr32(out + pos, le, <uint32_t>value)
        elif width == 8:
            wr64(out + pos, le, <uint64_t>value)
        else:
            return fail(im, ST_CORRUPT, pos, "header field width")
    return 0


cdef int move_section_symbols(const Image* im, uint8_t* out, uint64_t off, uint64_t size, uint64_t index,
                              uint64_t old_addr, uint64_t old_size, uint64_t new_addr) noexcept nogil:
    """Symbols of one symbol table that are defined in a moved section, at an address inside it
    (its section symbol, _DYNAMIC), move with it. Values are read from the source image."""
    cdef uint64_t sym, end
    cdef Sym s
    if not span_ok(im.n, off, size):
        return fail(<Image*>im, ST_TRUNCATED, off, "symbol table")
    end = off + size // im.f.symsize * im.f.symsize
    sym = off
    while sym < end:
        read_sym(im, sym, &s)
        if s.st_shndx == index and s.st_value >= old_addr and s.st_value - old_addr <= old_size:
            wrword(im, out + sym + im.f.st_value, new_addr + (s.st_value - old_addr))
        sym += im.f.symsize
    return 0


cdef int unversion_symbols(const Image* im, uint8_t* out, uint64_t off, uint64_t size,
                           const uint8_t* indexes) noexcept nogil:
    """.gnu.version entries whose index is set in the bitmap become VER_NDX_GLOBAL, keeping the
    hidden bit. Values are read from the source image."""
    cdef uint64_t i
    cdef uint16_t value, index
    if not span_ok(im.n, off, size):
        return fail(<Image*>im, ST_TRUNCATED, off, ".gnu.version")
    for i in range(size // 2):
        value = rd16(im, off + 2 * i)
        index = value & VERSYM_INDEX
        if indexes[index >> 3] >> (index & 7) & 1:
            wr16(out + off + 2 * i, im.le, (value & VERSYM_HIDDEN) | VER_NDX_GLOBAL)
    return 0


def write(const uint8_t[::1] source not None, uint64_t size, list copies, list blobs, list patches,
          list symbol_moves, object unversion):
    """The image with a plan (elfedit.RewritePlan's fields) applied: a copy of `source` grown to
    `size` bytes with zeros, then the copies (to, from, length) of the source's bytes, the blobs
    (position, bytes), the patches (position, width, value), the symbol moves and the
    .gnu.version scan. Returns bytes, or (status, offset, what)."""
    cdef Image im
    cdef Header h
    cdef bytes copy
    cdef uint8_t* out
    cdef const uint8_t* indexes
    cdef bytes bitmap
    cdef uint64_t pos, off, table_size, length
    cdef const uint8_t[::1] data
    if size < <uint64_t>source.shape[0]:
        return ("ST_CORRUPT", 0, "output size")
    open_image(&im, &source[0] if source.shape[0] > 0 else NULL, source.shape[0])
    if read_header(&im, &h) < 0:
        return failure(&im)
    # the output is a new bytes object, written before anyone else sees it: one pass over the image
    copy = PyBytes_FromStringAndSize(NULL, size)
    out = <uint8_t*>PyBytes_AS_STRING(copy)
    memcpy(out, im.p, im.n)
    memset(out + im.n, 0, size - im.n)
    for pos, off, length in copies:
        if not span_ok(size, pos, length) or not span_ok(im.n, off, length):
            return ("ST_TRUNCATED", pos, "moved table")
        memcpy(out + pos, im.p + off, length)
    for pos, data in blobs:
        if not span_ok(size, pos, data.shape[0]):
            return ("ST_TRUNCATED", pos, "rewritten table")
        if data.shape[0]:
            memcpy(out + pos, &data[0], data.shape[0])
    if put_fields(out, size, im.le, patches, &im) < 0:
        return failure(&im)
    for tables, index, old_addr, old_size, new_addr in symbol_moves:
        for off, table_size in tables:
            if move_section_symbols(&im, out, off, table_size, index, old_addr, old_size, new_addr) < 0:
                return failure(&im)
    if unversion is not None:
        tables, bitmap = unversion
        if len(bitmap) != (VERSYM_INDEX + 1) // 8:
            return ("ST_CORRUPT", 0, ".gnu.version index bitmap")
        indexes = bitmap
        for off, table_size in tables:
            if unversion_symbols(&im, out, off, table_size, indexes) < 0:
                return failure(&im)
    return copy
