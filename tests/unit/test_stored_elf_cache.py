"""The store's cross-run ELF cache, below the scan: the stored form of a member's facts, the cache
that reads it, and the store's table.

What is stored must be exactly what the audit computes from the inflated bytes: every member of the
real ci wheels and of the gcc-built scenario wheels is encoded and decoded, and the audit through the
decoded facts (reports, ELF facts, vendored libraries) is compared with the audit from the bytes. A
damaged or forged row (cut, bit-flipped, oversized, rows that decode to nonsense) is refused by
type and the member is read from its bytes instead.
"""
from __future__ import annotations

import dataclasses
import json
import os
import resource
import socket
import sqlite3
import struct
import zlib
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from fastaudit.elf import ElfInfo, dump_elf_info, load_elf_info
from fastaudit.facts import (
    ElfCache,
    StoredFactsError,
    decode_member_facts,
    encode_member_facts,
    facts_version,
    read_wheel_facts,
)
from fastaudit.results import to_json
from fastaudit.scan import _elf_facts, _vendored_rows, audit_path
from fastaudit.store import SCHEMA_VERSION, Store, StoreLocation
from fastaudit.wheel import WheelArchive
from tests import elfbuild, zipcraft

MAGIC = b"FAMF\x02"


def audit(wheel: Path, cache: ElfCache | None) -> tuple[dict, tuple, tuple]:
    """What the scan stores of a wheel: its report, its ELF facts and its vendored libraries."""
    report, facts = audit_path(wheel, cache)
    return to_json(report), _elf_facts(facts.elves), _vendored_rows(facts.vendored())


def stored_rows_of(wheels: list[Path]) -> dict[bytes, bytes]:
    """member key -> encoded facts, as a first scan of the wheels would leave them in the store."""
    rows: dict[bytes, bytes] = {}
    cache = ElfCache(stored=rows.get)
    for wheel in wheels:
        read_wheel_facts(wheel, cache)
        rows.update((key, blob) for key, _, blob in cache.take_traffic().new)
    return rows


@pytest.fixture(scope="module")
def wheels(ci_wheels: list[Path], scenarios: dict[str, elfbuild.Scenario]) -> list[Path]:
    return [*ci_wheels, *(s.wheel for s in scenarios.values())]


def assert_same_info(decoded: ElfInfo, original: ElfInfo) -> None:
    for f in dataclasses.fields(ElfInfo):
        if f.name != "symbols":
            assert getattr(decoded, f.name) == getattr(original, f.name), f.name
    for column in ("name_offsets", "info", "other", "shndx", "version"):
        a, b = getattr(decoded.symbols, column), getattr(original.symbols, column)
        assert a.dtype == b.dtype and np.array_equal(a, b), column
    assert decoded.symbols.strtab == original.symbols.strtab
    assert decoded.symbols.names == original.symbols.names
    assert decoded.undefined_symbols == original.undefined_symbols
    assert decoded.defined_symbols == original.defined_symbols
    assert decoded.footprint() == original.footprint()


# ---- what is stored is what the bytes say ---------------------------------------------------------

def test_every_member_decodes_to_the_facts_its_bytes_give(wheels: list[Path]) -> None:
    members = 0
    for wheel in wheels:
        with WheelArchive(wheel) as archive:
            sizes = {m.name: m.size for m in archive.members}
        for name, facts in read_wheel_facts(wheel).members.items():
            decoded = decode_member_facts(encode_member_facts(facts), sizes[name])
            assert_same_info(decoded.info, facts.info)
            assert decoded.strings == facts.strings, (wheel.name, name)
            members += 1
    assert members > 100  # the ci wheels alone hold more than that


def test_the_audit_through_stored_facts_equals_the_audit_from_the_bytes(wheels: list[Path]) -> None:
    """Every member comes from the stored rows (none is inflated) and every report, ELF fact and
    vendored library is the same as without any cache."""
    rows = stored_rows_of(wheels)
    cache = ElfCache(stored=rows.get)
    for wheel in wheels:
        assert audit(wheel, cache) == audit(wheel, None), wheel.name
        traffic = cache.take_traffic()
        assert traffic.members_read == 0 and traffic.new == [] and traffic.rejected == [], wheel.name
        # the first sighting of a member comes from the store, later ones from memory
        assert traffic.members_from_store + traffic.members_from_memory == \
            len(read_wheel_facts(wheel).members), wheel.name
    assert cache.hits >= len(rows) > 100


