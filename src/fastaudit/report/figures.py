"""The figures of the nightly report, computed from the store once and rendered three ways.

HTML, Markdown and JSON all render the one object `compute_figures` returns (the JSON is that
object itself, described by `schema/report-v1.json`), so the three cannot disagree.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastaudit import __version__
from fastaudit.advisories import Advisory, findings
from fastaudit.errors import FastauditError, ReportError
from fastaudit.policy import policy_for_tag
from fastaudit.store import RunRow, RunWheel, Store
from fastaudit.vendored import real_file_name

SCHEMA_VERSION = 1
TREND_RUNS = 14  # two weeks of nightly runs
TOP_LIBRARIES = 20
NO_GLIBC = "none"  # a glibc wheel that needs no versioned GLIBC symbol at all

_GLIBC_VERSION = re.compile(r"GLIBC_(\d+(?:\.\d+)+)$")


@dataclass(frozen=True)
class RunChoice:
    run: RunRow
    compare_to: RunRow | None
    trend: tuple[RunRow, ...]


def choose_runs(runs: list[RunRow], run_id: int | None, compare_to: int | None) -> RunChoice:
    """The run to report (default: the latest completed one), the run to compare it with (default:
    the latest completed run before it) and the runs of the trend (up to TREND_RUNS, ending with it)."""
    if not runs:
        raise ReportError("the store has no runs")
    by_id = {r.id: r for r in runs}
    if run_id is None:
        completed = [r for r in runs if r.status == "completed"]
        if not completed:
            raise ReportError("the store has no completed run; name one with --run")
        run = completed[-1]
    elif run_id in by_id:
        run = by_id[run_id]
    else:
        raise ReportError(f"the store has no run {run_id} (runs {runs[0].id} to {runs[-1].id})")
    if compare_to is None:
        base = next((r for r in reversed(runs) if r.id < run.id and r.status == "completed"), None)
    elif compare_to in by_id and compare_to != run.id:
        base = by_id[compare_to]
    else:
        raise ReportError(f"cannot compare run {run.id} with run {compare_to}: no such other run")
    trend = tuple(r for r in runs if r.id <= run.id)[-TREND_RUNS:]
    return RunChoice(run, base, trend)


def glibc_required(versioned_symbols_json: str | None) -> str:
    """The highest GLIBC_x.y any member needs ("2.17"), or NO_GLIBC."""
    found = [m.group(1) for versions in json.loads(versioned_symbols_json or "{}").values()
             for m in map(_GLIBC_VERSION.match, versions) if m]
    return max(found, key=version_key) if found else NO_GLIBC


@cache  # a store holds a few dozen distinct versions, compared once or twice per wheel
def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")) if version != NO_GLIBC else ()


def grafted_name(member: str) -> str:
    """'numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so' -> 'libopenblas64_p-r0'."""
    return real_file_name(member).split(".", 1)[0]


def project_name(name: str | None) -> str:
    """PEP 503 normalization, so 'Pillow' and 'pillow' wheels count as one project."""
    return re.sub(r"[-_.]+", "-", name).lower() if name else "(no project)"


def _platform(tag: str) -> str:
    """A tag without its architecture, aliases resolved: 'manylinux2014_x86_64' -> 'manylinux_2_17'."""
    try:
        return policy_for_tag(tag).name
    except FastauditError:
        return tag


@cache
def declared_platform(declared_tags: str, libc: str) -> str:
    """The most compatible manylinux/musllinux tag a file name promises for its own libc, without
    the architecture; 'linux' when it promises none."""
    best = None
    for tag in declared_tags.split("."):
        try:
            policy = policy_for_tag(tag)
        except FastauditError:
            continue
        if policy.libc == libc and (best is None or policy > best):
            best = policy
    return best.name if best else "linux"


def _run_json(run: RunRow) -> dict[str, Any]:
    return {"id": run.id, "status": run.status, "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at) if run.finished_at else None,
            "fastaudit_version": run.fastaudit_version, "policy_version": run.policy_version}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _counted(counter: Counter[str], limit: int | None = None) -> list[dict[str, Any]]:
    """Most common first, ties by name, so the order is reproducible."""
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"name": k, "wheels": v} for k, v in items[:limit]]


def _reasons(reasons_json: str | None) -> list[str]:
    return list(dict.fromkeys(r["message"] for r in json.loads(reasons_json or "[]")))


def _diff(store: Store, run_id: int, base: RunRow | None) -> dict[str, Any] | None:
    """What changed since the base run, by wheel file name (a mirror never reuses one)."""
    if base is None:
        return None
    now = {f: (s, o) for f, s, o in store.run_states(run_id)}
    then = {f: (s, o) for f, s, o in store.run_states(base.id)}
    return {
        "compare_to": base.id,
        "added": len(now.keys() - then.keys()),
        "removed": len(then.keys() - now.keys()),
        "new_violations": sorted(f for f, (_, o) in now.items() if o and not then.get(f, ("", False))[1]),
        "fixed": sorted(f for f, (_, o) in then.items() if o and f in now and not now[f][1]),
        "new_errors": sorted(f for f, (s, _) in now.items() if s == "error" and then.get(f, ("",))[0] != "error"),
    }


def _trend(store: Store, runs: Iterable[RunRow]) -> list[dict[str, Any]]:
    runs = list(runs)
    counts = store.run_outcome_counts(r.id for r in runs)
    return [{"run": r.id, "started_at": _iso(r.started_at), "status": r.status,
             "wheels": sum(v for k, v in counts[r.id].items() if k != "over_promising"),
             "linux": counts[r.id].get("ok", 0), "over_promising": counts[r.id].get("over_promising", 0),
             "errors": counts[r.id].get("error", 0)} for r in runs]


def _abi3(store: Store, run_id: int) -> dict[str, Any]:
    """The abi3 criterion over the run: how many abi3 wheels, how many break their promise, and the
    symbols that break it most often (each counted once per wheel)."""
    wheels = over = 0
    baselines: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    newer: Counter[str] = Counter()
    rows = []
    for filename, project, baseline, computed, over_promises, symbols, future, problems in store.run_abi3(run_id):
        wheels += 1
        baselines[baseline or "none"] += 1
        outside.update(json.loads(symbols or "[]"))
        newer.update(json.loads(future or "{}").keys())
        if over_promises:
            over += 1
            rows.append({"wheel": filename, "project": project_name(project), "baseline": baseline,
                         "computed": computed, "problems": [p["message"] for p in json.loads(problems or "[]")]})
    symbols = [{"name": name, "wheels": n, "kind": "outside the stable ABI"} for name, n in outside.items()]
    symbols += [{"name": name, "wheels": n, "kind": "newer than the baseline"} for name, n in newer.items()]
    symbols.sort(key=lambda s: (-s["wheels"], s["name"], s["kind"]))
    return {"wheels": wheels, "over_promising": over, "consistent": wheels - over,
            "baselines": [{"baseline": b, "wheels": baselines[b]} for b in sorted(baselines, key=_baseline_key)],
            "offending_symbols": symbols[:TOP_LIBRARIES], "over_promising_wheels": rows}


def _load_findings(store: Store, run_id: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The executable-stack criterion over the run (members glibc 2.41+ refuses to dlopen), and the
    build image each wheel whose symbol versions break its tag needs, by file name."""
    rows: list[dict[str, Any]] = []
    wheels: set[str] = set()
    not_checked = 0
    rebuilds: dict[str, dict[str, Any]] = {}
    for filename, project, stack_json, rebuild_json in store.run_load_findings(run_id):
        if stack_json is None:
            not_checked += 1  # stored before the check existed
        for reason in json.loads(stack_json or "[]"):
            wheels.add(filename)
            rows.append({"wheel": filename, "project": project_name(project), "member": reason["member"],
                         "message": reason["message"]})
        if rebuild_json is not None:
            rebuilds[filename] = json.loads(rebuild_json)
    return {"wheels": len(wheels), "members": len(rows), "not_checked": not_checked, "rows": rows}, rebuilds


