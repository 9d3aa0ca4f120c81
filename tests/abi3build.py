"""Real limited-API extensions for the abi3 tests, built by gcc against this interpreter's headers
with Py_LIMITED_API=0x03080000, and packed as wheels.

Each extension is what a real project's mistake looks like: a prototype copied from a newer
header (a function the 3.8 limited API does not have), a private `_Py` helper, a name of its own
that happens to start with `Py`, a weak import guarded at run time, a Py-named function another
library of the wheel provides.
"""
from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

from tests.elfbuild import _run, pack_wheel

LIMITED_API_38 = "0x03080000"
INCLUDE = sysconfig.get_paths()["include"]

_HEAD = f"""#define Py_LIMITED_API {LIMITED_API_38}
#include <Python.h>
"""

_MODULE = """
static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{name}", NULL, -1, NULL}};
PyMODINIT_FUNC PyInit_{name}(void) {{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    {body}
    return m;
}}
"""

# name -> (declarations, the body of PyInit after the module is created)
SOURCES: dict[str, tuple[str, str]] = {
    "clean": ("", 'if (PyModule_AddIntConstant(m, "answer", 42) < 0) { Py_DECREF(m); return NULL; }'),
    # PyModule_AddObjectRef joined the stable ABI in 3.10; the 3.8 headers hide it
    "needs310": ("PyAPI_FUNC(int) PyModule_AddObjectRef(PyObject *, const char *, PyObject *);",
                 'if (PyModule_AddObjectRef(m, "none", Py_None) < 0) { Py_DECREF(m); return NULL; }'),
    # a private helper libpython exports, outside the stable ABI
    "private": ("PyAPI_FUNC(Py_hash_t) _Py_HashBytes(const void *, Py_ssize_t);",
                'if (PyModule_AddIntConstant(m, "h", (long)_Py_HashBytes("x", 1)) < 0) { Py_DECREF(m); return NULL; }'),
    # its own exported function whose name starts with Py: not CPython's, never a violation
    "ownpy": ("PyAPI_FUNC(int) PyFoo_Answer(void);\nint PyFoo_Answer(void) { return 42; }",
              'if (PyModule_AddIntConstant(m, "answer", PyFoo_Answer()) < 0) { Py_DECREF(m); return NULL; }'),
    # the guard pattern: a weak import is NULL where the interpreter lacks it
    "guarded": ("extern int PyModule_AddObjectRef(PyObject *, const char *, PyObject *) __attribute__((weak));",
                'if (PyModule_AddObjectRef != NULL && PyModule_AddObjectRef(m, "none", Py_None) < 0)'
                ' { Py_DECREF(m); return NULL; }'),
    # a Py-named function of a library in the same wheel (as libpyside6 provides PySide's)
    "foreign": ("int PyFa_Provided(void);",
                'if (PyModule_AddIntConstant(m, "answer", PyFa_Provided()) < 0) { Py_DECREF(m); return NULL; }'),
    # what Py_DECREF calls in a free-threaded build without the limited API
    "freethreaded": ("PyAPI_FUNC(void) _Py_DecRefShared(PyObject *);",
                     'if (PyModule_AddIntConstant(m, "x", 1) < 0) { _Py_DecRefShared(m); return NULL; }'),
}

PROVIDER_C = "int PyFa_Provided(void) { return 7; }\n"
PROVIDER = "libpyfa.so"


@dataclass(frozen=True)
class Abi3Fixtures:
    objects: dict[str, Path]     # case -> the built extension (named <case>.abi3.so)
    provider: Path               # libpyfa.so, defining PyFa_Provided


def build_objects(workdir: Path) -> Abi3Fixtures:
    workdir.mkdir(parents=True, exist_ok=True)
    provider_src = workdir / "pyfa.c"
    provider_src.write_text(PROVIDER_C)
    provider = workdir / PROVIDER
    _run(["gcc", "-shared", "-fPIC", "-O1", f"-Wl,-soname,{PROVIDER}", "-o", provider, provider_src])
    objects = {}
    for case, (declarations, body) in SOURCES.items():
        src = workdir / f"{case}.c"
        src.write_text(_HEAD + declarations + "\n" + _MODULE.format(name=case, body=body))
        out = workdir / f"{case}.abi3.so"
        link = [f"-L{workdir}", "-l:" + PROVIDER] if case == "foreign" else []
        _run(["gcc", "-shared", "-fPIC", "-O1", f"-I{INCLUDE}", "-o", out, src, *link])
        objects[case] = out
    return Abi3Fixtures(objects, provider)


def pack(fixtures: Abi3Fixtures, out_dir: Path, case: str, tag: str = "cp38-abi3-linux_x86_64",
         member: str | None = None) -> Path:
    """A wheel holding one extension (as `fa_<case>/<member>`, default `<case>.abi3.so`)."""
    files: dict[str, Path | bytes] = {
        f"fa_{case}/__init__.py": b"",
        f"fa_{case}/{member or case + '.abi3.so'}": fixtures.objects[case],
    }
    if case == "foreign":
        files[f"fa_{case}/{PROVIDER}"] = fixtures.provider
    return pack_wheel(out_dir / tag, f"fa_{case}", "1.0", tag, files)
