"""`evo inspect`, `evo elites` and `evo show` on real runs (issue #9).

One small bin packing run (a real problem with test sets, small ones so it is quick) is
made once per session and shared with test_export.py and test_report.py through
``small_run``; tests that write to a run (the test-score cache) work on a copy. Every
expectation is checked against the store's rows read with plain SQL, not against the
commands' own helpers.
"""
from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from evo.cli import main as evo_main
from tests.conftest import EVO, REPO, TOY, evo_env, run_evo

# Bin packing on a tiny training set, with two small test sets: a whole run takes seconds.
SMALL = ["problem.train=weibull-3x300-seed3", "problem.tests=[or1,weibull-2x100-seed2]",
         "budget.evaluations=30", "seed=0"]
TEST_SETS = ["or1", "weibull-2x100-seed2"]
TRAIN_SET = "weibull-3x300-seed3"


def small_run(factory: pytest.TempPathFactory) -> Path:
    """The session's shared finished run (made on first use). Treat it as read-only."""
    run_dir = factory.getbasetemp() / "issue9-small-run"
    if not (run_dir / "run.sqlite").exists():
        result = run_evo("run", *SMALL, f"hydra.run.dir={run_dir}", check=True)
        (run_dir / "stdout.txt").write_text(result.stdout)
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_run(tmp_path_factory)