def test_facts_are_encoded_before_the_audit_spends_their_decode_budget(wheels: list[Path]) -> None:
    """The stored budget is the one the reader left, not what the audit left after decoding names:
    facts reused from the store must refuse or accept a name-heavy image as a fresh read does."""
    wheel = next(w for w in wheels if w.name.startswith("psycopg2"))
    rows: dict[bytes, bytes] = {}
    cache = ElfCache(stored=rows.get)
    audit(wheel, cache)  # decodes the symbol names of the cached objects
    for key, size, blob in cache.take_traffic().new:
        fresh = read_wheel_facts(wheel).members
        decoded = decode_member_facts(blob, size).info.symbols.strings._budget
        assert any(f.info.symbols.strings._budget.left == decoded.left for f in fresh.values())
        assert decoded.left <= decoded.limit


# ---- damaged and forged rows ----------------------------------------------------------------------

def _payload(blob: bytes) -> tuple[dict, bytes]:
    _, size = struct.unpack_from("<II", blob, len(MAGIC))
    body = blob[len(MAGIC) + 8:]
    return json.loads(body[:size]), body[size:]


def _forge(strings: object, elf: bytes) -> bytes:
    """A row with a right CRC-32: what a forger who knows the format writes."""
    head = json.dumps(strings).encode()
    return MAGIC + struct.pack("<II", zlib.crc32(head + elf), len(head)) + head + elf


def _forge_elf(blob: bytes, edit: Callable[[dict], None], tail: Callable[[bytes], bytes] = lambda b: b) -> bytes:
    """The row with the ELF dump's fields edited by a forger who knows the format."""
    strings, elf = _payload(blob)
    (size,) = struct.unpack_from("<I", elf, 6)
    fields = json.loads(elf[10:10 + size])
    edit(fields)
    head = json.dumps(fields).encode()
    return _forge(strings, elf[:6] + struct.pack("<I", len(head)) + head + tail(elf[10 + size:]))


def _set(**values: object) -> Callable[[dict], None]:
    return lambda fields: fields.update(values)


