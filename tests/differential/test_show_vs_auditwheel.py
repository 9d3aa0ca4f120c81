"""fastaudit show against the real `auditwheel show --json` on real PyPI wheels.

The set comes from bench/corpus (FASTAUDIT_DIFF_SET: "ci" by default, "dev" or "all" for the full
corpus). Verdicts must be equal, except where auditwheel depends on the host it runs on; each such
case is recognised from the wheel's own bytes (readelf evidence), never from a list of names.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastaudit.analyze import audit_wheel
from fastaudit.errors import WheelError
from fastaudit.lddtree import is_dynamic_loader
from fastaudit.results import to_json
from tests.corpus import corpus_wheels
from tests.differential.known_auditwheel_differences import explain_difference, host_library_versions

AUDITWHEEL = [sys.executable, "-m", "auditwheel"]
DIFF_SET = os.environ.get("FASTAUDIT_DIFF_SET", "ci")


def _auditwheel_show(wheel: Path) -> tuple[int, dict | None, str]:
    proc = subprocess.run([*AUDITWHEEL, "show", "--json", "--allow-pure-python-wheel", str(wheel)],
                          capture_output=True, text=True, timeout=900)
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        return proc.returncode, None, proc.stderr


WHEELS = corpus_wheels(DIFF_SET)


@pytest.mark.slow
@pytest.mark.parametrize("wheel", WHEELS, ids=lambda w: getattr(w, "name", "unavailable"))
def test_same_verdict_as_auditwheel(wheel: Path) -> None:
    code, theirs, stderr = _auditwheel_show(wheel)
    try:
        ours = to_json(audit_wheel(wheel))
    except WheelError as e:
        # neither tool audits a macOS or Windows wheel; both say so
        assert "not a Linux wheel" in str(e)
        assert theirs is not None and "error" in theirs and code != 0
        return
    if theirs is not None and theirs.get("pure") is True:
        assert ours["pure"] is True
        return
    if theirs is not None and "overall_tag" in theirs and theirs["overall_tag"] == ours.get("overall_tag"):
        # the same tag for the same reasons: the symbol versions auditwheel read, which include
        # those of any library it resolved on this host (readelf shows what those need)
        expected = {k: set(v) for k, v in ours["versioned_symbols"].items()}
        for library, names in host_library_versions(theirs).items():
            if not is_dynamic_loader(library):
                expected.setdefault(library, set()).update(names)
        assert {k: set(v) for k, v in theirs["versioned_symbols"].items()} == expected
        if not any(theirs["external_libs"].values()):
            assert ours["sym_tag"] == theirs["sym_tag"]
        return
    explanation = explain_difference(wheel, ours, theirs, stderr)
    assert explanation is not None, (
        f"unexplained difference: ours {ours.get('overall_tag')}, auditwheel "
        f"{theirs.get('overall_tag') if theirs else 'failed'} (exit {code}): {stderr[-2000:]}")
    print(f"{wheel.name}: known auditwheel difference: {explanation}")
