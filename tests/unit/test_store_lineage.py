"""Runs of one lineage list their unchanged wheels by reference (spans), not row by row: every run
must still list exactly the wheels it saw, with the outcome and result a row-per-wheel store gave,
whatever happened between runs (wheels added, removed, back again, re-judged, runs interrupted,
runs of another lineage or with --rescan in between), and a store of schema 3 keeps its history.

Each case is checked against a model: the wheels each run saw, written out in full."""
from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path

from fastaudit.store import _MIGRATIONS, ResultRow, Store, WheelRow

A, P = "an", "pol"


def wheel(name: str) -> WheelRow:
    return WheelRow(f"key:{name}", f"/m/{name}.whl", f"{name}-1-py3-none-any.whl", 10, name, "1", "py3", "none",
                    "any", "pure")


def ok(tag: str = "manylinux_2_17_x86_64") -> ResultRow:
    return ResultRow("ok", {"wheel": "w", "overall_tag": tag, "fastaudit": {"over_promises": False}})


def night(store: Store, lineage: int | None, names: list[str], status: str = "completed") -> int:
    """One run as scan makes it: known wheels inherited or listed, the others judged."""
    run_id = store.start_run({}, A, P)
    known = store.known_results([wheel(n).content_key for n in names], A, P, lineage)
    store.inherit(k for k in known.values() if k.inherited)
    store.record_skipped(run_id, [k for k in known.values() if not k.inherited])
    store.record_results(run_id, A, P, [(wheel(n), ok()) for n in names if wheel(n).content_key not in known])
    store.settle_run(run_id, lineage, status == "completed")
    store.finish_run(run_id, status, store.run_counts(run_id))
    return run_id


def listed(db: Path, run_id: int) -> dict[str, str]:
    """filename stem -> outcome, as the run_wheels view gives it (from outside, as reports read it)."""
    with closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT w.project, rw.outcome FROM run_wheels rw JOIN wheels w ON w.id = rw.wheel_id"
                           " WHERE rw.run_id=?", (run_id,)).fetchall()
    assert len(rows) == len({name for name, _ in rows}), f"a wheel listed twice in run {run_id}: {rows}"
    return dict(rows)


def explicit_rows(db: Path) -> int:
    with closing(sqlite3.connect(db)) as con:
        return con.execute("SELECT count(*) FROM run_entries").fetchone()[0]


def expected(history: list[list[str]], run_index: int, rescan_like: bool = False) -> dict[str, str]:
    """What a row-per-wheel store lists: analyzed when no earlier run judged the wheel."""
    before = {n for names in history[:run_index] for n in names}
    return {n: "skipped" if n in before else "analyzed" for n in history[run_index]}


def test_a_lineage_of_nights_lists_every_run_whole_and_writes_only_the_changes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    base = [f"w{i:03d}" for i in range(200)]
    history = [base,
               base + ["n1", "n2"],  # a night: two new wheels
               base[5:] + ["n1", "n2", "n3"],  # five removed, one new
               base[5:] + ["n1", "n3"],  # n2 removed
               base + ["n1", "n2", "n3"],  # the five and n2 back (same content: judged before)
               base + ["n1", "n2", "n3"]]  # unchanged
    with Store(db) as store:
        lineage = store.lineage("roots-a")
        runs = [night(store, lineage, names) for names in history]
        for i, run_id in enumerate(runs):  # every run, also the early ones after later runs
            assert listed(db, run_id) == expected(history, i), i
            assert store.run_counts(run_id)["skipped"] + store.run_counts(run_id)["analyzed"] == len(history[i])
    # run 1 writes 200 rows; the others write what changed (new wheels, wheels back), never the 200 again
    assert explicit_rows(db) == 200 + 2 + 1 + 0 + 6 + 0


