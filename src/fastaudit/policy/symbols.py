"""Read a libc symbol history file (musl-symbols.json; format in its "notes") into LibcLine values."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from fastaudit.errors import PolicyError
from fastaudit.policy.model import LibcLine, Policy

FORMAT = "fastaudit-libc-symbols/1"


def parse_lines(document: Mapping[str, Any],
                family: Sequence[Policy]) -> tuple[tuple[LibcLine, ...], Mapping[str, str]]:
    """The lines, oldest first, and arch -> word size, checked against the family's policies.

    Raises PolicyError for malformed data, a line that names no policy of the family (or names it
    with another libc version), lines out of order, or a policy arch with no word size.
    """
    if document.get("format") != FORMAT:
        raise PolicyError(f"libc symbol data format is {document.get('format')!r}, expected {FORMAT!r}")
    try:
        libc = document["libc"]
        word_sizes = MappingProxyType({str(arch): str(size) for arch, size in document["arch_word_sizes"].items()})
        lines = tuple(
            LibcLine(
                libc=libc,
                policy=line["policy"],
                libc_version=(int(line["libc_version"][0]), int(line["libc_version"][1])),
                releases=tuple(line["releases"]),
                added=MappingProxyType({str(size): MappingProxyType(dict(symbols))
                                        for size, symbols in line["added"].items()}),
            )
            for line in document["lines"]
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise PolicyError(f"malformed libc symbol data: {exc!r}") from exc
    _check(lines, word_sizes, family)
    return lines, word_sizes


def _check(lines: Sequence[LibcLine], word_sizes: Mapping[str, str], family: Sequence[Policy]) -> None:
    versions = {p.name: p.libc_version for p in family if not p.is_linux}
    for line in lines:
        if versions.get(line.policy, ()) != line.libc_version:
            raise PolicyError(f"libc symbol line {line.policy} {line.libc_version} names no policy of the family")
        if set(line.added) != set(word_sizes.values()):
            raise PolicyError(f"libc symbol line {line.policy} has word sizes {sorted(line.added)}, "
                              f"expected {sorted(set(word_sizes.values()))}")
    if [line.libc_version for line in lines] != sorted({line.libc_version for line in lines}):
        raise PolicyError("libc symbol lines must be distinct and oldest first")
    missing = sorted({p.arch for p in family if not p.is_linux} - set(word_sizes))
    if missing:
        raise PolicyError(f"libc symbol data gives no word size for {missing}")