def evo(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """The real command line, in this process (quicker than a subprocess per call)."""
    capsys.readouterr()
    code = evo_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def evo_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    code, out, err = evo(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def rows(run_dir: Path, query: str, *params) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(query, params).fetchall()
    finally:
        db.close()


INSPECT_KEYS = {"run_dir", "problem", "seed", "state", "stop_reason", "budget", "best", "scores", "archive",
                "archive_digest", "counts", "dedup", "llm", "bandit"}


# ---- inspect ---------------------------------------------------------------------------------
def test_inspect_json_matches_the_store(run_dir, capsys):
    s = evo_json(capsys, "inspect", run_dir, "--no-test")
    # The documented keys (evo/commands/README.md), nested ones included.
    assert set(s) == INSPECT_KEYS
    assert set(s["archive"]) == {"coverage", "occupied_cells", "cells", "qd_score"}
    assert set(s["counts"]) == {"total", "valid", "equivalent", "invalid", "failed", "llm_failed", "by_status"}
    assert set(s["dedup"]) == {"syntactic", "functional", "verified", "collisions", "eval_seconds_saved",
                               "eval_seconds_spent", "probe_seconds_spent"}
    assert set(s["llm"]) == {"calls", "prompt_tokens", "completion_tokens", "cost_usd", "failed_candidates",
                             "seconds", "models"}
    assert set(s["bandit"]) == {"policy", "arms"}
    assert set(s["scores"]) == {"available", "error", "score_name", "candidate", "sets", "note"}
    assert all(set(r) == {"name", "split", "instances", "reference", "best", "baselines"} for r in s["scores"]["sets"])
    assert s["problem"] == "problems.bin_packing.BinPacking" and s["seed"] == 0
    assert s["state"] == "finished" and s["stop_reason"].startswith("budget.evaluations reached")
    assert s["budget"]["evaluations"] == {"limit": 30, "used": 30, "remaining": 0}
    assert set(s["budget"]) == {"evaluations", "llm_calls", "cost_usd", "wall_time_s"}
    assert s["budget"]["llm_calls"]["limit"] is None and s["budget"]["llm_calls"]["remaining"] is None
    assert s["budget"]["llm_calls"]["used"] == rows(run_dir, "SELECT COUNT(*) FROM llm_cache")[0][0]
    assert s["budget"]["wall_time_s"]["used"] > 0

    best = rows(run_dir, "SELECT id, score FROM candidates WHERE status = 'ok' ORDER BY score, id LIMIT 1")[0]
    assert s["best"]["id"] == best["id"] and s["best"]["score"] == best["score"]
    assert set(s["best"]) == {"id", "score", "thought", "operator", "cell", "measures"}
    assert set(s["best"]["measures"]) == {"cyclomatic", "behaviour"}

    by_status = dict(rows(run_dir, "SELECT status, COUNT(*) FROM candidates GROUP BY status"))
    counts = s["counts"]
    assert counts["total"] == 30 == sum(counts["by_status"].values())
    assert counts["by_status"] == by_status
    assert counts["valid"] == by_status.get("ok", 0) and counts["equivalent"] == by_status.get("equivalent", 0)
    assert (counts["valid"] + counts["equivalent"] + counts["invalid"] + counts["failed"] + counts["llm_failed"]
            == counts["total"])

    dedup = dict(rows(run_dir, "SELECT dedup, COUNT(*) FROM candidates WHERE dedup IS NOT NULL GROUP BY dedup"))
    d = s["dedup"]
    assert (d["syntactic"], d["functional"], d["verified"], d["collisions"]) == (
        dedup.get("syntactic", 0), dedup.get("functional", 0), dedup.get("verified", 0), dedup.get("collision", 0))
    assert d["syntactic"] + d["functional"] > 0  # the offline model repeats itself within 30 candidates
    saved = rows(run_dir, "SELECT COALESCE(SUM(o.eval_s), 0) FROM candidates c JOIN candidates o"
                          " ON o.id = c.equivalent_to WHERE c.dedup IN ('syntactic', 'functional')")[0][0]
    assert d["eval_seconds_saved"] == pytest.approx(saved) and saved > 0

    last = rows(run_dir, "SELECT coverage, qd_score FROM candidates ORDER BY id DESC LIMIT 1")[0]
    assert s["archive"]["coverage"] == pytest.approx(last["coverage"])
    assert s["archive"]["qd_score"] == pytest.approx(last["qd_score"])
    assert s["archive"]["cells"] == 4 * 20 and s["archive"]["occupied_cells"] == round(last["coverage"] * 80)

    # The digest the run printed at its end is the digest inspect rebuilds from the store.
    printed = next(line.split()[-1] for line in (run_dir / "stdout.txt").read_text().splitlines()
                   if line.startswith("digest:"))
    assert s["archive_digest"] == printed

    pulls = dict(rows(run_dir, "SELECT operator, COUNT(*) FROM candidates WHERE operator != 'seed' GROUP BY operator"))
    arms = s["bandit"]["arms"]
    assert {a: v["pulls"] for a, v in arms.items() if v["pulls"]} == pulls
    assert all(set(v) == {"pulls", "mean_reward", "probability"} for v in arms.values())
    assert sum(v["probability"] for v in arms.values()) == pytest.approx(1.0)

    llm = s["llm"]
    assert llm["calls"] == s["budget"]["llm_calls"]["used"] and llm["cost_usd"] == 0.0
    assert llm["models"]["offline-mutation"]["candidates"] == 29  # every candidate but the seed asked the model
    model = llm["models"]["offline-mutation"]
    assert set(model) == {"model", "candidates", "requests", "prompt_tokens", "completion_tokens", "cost_usd",
                          "seconds", "valid", "valid_share", "improvements", "best_id", "best_score"}
    assert model["requests"] == llm["calls"] and model["valid"] == counts["valid"] + counts["equivalent"] - 1  # not the seed
    assert model["improvements"] == rows(run_dir, "SELECT COUNT(*) FROM candidates WHERE archive_status > 0 "
                                                  "AND id > 0")[0][0]
    assert (model["best_id"], model["best_score"]) == (best["id"], best["score"])  # the seed was beaten

    # --no-test computed nothing: only the stored training score is known.
    assert s["scores"]["available"] and s["scores"]["candidate"] == best["id"]
    sets = {r["name"]: r for r in s["scores"]["sets"]}
    assert list(sets) == [TRAIN_SET, *TEST_SETS]
    assert sets[TRAIN_SET]["best"] == {"score": best["score"], "error": "", "source": "run"}
    assert all(r["best"]["source"] == "missing" for r in sets.values() if r["split"] == "test")
    assert "not computed (--no-test)" in s["scores"]["note"]
    assert rows(run_dir, "SELECT COUNT(*) FROM test_scores")[0][0] == 0


def test_inspect_computes_test_scores_once_and_caches_them(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    first = evo_json(capsys, "inspect", copy)["scores"]
    assert first["note"] == ""
    for row in first["sets"]:
        assert row["instances"] > 0
        assert set(row["baselines"]) == {"first_fit", "best_fit"}
        cells = [row["best"], *row["baselines"].values()]
        assert all(c["score"] is not None and c["score"] >= 0 and c["error"] == "" for c in cells), row
        expected = "run" if row["split"] == "train" else "computed"
        assert row["best"]["source"] == expected
        assert all(c["source"] == "computed" for c in row["baselines"].values())
    # First Fit never beats Best Fit by much on these sets, and both are real numbers.
    or1 = next(r for r in first["sets"] if r["name"] == "or1")
    assert or1["reference"] == pytest.approx(49.05)

    stored = {(r["candidate_id"], r["dataset"]): r["score"]
              for r in rows(copy, "SELECT candidate_id, dataset, score FROM test_scores")}
    best = first["candidate"]
    assert {k for k in stored if k[0] == best} == {(best, name) for name in TEST_SETS}
    assert {k for k in stored if k[0] == -1} == {(-1, f"baseline:{b}:{name}") for b in ("first_fit", "best_fit")
                                                  for name in [TRAIN_SET, *TEST_SETS]}

    again = evo_json(capsys, "inspect", copy)["scores"]
    for before, after in zip(first["sets"], again["sets"]):
        assert after["best"]["score"] == before["best"]["score"]
        if after["split"] == "test":
            assert after["best"]["source"] == "cache"
        assert all(c["source"] == "cache" for c in after["baselines"].values())
        assert {b: c["score"] for b, c in after["baselines"].items()} == {
            b: c["score"] for b, c in before["baselines"].items()}


def test_inspect_human_output(run_dir, capsys):
    code, out, err = evo(capsys, "inspect", run_dir, "--no-test")
    assert code == 0 and err == ""
    for expected in ("finished", "budget", "evaluations 30/30 (0 left)", "best ", "coverage", "QD score", "digest",
                     "syntactic", "functional", "collisions", "llm", "bandit", "first_fit", "best_fit", "or1"):
        assert expected in out, expected


# ---- elites ----------------------------------------------------------------------------------
def test_elites_are_the_best_of_each_cell(run_dir, capsys):
    e = evo_json(capsys, "elites", run_dir)
    assert set(e) == {"run_dir", "state", "axes", "archive_digest", "elites"}
    assert [a["name"] for a in e["axes"]] == ["cyclomatic", "behaviour"]
    elites = e["elites"]
    assert elites and all(set(r) == {"cell", "cell_index", "measures", "score", "id", "operator", "thought"}
                          for r in elites)
    # Independently: the elite of a cell is the candidate of lowest score (then lowest id) that landed there.
    best_per_cell: dict[int, tuple[float, int]] = {}
    for r in rows(run_dir, "SELECT id, score, cell FROM candidates WHERE status = 'ok' ORDER BY id"):
        best_per_cell[r["cell"]] = min(best_per_cell.get(r["cell"], (float("inf"), -1)), (r["score"], r["id"]))
    assert {r["cell_index"]: (r["score"], r["id"]) for r in elites} == best_per_cell
    assert [r["score"] for r in elites] == sorted(r["score"] for r in elites)
    for r in elites:
        assert len(r["cell"]) == 2 and 0 <= r["cell"][0] < 4 and 0 <= r["cell"][1] < 20
        assert r["cell"][0] * 20 + r["cell"][1] == r["cell_index"]
    by_cell = evo_json(capsys, "elites", run_dir, "--sort", "cell")["elites"]
    by_id = evo_json(capsys, "elites", run_dir, "--sort", "id")["elites"]
    assert [r["cell_index"] for r in by_cell] == sorted(r["cell_index"] for r in elites)
    assert [r["id"] for r in by_id] == sorted(r["id"] for r in elites)
    code, out, _ = evo(capsys, "elites", run_dir)
    assert code == 0 and f"{len(elites)} elites" in out and f"#{elites[0]['id']}" in out
    code, _, err = evo(capsys, "elites", run_dir, "--sort", "colour")
    assert code == 2 and "invalid choice" in err and len(err.strip().splitlines()) == 1


# ---- show ------------------------------------------------------------------------------------
SHOW_KEYS = {"run_dir", "id", "operator", "parents", "status", "error", "thought", "code", "score", "test_scores",
             "measures", "cell", "cell_index", "elite", "archive_status", "equivalent_to", "dedup", "model",
             "model_name", "prompt_tokens", "completion_tokens", "cost_usd", "llm_s", "probe_s", "eval_s", "lineage"}


def test_show_gives_code_lineage_and_equivalence(run_dir, capsys):
    table = {r["id"]: r for r in rows(run_dir, "SELECT * FROM candidates")}
    # The candidate with the longest first-parent chain makes the lineage worth checking.
    def depth(cid: int) -> int:
        parents = json.loads(table[cid]["parents"])
        return 0 if not parents else 1 + depth(parents[0])
    deepest = max(table, key=lambda cid: (depth(cid), cid))
    c = evo_json(capsys, "show", run_dir, deepest)
    assert set(c) == SHOW_KEYS
    assert c["code"] == table[deepest]["code"] and c["thought"] == table[deepest]["thought"]
    assert c["parents"] == json.loads(table[deepest]["parents"])
    chain = c["lineage"]
    assert len(chain) == depth(deepest) + 1 >= 2
    assert chain[0]["id"] == deepest and chain[-1] == {"id": 0, "operator": "seed", "parents": [], "status": "ok",
                                                       "score": table[0]["score"]}
    for child, parent in zip(chain, chain[1:]):
        assert child["parents"][0] == parent["id"]
    code, out, _ = evo(capsys, "show", run_dir, deepest)
    assert code == 0 and "lineage" in out and f"#{deepest}" in out and "def priority" in out

    twin = next(cid for cid, r in table.items() if r["equivalent_to"] is not None)
    t = evo_json(capsys, "show", run_dir, twin)
    assert t["equivalent_to"] == table[twin]["equivalent_to"] and t["dedup"] == table[twin]["dedup"]
    code, out, _ = evo(capsys, "show", run_dir, twin)
    assert f"equivalent to #{t['equivalent_to']}" in out

    failed = [cid for cid, r in table.items() if r["error"]]
    if failed:  # the offline model's edits break a candidate now and then; show says why
        f = evo_json(capsys, "show", run_dir, failed[0])
        assert f["error"] == table[failed[0]]["error"] and f["score"] is None
        code, out, _ = evo(capsys, "show", run_dir, failed[0])
        assert "error" in out and table[failed[0]]["error"].splitlines()[0][:40] in out


@pytest.mark.parametrize("args, message", [
    (["show", "{run}", "999"], "no candidate #999"),
    (["show", "{run}", "-3"], "no candidate #-3"),
    (["show", "{run}", "seven"], "invalid int value"),
    (["show", "{missing}", "1"], "no such run folder"),
    (["inspect", "{missing}"], "no such run folder"),
    (["elites", "{missing}"], "no such run folder"),
    (["export", "{missing}"], "no such run folder"),
    (["report", "{missing}"], "no such run folder"),
    (["export", "{run}", "--id", "999"], "no candidate #999"),
    (["inspect", "{notrun}"], "is not an evo run folder"),
    (["inspect"], "the following arguments are required"),
])
def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, capsys, args, message):
    values = {"run": run_dir, "missing": tmp_path / "nothing", "notrun": tmp_path}
    code, out, err = evo(capsys, *[a.format(**values) for a in args])
    assert code == 2 and out == ""
    assert err.startswith("evo: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_id_from_the_real_command_line(run_dir):
    result = run_evo("show", str(run_dir), "12345")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"evo: error: no candidate #12345 in {run_dir} (ids are 0..29)\n"


# ---- a live run ------------------------------------------------------------------------------
def test_commands_read_a_run_while_it_writes(tmp_path, capsys):
    run_dir = tmp_path / "live"
    process = subprocess.Popen([*EVO, "run", *TOY, "budget.evaluations=100000", f"hydra.run.dir={run_dir}"],
                               cwd=REPO, env=evo_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (run_dir / "run.sqlite").exists() and _count(run_dir) >= 12:
                break
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        else:
            pytest.fail("the run made no progress in 120 s")
        s = evo_json(capsys, "inspect", run_dir)  # test scores too: computed, never cached while it runs
        assert s["state"] == "running" and s["stop_reason"] is None
        assert s["counts"]["total"] >= 12 and s["budget"]["evaluations"]["remaining"] > 0
        assert "not cached: the run is being written" in s["scores"]["note"]
        assert _count(run_dir, "test_scores") == 0
        assert evo_json(capsys, "elites", run_dir)["state"] == "running"
        assert evo_json(capsys, "show", run_dir, "5")["id"] == 5
        code, _, err = evo(capsys, "report", run_dir, "-o", tmp_path / "live.html")
        assert code == 0, err
        assert (tmp_path / "live.html").stat().st_size > 10_000
        later = _count(run_dir)
        assert process.poll() is None  # the run went on while it was read
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert _count(run_dir) >= later
    stopped = evo_json(capsys, "inspect", run_dir, "--no-test")
    assert stopped["state"] == "interrupted"


def _count(run_dir: Path, table: str = "candidates") -> int:
    try:
        return rows(run_dir, f"SELECT COUNT(*) FROM {table}")[0][0]
    except sqlite3.OperationalError:
        return 0  # the store is being created
