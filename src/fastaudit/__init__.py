"""fastaudit: audit and repair manylinux/musllinux wheels with a native ELF reader."""
from fastaudit.elf import ElfInfo, read_elf

__version__ = "0.1.0"

__all__ = ["ElfInfo", "read_elf", "__version__"]
