"""`repair W1 W2 ...` (issue 14, item 1) against auditwheel 6.8 on the same inputs, in several
orders: two wheels that repair (real gcc-built extensions), one that cannot (a library nowhere to
be found), a pure wheel with and without --allow-pure-python-wheel, a platform wheel with no ELF
member, a path that does not exist.

auditwheel's loop, read in its main_repair.py and seen here: wheels in turn; the first failure ends
the call, the outputs before it stay, the wheels after it are not tried. It exits 2 for a path that
is not a file and for a tag it refuses, 1 (with a traceback) for a library it cannot find, and 1
for a pure wheel without the flag or a platform wheel with no ELF member. fastaudit stops where
auditwheel stops, with exit 2 and one line, except at a pure wheel, which it always copies
(README); the failed wheel leaves nothing, where auditwheel leaves the input, unrepaired, in the
wheelhouse after a library it cannot find. Each input has exactly one output.
"""
from __future__ import annotations

import shutil
import subprocess
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.elfbuild import _run, pack_wheel
from tests.extbuild import PY_TAG, build_graft_demo, build_rpath_chain_demo
from tests.integration.test_repair import BIN, environment, files_of, only_wheel, run


@dataclass(frozen=True)
class Inputs:
    good: Path       # fa_graft_demo: grafts two libraries built here and Debian's libsqlite3
    good2: Path      # fa_rpath_demo: grafts the DT_RPATH -> DT_RUNPATH $ORIGIN chain
    bad: Path        # fa_bad: needs libfanone.so.1, which no search path reaches
    pure: Path       # fa_pure-1.0-py3-none-any.whl
    no_elf: Path     # fa_noelf-1.0-<py>-<py>-linux_x86_64.whl with only Python in it
    missing: Path    # a path with no file
    env: dict[str, str]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("batch")
    dist = root / "dist"
    demo = build_graft_demo(root / "graft", dist)
    chain = build_rpath_chain_demo(root / "chain", dist)
    hidden = root / "hidden"
    hidden.mkdir()
    (hidden / "none.c").write_text("int fanone(void) { return 1; }\n")
    _run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libfanone.so.1", "-o", hidden / "libfanone.so.1", hidden / "none.c"])
    (root / "bad.c").write_text("int fanone(void);\nint fa_bad(void) { return fanone(); }\n")
    extension = root / f"_bad{sysconfig.get_config_var('EXT_SUFFIX')}"
    _run(["gcc", "-shared", "-fPIC", "-o", extension, root / "bad.c", f"-L{hidden}", "-l:libfanone.so.1"])
    tag = f"{PY_TAG}-{PY_TAG}-linux_x86_64"
    bad = pack_wheel(dist, "fa_bad", "1.0", tag, {"fa_bad/__init__.py": b"", f"fa_bad/{extension.name}": extension})
    pure = pack_wheel(dist, "fa_pure", "1.0", "py3-none-any", {"fa_pure/__init__.py": b"answer = 42\n"})
    no_elf = pack_wheel(dist, "fa_noelf", "1.0", tag, {"fa_noelf/__init__.py": b"answer = 42\n"})
    return Inputs(demo.wheel, chain.wheel, bad, pure, no_elf, dist / "fa_gone-1.0-py3-none-any.whl",
                  environment(demo.deps))


@dataclass(frozen=True)
class Outcome:
    returncode: int
    outputs: frozenset[str]   # the wheels in the wheelhouse afterwards
    stderr: str


def repair(tool: str, out: Path, wheels: list[Path], flags: tuple[str, ...], env: dict[str, str]) -> Outcome:
    ran = run(BIN / tool, "repair", "-w", out, *flags, *wheels, env=env)
    return Outcome(ran.returncode, frozenset(p.name for p in out.glob("*.whl")) if out.exists() else frozenset(),
                   ran.stderr)


