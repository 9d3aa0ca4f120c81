"""Build the Cython ELF core.

FASTAUDIT_DEBUG_BUILD=1 turns on Cython bounds checks and AddressSanitizer/UBSan, for fuzzing.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTAUDIT_DEBUG_BUILD") == "1"

directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
}
compile_args = ["-O3"]
link_args: list[str] = []
if DEBUG:
    sanitize = "-fsanitize=address,undefined"
    compile_args = ["-O1", "-g", "-fno-omit-frame-pointer", sanitize]
    link_args = [sanitize]

extensions = [
    Extension(
        f"fastaudit.{name}",
        [f"src/fastaudit/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in ("_elf", "_elfedit", "_elfstrings")  # the walkers, the rewriter, the string scanner
]

# force: a release _elf.c left over from an earlier build must not stand in for the debug one
setup(ext_modules=cythonize(extensions, compiler_directives=directives, force=DEBUG))
