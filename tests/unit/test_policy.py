"""The policy data and its loader: lookups, ordering, musl names and the consistency rules."""
from __future__ import annotations

import copy
import json
import re
from importlib import resources
from typing import Any

import pytest

from fastaudit.errors import PolicyError
from fastaudit.policy import (
    POLICY_DATA_VERSION,
    Policy,
    known_arches,
    parse_family,
    policies_for,
    policy_for_tag,
)

MUSL_LIBC_SONAMES = {
    "x86_64": "libc.musl-x86_64.so.1",
    "i686": "libc.musl-x86.so.1",
    "aarch64": "libc.musl-aarch64.so.1",
    "s390x": "libc.musl-s390x.so.1",
    "ppc64le": "libc.musl-ppc64le.so.1",
    "armv7l": "libc.musl-armv7.so.1",
    "riscv64": "libc.musl-riscv64.so.1",
    "loongarch64": "libc.musl-loongarch64.so.1",
}


def raw_document(file_name: str) -> dict[str, Any]:
    """A fresh, mutable copy of one shipped data file."""
    document: dict[str, Any] = json.loads(
        resources.files("fastaudit.policy").joinpath(file_name).read_text()
    )
    return document


def entry(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(policy for policy in document["policies"] if policy["name"] == name)


# --- lookups ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("manylinux1_x86_64", "manylinux_2_5_x86_64"),
        ("manylinux1_i686", "manylinux_2_5_i686"),
        ("manylinux2010_x86_64", "manylinux_2_12_x86_64"),
        ("manylinux2014_aarch64", "manylinux_2_17_aarch64"),
        ("manylinux2014_ppc64", "manylinux_2_17_ppc64"),
    ],
)
def test_legacy_alias_names_the_same_policy(alias: str, canonical: str) -> None:
    policy = policy_for_tag(alias)
    assert policy is policy_for_tag(canonical)
    assert policy.tag == canonical
    assert alias in policy.alias_tags


def test_lookup_by_tag_fills_every_field() -> None:
    policy = policy_for_tag("manylinux_2_17_x86_64")
    assert (policy.name, policy.arch, policy.libc) == ("manylinux_2_17", "x86_64", "glibc")
    assert policy.priority == 80
    assert policy.aliases == ("manylinux2014",)
    assert policy.alias_tags == ("manylinux2014_x86_64",)
    assert policy.libc_version == (2, 17)


def test_musllinux_tags() -> None:
    policy = policy_for_tag("musllinux_1_1_aarch64")
    assert (policy.name, policy.arch, policy.libc) == ("musllinux_1_1", "aarch64", "musl")
    assert policy.libc_version == (1, 1)
    assert policy_for_tag("musllinux_1_2_loongarch64").libc_version == (1, 2)


@pytest.mark.parametrize(
    "tag",
    [
        "manylinux_2_99_x86_64",
        "manylinux2014_sparc64",
        "manylinux_2_17",
        "musllinux_1_1_loongarch64",  # musllinux_1_1 was never defined for loongarch64
        "musllinux_1_2_ppc64",
        "manylinux_2_5_aarch64",  # manylinux1 was x86 only
        "linux_sparc64",
        "",
    ],
)
def test_unknown_tag_raises_policy_error(tag: str) -> None:
    with pytest.raises(PolicyError, match="unknown platform tag"):
        policy_for_tag(tag)


def test_arch_coverage_follows_the_data() -> None:
    assert [p.name for p in policies_for("glibc", "ppc64")] == ["linux", "manylinux_2_17"]
    assert policies_for("glibc", "riscv64")[-1].name == "manylinux_2_31"
    assert policies_for("glibc", "loongarch64")[-1].name == "manylinux_2_36"
    assert [p.name for p in policies_for("musl", "loongarch64")] == ["linux", "musllinux_1_2"]


