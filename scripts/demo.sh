#!/usr/bin/env bash
# Set up fastaudit and audit real PyPI wheels: downloads a pinned list (default: the small "ci"
# set; pass "dev" or "all" for the full corpus) into ~/.cache/fastaudit/wheels, then runs
# `fastaudit show` on every wheel and prints how many are consistent with their tags.
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${1:-ci}
VENV=${FASTAUDIT_VENV:-.venv}
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet .
mapfile -t WHEELS < <("$VENV/bin/python" bench/fetch_wheels.py --set "$SET")
status=0
"$VENV/bin/fastaudit" show "${WHEELS[@]}" || status=$?
echo
echo "audited ${#WHEELS[@]} wheels; exit status $status (0: all consistent, 1: some over-promise or are linux-only, 2: unreadable input)"
