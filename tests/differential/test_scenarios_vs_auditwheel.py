"""The gcc-built scenario wheels judged by the real auditwheel: its verdict is the one the scenario
records, so the expectations test_analyze checks fastaudit against are the oracle's, not ours."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import elfbuild


@pytest.mark.parametrize("name", sorted(elfbuild.SCENARIOS))
def test_auditwheel_agrees_with_scenario(scenarios: dict[str, elfbuild.Scenario], name: str) -> None:
    scenario = scenarios[name]
    proc = subprocess.run([sys.executable, "-m", "auditwheel", "show", "--json", str(scenario.wheel)],
                          capture_output=True, text=True, timeout=300, check=True)
    theirs = json.loads(proc.stdout)
    assert theirs["overall_tag"] == scenario.overall_tag
    assert theirs["sym_tag"] == scenario.sym_tag
    assert sorted(theirs["external_libs"]) == sorted(scenario.external_libs)
    assert theirs["unsupported_isa"] == scenario.unsupported_isa
