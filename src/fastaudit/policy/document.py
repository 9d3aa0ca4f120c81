"""Read one policy data file (our own format, described in its "notes") into Policy values."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from fastaudit.errors import PolicyError
from fastaudit.policy.consistency import check_family
from fastaudit.policy.model import Policy

FORMAT = "fastaudit-policy/1"
# Key in a prefix's version table for the versions every arch of the policy allows.
ALL_ARCHES = "*"
MUSL_ARCH_PLACEHOLDER = "{musl_arch}"


def parse_family(document: Mapping[str, Any]) -> tuple[Policy, ...]:
    """Every (tag, arch) policy of one decoded data file, after checking the data is consistent.

    Raises PolicyError for malformed data or data that breaks the rules in consistency.py.
    """
    if document.get("format") != FORMAT:
        raise PolicyError(f"policy data format is {document.get('format')!r}, expected {FORMAT!r}")
    try:
        libc = document["libc"]
        musl_arch_names = document.get("musl_arch_names", {})
        entries = document["policies"]
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"malformed policy data: missing {exc}") from exc
    policies = tuple(
        policy for entry in entries for policy in _expand_entry(entry, libc, musl_arch_names)
    )
    check_family(policies)
    return policies


def _expand_entry(
    entry: Mapping[str, Any], libc: str, musl_arch_names: Mapping[str, str]
) -> Iterator[Policy]:
    """One Policy per arch the entry lists."""
    name = entry.get("name", "<unnamed>")
    try:
        arches = list(entry["arches"])
        version_tables = entry["symbol_versions"]
        for prefix, table in version_tables.items():
            # A misspelt arch key would otherwise be ignored silently.
            stray = set(table) - {ALL_ARCHES, *arches}
            if stray or ALL_ARCHES not in table:
                raise PolicyError(
                    f"policy {name}: {prefix} versions need a {ALL_ARCHES!r} entry and keys from "
                    f"its arches only, found {sorted(table)}"
                )
        libc_version = _libc_version(entry["libc_version"])
        blacklist = MappingProxyType(
            {lib: frozenset(symbols) for lib, symbols in entry["blacklist"].items()}
        )
        for arch in arches:
            yield Policy(
                name=name,
                arch=arch,
                libc=libc,
                priority=int(entry["priority"]),
                aliases=tuple(entry["aliases"]),
                libc_version=libc_version,
                symbol_versions=_symbol_versions_for(version_tables, arch),
                whitelist=frozenset(
                    _soname_for(lib, arch, musl_arch_names, name) for lib in entry["whitelist"]
                ),
                blacklist=blacklist,
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"malformed policy {name}: {exc!r}") from exc


def _libc_version(raw: list[int] | None) -> tuple[int, int] | None:
    if raw is None:
        return None
    major, minor = raw
    return int(major), int(minor)


def _symbol_versions_for(
    tables: Mapping[str, Mapping[str, list[str]]], arch: str
) -> Mapping[str, frozenset[str]]:
    """prefix -> full symbol version names ("GLIBC_2.17") this arch allows."""
    return MappingProxyType(
        {
            prefix: frozenset(
                f"{prefix}_{version}" for version in (*table[ALL_ARCHES], *table.get(arch, ()))
            )
            for prefix, table in tables.items()
        }
    )


def _soname_for(lib: str, arch: str, musl_arch_names: Mapping[str, str], policy: str) -> str:
    if MUSL_ARCH_PLACEHOLDER not in lib:
        return lib
    if arch not in musl_arch_names:
        raise PolicyError(f"policy {policy}: no musl spelling of arch {arch} for {lib}")
    return lib.replace(MUSL_ARCH_PLACEHOLDER, musl_arch_names[arch])
