"""The Policy value: what one platform tag allows on one architecture."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LINUX = "linux"


@dataclass(frozen=True)
class Policy:
    """One platform tag (e.g. manylinux_2_17) on one architecture.

    Comparisons order by priority alone: a higher priority is an older, more widely compatible tag.
    Within one libc family and arch priorities are distinct, so that order is total there.
    """

    name: str
    arch: str
    libc: str
    priority: int
    aliases: tuple[str, ...]
    libc_version: tuple[int, int] | None
    # Mappings cannot be hashed; they still take part in equality.
    symbol_versions: Mapping[str, frozenset[str]] = field(hash=False)
    whitelist: frozenset[str]
    blacklist: Mapping[str, frozenset[str]] = field(hash=False)

    @property
    def tag(self) -> str:
        return f"{self.name}_{self.arch}"

    @property
    def alias_tags(self) -> tuple[str, ...]:
        return tuple(f"{alias}_{self.arch}" for alias in self.aliases)

    @property
    def is_linux(self) -> bool:
        """The plain linux tag: no whitelist, no symbol version limits; every wheel satisfies it."""
        return self.name == LINUX

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Policy):
            return NotImplemented
        return self.priority < other.priority

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Policy):
            return NotImplemented
        return self.priority <= other.priority

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Policy):
            return NotImplemented
        return self.priority > other.priority

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Policy):
            return NotImplemented
        return self.priority >= other.priority


@dataclass(frozen=True)
class LibcLine:
    """The symbols one libc release line (the one a policy names, e.g. musl 1.2 for musllinux_1_2)
    exports that no earlier line did, per word size, each with the release that first exported it."""

    libc: str
    policy: str
    libc_version: tuple[int, int]
    releases: tuple[str, ...]
    # word size ("32", "64") -> symbol -> release
    added: Mapping[str, Mapping[str, str]] = field(hash=False)
