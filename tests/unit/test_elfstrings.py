"""The multi-anchor scanner against a plain Python search, on planted and random data."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastaudit._elfstrings import AnchorSet


def naive(data: bytes, anchors: list[bytes], start: int = 0, end: int | None = None,
          max_hits: int = 16) -> list[tuple[int, int]]:
    end = len(data) if end is None else end
    hits: list[tuple[int, int]] = []
    counts = [0] * len(anchors)
    for offset in range(start, end):
        for index, anchor in enumerate(anchors):
            if counts[index] < max_hits and data.startswith(anchor, offset) and offset + len(anchor) <= end:
                counts[index] += 1
                hits.append((index, offset))
    return hits


def test_finds_each_planted_anchor_at_its_offset() -> None:
    anchors = [b"OpenSSL ", b"deflate ", b"libpng version "]
    data = b"\0" * 100 + b"OpenSSL 3.0.13 30 Jan 2024\0" + b"x" * 50 + b" deflate 1.3.1 Copyright" + b"libpng version "
    hits = AnchorSet(anchors).find(data)
    assert sorted(hits, key=lambda h: h[1]) == [(0, 100), (1, data.index(b"deflate")), (2, len(data) - 15)]


def test_anchors_sharing_a_first_pair_are_all_compared() -> None:
    anchors = [b"lib", b"libpng", b"libtiff", b"li"]
    data = b"..libpng..libtiff..lix"
    got = sorted(AnchorSet(anchors).find(data))
    assert got == sorted(naive(data, anchors))
    assert (1, 2) in got and (2, 10) in got and (3, 19) in got


def test_an_anchor_that_runs_past_the_end_is_not_found() -> None:
    assert AnchorSet([b"OpenSSL "]).find(b"xxOpenSSL") == []
    assert AnchorSet([b"OpenSSL "]).find(b"OpenSSL ") == [(0, 0)]


def test_the_range_bounds_the_search() -> None:
    data = b"OpenSSL " * 4
    anchors = [b"OpenSSL "]
    assert AnchorSet(anchors).find(data, 8, 24) == [(0, 8), (0, 16)]
    assert AnchorSet(anchors).find(data, 9, 24) == [(0, 16)]


def test_hits_per_anchor_are_capped_so_repetition_costs_one_pass() -> None:
    """A hostile member repeating an anchor a million times yields a bounded list."""
    data = b"OpenSSL " * 1_000_000 + b"deflate "
    hits = AnchorSet([b"OpenSSL ", b"deflate "]).find(data, max_hits=16)
    assert len([h for h in hits if h[0] == 0]) == 16
    assert (1, len(data) - 8) in hits


def test_an_anchor_shorter_than_two_bytes_is_refused() -> None:
    with pytest.raises(ValueError):
        AnchorSet([b"O"])


def test_empty_data_and_an_empty_set() -> None:
    assert AnchorSet([b"ab"]).find(b"") == []
    assert AnchorSet([]).find(b"abc") == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=2, max_size=6), min_size=1, max_size=8),
       st.binary(max_size=400), st.integers(min_value=1, max_value=4), st.randoms(use_true_random=False))
def test_agrees_with_a_plain_search(anchors: list[bytes], noise: bytes, max_hits: int, rnd: random.Random) -> None:
    # plant some anchors in the noise, so that hits are common
    data = bytearray(noise)
    for _ in range(rnd.randint(0, 6)):
        anchor = rnd.choice(anchors)
        at = rnd.randint(0, len(data))
        data[at:at] = anchor
    data = bytes(data)
    got = AnchorSet(anchors).find(data, max_hits=max_hits)
    want = naive(data, anchors, max_hits=max_hits)
    assert sorted(got) == sorted(want)