def test_an_interrupted_run_lists_what_it_saw_and_the_next_night_is_whole(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    names = [f"w{i}" for i in range(50)]
    with Store(db) as store:
        lineage = store.lineage("roots-a")
        night(store, lineage, names)
        stopped = night(store, lineage, names[:20], status="interrupted")  # saw only 20 before Ctrl-C
        assert listed(db, stopped) == dict.fromkeys(names[:20], "skipped")
        last = night(store, lineage, names + ["x"])
        assert listed(db, last) == {**dict.fromkeys(names, "skipped"), "x": "analyzed"}
        with closing(sqlite3.connect(db)) as con:  # the interrupted run took no place in the lineage
            assert con.execute("SELECT lineage_seq FROM runs WHERE id=?", (stopped,)).fetchone() == (None,)


def test_runs_outside_the_lineage_in_between_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    names = [f"w{i}" for i in range(30)]
    with Store(db) as store:
        mine, other = store.lineage("roots-a"), store.lineage("roots-b")
        first = night(store, mine, names)
        elsewhere = night(store, other, names[:10] + ["b1"])  # another tree sharing some wheels
        rescan = night(store, None, names)  # --rescan: no lineage, every wheel listed explicitly
        again = night(store, mine, names[3:])
        assert listed(db, first) == dict.fromkeys(names, "analyzed")
        assert listed(db, elsewhere) == {**dict.fromkeys(names[:10], "skipped"), "b1": "analyzed"}
        assert listed(db, rescan) == dict.fromkeys(names, "skipped")
        assert listed(db, again) == dict.fromkeys(names[3:], "skipped")
        again2 = night(store, other, names[:10] + ["b1", "b2"])
        assert listed(db, again2) == {**dict.fromkeys(names[:10] + ["b1"], "skipped"), "b2": "analyzed"}


def test_a_wheel_judged_again_by_a_new_analyzer_is_not_inherited(tmp_path: Path) -> None:
    """A lineage's spans hold (wheel, result): a result of another analyzer never counts as seen."""
    db = tmp_path / "s.db"
    with Store(db) as store:
        lineage = store.lineage("roots-a")
        night(store, lineage, ["a", "b"])
        known = store.known_results(["key:a", "key:b"], "another-analyzer", P, lineage)
        assert known == {}
        known = store.known_results(["key:a", "key:b"], A, P, lineage)
        assert all(k.inherited for k in known.values()) and len(known) == 2


def test_random_histories_match_the_model(tmp_path: Path) -> None:
    rng = random.Random(5)
    pool = [f"w{i}" for i in range(60)]
    for case in range(8):
        db = tmp_path / f"s{case}.db"
        history: list[list[str]] = []
        with Store(db) as store:
            lineage = store.lineage("roots")
            runs = []
            for _ in range(10):
                names = sorted(rng.sample(pool, rng.randint(0, len(pool))))
                history.append(names)
                runs.append(night(store, lineage, names))
            for i, run_id in enumerate(runs):
                assert listed(db, run_id) == expected(history, i), (case, i)


def test_a_schema_3_store_keeps_its_runs_after_the_migration(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with closing(sqlite3.connect(db)) as con:
        for version, migration in enumerate(_MIGRATIONS[:3], 1):
            con.executescript(migration)
            con.execute(f"PRAGMA user_version={version}")
        con.execute("INSERT INTO runs (id, started_at, arguments, fastaudit_version, policy_version, status)"
                    " VALUES (1, 1.0, '{}', 'old', 'p', 'completed')")
        con.execute("INSERT INTO wheels (id, content_key, path, filename, size, kind)"
                    " VALUES (1, 'k', '/m/x.whl', 'x-1-py3-none-any.whl', 1, 'pure')")
        con.execute("INSERT INTO results (id, wheel_id, analyzer_version, policy_version, run_id, status)"
                    " VALUES (1, 1, 'old', 'p', 1, 'pure')")
        con.execute("INSERT INTO run_wheels VALUES (1, 1, 1, 'analyzed')")
        con.commit()
    with Store(db) as store:
        assert [tuple(r) for r in store.db.execute("SELECT * FROM run_wheels")] == [(1, 1, 1, 'analyzed')]
        assert store.run_counts(1)["not_analyzed"] == 1


def test_two_runs_of_one_lineage_at_once_each_list_what_they_saw(tmp_path: Path) -> None:
    """B looks its wheels up, A (started later, finished first) no longer sees one of them and
    ends its span, then B finishes: B still lists it, and later runs list what they see."""
    db = tmp_path / "s.db"
    names = [f"w{i}" for i in range(20)]
    with Store(db) as first, Store(db) as other:
        lineage = first.lineage("roots-a")
        night(first, lineage, names)
        b_run = other.start_run({}, A, P)
        b_known = other.known_results([wheel(n).content_key for n in names], A, P, lineage)
        other.inherit(k for k in b_known.values() if k.inherited)
        a_run = night(first, lineage, names[1:] + ["new"])  # w0 removed, one new wheel
        other.settle_run(b_run, lineage, True)
        other.finish_run(b_run, "completed", other.run_counts(b_run))
        assert listed(db, a_run) == {**dict.fromkeys(names[1:], "skipped"), "new": "analyzed"}
        assert listed(db, b_run) == dict.fromkeys(names, "skipped")
        later = night(first, lineage, names + ["new"])
        assert listed(db, later) == dict.fromkeys(names + ["new"], "skipped")
        assert listed(db, a_run) == {**dict.fromkeys(names[1:], "skipped"), "new": "analyzed"}
