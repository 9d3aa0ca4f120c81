"""The ELF reader's short fuzz run under AddressSanitizer and UBSan, as CI runs it.

fuzz/run.sh builds the debug extension of this work tree in a fresh venv (about 40 s from nothing
on a 2-core machine, downloads included) and runs the atheris harness fuzz/fuzz_elf.py for a fixed
number of executions: the box is a count, so a slow machine fuzzes as much, only longer. The long
run and its figures are in fuzz/RESULTS.md.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("FASTAUDIT_ASAN_FUZZ_RUNS", "150000"))
# only a guard against a hang: the build plus RUNS executions at ~4,800/s take about 75 s
TIMEOUT = 900


@pytest.mark.fuzz
def test_elf_reader_under_asan(tmp_path: Path) -> None:
    env = {**os.environ, "FUZZ_VENV": str(tmp_path / "venv"), "FUZZ_BUILD_DIR": str(tmp_path / "build"),
           "FUZZ_WORK": str(tmp_path / "work"), "FUZZ_REBUILD": "1"}
    # max_total_time far above what RUNS needs, so -runs is what ends the run
    proc = subprocess.run(["bash", str(REPO / "fuzz" / "run.sh"), str(TIMEOUT), f"-runs={RUNS}"], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT + 300, check=False)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-4000:]
    executions = re.search(r"^executions: (\d+)$", proc.stdout, re.MULTILINE)
    assert executions and int(executions[1]) >= RUNS, report[-2000:]
    assert re.search(r"^crashes: 0 file", proc.stdout, re.MULTILINE), report[-2000:]
