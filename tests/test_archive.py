"""The MAP-Elites archive: fixed cells, pyribs' statuses, the digest, and a real run whose
archive, rebuilt from the store, is the one the live run kept candidate by candidate."""
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from evo.app import snapshot_config
from evo.archive import Archive, MeasureAxis
from evo.search_state import SearchState
from evo.settings import read_settings
from evo.store import Store
from tests.conftest import REPO, TOY, evo_env, run_evo

AXES = (MeasureAxis("code_size", 4, 0.0, 40.0), MeasureAxis("behaviour", 5, 0.0, 1.0))


def test_statuses_cells_and_scores_lower_is_better():
    archive = Archive(AXES, qd_reference=10.0)
    status, cell = archive.add(1, 5.0, (5.0, 0.1))
    assert status == 2  # a new cell
    assert archive.add(99, 9.0, (5.0, 0.1)) == (0, cell)  # worse: not added
    assert archive.add(2, 4.0, (9.0, 0.15)) == (1, cell)  # same cell, better score
    assert archive.cell_coordinates(cell) == (0, 0)
    assert [(e.cid, e.score) for e in archive.elites()] == [(2, 4.0)]
    assert archive.add(3, 7.0, (35.0, 0.95))[0] == 2
    assert [e.cid for e in archive.elites()] == [2, 3]  # best first
    assert archive.best().cid == 2 and len(archive) == 2
    assert archive.coverage == pytest.approx(2 / 20)
    assert archive.qd_score == pytest.approx((10 - 4) + (10 - 7))


def test_an_elite_worse_than_the_reference_adds_nothing_and_takes_nothing():
    archive = Archive(AXES, qd_reference=10.0)
    archive.add(1, 4.0, (5.0, 0.1))
    archive.add(2, 25.0, (35.0, 0.9))  # a new cell, worse than the reference
    assert archive.qd_score == pytest.approx(6.0)
    archive.add(3, 12.0, (35.0, 0.9))  # better, still worse than the reference
    assert archive.qd_score == pytest.approx(6.0)
    archive.add(4, 7.0, (35.0, 0.9))  # now worth something
    assert archive.qd_score == pytest.approx(6.0 + 3.0)


def test_the_qd_score_never_decreases_whatever_the_scores():
    rng = np.random.default_rng(5)
    archive = Archive(AXES, qd_reference=1.0)
    last = 0.0
    for cid in range(60):
        good = rng.random() < 0.2
        score = float(rng.random() * 0.5 if good else 1.0 + rng.random() * 100.0)
        archive.add(cid, score, (float(rng.random() * 40), float(rng.random())))
        assert archive.qd_score >= last
        last = archive.qd_score
    elites = archive.elites()
    assert any(e.score > 1.0 for e in elites) and any(e.score < 1.0 for e in elites)
    assert last == pytest.approx(sum(max(0.0, 1.0 - e.score) for e in elites))


def test_cells_are_fixed_and_outside_values_fall_into_edge_cells():
    archive = Archive(AXES, qd_reference=10.0)
    _, low = archive.add(1, 1.0, (-50.0, -3.0))
    _, high = archive.add(2, 1.0, (1e6, 7.0))
    assert archive.cell_coordinates(low) == (0, 0)
    assert archive.cell_coordinates(high) == (3, 4)
    # Extreme values never stretch the grid: a middle value keeps its cell.
    _, middle = archive.add(3, 1.0, (15.0, 0.5))
    assert archive.cell_coordinates(middle) == (1, 2)


def test_equal_archives_have_equal_digests_whatever_the_order():
    rows = [(1, 3.0, (5.0, 0.1)), (2, 2.0, (25.0, 0.7)), (3, 1.0, (25.0, 0.75)), (4, 4.0, (38.0, 0.3))]
    hashes = {1: "a", 2: "b", 3: "c", 4: "d"}
    first, second, third = (Archive(AXES, 10.0) for _ in range(3))
    for row in rows:
        first.add(*row)
    for row in reversed(rows):
        second.add(*row)
    for row in rows[:3]:
        third.add(*row)
    assert first.digest(hashes) == second.digest(hashes)
    assert first.digest(hashes) != third.digest(hashes)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("archive") / "run"
    result = run_evo("run", *TOY, "seed=11", "budget.evaluations=60", "bandit=thompson",
                     "archive.selection=curiosity", f"hydra.run.dir={run_dir}", check=True)
    return run_dir, result.stdout


def test_the_archive_rebuilt_from_the_store_is_the_live_one(toy_run):
    run_dir, stdout = toy_run
    settings = read_settings(snapshot_config(run_dir))
    store = Store.open_readonly(run_dir)
    try:
        records = list(store.candidates())
        rebuilt = SearchState.for_settings(settings)
        for record in records:
            told = rebuilt.tell(record)
            # What the live run committed with this candidate, step by step.
            assert (told.archive_status, told.cell, told.reward) == (record.archive_status, record.cell, record.reward)
            assert (told.best_score, told.coverage) == (record.best_score, record.coverage)
            assert told.qd_score == pytest.approx(record.qd_score, abs=1e-9)
        bandit = store.get_state("bandit")
    finally:
        store.close()
    # The live archive's elites: per cell, the last candidate that entered it.
    live = {r.cell: r.id for r in records if r.archive_status > 0}
    assert {e.cell: e.cid for e in rebuilt.archive.elites()} == live
    assert len(live) >= 3
    digest = next(line.split()[-1] for line in stdout.splitlines() if line.startswith("digest:"))
    assert rebuilt.digest() == digest
    # The bandit too: its last committed snapshot is the rebuilt bandit's.
    snapshot = rebuilt.bandit.snapshot()
    assert bandit == json.loads(json.dumps(snapshot))
    assert sum(s["pulls"] for s in snapshot["arms"].values()) == len(records) - 1  # all but the seed