def test_known_arches() -> None:
    assert known_arches("glibc") == {
        "x86_64", "i686", "aarch64", "ppc64le", "ppc64", "s390x", "armv7l", "riscv64",
        "loongarch64",
    }
    assert known_arches("musl") == set(MUSL_LIBC_SONAMES)


def test_unknown_arch_or_libc_raises_policy_error() -> None:
    with pytest.raises(PolicyError, match="no musl policy covers arch 'ppc64'"):
        policies_for("musl", "ppc64")
    with pytest.raises(PolicyError, match="unknown libc"):
        policies_for("bionic", "x86_64")


# --- ordering and identity -------------------------------------------------------------------


def test_policies_for_ascends_by_priority_with_linux_first() -> None:
    policies = policies_for("glibc", "x86_64")
    assert policies[0].tag == "linux_x86_64"
    assert policies[-1].tag == "manylinux_2_5_x86_64"
    priorities = [policy.priority for policy in policies]
    assert priorities == sorted(set(priorities))
    assert list(policies) == sorted(reversed(policies))


def test_comparisons_use_priority() -> None:
    old, new = policy_for_tag("manylinux2014_x86_64"), policy_for_tag("manylinux_2_28_x86_64")
    assert new < old and new <= old and old > new and old >= new
    assert not old < new
    assert max(policies_for("glibc", "x86_64")).tag == "manylinux_2_5_x86_64"
    with pytest.raises(TypeError):
        _ = old < 80


def test_policies_are_hashable_and_equal_by_value() -> None:
    policies = policies_for("glibc", "x86_64")
    assert len(set(policies)) == len(policies)
    by_policy = {policy_for_tag("manylinux2014_x86_64"): "x"}
    assert by_policy[policy_for_tag("manylinux_2_17_x86_64")] == "x"
    assert policy_for_tag("manylinux_2_17_x86_64") != policy_for_tag("manylinux_2_17_i686")


def test_policy_fields_are_immutable() -> None:
    policy = policy_for_tag("manylinux_2_17_x86_64")
    with pytest.raises(TypeError):
        policy.symbol_versions["GLIBC"] = frozenset()  # type: ignore[index]
    with pytest.raises(TypeError):
        policy.blacklist["libz.so.1"] = frozenset()  # type: ignore[index]
    with pytest.raises(AttributeError):
        policy.priority = 1  # type: ignore[misc]


# --- linux and musl --------------------------------------------------------------------------


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_linux_policy_exists_for_every_arch_and_limits_nothing(libc: str) -> None:
    for arch in known_arches(libc):
        linux = policies_for(libc, arch)[0]
        assert linux.is_linux and linux.tag == f"linux_{arch}" and linux.libc == libc
        assert linux.priority == 0 and linux.libc_version is None and linux.aliases == ()
        assert not linux.whitelist and not linux.symbol_versions and not linux.blacklist
        assert not any(policy.is_linux for policy in policies_for(libc, arch)[1:])


def test_plain_linux_tag_resolves_to_the_glibc_family() -> None:
    assert policy_for_tag("linux_x86_64").libc == "glibc"
    assert policy_for_tag("linux_ppc64").is_linux


@pytest.mark.parametrize(("arch", "soname"), sorted(MUSL_LIBC_SONAMES.items()))
def test_musl_whitelist_names_libc_both_ways(arch: str, soname: str) -> None:
    for policy in policies_for("musl", arch)[1:]:
        assert policy.whitelist == {soname, "libc.so", "libz.so.1"}
        assert not policy.symbol_versions


# --- data content ----------------------------------------------------------------------------