HOSTILE: dict[str, Callable[[bytes], object]] = {
    "empty": lambda b: b"",
    "not bytes": lambda b: "FAMF text",
    "another magic": lambda b: b"XXXX" + b[4:],
    "cut in half": lambda b: b[:len(b) // 2],
    "last byte cut": lambda b: b[:-1],
    "a flipped bit": lambda b: b[:len(b) // 2] + bytes([b[len(b) // 2] ^ 0x10]) + b[len(b) // 2 + 1:],
    "trailing bytes": lambda b: b + b"\0" * 16,
    "larger than the member allows": lambda b: _forge({}, b"\0" * (64 << 20)),
    "random bytes": lambda b: MAGIC + os.urandom(4096),
    "a head longer than the row": lambda b: _forge({}, b"")[:len(MAGIC) + 4] + struct.pack("<I", 1 << 30),
    "a damaged head with its CRC": lambda b: _forge({}, b"")[:len(MAGIC) + 8] + b"{]",
    "strings not an object": lambda b: _forge([1, 2], _payload(b)[1]),
    "a version that is a number": lambda b: _forge({"zlib": [[1, "deflate 1"]]}, _payload(b)[1]),
    "an ELF dump without magic": lambda b: _forge({}, b"not an elf dump"),
    "a bool for an int": lambda b: _forge_elf(b, _set(elf_class=True)),
    "an int for a bool": lambda b: _forge_elf(b, _set(little_endian=1)),
    "a needed name that is a number": lambda b: _forge_elf(b, _set(needed=[7])),
    "requirements not an object": lambda b: _forge_elf(b, _set(version_requirements=["GLIBC_2.17"])),
    "a missing field": lambda b: _forge_elf(b, lambda f: f.pop("soname")),
    "an object dtype": lambda b: _forge_elf(b, lambda f: f["columns"][0].__setitem__(0, "|O")),
    "columns of different lengths": lambda b: _forge_elf(b, lambda f: f["columns"][1].__setitem__(1, 0)),
    "a column longer than the row": lambda b: _forge_elf(b, lambda f: f["columns"][4].__setitem__(1, 1 << 40)),
    "a negative length": lambda b: _forge_elf(b, lambda f: f["columns"][4].__setitem__(1, -1)),
    "a string table of another size": lambda b: _forge_elf(b, lambda f: f.update(strtab=f["strtab"] + 1)),
    "names past the string table": lambda b: _forge_elf(b, lambda f: None, lambda t: t[:-64]),
    "a budget above its limit": lambda b: _forge_elf(b, lambda f: f.update(budget=[10, 20])),
}


@pytest.fixture(scope="module")
def good_row(ci_wheels: list[Path]) -> tuple[Path, bytes, int]:
    """A real wheel, and the stored row of its largest ELF member (one with dynamic symbols)."""
    wheel = next(w for w in ci_wheels if w.name.startswith("psycopg2"))
    cache = ElfCache(stored=lambda key: None)
    read_wheel_facts(wheel, cache)
    _, size, blob = max(cache.take_traffic().new, key=lambda row: row[1])
    assert len(decode_member_facts(blob, size).info.symbols) > 100
    return wheel, blob, size


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_damaged_or_forged_row_is_refused_by_type(case: str, good_row: tuple[Path, bytes, int]) -> None:
    _, blob, size = good_row
    hostile = HOSTILE[case](blob)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(StoredFactsError):
        decode_member_facts(hostile, size)  # type: ignore[arg-type]
    # nothing is parsed of a row above 8 times the member's size plus 1 MiB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 48 << 10


@pytest.mark.parametrize("case", ["a flipped bit", "larger than the member allows", "names past the string table",
                                  "not bytes"])
def test_a_wheel_whose_rows_are_hostile_is_audited_from_its_bytes(case: str, good_row: tuple[Path, bytes, int]
                                                                  ) -> None:
    """Every lookup answers with a hostile row: each is ignored with a note, every member is read
    from its bytes, and the audit is the audit without a cache."""
    wheel, blob, _ = good_row
    hostile = HOSTILE[case](blob)
    cache = ElfCache(stored=lambda key: hostile)  # type: ignore[arg-type,return-value]
    assert audit(wheel, cache) == audit(wheel, None)
    traffic = cache.take_traffic()
    members = len(read_wheel_facts(wheel).members)
    assert len(traffic.rejected) == traffic.members_read == len(traffic.new) == members
    assert all(why for _, why in traffic.rejected) and traffic.members_from_store == 0


def test_load_elf_info_refuses_what_dump_elf_info_did_not_write(good_row: tuple[Path, bytes, int]) -> None:
    _, blob, size = good_row
    dump = dump_elf_info(decode_member_facts(blob, size).info)
    assert_same_info(load_elf_info(dump), decode_member_facts(blob, size).info)
    for bad in (dump[:-1], dump[:40], b"FAELF\x01" + b"\xff" * 8, b""):
        with pytest.raises(ValueError):
            load_elf_info(bad)


# ---- the cache's key and version ------------------------------------------------------------------

def test_facts_version_names_this_build_and_is_stable() -> None:
    from fastaudit import __version__

    version = facts_version()
    assert version.startswith(__version__ + "+") and len(version) == len(__version__) + 17
    assert facts_version() == version


def test_a_library_with_a_forged_crc_does_not_get_the_stored_facts_of_another(
        tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    """Library B is library A with GLIBC_2.17 renamed GLIBC_2.34 and four bytes of .comment set so
    that its CRC-32 is A's: same name, sizes and CRC-32. With A's facts in the store, B is read from
    its bytes (its key, the SHA-256 of its stored bytes, is another) and gets its own verdict."""
    from tests.unit.test_wheel import central_key, comment_offset, so_member, stored_wheel

    source = scenarios["glibc_2_17"].wheel
    name, library_a = so_member(source)
    library_b = zipcraft.forge_crc32(library_a.replace(b"GLIBC_2.17\x00", b"GLIBC_2.34\x00"),
                                     zlib.crc32(library_a), comment_offset(library_a))
    wheel_a = stored_wheel(tmp_path / "a", source, name, library_a)
    wheel_b = stored_wheel(tmp_path / "b", source, name, library_b)
    assert central_key(wheel_a, name) == central_key(wheel_b, name)
    rows = stored_rows_of([wheel_a])
    cache = ElfCache(stored=rows.get)
    report_b = audit(wheel_b, cache)
    assert report_b == audit(wheel_b, None)
    assert report_b[0]["overall_tag"] == "manylinux_2_34_x86_64"
    traffic = cache.take_traffic()
    assert traffic.members_from_store == 0 and traffic.members_read == 1
    assert audit(wheel_a, cache)[0]["overall_tag"] == elfbuild.MANYLINUX_2_17
    assert cache.take_traffic().members_from_store == 1


# ---- the store's table ----------------------------------------------------------------------------

def _row(store: Store, run_id: int, key: bytes, size: int, version: str = "v1") -> None:
    cur = store.db.execute("INSERT INTO elf_cache (member_key, facts_version, member_size, stored_bytes,"
                           " last_used_run) VALUES (?, ?, ?, ?, ?)", (key, version, size, size, run_id))
    store.db.execute("INSERT INTO elf_cache_facts (id, facts) VALUES (?, ?)", (cur.lastrowid, b"x" * size))


def test_rows_of_another_facts_version_are_not_found(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        _row(store, 1, b"k" * 53, 10, version="0.2.0+old")
        assert store.stored_elf_facts(b"k" * 53, "0.2.0+old") == b"x" * 10
        assert store.stored_elf_facts(b"k" * 53, facts_version()) is None
        assert store.stored_elf_facts(b"j" * 53, "0.2.0+old") is None


def test_eviction_keeps_the_most_recently_used_rows_within_the_bound(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        run = store.start_run({}, "t", "p")
        for i in range(10):  # row i last used by run i, 100 bytes each
            _row(store, i, bytes([i]) * 53, 100)
        assert store.evict_elf_cache(run, 450) == 6
        kept = [r[0] for r in store.db.execute("SELECT last_used_run FROM elf_cache ORDER BY 1")]
        assert kept == [6, 7, 8, 9]
        assert store.db.execute("SELECT count(*) FROM elf_cache_facts").fetchone() == (4,)
        assert store.elf_cache_usage(run)["rows_evicted"] == 6
        assert store.evict_elf_cache(run, 400) == 0  # within the bound already
        assert store.evict_elf_cache(run, 0) == 4
        assert store.elf_cache_usage(run)["rows"] == 0
        assert store.db.execute("SELECT count(*) FROM elf_cache_facts").fetchone() == (0,)


def test_migration_4_adds_the_cache_to_a_schema_3_store(tmp_path: Path) -> None:
    from fastaudit.store import _MIGRATIONS

    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as con:
        for statement in "".join(_MIGRATIONS[:3]).split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute("PRAGMA user_version=3")
        con.commit()
    with Store(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (4,)
        assert store.stored_elf_facts(b"k", "v") is None


# ---- who may read the store -----------------------------------------------------------------------

def test_a_worker_reads_the_store_only_on_its_host_and_its_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as store:
        location = store.location()
        reader, why = location.open_reader()
        assert reader is not None and why is None
        reader.close()
        elsewhere, why = dataclasses.replace(location, host=socket.gethostname() + "-elsewhere").open_reader()
        assert elsewhere is None and "this worker on" in why
        other_file, why = dataclasses.replace(location, inode=location.inode + 1).open_reader()
        assert other_file is None and "another file" in why
    missing, why = StoreLocation(str(tmp_path / "gone.db"), socket.gethostname(), 0, 0).open_reader()
    assert missing is None and "cannot see the store" in why
    # a store this fastaudit cannot read (a newer schema) is no cache, not a failure
    with closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA user_version=99")
    newer, why = location.open_reader()
    assert newer is None and "schema 99" in why
