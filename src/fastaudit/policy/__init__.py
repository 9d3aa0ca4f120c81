"""Which libraries and symbol versions each manylinux/musllinux platform tag allows.

The data is manylinux.json and musllinux.json beside this file, generated from auditwheel's policy
files by scripts/generate_policy.py, and musl-symbols.json, what musl's libc exports in each release
line, generated from musl's source by scripts/generate_musl_symbols.py; the "notes" inside them
describe the formats. builds.py reads the build images and glibc's default stack permissions.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

from fastaudit.errors import PolicyError
from fastaudit.policy.builds import data_bytes as builds_data_bytes
from fastaudit.policy.document import parse_family
from fastaudit.policy.model import LibcLine, Policy
from fastaudit.policy.stable_abi import data_bytes as stable_abi_bytes
from fastaudit.policy.symbols import parse_lines

__all__ = [
    "POLICY_DATA_VERSION",
    "LibcLine",
    "Policy",
    "known_arches",
    "libc_release_adding",
    "libc_symbols_beyond",
    "parse_family",
    "policies_for",
    "policy_for_tag",
]

# glibc comes first: its linux_<arch> policies are the ones the plain linux tags resolve to.
_DATA_FILES = {"glibc": "manylinux.json", "musl": "musllinux.json"}
# Symbol history for a libc without symbol versions; glibc's versions say the same thing per symbol.
_SYMBOL_FILES = {"musl": "musl-symbols.json"}


@functools.cache
def _data_bytes(libc: str) -> bytes:
    if libc not in _DATA_FILES:
        raise PolicyError(f"unknown libc {libc!r}, expected one of {sorted(_DATA_FILES)}")
    return resources.files(__name__).joinpath(_DATA_FILES[libc]).read_bytes()


@functools.cache
def _symbol_bytes(libc: str) -> bytes:
    return resources.files(__name__).joinpath(_SYMBOL_FILES[libc]).read_bytes()


def _data_version() -> str:
    digest = hashlib.sha256()
    for libc in _DATA_FILES:
        digest.update(_data_bytes(libc))
    for libc in _SYMBOL_FILES:
        digest.update(_symbol_bytes(libc))
    digest.update(stable_abi_bytes())  # the abi3 check judges by it too
    digest.update(builds_data_bytes("stack-defaults.json"))  # and the executable-stack check by this
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


@functools.cache
def _libc_lines(libc: str) -> tuple[tuple[LibcLine, ...], Mapping[str, str]]:
    if libc not in _SYMBOL_FILES:
        return (), MappingProxyType({})
    document = json.loads(_symbol_bytes(libc))
    if document.get("libc") != libc:
        raise PolicyError(f"{_SYMBOL_FILES[libc]} describes libc {document.get('libc')!r}, not {libc}")
    return parse_lines(document, _family(libc))


@functools.cache
def libc_symbols_beyond(policy: Policy) -> Mapping[str, str]:
    """Symbol -> release, for what the libc of a newer release line exports and that of the
    policy's line does not: importing one of them rules the policy out. Empty for the newest line,
    for linux, and for glibc, whose symbol versions carry this fact.
    """
    lines, word_sizes = _libc_lines(policy.libc)
    if policy.is_linux or not lines:
        return MappingProxyType({})
    word_size = word_sizes[policy.arch]
    older = set().union(*(line.added[word_size] for line in lines if line.libc_version <= policy.libc_version))
    return MappingProxyType({symbol: release for line in lines if line.libc_version > policy.libc_version
                             for symbol, release in line.added[word_size].items() if symbol not in older})


def libc_release_adding(libc: str, symbol: str) -> str | None:
    """The first release of libc whose library exports symbol, on any word size; None if unrecorded."""
    lines, _ = _libc_lines(libc)
    releases = [line.added[size][symbol] for line in lines for size in line.added if symbol in line.added[size]]
    return min(releases, key=lambda release: tuple(int(part) for part in release.split(".")), default=None)