def test_glibc_versions_are_an_exact_set() -> None:
    x86_64 = policy_for_tag("manylinux2014_x86_64").symbol_versions["GLIBC"]
    assert "GLIBC_2.17" in x86_64
    assert "GLIBC_2.18" not in x86_64
    assert "GLIBC_2.2.5" in x86_64 and "GLIBC_2.0" not in x86_64
    # aarch64 glibc started at 2.17, yet its manylinux2014 set also holds 2.0 and 2.18.
    assert policy_for_tag("manylinux2014_aarch64").symbol_versions["GLIBC"] == {
        "GLIBC_2.0", "GLIBC_2.17", "GLIBC_2.18",
    }
    # A gap is not filled by a greater version being allowed: 2.19-2.21 never appear on x86_64.
    assert "GLIBC_2.19" not in policy_for_tag("manylinux_2_41_x86_64").symbol_versions["GLIBC"]


def test_every_glibc_policy_checks_the_same_prefixes() -> None:
    prefixes = {"CXXABI", "GCC", "GLIBC", "GLIBCXX", "LIBATOMIC", "ZLIB"}
    for arch in known_arches("glibc"):
        for policy in policies_for("glibc", arch)[1:]:
            assert set(policy.symbol_versions) == prefixes
            for prefix, versions in policy.symbol_versions.items():
                assert all(version.startswith(f"{prefix}_") for version in versions)
    # Listed but empty: manylinux1 allows no libatomic version at all.
    assert policy_for_tag("manylinux1_x86_64").symbol_versions["LIBATOMIC"] == frozenset()


def test_named_symbol_versions_keep_their_full_name() -> None:
    ppc64le = policy_for_tag("manylinux_2_34_ppc64le").symbol_versions
    assert "GLIBCXX_LDBL_3.4" in ppc64le["GLIBCXX"]
    assert "CXXABI_IEEE128_1.3.13" in ppc64le["CXXABI"]
    assert "GLIBC_ABI_DT_RELR" in policy_for_tag("manylinux_2_36_x86_64").symbol_versions["GLIBC"]


def test_blacklists() -> None:
    manylinux1 = policy_for_tag("manylinux1_x86_64").blacklist
    assert {"_tr_init", "inflate_fast", "zcalloc", "z_errmsg"} <= manylinux1["libz.so.1"]
    assert "__cxa_thread_atexit_impl" in manylinux1["libc.so.6"]
    # glibc 2.18 added these, so from manylinux_2_24 on only zlib internals remain blacklisted.
    assert set(policy_for_tag("manylinux_2_24_x86_64").blacklist) == {"libz.so.1"}
    assert "_tr_init" in policy_for_tag("musllinux_1_2_x86_64").blacklist["libz.so.1"]


def test_whitelist_grows_with_newer_tags() -> None:
    assert "libexpat.so.1" not in policy_for_tag("manylinux1_x86_64").whitelist
    assert "libexpat.so.1" in policy_for_tag("manylinux2010_x86_64").whitelist
    assert "libmvec.so.1" in policy_for_tag("manylinux_2_24_x86_64").whitelist
    assert {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libz.so.1"} <= policy_for_tag(
        "manylinux1_i686"
    ).whitelist


def test_data_version_is_a_short_digest() -> None:
    assert re.fullmatch(r"[0-9a-f]{12}", POLICY_DATA_VERSION)


# --- consistency rules -----------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["manylinux.json", "musllinux.json"])
def test_shipped_data_passes_the_rules(file_name: str) -> None:
    assert all(isinstance(policy, Policy) for policy in parse_family(raw_document(file_name)))


def test_dropping_a_version_from_a_newer_policy_is_rejected() -> None:
    document = raw_document("manylinux.json")
    glibc = entry(document, "manylinux_2_28")["symbol_versions"]["GLIBC"]
    glibc["x86_64"].remove("2.2.5")  # only x86_64 has it, so it is not under "*"
    with pytest.raises(PolicyError) as caught:
        parse_family(document)
    message = str(caught.value)
    assert "manylinux_2_28_x86_64" in message and "manylinux_2_27_x86_64" in message
    assert "GLIBC" in message and "GLIBC_2.2.5" in message