def test_the_archive_as_recorded_is_the_replayed_one_without_pyribs(toy_run):
    """What read-only commands read (each record's own archive verdict) equals the replay
    through pyribs, and reading it never imports pyribs (seconds of imports)."""
    run_dir, _ = toy_run
    settings = read_settings(snapshot_config(run_dir))
    store = Store.open_readonly(run_dir)
    try:
        replayed, recorded = SearchState.from_store(store, settings), SearchState.as_recorded(store, settings)
    finally:
        store.close()
    assert recorded.archive.elites() == replayed.archive.elites()
    assert recorded.archive.best() == replayed.archive.best()
    assert recorded.digest() == replayed.digest()
    assert (recorded.archive.coverage, recorded.archive.qd_score) == (replayed.archive.coverage,
                                                                       replayed.archive.qd_score)
    assert recorded.bandit.snapshot() == replayed.bandit.snapshot()
    assert recorded.records == replayed.records
    for command in (["elites", str(run_dir)], ["show", str(run_dir), "5"], ["inspect", str(run_dir), "--no-test"]):
        script = f"import sys; from evo.cli import main; main({command!r}); assert 'ribs' not in sys.modules, 'ribs'"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=evo_env(), cwd=REPO)
        assert done.returncode == 0 and done.stdout, done.stderr


def test_every_row_records_best_coverage_and_qd_score(toy_run):
    run_dir, _ = toy_run
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        rows = db.execute("SELECT best_score, coverage, qd_score, score, status FROM candidates ORDER BY id").fetchall()
    best = np.inf
    for best_score, coverage, qd_score, score, status in rows:
        if status == "ok":
            best = min(best, score)
        assert best_score == pytest.approx(best) and 0 < coverage <= 1 and qd_score > 0
    coverages = [r[1] for r in rows]
    assert coverages == sorted(coverages)  # an archive never loses a cell


def test_qd_gain_rewards_the_gain_as_a_share_of_a_perfect_elite():
    from evo.bandit import BanditConfig
    from evo.store import CandidateRecord

    state = SearchState.empty(AXES, 10.0, ("m1",), BanditConfig("ucb1", reward="qd_gain"))

    def record(cid: int, score: float, measures: tuple, status: str = "ok") -> CandidateRecord:
        return CandidateRecord(
            id=cid, batch=cid, operator="m1" if cid else "seed", parents=(0,) if cid else (), thought="",
            code=f"x = {cid}", status=status, error="", score=score, measures=measures, cell=None,
            archive_status=0, reward=0.0, syntactic_hash=str(cid), functional_hash=None, equivalent_to=None,
            dedup=None, model="", prompt_tokens=0, completion_tokens=0, cost_usd=0.0, llm_s=0.0, probe_s=0.0,
            eval_s=0.0, best_score=None, coverage=0.0, qd_score=0.0, created=0.0)

    state.tell(record(0, 6.0, (5.0, 0.1)))
    assert state.tell(record(1, 4.0, (5.0, 0.1))).reward == pytest.approx(0.2)  # better elite: (6 - 4) / 10
    assert state.tell(record(2, 3.0, (35.0, 0.9))).reward == pytest.approx(0.7)  # new cell: (10 - 3) / 10
    assert state.tell(record(3, 9.0, (5.0, 0.1))).reward == 0.0  # worse: no gain
    assert state.tell(record(4, 25.0, (20.0, 0.5))).reward == 0.0  # a new cell worse than the reference: no gain
    assert state.bandit.stats["m1"].reward_sum == pytest.approx(0.9)


def test_a_run_whose_elites_are_worse_than_the_reference_never_lowers_its_qd_score(tmp_path):
    """The toy run's seed scores 0.43 and its best about 0.02: with the reference at 0.1,
    cells fill with elites on both sides of it. Unclipped (pyribs' offset), the QD score
    would have gone down whenever a new cell took a worse-than-reference elite."""
    run_dir = tmp_path / "run"
    run_evo("run", *TOY, "seed=3", "budget.evaluations=40", "problem.qd_reference=0.1",
            f"hydra.run.dir={run_dir}", check=True)
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        rows = db.execute("SELECT score, cell, archive_status, qd_score FROM candidates ORDER BY id").fetchall()
    elites: dict[int, float] = {}
    unclipped = []
    for score, cell, archive_status, qd_score in rows:
        if archive_status > 0:
            elites[cell] = score
        assert qd_score == pytest.approx(sum(max(0.0, 0.1 - s) for s in elites.values()))
        unclipped.append(sum(0.1 - s for s in elites.values()))
    scores = [r[3] for r in rows]
    assert scores == sorted(scores) and scores[-1] > 0
    assert any(s > 0.1 for s in elites.values()) and any(s < 0.1 for s in elites.values())
    assert any(b < a for a, b in zip(unclipped, unclipped[1:]))  # the case the clip is for did happen