@pytest.fixture(scope="module")
def alone(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each wheel repaired on its own, as cibuildwheel calls repair: input name -> its one output's
    name, the same from both tools."""
    names: dict[str, str] = {}
    for wheel in (inputs.good, inputs.good2, inputs.pure):
        out = tmp_path_factory.mktemp("alone")
        ours = repair("fastaudit", out / "ours", [wheel], ("--allow-pure-python-wheel",), inputs.env)
        theirs = repair("auditwheel", out / "theirs", [wheel], ("--allow-pure-python-wheel",), inputs.env)
        assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
        assert len(ours.outputs) == 1 and ours.outputs == theirs.outputs, (ours, theirs)
        assert files_of(only_wheel(out / "ours")) == files_of(only_wheel(out / "theirs"))
        names[wheel.name] = next(iter(ours.outputs))
    for wheel in (inputs.bad, inputs.no_elf):
        out = tmp_path_factory.mktemp("alone")
        ours = repair("fastaudit", out / "ours", [wheel], ("--allow-pure-python-wheel",), inputs.env)
        assert ours.returncode == 2 and ours.outputs == frozenset(), ours
    return names


# (order, flags, the index auditwheel stops at or None, its exit code); fastaudit stops at the same
# wheel except a pure one, which it copies
ORDERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], int | None, int]] = {
    "good, bad, good2": (("good", "bad", "good2"), (), 1, 1),
    "bad, good": (("bad", "good"), (), 0, 1),
    "good2, good": (("good2", "good"), (), None, 0),
    "pure, good": (("pure", "good"), (), 0, 1),
    "good, pure": (("good", "pure"), (), 1, 1),
    "pure, good with the flag": (("pure", "good"), ("--allow-pure-python-wheel",), None, 0),
    "good, no ELF, good2 with the flag": (("good", "no_elf", "good2"), ("--allow-pure-python-wheel",), 1, 1),
    "good, missing path, good2": (("good", "missing", "good2"), (), 1, 2),
}


@pytest.mark.parametrize("case", list(ORDERS))
def test_several_wheels_stop_where_auditwheel_stops(case: str, inputs: Inputs, alone: dict[str, str],
                                                    tmp_path: Path) -> None:
    order, flags, stops_at, auditwheel_code = ORDERS[case]
    wheels = [getattr(inputs, key) for key in order]
    theirs = repair("auditwheel", tmp_path / "theirs", wheels, flags, inputs.env)
    ours = repair("fastaudit", tmp_path / "ours", wheels, flags, inputs.env)

    # what auditwheel does, as its source says
    done = wheels if stops_at is None else wheels[:stops_at]
    leftover = {wheels[stops_at].name} if stops_at is not None and order[stops_at] == "bad" else set()
    assert theirs.returncode == auditwheel_code, theirs.stderr
    assert theirs.outputs == {alone[w.name] for w in done} | leftover, theirs

    # fastaudit: the same stop, except that a pure wheel never stops it
    our_stop = next((i for i, key in enumerate(order) if key in ("bad", "no_elf", "missing")), None)
    assert our_stop == stops_at or order[stops_at or 0] == "pure"
    our_done = wheels if our_stop is None else wheels[:our_stop]
    assert ours.outputs == {alone[w.name] for w in our_done}, ours
    assert len(ours.outputs) == len(our_done)  # one output per input repaired, none for the one that failed
    if our_stop is None:
        assert ours.returncode == 0, ours.stderr
    else:
        assert ours.returncode == 2 and "Traceback" not in ours.stderr
        errors = [line for line in ours.stderr.splitlines() if not line.startswith("fastaudit: warning:")]
        assert len(errors) == 1 and wheels[our_stop].name in errors[0], ours.stderr
        assert all(w.name not in ours.stderr for w in wheels[our_stop + 1:])  # never tried


def _members(wheel: Path) -> dict[str, bytes | Path]:
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist() if ".dist-info/" not in n}


def test_two_inputs_with_one_output_name_are_refused_where_auditwheel_keeps_the_last(inputs: Inputs,
                                                                                     tmp_path: Path) -> None:
    """Two different wheels of the same name (from two folders): auditwheel writes the second over
    the first; fastaudit repairs the first and refuses the second, so no result is lost unseen."""
    other = tmp_path / "other" / inputs.good2.name
    other.parent.mkdir()
    with_more = pack_wheel(tmp_path / "tmp", "fa_rpath_demo", "1.0", f"{PY_TAG}-{PY_TAG}-linux_x86_64",
                           {**_members(inputs.good2), "fa_rpath_demo/extra.py": b"more = 1\n"})
    shutil.move(with_more, other)
    theirs = repair("auditwheel", tmp_path / "theirs", [inputs.good2, other], (), inputs.env)
    assert theirs.returncode == 0 and len(theirs.outputs) == 1  # the first input's result is gone
    assert "fa_rpath_demo/extra.py" in files_of(only_wheel(tmp_path / "theirs"))

    ours = repair("fastaudit", tmp_path / "ours", [inputs.good2, other], (), inputs.env)
    assert ours.returncode == 2 and len(ours.stderr.splitlines()) == 1, ours.stderr
    assert f"{other}: its output {next(iter(ours.outputs))} would replace the one repaired from {inputs.good2}" \
        in ours.stderr
    assert "fa_rpath_demo/extra.py" not in files_of(only_wheel(tmp_path / "ours"))


def test_the_same_wheel_twice_is_repaired_twice_to_one_output(inputs: Inputs, tmp_path: Path) -> None:
    ours = repair("fastaudit", tmp_path / "ours", [inputs.good2, inputs.good2], (), inputs.env)
    theirs = repair("auditwheel", tmp_path / "theirs", [inputs.good2, inputs.good2], (), inputs.env)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.outputs == theirs.outputs and len(ours.outputs) == 1


def test_an_output_that_would_overwrite_another_input_is_refused(inputs: Inputs, alone: dict[str, str],
                                                                tmp_path: Path) -> None:
    """`-w dist dist/x-linux.whl dist/x-manylinux_2_34.whl`: the first one's output is the second
    input. auditwheel writes over it before reading it; fastaudit refuses and changes nothing."""
    for who in ("ours", "theirs"):
        (tmp_path / who).mkdir()
        shutil.copyfile(inputs.good2, tmp_path / who / inputs.good2.name)
        (tmp_path / who / alone[inputs.good2.name]).write_bytes(b"not yet read")  # what the first output replaces
    aw = tmp_path / "theirs"
    theirs = repair("auditwheel", aw, [aw / inputs.good2.name, aw / alone[inputs.good2.name]], (), inputs.env)
    assert theirs.returncode == 0 and (aw / alone[inputs.good2.name]).read_bytes().startswith(b"PK")

    dist = tmp_path / "ours"
    first, second = dist / inputs.good2.name, dist / alone[inputs.good2.name]
    ours = repair("fastaudit", dist, [first, second], (), inputs.env)
    assert ours.returncode == 2 and len(ours.stderr.splitlines()) == 1, ours.stderr
    assert f"its output would overwrite {second}, another wheel of this call" in ours.stderr
    assert second.read_bytes() == b"not yet read" and sorted(p.name for p in dist.iterdir()) == \
        sorted([first.name, second.name])


def test_cibuildwheels_one_wheel_calls_leave_exactly_one_wheel(inputs: Inputs, alone: dict[str, str],
                                                              tmp_path: Path) -> None:
    """cibuildwheel runs `repair -w {dest_dir} {wheel}` into an empty folder and refuses zero or
    several wheels there: every wheel that repairs leaves one; one that fails leaves none (where
    auditwheel leaves the unrepaired input after a library it cannot find)."""
    for index, wheel in enumerate((inputs.good, inputs.good2, inputs.pure)):
        dest = tmp_path / f"ok{index}"
        ran = subprocess.run([BIN / "fastaudit", "repair", "-w", dest, wheel], env=inputs.env, capture_output=True,
                             text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr
        assert [p.name for p in dest.iterdir()] == [alone[wheel.name]]
    ours = repair("fastaudit", tmp_path / "bad-ours", [inputs.bad], (), inputs.env)
    theirs = repair("auditwheel", tmp_path / "bad-theirs", [inputs.bad], (), inputs.env)
    assert ours.returncode == 2 and ours.outputs == frozenset()
    assert "libfanone.so.1" in ours.stderr and "Traceback" not in ours.stderr
    assert theirs.returncode == 1 and theirs.outputs == {inputs.bad.name} and "Traceback" in theirs.stderr


def test_a_platform_wheel_whose_only_elf_member_is_for_another_machine_is_refused_as_auditwheel_does(
        inputs: Inputs, tmp_path: Path) -> None:
    source = Path.home() / ".cache/fastaudit/wheels/PyYAML-5.4.1-cp39-cp39-manylinux2014_aarch64.whl"
    if not source.exists():
        pytest.skip("SKIPPED LOUDLY: the cached PyYAML aarch64 wheel is unavailable (bench/fetch_wheels.py)")
    with zipfile.ZipFile(source) as zf:
        extension = next(zf.read(n) for n in zf.namelist() if n.endswith(".so"))
    wheel = pack_wheel(tmp_path / "dist", "fa_foreign", "1.0", f"{PY_TAG}-{PY_TAG}-linux_x86_64",
                       {"fa_foreign/__init__.py": b"", "fa_foreign/_yaml.so": extension})
    ours = repair("fastaudit", tmp_path / "ours", [wheel, inputs.good2], (), inputs.env)
    theirs = repair("auditwheel", tmp_path / "theirs", [wheel, inputs.good2], (), inputs.env)
    assert theirs.returncode == 1 and theirs.outputs == frozenset(), theirs
    assert ours.returncode == 2 and ours.outputs == frozenset(), ours
    assert "nothing to repair: no ELF member to judge" in ours.stderr and "fa_foreign/_yaml.so" in ours.stderr
    assert "aarch64" in ours.stderr and len(ours.stderr.splitlines()) == 1, ours.stderr
