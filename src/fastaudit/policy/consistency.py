"""Rules the policy data must obey. A violation means the data is wrong, so it stops loading."""
from __future__ import annotations

from collections.abc import Sequence

from fastaudit.errors import PolicyError
from fastaudit.policy.model import Policy


def check_family(policies: Sequence[Policy]) -> None:
    """Raise PolicyError unless one libc family's policies are consistent.

    - every tag and alias tag names a single policy;
    - each arch has one linux policy, ranked below every other policy of that arch;
    - on each arch priorities are distinct, fall as the libc version rises, and the libc version
      matches the name;
    - a newer policy (lower priority) allows everything an older one allows on the same arch: its
      whitelist and, per prefix, its symbol versions, with the same prefixes checked.
    """
    _check_unique_tags(policies)
    for arch in sorted({policy.arch for policy in policies}):
        on_arch = [policy for policy in policies if policy.arch == arch]
        oldest_first = sorted((p for p in on_arch if not p.is_linux), reverse=True)
        _check_linux(arch, on_arch, oldest_first)
        for policy in oldest_first:
            _checked_libc_version(policy)  # raises if the version disagrees with the name
        for older, newer in zip(oldest_first, oldest_first[1:]):
            _check_ranked(older, newer)
            _check_superset(older, newer)


def _check_unique_tags(policies: Sequence[Policy]) -> None:
    owner: dict[str, str] = {}
    for policy in policies:
        for tag in (policy.tag, *policy.alias_tags):
            if tag in owner:
                raise PolicyError(
                    f"platform tag {tag} is defined twice ({owner[tag]}, {policy.tag})"
                )
            owner[tag] = policy.tag


def _check_linux(arch: str, on_arch: Sequence[Policy], others: Sequence[Policy]) -> None:
    linux = [policy for policy in on_arch if policy.is_linux]
    if not linux:
        raise PolicyError(f"arch {arch} has policies but no linux_{arch}")
    if not others:
        raise PolicyError(f"linux_{arch} is the only policy for arch {arch}")
    newest = others[-1]
    if linux[0].priority >= newest.priority:
        raise PolicyError(
            f"linux_{arch} must rank below every other policy, "
            f"but its priority {linux[0].priority} is not below {newest.tag}'s {newest.priority}"
        )


def _checked_libc_version(policy: Policy) -> tuple[int, int]:
    """The policy's libc version, once it is known to agree with the name (manylinux_2_17)."""
    version = policy.libc_version
    if version is None or not policy.name.endswith(f"_{version[0]}_{version[1]}"):
        raise PolicyError(f"{policy.tag}: libc version {version} does not match the name")
    return version


def _check_ranked(older: Policy, newer: Policy) -> None:
    if newer.priority == older.priority:
        raise PolicyError(f"{older.tag} and {newer.tag} share priority {older.priority}")
    if _checked_libc_version(newer) <= _checked_libc_version(older):
        raise PolicyError(
            f"{newer.tag} ranks below {older.tag} (priority {newer.priority} < {older.priority}) "
            f"but its libc version {newer.libc_version} is not newer than {older.libc_version}"
        )


def _check_superset(older: Policy, newer: Policy) -> None:
    missing_libs = older.whitelist - newer.whitelist
    if missing_libs:
        raise PolicyError(
            f"{newer.tag} whitelist lacks {sorted(missing_libs)}, which older {older.tag} allows"
        )
    if newer.symbol_versions.keys() != older.symbol_versions.keys():
        # An unchecked prefix allows everything, so adding or dropping one breaks the superset rule.
        raise PolicyError(
            f"{newer.tag} checks symbol version prefixes {sorted(newer.symbol_versions)}, "
            f"but older {older.tag} checks {sorted(older.symbol_versions)}"
        )
    for prefix, versions in older.symbol_versions.items():
        missing_versions = versions - newer.symbol_versions[prefix]
        if missing_versions:
            raise PolicyError(
                f"{newer.tag} {prefix} lacks {sorted(missing_versions)}, "
                f"which older {older.tag} allows"
            )
