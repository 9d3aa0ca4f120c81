#!/usr/bin/env bash
# Set up a virtual environment with the test dependencies, fetch the CI wheel subset once into the
# cache, and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Headless Chromium for the report's browser test (tests/integration/test_report.py): Debian's
# package, as root in CI (through sudo elsewhere); a no-op where it is already installed.
if ! command -v chromium >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
        || echo "warning: could not install chromium; the report's browser test will skip" >&2
fi
VENV=${FASTAUDIT_VENV:-.venv}
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet ".[test]"
# Real PyPI wheels for the differential tests; when PyPI is unreachable those tests skip loudly.
"$VENV/bin/python" bench/fetch_wheels.py --set ci >/dev/null || echo "warning: could not fetch the CI wheels" >&2
# Run from tests/ against the installed package, not the source tree (which has no built extension).
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
