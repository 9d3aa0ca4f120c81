#!/usr/bin/env bash
# The main job, on a fresh machine: set up fastaudit, download a pinned set of real PyPI wheels
# (default: the small "ci" set; "dev" or "all" for the full corpus) into ~/.cache/fastaudit/wheels,
# lay them out as a small bandersnatch mirror in demo/mirror, scan it into the SQLite store
# demo/fastaudit.db, and write the nightly report into demo/report.
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${1:-ci}
VENV=${FASTAUDIT_VENV:-.venv}
OUT=${FASTAUDIT_DEMO_DIR:-demo}
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet .
mapfile -t WHEELS < <("$VENV/bin/python" bench/fetch_wheels.py --set "$SET")
mkdir -p "$OUT"
"$VENV/bin/python" scripts/mirror_layout.py "$OUT/mirror" "${WHEELS[@]}"
status=0
"$VENV/bin/fastaudit" scan "$OUT/mirror" --db "$OUT/fastaudit.db" || status=$?
if [ "$status" -ne 0 ]; then
    echo "scan failed with exit status $status" >&2
    exit "$status"
fi
"$VENV/bin/fastaudit" report --db "$OUT/fastaudit.db" -o "$OUT/report"
echo
echo "report: $(cd "$OUT/report" && pwd)/report.html (also report.md and report.json beside it)"
