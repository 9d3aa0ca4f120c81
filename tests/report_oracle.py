"""The report's figures computed again, independently: plain SQL on the store file (its own JSON
parsing, its own version ordering) and a separate reading of platform tags, for the report tests
to compare with what `fastaudit report` wrote. Nothing here imports fastaudit.
"""
from __future__ import annotations

import re
import sqlite3
from collections import Counter
from typing import Any


def _run(join: str = "") -> str:
    """FROM ... WHERE for one run's wheels: result rows joined through run_wheels."""
    return (f"FROM run_wheels rw JOIN results r ON r.id = rw.result_id JOIN wheels w ON w.id = rw.wheel_id {join}"
            " WHERE rw.run_id = ?")


_RUN = _run()

# The newest GLIBC_x.y[.z] per wheel, ordered numerically in SQL (SQLite picks the bare column
# `ver` from the row holding the max).
_GLIBC = f"""
WITH v AS (
  SELECT rw.wheel_id AS wheel, substr(j2.value, 7) AS ver
  {_run("JOIN json_each(r.report, '$.versioned_symbols') j1 JOIN json_each(j1.value) j2")}
    AND r.status = 'ok' AND r.libc = 'glibc' AND j2.value GLOB 'GLIBC_[0-9]*'
), parts AS (
  SELECT wheel, ver, substr(ver, 1, instr(ver, '.') - 1) AS major, substr(ver, instr(ver, '.') + 1) AS rest FROM v
), keyed AS (
  SELECT wheel, ver, CAST(major AS INTEGER) * 1000000
    + CAST(CASE WHEN instr(rest, '.') THEN substr(rest, 1, instr(rest, '.') - 1) ELSE rest END AS INTEGER) * 1000
    + CAST(CASE WHEN instr(rest, '.') THEN substr(rest, instr(rest, '.') + 1) ELSE '0' END AS INTEGER) AS k
  FROM parts
)
SELECT wheel, ver, max(k) FROM keyed GROUP BY wheel
"""

EXTERNAL = "JOIN json_each(r.report, '$.external_libs') j"

# The headline figures, in the order of the Markdown report's first table.
HEADLINE = ("wheels", "projects", "linux", "consistent", "over_promising", "pure", "not_linux", "errors")

