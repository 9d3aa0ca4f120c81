"""The wheel reader on mutated wheels: read_wheel_elves returns facts or raises a FastauditError,
nothing else, whatever header field, byte or length is changed, with and without the ELF cache and
RECORD hashes. This is the short fuzz run CI does on the normal build (see fuzz/RESULTS.md); the
ELF reader's long run under AddressSanitizer is fuzz/run.sh.

Two kinds of mutation: of the zip structures (fields of local headers, central directory entries,
the end records and ZIP64 extra fields, picked by offset from the seed's own layout), and of one
member's deflate stream itself (bits and bytes flipped, cut, spliced or repeated, empty blocks put
in front), the archive then rewritten around it so the zip stays sound: its declared CRC-32 and
size kept (the reader must see the lie) or made those of what the stream now inflates to, RECORD
too, so that the changed content reaches the ELF reader.
"""
from __future__ import annotations

import csv
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastaudit.errors import FastauditError
from fastaudit.facts import ElfCache, read_wheel_elves
from tests import elfbuild, zipcraft

# executions per run, the time box: a count, not a clock, so a slow machine runs the same inputs.
# A long run: FASTAUDIT_FUZZ_EXAMPLES=200000 pytest -s -m fuzz tests/property
EXAMPLES = int(os.environ.get("FASTAUDIT_FUZZ_EXAMPLES", "5000"))
FIELD_VALUES = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF]


def field_targets(data: bytes) -> list[tuple[int, str]]:
    """(offset, struct code) of every header field of every entry and end record in `data`."""
    targets: list[tuple[int, str]] = []
    position = 0
    while (position := data.find(zipcraft.LOCAL_MAGIC, position)) >= 0:
        targets += [(position + off, code) for off, code in zipcraft.LOCAL_FIELDS.values()]
        position += 4
    position = 0
    while (position := data.find(zipcraft.CENTRAL_MAGIC, position)) >= 0:
        targets += [(position + off, code) for off, code in zipcraft.CENTRAL_FIELDS.values()]
        name_len, extra_len = struct.unpack_from("<HH", data, position + 28)
        extra = position + 46 + name_len
        targets += [(o, "Q") for o in range(extra + 4, extra + extra_len - 7, 8)]  # ZIP64 values
        position += 4
    end = data.rfind(zipcraft.END_MAGIC)
    targets += [(end + off, code) for off, code in ((8, "H"), (10, "H"), (12, "I"), (16, "I"), (20, "H"))]
    end64 = data.rfind(zipcraft.ZIP64_END_MAGIC)
    if end64 >= 0:
        targets += [(end64 + off, "Q") for off in (4, 24, 32, 40, 48)]
        targets += [(data.rfind(zipcraft.ZIP64_LOCATOR_MAGIC) + 8, "Q")]
    return targets


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory, scenarios: dict[str, elfbuild.Scenario]) -> list[bytes]:
    """Plain deflated wheels with several ELF members, their ZIP64 and stored rewrites."""
    folder = tmp_path_factory.mktemp("seeds")
    found = []
    for name in ("glibc_2_17", "origin_chain"):
        wheel = scenarios[name].wheel
        found.append(wheel.read_bytes())
        members = zipcraft.read_members(wheel)
        found.append(zipcraft.write_zip(folder / f"{name}-64.whl", members, zip64=True).read_bytes())
        with zipfile.ZipFile(wheel) as zf:
            stored = [zipcraft.RawMember.of(i.filename, zf.read(i), deflate=False) for i in zf.infolist()]
        found.append(zipcraft.write_zip(folder / f"{name}-stored.whl", stored, zip64=False).read_bytes())
    return found


@st.composite
def mutations(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    targets = field_targets(bytes(data))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(("field", "field", "field", "byte", "span")))
        if how == "field":
            offset, code = draw(st.sampled_from(targets))
            top = (1 << (8 * struct.calcsize(code))) - 1
            value = draw(st.one_of(st.sampled_from(FIELD_VALUES), st.integers(0, top)))
            struct.pack_into("<" + code, data, offset, value & top)
        elif how == "byte":
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        else:
            start = draw(st.integers(0, len(data) - 1))
            chunk = draw(st.binary(min_size=1, max_size=32))
            data[start:start + len(chunk)] = chunk
    if draw(st.integers(0, 9)) == 0:
        del data[draw(st.integers(0, len(data))):]
    return bytes(data)


