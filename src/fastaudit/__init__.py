"""fastaudit: audit and repair manylinux/musllinux wheels with a native ELF reader.

`audit_wheel(path) -> WheelReport` and `read_elf(buffer) -> ElfInfo` are the Python API. They are
imported on first use, so that `fastaudit.policy` and `fastaudit.errors` load without the compiled
extension or numpy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["ElfInfo", "WheelReport", "__version__", "audit_wheel", "read_elf"]

if TYPE_CHECKING:
    from fastaudit.analyze import WheelReport, audit_wheel
    from fastaudit.elf import ElfInfo, read_elf

_LAZY = {
    "audit_wheel": "fastaudit.analyze",
    "WheelReport": "fastaudit.analyze",
    "read_elf": "fastaudit.elf",
    "ElfInfo": "fastaudit.elf",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastaudit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
