"""Real PyPI wheels for the slow tests, from the pinned lists in bench/corpus.

They are downloaded once into the cache (scripts/test.sh does it for the "ci" set). A wheel missing
from the cache is fetched here; when that fails (no network) the tests that need it are skipped
with the reason, loudly, instead of passing on nothing.
"""
from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import pytest

_FETCH_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "fetch_wheels.py"


@cache
def _fetch_module():
    spec = importlib.util.spec_from_file_location("fastaudit_bench_fetch_wheels", _FETCH_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus_wheels(set_name: str) -> list:
    """The wheels of a set as paths, or a single skip marker param when they cannot be had."""
    fetch = _fetch_module()
    try:
        return fetch.fetch(set_name)
    except fetch.FetchError as e:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"SKIPPED LOUDLY: real wheels of set {set_name!r} unavailable: {e}"))]
