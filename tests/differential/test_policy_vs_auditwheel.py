"""Our policy data must say exactly what the installed auditwheel's policies say.

The one documented difference: our musllinux whitelists also name plain 'libc.so'.
If this fails after an auditwheel upgrade, rerun scripts/generate_policy.py.
"""
from __future__ import annotations

import json
from importlib import metadata, resources
from typing import Any

import pytest

pytest.importorskip(
    "auditwheel.policy",
    reason="auditwheel is not installed: the policy data was NOT compared with auditwheel's",
)

from auditwheel.architecture import Architecture  # noqa: E402
from auditwheel.libc import Libc  # noqa: E402
from auditwheel.policy import WheelPolicies  # noqa: E402

from fastaudit.policy import known_arches, policies_for, policy_for_tag  # noqa: E402

FAMILIES = {"glibc": ("manylinux", Libc.GLIBC), "musl": ("musllinux", Libc.MUSL)}
MUSL_LIBC_ADDITION = "libc.so"


def auditwheel_raw(family: str) -> list[dict[str, Any]]:
    text = (resources.files("auditwheel") / "policy" / f"{family}-policy.json").read_text()
    policies: list[dict[str, Any]] = json.loads(text)
    return policies


def auditwheel_pairs(libc: str) -> set[tuple[str, str]]:
    """Every (policy name, arch) auditwheel's policy file defines, linux on every arch."""
    raw = auditwheel_raw(FAMILIES[libc][0])
    arches = {arch for policy in raw for arch in policy["symbol_versions"]}
    return {
        (policy["name"], arch)
        for policy in raw
        for arch in (arches if policy["name"] == "linux" else policy["symbol_versions"])
    }


def stale_data_hint(family: str) -> str:
    ours = json.loads(resources.files("fastaudit.policy").joinpath(f"{family}.json").read_text())
    source, installed = ours["source"]["auditwheel_version"], metadata.version("auditwheel")
    if source == installed:
        return f"{family}.json differs from auditwheel {installed}, its source: edited by hand?"
    return (
        f"{family}.json came from auditwheel {source}, {installed} is installed: "
        "rerun scripts/generate_policy.py"
    )


def auditwheel_policy(libc: str, name: str, arch: str) -> Any:
    family, libc_kind = FAMILIES[libc]
    # Pinning musl_policy stops auditwheel from probing the host's musl version.
    musl_policy = name if libc == "musl" and name != "linux" else None
    policies = WheelPolicies(libc=libc_kind, arch=Architecture(arch), musl_policy=musl_policy)
    return policies.get_policy_by_name(f"{name}_{arch}")


CASES = sorted((libc, name, arch) for libc in FAMILIES for name, arch in auditwheel_pairs(libc))


@pytest.mark.parametrize("libc", sorted(FAMILIES))
def test_same_policies_and_arches(libc: str) -> None:
    ours = {
        (policy.name, policy.arch)
        for arch in known_arches(libc)
        for policy in policies_for(libc, arch)
    }
    assert ours == auditwheel_pairs(libc), stale_data_hint(FAMILIES[libc][0])


@pytest.mark.parametrize(("libc", "name", "arch"), CASES)
def test_policy_matches_auditwheel(libc: str, name: str, arch: str) -> None:
    theirs = auditwheel_policy(libc, name, arch)
    ours = policy_for_tag(f"{name}_{arch}") if name != "linux" else policies_for(libc, arch)[0]
    hint = stale_data_hint(FAMILIES[libc][0])

    assert (ours.libc, ours.name, ours.arch) == (libc, name, arch)
    assert ours.priority == theirs.priority, hint
    assert ours.alias_tags == theirs.aliases, hint
    their_versions = {
        prefix: frozenset(f"{prefix}_{version}" for version in versions)
        for prefix, versions in theirs.symbol_versions.items()
    }
    assert dict(ours.symbol_versions) == their_versions, hint
    assert dict(ours.blacklist) == theirs.blacklist, hint
    if libc == "musl" and name != "linux":
        assert MUSL_LIBC_ADDITION in ours.whitelist
        assert ours.whitelist - {MUSL_LIBC_ADDITION} == theirs.whitelist, hint
    else:
        assert ours.whitelist == theirs.whitelist, hint
