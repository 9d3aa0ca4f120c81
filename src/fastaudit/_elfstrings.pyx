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
from libc.stdint cimport uint8_t, uint16_t, int32_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcmp, memset


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
