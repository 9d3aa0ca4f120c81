"""Random edit plans on real shared objects from PyPI wheels: what is read back is exactly what was
planned, every other dynamic entry is unchanged, and each rewritten x86-64 glibc object still loads.

The objects are the extensions and grafted libraries of the ci wheel set (pillow, psycopg2-binary,
and five other architectures); FASTAUDIT_DIFF_SET=dev or all adds numpy, scipy and the rest.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from fastaudit.elf import ElfEdits, read_elf, rewrite_elf
from fastaudit.errors import ELFError, RepairError
from tests import elfcheck
from tests.corpus import corpus_wheels

EXAMPLES = int(os.environ.get("FASTAUDIT_REWRITE_EXAMPLES", "200"))
PER_WHEEL = 6   # shared objects taken from each wheel


class SharedObject:
    """One shared object of a wheel, and what its siblings allow (a plain class: hypothesis prints
    dataclasses field by field, megabytes of ELF included)."""

    def __init__(self, member: str, data: bytes, folders: tuple[Path, ...], loadable: bool,
                 wheel_deps: dict[str, Path]) -> None:
        self.member = member
        self.data = data
        self.folders = folders          # every extracted folder of its wheel: what LD_LIBRARY_PATH names
        self.loadable = loadable        # the original loads here, so the rewritten one must too
        self.wheel_deps = wheel_deps    # its DT_NEEDED names shipped in the wheel: safe to rename and copy

    def __repr__(self) -> str:
        return f"SharedObject({self.member!r})"


def _wheels() -> list[Path]:
    wheel_set = os.environ.get("FASTAUDIT_DIFF_SET", "ci")
    wheels = [w for w in corpus_wheels(wheel_set) if isinstance(w, Path)]
    if not wheels:
        pytest.skip(f"SKIPPED LOUDLY: the {wheel_set} wheel set is unavailable")
    return [w for w in wheels if not w.name.endswith("-any.whl")]


@pytest.fixture(scope="module")
def shared_objects(tmp_path_factory: pytest.TempPathFactory) -> list[SharedObject]:
    root = tmp_path_factory.mktemp("wheels")
    found = []
    for index, wheel in enumerate(_wheels()):
        folder = root / str(index)
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if (n.endswith(".so") or ".so." in n) and not n.endswith("/")]
            zf.extractall(folder, names)  # all of them: the tested ones load their siblings
        # grafted libraries first: they are what repair rewrites most
        names.sort(key=lambda n: (".libs/" not in n, n))
        by_name = {Path(n).name: folder / n for n in names}
        folders = tuple(sorted({p.parent for p in by_name.values()}))
        for name in names[:PER_WHEEL]:
            data = (folder / name).read_bytes()
            if data[:4] != b"\x7fELF":
                continue
            info = read_elf(data)
            env = {**os.environ, "LD_LIBRARY_PATH": ":".join(map(str, folders))}
            loadable = info.arch == "x86_64" and "libc.so.6" in info.needed and \
                elfcheck.dlopen(folder / name, env).returncode == 0
            found.append(SharedObject(name, data, folders, loadable,
                                      {n: by_name[n] for n in info.needed if n in by_name}))
    assert found, "no shared objects in the wheels"
    return found


NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=24)
PATH_ENTRY = st.one_of(st.just("$ORIGIN"), NAME.map(lambda n: f"$ORIGIN/../{n}.libs"), NAME.map(lambda n: f"/opt/{n}"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
@given(data=st.data())
def test_random_plans_read_back_exactly_and_load(shared_objects: list[SharedObject], tmp_path: Path,
                                                  data: st.DataObject) -> None:
    obj = shared_objects[data.draw(st.integers(0, len(shared_objects) - 1), label="object")]
    note(obj.member)
    before = read_elf(obj.data)
    renamable = sorted(obj.wheel_deps) if obj.loadable else before.needed
    renamed = data.draw(st.lists(st.sampled_from(renamable), unique=True), label="renamed") if renamable else []
    new_names = {old: f"lib{data.draw(NAME, label='new name')}-{i}.so" for i, old in enumerate(renamed)}
    removable = [n for n in before.needed if n not in new_names]
    removed = [] if obj.loadable or not removable else data.draw(
        st.lists(st.sampled_from(removable), unique=True, max_size=2), label="removed")
    soname = data.draw(st.one_of(st.none(), st.just(""), NAME.map(lambda n: f"lib{n}.so.1")), label="soname")
    which = data.draw(st.sampled_from(["rpath", "runpath", None]), label="search path kind")
    entries = data.draw(st.lists(PATH_ENTRY, min_size=0, max_size=3), label="search path")
    renamed_dir = tmp_path / "renamed"
    if obj.loadable and new_names:
        entries.append(str(renamed_dir))  # where the renamed copies of its dependencies are
        which = which or "rpath"
    value = ":".join(entries)
    edits = ElfEdits(replace_needed=new_names, remove_needed=frozenset(removed), soname=soname,
                     rpath=value if which == "rpath" else None, runpath=value if which == "runpath" else None)

    out = rewrite_elf(obj.data, edits)
    after = read_elf(out)
    assert after.needed == tuple(new_names.get(n, n) for n in before.needed if n not in removed)
    assert after.soname == (before.soname if soname is None else soname or None)
    path = tuple(value.split(":")) if value else ()
    # setting one kind of search path drops the other; setting it empty just removes it
    if which == "rpath":
        assert (after.rpath, after.runpath) == (path, () if value else before.runpath)
    elif which == "runpath":
        assert (after.rpath, after.runpath) == (() if value else before.rpath, path)
    else:
        assert (after.rpath, after.runpath) == (before.rpath, before.runpath)
    assert after.version_requirements == {new_names.get(k, k): v for k, v in before.version_requirements.items()
                                          if k not in removed}
    assert after.version_definitions == before.version_definitions
    assert after.symbols.names == before.symbols.names
    assert elfcheck.unchanged_entries(out, bool(removed)) == elfcheck.unchanged_entries(obj.data, bool(removed))
    # idempotent: the same plan again, on its own output, changes nothing
    assert rewrite_elf(out, ElfEdits(soname=edits.soname, rpath=edits.rpath, runpath=edits.runpath)) == out

    if obj.loadable:
        target = tmp_path / Path(obj.member).name
        target.write_bytes(out)
        renamed_dir.mkdir(exist_ok=True)
        for old, new in new_names.items():
            shutil.copy(obj.wheel_deps[old], renamed_dir / new)
        env = {**os.environ, "LD_LIBRARY_PATH": ":".join(map(str, obj.folders))}
        loaded = elfcheck.dlopen(target, env)
        event(f"dlopen, {len(new_names)} dependencies renamed")
        assert loaded.returncode == 0, (obj.member, edits, loaded.stderr)


SEEDS = sorted((Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "elf").iterdir())


@settings(max_examples=int(os.environ.get("FASTAUDIT_REWRITE_MUTATIONS", "1500")), deadline=None)
@given(seed=st.sampled_from(SEEDS), flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                                     min_size=1, max_size=8),
       soname=st.sampled_from([None, "", "libx.so", "lib" + "y" * 80 + ".so"]),
       path=st.sampled_from([None, "", "$ORIGIN", "$ORIGIN/../" + "p" * 90]), rename=st.booleans())
def test_mutated_images_fail_only_with_typed_errors(seed: Path, flips: list[tuple[int, int]], soname: str | None,
                                                    path: str | None, rename: bool) -> None:
    """The rewriter on the fuzz seeds with bytes changed: a typed error or a file that reads back as
    planned (the CI slice of fuzz/fuzz_rewrite.py, which runs the same idea under ASan)."""
    data = bytearray(seed.read_bytes())
    for where, value in flips:
        data[where % len(data)] = value
    try:
        before = read_elf(bytes(data))
    except ELFError:
        before = None
    needed = before.needed if before else ()
    edits = ElfEdits(replace_needed={needed[0]: "libz" + "q" * 40 + ".so"} if rename and needed else {},
                     soname=soname, rpath=path)
    try:
        out = rewrite_elf(bytes(data), edits)
    except (ELFError, RepairError):
        return
    if before is None or not before.has_sections:
        return  # see fuzz/fuzz_rewrite.py: a stripped mutant's hash chains may run through .dynamic
    after = read_elf(out)
    assert after.needed == tuple(edits.replace_needed.get(n, n) for n in needed)
    if soname is not None:
        assert after.soname == (soname or None)
