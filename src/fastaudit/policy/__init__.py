"""Which libraries and symbol versions each manylinux/musllinux platform tag allows.

The data is manylinux.json and musllinux.json beside this file, generated from auditwheel's policy
files by scripts/generate_policy.py; the "notes" inside them describe the format.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

from fastaudit.errors import PolicyError
from fastaudit.policy.document import parse_family
from fastaudit.policy.model import Policy
from fastaudit.policy.stable_abi import data_bytes as stable_abi_bytes

__all__ = [
    "POLICY_DATA_VERSION",
    "Policy",
    "known_arches",
    "parse_family",
    "policies_for",
    "policy_for_tag",
]

# glibc comes first: its linux_<arch> policies are the ones the plain linux tags resolve to.
_DATA_FILES = {"glibc": "manylinux.json", "musl": "musllinux.json"}


@functools.cache
def _data_bytes(libc: str) -> bytes:
    if libc not in _DATA_FILES:
        raise PolicyError(f"unknown libc {libc!r}, expected one of {sorted(_DATA_FILES)}")
    return resources.files(__name__).joinpath(_DATA_FILES[libc]).read_bytes()


def _data_version() -> str:
    digest = hashlib.sha256()
    for libc in _DATA_FILES:
        digest.update(_data_bytes(libc))
    digest.update(stable_abi_bytes())  # the abi3 check judges by it too
    return digest.hexdigest()[:12]


# Stored results record this so it is known which data judged them.
POLICY_DATA_VERSION: str = _data_version()


@functools.cache
def _family(libc: str) -> tuple[Policy, ...]:
    document = json.loads(_data_bytes(libc))
    if document.get("libc") != libc:
        found = document.get("libc")
        raise PolicyError(f"{_DATA_FILES[libc]} describes libc {found!r}, not {libc}")
    return parse_family(document)


@functools.cache
def policies_for(libc: str, arch: str) -> tuple[Policy, ...]:
    """Every policy of libc ("glibc" or "musl") on arch, ascending priority: [0] is linux_<arch>."""
    policies = tuple(sorted(policy for policy in _family(libc) if policy.arch == arch))
    if not policies:
        known = sorted(known_arches(libc))
        raise PolicyError(f"no {libc} policy covers arch {arch!r}; known: {known}")
    return policies


@functools.cache
def known_arches(libc: str) -> frozenset[str]:
    return frozenset(policy.arch for policy in _family(libc))


@functools.cache
def _policies_by_tag() -> Mapping[str, Policy]:
    by_tag: dict[str, Policy] = {}
    for libc in _DATA_FILES:
        for policy in _family(libc):
            for tag in (policy.tag, *policy.alias_tags):
                if tag not in by_tag:
                    by_tag[tag] = policy
                elif not policy.is_linux:
                    raise PolicyError(f"platform tag {tag} is defined for both glibc and {libc}")
    return MappingProxyType(by_tag)


def policy_for_tag(tag: str) -> Policy:
    """The policy a platform tag names, by name or alias ("manylinux2014_x86_64" works too).

    A plain linux_<arch> tag gives the glibc family's linux policy.
    """
    policy = _policies_by_tag().get(tag)
    if policy is None:
        raise PolicyError(f"unknown platform tag {tag!r}")
    return policy