@pytest.mark.fuzz
def test_mutated_wheels_raise_only_fastaudit_errors(seeds: list[bytes], tmp_path: Path) -> None:
    wheel = tmp_path / "mutant.whl"
    cache = ElfCache()
    outcomes = {"read": 0, "refused": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutations(seeds), st.booleans(), st.booleans())
    def run(data: bytes, use_cache: bool, verify_record: bool) -> None:
        wheel.write_bytes(data)
        try:
            read_wheel_elves(wheel, cache if use_cache else None, verify_record=verify_record)
            outcomes["read"] += 1
        except FastauditError:
            outcomes["refused"] += 1

    run()
    print(f"wheel mutations: {outcomes}")  # the figures fuzz/RESULTS.md quotes (pytest -s)
    assert sum(outcomes.values()) >= EXAMPLES
    # the mutations reach both outcomes: neither everything refused at the door nor nothing
    assert outcomes["read"] > 0 and outcomes["refused"] > EXAMPLES // 4, outcomes


# ---- mutations of the deflate stream --------------------------------------------------------------------

@pytest.fixture(scope="module")
def member_seeds(scenarios: dict[str, elfbuild.Scenario]) -> list[list[zipcraft.RawMember]]:
    return [zipcraft.read_members(scenarios[name].wheel) for name in ("glibc_2_17", "origin_chain")]


def empty_blocks(kind: str, count: int) -> bytes:
    writer = zipcraft.BitWriter()
    for _ in range(count):
        getattr(writer, f"empty_{kind}")()
    writer.empty_stored()
    return writer.getvalue()


def with_record_row(members: list[zipcraft.RawMember], name: str, content: bytes) -> list[zipcraft.RawMember]:
    """The members with RECORD's row for `name` made to match `content`."""
    record = next(m for m in members if m.name.endswith(".dist-info/RECORD"))
    rows = list(csv.reader(io.StringIO(zlib.decompress(record.compressed, -zlib.MAX_WBITS).decode())))
    rows = [[n, zipcraft.record_hash(content), str(len(content))] if n == name else row
            for row in rows for n in row[:1]]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return [zipcraft.RawMember.of(m.name, text.getvalue().encode()) if m is record else m for m in members]


@st.composite
def stream_mutations(draw: st.DrawFn, seeds: list[list[zipcraft.RawMember]]) -> tuple[list[zipcraft.RawMember], bool]:
    members = list(draw(st.sampled_from(seeds)))
    index = draw(st.sampled_from([i for i, m in enumerate(members) if m.method == zipfile.ZIP_DEFLATED]))
    target = members[index]
    stream = bytearray(target.compressed)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(("flip", "byte", "cut", "splice", "repeat", "prefix", "header")))
        at = draw(st.integers(0, len(stream)))
        if how == "flip" and stream:
            at = min(at, len(stream) - 1)
            stream[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "byte" and stream:
            stream[min(at, len(stream) - 1)] = draw(st.integers(0, 255))
        elif how == "cut":
            del stream[at:]
        elif how == "splice":
            stream[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "repeat":
            span = draw(st.integers(1, 64))
            stream[at:at] = stream[at:at + span] * draw(st.integers(1, 8))
        elif how == "prefix":
            stream[:0] = empty_blocks(draw(st.sampled_from(("stored", "fixed", "dynamic"))), draw(st.integers(1, 400)))
        elif how == "header" and stream:  # the first block's BFINAL and BTYPE bits
            stream[0] = (stream[0] & ~0b111) | draw(st.integers(0, 7))
    stream = bytes(stream)
    crc, size = target.crc, target.size
    if draw(st.booleans()):  # declare what the stream now inflates to, if it inflates at all
        try:
            content = zlib.decompressobj(-zlib.MAX_WBITS).decompress(stream, 1 << 24)
        except zlib.error:
            content = None
        if content is not None:
            crc, size = zlib.crc32(content), len(content)
            members = with_record_row(members, target.name, content)
    members[index] = zipcraft.RawMember(target.name, stream, target.method, crc, size, target.external_attr)
    return members, draw(st.booleans())


@pytest.mark.fuzz
def test_mutated_deflate_streams_raise_only_fastaudit_errors(member_seeds: list[list[zipcraft.RawMember]],
                                                            tmp_path: Path) -> None:
    wheel = tmp_path / "mutant.whl"
    cache = ElfCache()
    outcomes = {"read": 0, "refused": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(stream_mutations(member_seeds), st.booleans(), st.booleans())
    def run(mutant: tuple[list[zipcraft.RawMember], bool], use_cache: bool, verify_record: bool) -> None:
        members, zip64 = mutant
        zipcraft.write_zip(wheel, members, zip64=zip64)
        try:
            read_wheel_elves(wheel, cache if use_cache else None, verify_record=verify_record)
            outcomes["read"] += 1
        except FastauditError:
            outcomes["refused"] += 1

    run()
    print(f"deflate stream mutations: {outcomes}")  # the figures fuzz/RESULTS.md quotes (pytest -s)
    assert sum(outcomes.values()) >= EXAMPLES
    # the mutations reach both outcomes: neither everything refused at the door nor nothing
    assert outcomes["read"] > 0 and outcomes["refused"] > EXAMPLES // 4, outcomes