def test_dropping_a_library_from_a_newer_policy_is_rejected() -> None:
    document = raw_document("manylinux.json")
    entry(document, "manylinux_2_31")["whitelist"].remove("libexpat.so.1")
    expected = r"manylinux_2_31_\w+ whitelist lacks \['libexpat.so.1'\]"
    with pytest.raises(PolicyError, match=expected):
        parse_family(document)


def test_dropping_the_musl_libc_from_a_newer_policy_is_rejected() -> None:
    document = raw_document("musllinux.json")
    entry(document, "musllinux_1_2")["whitelist"].remove("libc.so")
    with pytest.raises(PolicyError, match=r"musllinux_1_2_\w+ whitelist lacks \['libc.so'\]"):
        parse_family(document)


def test_dropping_or_adding_a_prefix_is_rejected() -> None:
    document = raw_document("manylinux.json")
    del entry(document, "manylinux_2_24")["symbol_versions"]["LIBATOMIC"]
    with pytest.raises(PolicyError, match="manylinux_2_24_.* checks symbol version prefixes"):
        parse_family(document)
    document = raw_document("manylinux.json")
    entry(document, "manylinux_2_24")["symbol_versions"]["LIBFOO"] = {"*": ["1.0"]}
    with pytest.raises(PolicyError, match="checks symbol version prefixes"):
        parse_family(document)


def test_shared_priority_is_rejected() -> None:
    document = raw_document("manylinux.json")
    entry(document, "manylinux_2_26")["priority"] = entry(document, "manylinux_2_24")["priority"]
    with pytest.raises(PolicyError, match="share priority 70"):
        parse_family(document)


def test_priority_against_libc_version_is_rejected() -> None:
    document = raw_document("manylinux.json")
    entry(document, "manylinux_2_5")["priority"] = 85  # now ranked between 2_12 and 2_17
    with pytest.raises(PolicyError, match="libc version"):
        parse_family(document)


def test_libc_version_must_match_name() -> None:
    document = raw_document("manylinux.json")
    entry(document, "manylinux_2_17")["libc_version"] = [2, 71]
    with pytest.raises(PolicyError, match=r"manylinux_2_17_\w+: libc version \(2, 71\)"):
        parse_family(document)


def test_duplicate_names_and_aliases_are_rejected() -> None:
    document = raw_document("manylinux.json")
    entry(document, "manylinux_2_12")["aliases"].append("manylinux1")
    with pytest.raises(PolicyError, match="platform tag manylinux1_.* is defined twice"):
        parse_family(document)
    document = raw_document("manylinux.json")
    document["policies"].append(copy.deepcopy(entry(document, "manylinux_2_28")))
    with pytest.raises(PolicyError, match="manylinux_2_28_.* is defined twice"):
        parse_family(document)


def test_linux_must_cover_every_arch_and_rank_lowest() -> None:
    document = raw_document("manylinux.json")
    entry(document, "linux")["arches"].remove("ppc64")
    with pytest.raises(PolicyError, match="no linux_ppc64"):
        parse_family(document)
    document = raw_document("manylinux.json")
    entry(document, "linux")["priority"] = 60
    with pytest.raises(PolicyError, match="must rank below every other policy"):
        parse_family(document)


def test_malformed_documents_are_rejected() -> None:
    document = raw_document("manylinux.json")
    document["format"] = "auditwheel"
    with pytest.raises(PolicyError, match="format"):
        parse_family(document)
    document = raw_document("manylinux.json")
    del entry(document, "manylinux_2_17")["whitelist"]
    with pytest.raises(PolicyError, match="malformed policy manylinux_2_17"):
        parse_family(document)
    document = raw_document("manylinux.json")
    entry(document, "manylinux_2_17")["symbol_versions"]["GLIBC"]["x86-64"] = ["2.17"]
    with pytest.raises(PolicyError, match="keys from its arches only"):
        parse_family(document)
    document = raw_document("musllinux.json")
    del document["musl_arch_names"]["armv7l"]
    with pytest.raises(PolicyError, match="no musl spelling of arch armv7l"):
        parse_family(document)
