"""fastaudit: audit and repair manylinux/musllinux wheels with a native ELF reader.

`audit_wheel(path) -> WheelReport`, `repair_wheel(path, out_dir, options) -> RepairResult`,
`read_elf(buffer) -> ElfInfo` and `rewrite_elf(buffer, ElfEdits) -> bytes` are the Python API. They are
imported on first use, so that `fastaudit.policy` and `fastaudit.errors` load without the compiled
extension or numpy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

__all__ = ["ElfEdits", "ElfInfo", "RepairOptions", "RepairResult", "WheelReport", "__version__", "audit_wheel",
           "read_elf", "repair_wheel", "rewrite_elf"]

if TYPE_CHECKING:
    from fastaudit.analyze import WheelReport, audit_wheel
    from fastaudit.elf import ElfEdits, ElfInfo, read_elf, rewrite_elf
    from fastaudit.repair import RepairOptions, RepairResult, repair_wheel

_LAZY = {
    "audit_wheel": "fastaudit.analyze",
    "WheelReport": "fastaudit.analyze",
    "read_elf": "fastaudit.elf",
    "ElfInfo": "fastaudit.elf",
    "rewrite_elf": "fastaudit.elf",
    "ElfEdits": "fastaudit.elf",
    "repair_wheel": "fastaudit.repair",
    "RepairOptions": "fastaudit.repair",
    "RepairResult": "fastaudit.repair",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastaudit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