def _rebuild_images(over_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How many over-promising wheels each build image would fix, most first."""
    counted: Counter[tuple[str, str]] = Counter()
    for row in over_rows:
        rebuild = row["rebuild_image"]
        if rebuild is not None:
            counted[(rebuild["image"] if rebuild["old_enough"] else "none", rebuild["for_tag"])] += 1
    return [{"image": image, "for_tag": tag, "wheels": n}
            for (image, tag), n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))]


def _baseline_key(baseline: str) -> tuple[int, ...]:
    return tuple(int(p) for p in baseline.split(".")) if baseline != "none" else ()


def compute_figures(store: Store, run_id: int | None = None, compare_to: int | None = None,
                    advisories: tuple[Advisory, ...] | None = None) -> dict[str, Any]:
    """The report object (schema report-v1.json) for one run of the store, all of it read from one
    snapshot of the store; with `advisories`, the wheels that ship an affected library version."""
    with store.snapshot():
        return _figures(store, choose_runs(store.runs(), run_id, compare_to), advisories)


def _vendored(rows: list[tuple[str, str | None, str, str, str, str, str]]) -> list[dict[str, Any]]:
    """One row per (library, version): how many wheels and projects ship it, how it was told."""
    grouped: dict[tuple[str, str | None], dict[str, Any]] = {}
    for library, version, wheel, project, _member, evidence, linkage in rows:
        entry = grouped.setdefault((library, version), {"wheels": set(), "projects": set(), "evidence": set(),
                                                         "linkage": set()})
        entry["wheels"].add(wheel)
        entry["projects"].add(project_name(project))
        entry["evidence"].add(evidence)
        entry["linkage"].add(linkage)
    return [{"library": library, "version": version, "wheels": len(e["wheels"]), "projects": len(e["projects"]),
             "evidence": sorted(e["evidence"]), "linkage": sorted(e["linkage"])}
            for (library, version), e in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]


def _findings(advisories: tuple[Advisory, ...] | None, rows: list) -> list[dict[str, Any]] | None:
    if advisories is None:
        return None
    return [{"id": f.advisory.id, "library": f.advisory.library, "version": f.version, "wheel": f.wheel,
             "project": project_name(f.project), "member": f.member, "summary": f.advisory.summary}
            for f in findings(advisories, rows)]


def _figures(store: Store, choice: RunChoice, advisories: tuple[Advisory, ...] | None = None) -> dict[str, Any]:
    run = choice.run
    status_counts: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    glibc: Counter[str] = Counter()
    matrix: Counter[tuple[str, str]] = Counter()
    arch_libc: Counter[tuple[str, str]] = Counter()
    external: Counter[str] = Counter()
    projects: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"wheels": 0, "versions": set(), "linux": 0, "over_promising": 0, "errors": 0, "glibc": None})
    over_rows: list[dict[str, Any]] = []
    error_rows: list[dict[str, Any]] = []
    executable_stack, rebuilds = _load_findings(store, run.id)

    wheel: RunWheel
    for wheel in store.run_wheels(run.id):
        status_counts[wheel.status] += 1
        verdicts[wheel.overall_tag or wheel.status] += 1
        name = project_name(wheel.project)
        project = projects[name]
        project["wheels"] += 1
        project["versions"].add(wheel.version)
        if wheel.status == "error":
            project["errors"] += 1
            error_rows.append({"wheel": wheel.filename, "project": name, "error_type": wheel.error_type,
                               "member": wheel.error_member, "message": wheel.error_message})
            continue
        if wheel.status != "ok":
            continue
        assert wheel.overall_tag and wheel.arch and wheel.libc  # an 'ok' result always has these
        project["linux"] += 1
        arch_libc[(wheel.arch, wheel.libc)] += 1
        external.update(json.loads(wheel.external_libs_json or "{}").keys())  # sonames; the values are null
        declared = declared_platform(wheel.declared_tags or "", wheel.libc)
        matrix[(declared, _platform(wheel.overall_tag))] += 1
        if wheel.libc == "glibc":
            required = glibc_required(wheel.versioned_symbols_json)
            glibc[required] += 1
            if project["glibc"] is None or version_key(required) > version_key(project["glibc"]):
                project["glibc"] = required
        if wheel.over_promises:
            project["over_promising"] += 1
            over_rows.append({"wheel": wheel.filename, "project": name, "version": wheel.version,
                              "declared": declared, "achieved": wheel.overall_tag,
                              "reasons": _reasons(wheel.over_promise_reasons_json),
                              "rebuild_image": rebuilds.get(wheel.filename)})

    grafted: dict[str, set[str]] = defaultdict(set)
    for filename, member in store.grafted_members(run.id):
        grafted[grafted_name(member)].add(filename)
    vendored_rows = list(store.vendored_libraries(run.id))

    total = sum(status_counts.values())
    over = len(over_rows)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_by": f"fastaudit {__version__}",
        "store": str(store.path),
        "run": _run_json(run),
        "compare_to": _run_json(choice.compare_to) if choice.compare_to else None,
        "headline": {
            "wheels": total, "projects": len(projects), "linux": status_counts["ok"],
            "consistent": status_counts["ok"] - over, "over_promising": over,
            "pure": status_counts["pure"], "not_linux": status_counts["not_linux"],
            "errors": status_counts["error"],
        },
        "verdicts": [{"verdict": k, "wheels": v} for k, v in sorted(verdicts.items(), key=lambda kv: (-kv[1], kv[0]))],
        "glibc_required": [{"glibc": k, "wheels": glibc[k]} for k in sorted(glibc, key=version_key)],
        "declared_vs_achieved": [{"declared": d, "achieved": a, "wheels": n} for (d, a), n in sorted(matrix.items())],
        "arch_libc": [{"arch": a, "libc": c, "wheels": n} for (a, c), n in sorted(arch_libc.items())],
        "external_libraries": _counted(external, TOP_LIBRARIES),
        "grafted_libraries": _counted(Counter({k: len(v) for k, v in grafted.items()}), TOP_LIBRARIES),
        "vendored_libraries": _vendored(vendored_rows),
        "advisory_findings": _findings(advisories, vendored_rows),
        "over_promising": over_rows,
        "errors": error_rows,
        "projects": [{"project": name, "wheels": p["wheels"], "versions": len(p["versions"]), "linux": p["linux"],
                      "over_promising": p["over_promising"], "errors": p["errors"],
                      "glibc_required": p["glibc"]}
                     for name, p in sorted(projects.items())],
        "trend": _trend(store, choice.trend),
        "diff": _diff(store, run.id, choice.compare_to),
        "abi3": _abi3(store, run.id),
        "executable_stack": executable_stack,
        "rebuild_images": _rebuild_images(over_rows),
    }
