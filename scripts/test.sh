#!/usr/bin/env bash
# Set up a virtual environment with the test dependencies, fetch the CI wheel subset once into the
# cache, and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# System tools the tests use, from Debian: headless Chromium for the report's browser test,
# elfutils (eu-elflint) for the rewriter's tests, musl-tools (musl-gcc) and gcc-multilib (gcc -m32)
# for the musl verdict tests. As root in CI (through sudo elsewhere); a no-op where they are
# already installed.
PACKAGES=()
command -v chromium >/dev/null || PACKAGES+=(chromium)
command -v eu-elflint >/dev/null || PACKAGES+=(elfutils)
command -v musl-gcc >/dev/null || PACKAGES+=(musl-tools)
gcc -m32 -print-libgcc-file-name 2>/dev/null | grep -q /32/ || PACKAGES+=(gcc-multilib)
if [ ${#PACKAGES[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null; } \
        || echo "warning: could not install ${PACKAGES[*]}; the tests that need them will skip" >&2
fi
VENV=${FASTAUDIT_VENV:-.venv}
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet ".[test]"
# Debian 13's glibc 2.41, unpacked into the cache once: the executable-stack tests dlopen under it.
bash scripts/fetch_trixie_glibc.sh >/dev/null || echo "warning: could not fetch trixie's libc6; the glibc 2.41 tests will skip" >&2
# Real PyPI wheels for the differential tests; when PyPI is unreachable those tests skip loudly.
"$VENV/bin/python" bench/fetch_wheels.py --set ci >/dev/null || echo "warning: could not fetch the CI wheels" >&2
# Run from tests/ against the installed package, not the source tree (which has no built extension).
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
