"""Shared fixtures, and a guard that fails any test whose captured stderr shows "Exception ignored".

The gcc-built objects and wheels are built once per session in a temporary directory. gcc is a hard
requirement: without it the fixtures raise elfbuild.BuildError and every test using them errors.
"""
from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from tests import elfbuild
from tests.corpus import corpus_wheels

pytest_plugins = ["pytester"]  # tests/unit/test_fixtures.py runs inner sessions to test the guard

EXCEPTION_IGNORED = "Exception ignored"


def pytest_configure(config: pytest.Config) -> None:
    # pytest routes sys.unraisablehook into a PytestUnraisableExceptionWarning, so an exception
    # swallowed in __del__ or a Cython `noexcept` function never reaches stderr: make it an error.
    config.addinivalue_line("filterwarnings", "error::pytest.PytestUnraisableExceptionWarning")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                             ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail a passing phase whose captured stderr shows an exception that was swallowed.

    This catches what bypasses sys.unraisablehook: messages printed straight to file descriptor 2,
    by C code or by a child process that inherited it.
    """
    report = yield
    section = f"Captured stderr {report.when}"
    for title, content in report.sections:
        if title == section and EXCEPTION_IGNORED in content and report.passed:
            report.outcome = "failed"
            report.longrepr = f"captured stderr shows {EXCEPTION_IGNORED!r}:\n{content}"
    return report


@pytest.fixture(scope="session")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("elfbuild")


@pytest.fixture(scope="session")
def stub_libs(build_root: Path) -> elfbuild.StubLibs:
    """Link-time stubs of libc.so.6, libz.so.1 and libstdc++.so.6 (never shipped, never loaded)."""
    return elfbuild.build_stubs(build_root / "stubs")


@pytest.fixture(scope="session")
def scenarios(build_root: Path, stub_libs: elfbuild.StubLibs) -> dict[str, elfbuild.Scenario]:
    """Every wheel scenario of elfbuild.SCENARIOS, by name, with auditwheel's verdict."""
    return elfbuild.build_scenarios(build_root / "objects", stub_libs, build_root / "wheels")


@pytest.fixture(scope="session")
def built_objects(build_root: Path, scenarios: dict[str, elfbuild.Scenario]) -> list[Path]:
    """Every ELF file the session built: stubs, extensions, grafted and unshipped libraries."""
    del scenarios  # requested only so that everything is built before the walk
    found = []
    for path in sorted(build_root.rglob("*")):
        if path.is_file() and path.suffix not in (".c", ".map", ".whl"):
            with path.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(path)
    return found


@pytest.fixture(scope="session")
def ci_wheels() -> list[Path]:
    """The real PyPI wheels of the ci set (bench/corpus/ci-wheels.txt), or a loud skip without them."""
    wheels = corpus_wheels("ci")
    if not all(isinstance(w, Path) for w in wheels):
        pytest.skip(wheels[0].marks[0].kwargs["reason"])
    return wheels