# What the manylinux aliases stand for (PEP 600).
_ALIASES = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def connect(db: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def _tag_family(tag: str) -> tuple[str, tuple[int, int]] | None:
    """('manylinux', (2, 17)) for 'manylinux2014_x86_64' or 'manylinux_2_17_x86_64'."""
    for alias, version in _ALIASES.items():
        if tag.startswith(alias + "_"):
            return "manylinux", version
    m = re.match(r"(manylinux|musllinux)_(\d+)_(\d+)_", tag)
    return (m.group(1), (int(m.group(2)), int(m.group(3)))) if m else None


def _platform(family: str, version: tuple[int, int]) -> str:
    return f"{family}_{version[0]}_{version[1]}"


def declared(declared_tags: str, libc: str) -> str:
    family = "manylinux" if libc == "glibc" else "musllinux"
    versions = [v for f, v in filter(None, map(_tag_family, declared_tags.split("."))) if f == family]
    return _platform(family, min(versions)) if versions else "linux"


def achieved(overall_tag: str) -> str:
    parsed = _tag_family(overall_tag)
    return _platform(*parsed) if parsed else "linux"


def normalize(project: str | None) -> str:
    return re.sub(r"[-_.]+", "-", project).lower() if project else "(no project)"


def grafted(member: str) -> str:
    """auditwheel puts '-' and 8 hex digits before the first dot of a grafted library's name."""
    head = member.split("/")[-1].partition(".")[0]
    tail = head[-9:]
    return head[:-9] if len(head) > 9 and tail[0] == "-" and all(c in "0123456789abcdef" for c in tail[1:]) else head


def figures(db: sqlite3.Connection, run: int, base: int | None) -> dict[str, Any]:
    """The counts the report shows for `run`, and its differences from `base`."""
    def q(sql: str, *args: object) -> list[Any]:
        return db.execute(sql, args).fetchall()

    status = dict(q(f"SELECT r.status, count(*) {_RUN} GROUP BY 1", run))
    over = q(f"SELECT w.filename {_RUN} AND r.over_promises = 1", run)
    projects = {normalize(p) for (p,) in q(f"SELECT w.project {_RUN}", run)}
    glibc_rows = q(_GLIBC, run)
    glibc_ok = q(f"SELECT count(*) {_RUN} AND r.status = 'ok' AND r.libc = 'glibc'", run)[0][0]
    glibc = Counter(ver for _, ver, _ in glibc_rows)
    if glibc_ok > len(glibc_rows):
        glibc["none"] = glibc_ok - len(glibc_rows)
    matrix: Counter[tuple[str, str]] = Counter()
    for tags, libc, tag, n in q(f"SELECT r.declared_tags, r.libc, r.overall_tag, count(*) {_RUN} AND r.status = 'ok'"
                                " GROUP BY 1, 2, 3", run):
        matrix[(declared(tags, libc), achieved(tag))] += n
    grafted_wheels: dict[str, set[str]] = {}
    for filename, member in q(f"SELECT w.filename, f.member {_run('JOIN elf_facts f ON f.result_id = rw.result_id')}"
                              " AND f.member LIKE '%.libs/%'", run):
        if member.count("/") == 1 and member.split("/")[0].endswith(".libs"):
            grafted_wheels.setdefault(grafted(member), set()).add(filename)
    per_project: Counter[str] = Counter()
    for project, n in q(f"SELECT w.project, count(*) {_RUN} GROUP BY 1", run):
        per_project[normalize(project)] += n
    result = {
        "headline": {
            "wheels": sum(status.values()), "projects": len(projects), "linux": status.get("ok", 0),
            "consistent": status.get("ok", 0) - len(over), "over_promising": len(over),
            "pure": status.get("pure", 0), "not_linux": status.get("not_linux", 0), "errors": status.get("error", 0),
        },
        "verdicts": dict(q(f"SELECT coalesce(r.overall_tag, r.status), count(*) {_RUN} GROUP BY 1", run)),
        "glibc_required": dict(glibc),
        "declared_vs_achieved": dict(matrix),
        "arch_libc": {(a, c): n for a, c, n in q(f"SELECT r.arch, r.libc, count(*) {_RUN} AND r.status = 'ok'"
                                                 " GROUP BY 1, 2", run)},
        "external_libraries": dict(q(f"SELECT j.key, count(*) {_run(EXTERNAL)} GROUP BY 1", run)),
        "grafted_libraries": {k: len(v) for k, v in grafted_wheels.items()},
        "over_promising": sorted(f for (f,) in over),
        "errors": sorted(f for (f,) in q(f"SELECT w.filename {_RUN} AND r.status = 'error'", run)),
        "projects": dict(per_project),
    }
    if base is not None:
        def names(sql: str, run_id: int) -> set[str]:
            return {f for (f,) in q(f"SELECT w.filename {_RUN} {sql}", run_id)}
        result["diff"] = {
            "added": len(names("", run) - names("", base)),
            "removed": len(names("", base) - names("", run)),
            "new_violations": sorted(names("AND r.over_promises = 1", run) - names("AND r.over_promises = 1", base)),
            "fixed": sorted((names("AND r.over_promises = 1", base) & names("", run))
                            - names("AND r.over_promises = 1", run)),
            "new_errors": sorted(names("AND r.status = 'error'", run) - names("AND r.status = 'error'", base)),
        }
    return result


def trend(db: sqlite3.Connection, runs: list[int]) -> list[dict[str, int]]:
    out = []
    for run in runs:
        row = db.execute(f"SELECT count(*), sum(r.status = 'ok'), sum(coalesce(r.over_promises, 0)),"
                         f" sum(r.status = 'error') {_RUN}", (run,)).fetchone()
        out.append({"run": run, "wheels": row[0], "linux": row[1] or 0, "over_promising": row[2] or 0,
                    "errors": row[3] or 0})
    return out


def top(counts: dict[str, int], limit: int = 20) -> list[tuple[str, int]]:
    """Most common first, ties by name: the order the report promises."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def view(report: dict[str, Any]) -> dict[str, Any]:
    """A report JSON object in the shape of `figures`, for comparing the two."""
    view = {
        "headline": report["headline"],
        "verdicts": {v["verdict"]: v["wheels"] for v in report["verdicts"]},
        "glibc_required": {g["glibc"]: g["wheels"] for g in report["glibc_required"]},
        "declared_vs_achieved": {(m["declared"], m["achieved"]): m["wheels"] for m in report["declared_vs_achieved"]},
        "arch_libc": {(a["arch"], a["libc"]): a["wheels"] for a in report["arch_libc"]},
        "external_libraries": [(lib["name"], lib["wheels"]) for lib in report["external_libraries"]],
        "grafted_libraries": [(lib["name"], lib["wheels"]) for lib in report["grafted_libraries"]],
        "over_promising": sorted(o["wheel"] for o in report["over_promising"]),
        "errors": sorted(e["wheel"] for e in report["errors"]),
        "projects": {p["project"]: p["wheels"] for p in report["projects"]},
    }
    if report["diff"] is not None:
        view["diff"] = {k: v for k, v in report["diff"].items() if k != "compare_to"}
    return view


def expected_view(db: sqlite3.Connection, run: int, base: int | None) -> dict[str, Any]:
    """`figures`, with the library lists in order and cut to the 20 most common as the report does."""
    expected = figures(db, run, base)
    for key in ("external_libraries", "grafted_libraries"):
        expected[key] = top(expected[key])
    return expected


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """Section title -> the rows of the first table under it (header row excluded)."""
    tables: dict[str, list[list[str]]] = {}
    title = "headline"
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.removeprefix("## ") if line.startswith("## ") else "headline"
        elif line.startswith("| ") and title not in tables:
            tables[title] = []
        elif line.startswith("| ") and not line.startswith("|---"):
            tables[title].append([c.strip().strip("`") for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return tables
