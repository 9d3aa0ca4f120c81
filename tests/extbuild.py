"""Build real, loadable Python extension wheels that need libraries outside every policy, for the
repair tests.

Unlike elfbuild's stubs these link against the real libc and are imported for real: an extension
`fa_graft_demo._native` calls into `libfagraft.so.1` (built here, in a folder only LD_LIBRARY_PATH
names), which itself needs `libfainner.so.2` (built here too, so a grafted library needs another
grafted one), and into Debian's libsqlite3.so.0 (a real system library).
"""
from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

from tests.elfbuild import _run, pack_wheel

EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
PY_TAG = f"cp{sysconfig.get_config_var('py_version_nodot')}"
SQLITE = "libsqlite3.so.0"

_INNER_C = """
int fainner_base(void) { return 40; }
"""

_GRAFT_C = """
int fainner_base(void);
int fagraft_answer(void) { return fainner_base() + 2; }
"""

_EXTENSION_C = """
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int fagraft_answer(void);
const char *sqlite3_libversion(void);

static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(fagraft_answer()); }
static PyObject *sqlite_version(PyObject *self, PyObject *args) { return PyUnicode_FromString(sqlite3_libversion()); }

static PyMethodDef methods[] = {
    {"answer", answer, METH_NOARGS, "42, from two grafted libraries"},
    {"sqlite_version", sqlite_version, METH_NOARGS, "the version of the libsqlite3 that was loaded"},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"""


@dataclass(frozen=True)
class GraftDemo:
    wheel: Path        # fa_graft_demo-1.0-<py>-<py>-linux_x86_64.whl
    deps: Path         # the folder holding libfagraft.so.1 and libfainner.so.2 (LD_LIBRARY_PATH only)


def _shared(workdir: Path, name: str, soname: str, source: str, *link: str) -> Path:
    src = workdir / f"{name}.c"
    src.write_text(source)
    out = workdir / soname
    _run(["gcc", "-shared", "-fPIC", "-O1", f"-Wl,-soname,{soname}", "-o", out, src, *link])
    return out


def build_graft_demo(workdir: Path, out_dir: Path) -> GraftDemo:
    """The extension wheel, as a fresh `pip wheel` on this machine would leave it: tagged linux_x86_64."""
    deps = workdir / "deps"
    deps.mkdir(parents=True, exist_ok=True)
    _shared(deps, "fainner", "libfainner.so.2", _INNER_C)
    _shared(deps, "fagraft", "libfagraft.so.1", _GRAFT_C, f"-L{deps}", "-l:libfainner.so.2")
    src = workdir / "native.c"
    src.write_text(_EXTENSION_C)
    extension = workdir / f"_native{EXT_SUFFIX}"
    _run(["gcc", "-shared", "-fPIC", "-O1", f"-I{sysconfig.get_paths()['include']}", "-o", extension, src,
          f"-L{deps}", "-l:libfagraft.so.1", f"-l:{SQLITE}"])
    files = {
        "fa_graft_demo/__init__.py": b"from fa_graft_demo._native import answer, sqlite_version\n",
        f"fa_graft_demo/_native{EXT_SUFFIX}": extension,
    }
    wheel = pack_wheel(out_dir, "fa_graft_demo", "1.0", f"{PY_TAG}-{PY_TAG}-linux_x86_64", files)
    return GraftDemo(wheel, deps)


_FA_B_C = """
int fa_b_base(void) { return 40; }
"""

_FA_A_C = """
int fa_b_base(void);
int fa_a_answer(void) { return fa_b_base() + 2; }
"""

_RPATH_EXTENSION_C = """
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int fa_a_answer(void);

static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(fa_a_answer()); }

static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, "42, from libfa_a and libfa_b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"""


@dataclass(frozen=True)
class RpathChainDemo:
    wheel: Path                  # fa_rpath_demo-1.0-<py>-<py>-linux_x86_64.whl
    libs: Path                   # the folder the extension's DT_RPATH names: libfa_a.so.1, libfa_b.so.1
    files: dict[str, Path | bytes]  # the wheel's members besides .dist-info, to pack variants of it


def build_rpath_chain_demo(workdir: Path, out_dir: Path) -> RpathChainDemo:
    """Issue 9's defect 2, as a real extension: its DT_RPATH (an absolute host folder, no
    LD_LIBRARY_PATH needed) finds libfa_a.so.1, whose DT_RUNPATH $ORIGIN finds libfa_b.so.1 beside it."""
    libs = workdir / "x"
    libs.mkdir(parents=True, exist_ok=True)
    _shared(libs, "fa_b", "libfa_b.so.1", _FA_B_C)
    _shared(libs, "fa_a", "libfa_a.so.1", _FA_A_C, f"-L{libs}", "-l:libfa_b.so.1", "-Wl,--enable-new-dtags",
            "-Wl,-rpath,$ORIGIN")
    src = workdir / "native.c"
    src.write_text(_RPATH_EXTENSION_C)
    extension = workdir / f"_native{EXT_SUFFIX}"
    _run(["gcc", "-shared", "-fPIC", "-O1", f"-I{sysconfig.get_paths()['include']}", "-o", extension, src,
          f"-L{libs}", "-l:libfa_a.so.1", "-Wl,--disable-new-dtags", f"-Wl,-rpath,{libs}"])
    files: dict[str, Path | bytes] = {
        "fa_rpath_demo/__init__.py": b"from fa_rpath_demo._native import answer\n",
        f"fa_rpath_demo/_native{EXT_SUFFIX}": extension,
    }
    wheel = pack_wheel(out_dir, "fa_rpath_demo", "1.0", f"{PY_TAG}-{PY_TAG}-linux_x86_64", files)
    return RpathChainDemo(wheel, libs, files)
