"""The `fastaudit` command line as a user runs it: a new process, exit codes, JSON that validates."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests import elfbuild

SCHEMA = json.loads(resources.files("fastaudit").joinpath("schema/show-v3.json").read_text())


def fastaudit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastaudit", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_consistent_wheel_exits_0_with_valid_json(scenarios: dict[str, elfbuild.Scenario]) -> None:
    proc = fastaudit("show", "--json", scenarios["glibc_2_17"].wheel)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["overall_tag"] == "manylinux_2_17_x86_64"
    assert report["fastaudit"]["over_promises"] is False


def test_over_promising_wheel_exits_1_and_says_why(scenarios: dict[str, elfbuild.Scenario]) -> None:
    proc = fastaudit("show", scenarios["glibc_2_34"].wheel)
    assert proc.returncode == 1
    assert "OVER-PROMISES" in proc.stdout
    assert "needs GLIBC_2.34 from libc.so.6" in proc.stdout


def test_linux_only_wheel_exits_1(scenarios: dict[str, elfbuild.Scenario]) -> None:
    proc = fastaudit("show", "--json", scenarios["external_libfoo"].wheel)
    assert proc.returncode == 1
    jsonschema.validate(json.loads(proc.stdout), SCHEMA)


def test_several_wheels_give_one_json_line_each(scenarios: dict[str, elfbuild.Scenario]) -> None:
    wheels = [scenarios[n].wheel for n in ("glibc_2_17", "glibc_2_34", "origin_chain")]
    proc = fastaudit("show", "--json", *wheels)
    lines = proc.stdout.splitlines()
    assert [json.loads(line)["wheel"] for line in lines] == [w.name for w in wheels]
    assert proc.returncode == 1  # the worst of the three


def test_pure_wheel_exits_0(tmp_path: Path) -> None:
    wheel = elfbuild.pack_wheel(tmp_path, "purepkg", "1.0", "py3-none-any", {"purepkg/__init__.py": b""})
    proc = fastaudit("show", "--json", wheel)
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["pure"] is True


@pytest.mark.parametrize("content, message", [
    (b"", "cannot open"),
    (b"PK\x03\x04 this is not a zip file at all", "not a readable zip file"),
])
def test_unreadable_wheel_exits_2_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    wheel = tmp_path / "broken-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    wheel.write_bytes(content)
    proc = fastaudit("show", wheel)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and wheel.name in proc.stderr
    assert "Traceback" not in proc.stderr


def test_truncated_elf_member_names_wheel_and_member(tmp_path: Path, scenarios: dict[str, elfbuild.Scenario]) -> None:
    ext = next(p for p in scenarios["glibc_2_17"].wheel.parent.parent.rglob("_core*.so"))
    wheel = elfbuild.pack_wheel(tmp_path, "cut", "1.0", "cp311-cp311-manylinux_2_17_x86_64",
                                {"cut/_core.so": ext.read_bytes()[:200]})
    proc = fastaudit("show", "--json", wheel)
    assert proc.returncode == 2
    error = json.loads(proc.stdout)
    jsonschema.validate(error, SCHEMA)
    assert "cut/_core.so" in error["error"] and wheel.name in error["error"]


def test_not_a_wheel_name_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "notawheel.zip"
    path.write_bytes(b"")
    proc = fastaudit("show", path)
    assert proc.returncode == 2 and "PEP 427" in proc.stderr


def test_lddtree_resolves_on_the_host() -> None:
    proc = fastaudit("lddtree", "--json", sys.executable)
    assert proc.returncode == 0, proc.stderr
    tree = json.loads(proc.stdout)
    libc = tree["libraries"].get("libc.so.6")
    assert libc is not None and libc["path"] and Path(libc["path"]).is_file()
