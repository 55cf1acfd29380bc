"""The search in real runs (engine, sandbox, store, offline model): the bandit leaves a
useless operator, each operator gets its parents by its rule, and ReEvo's reflections
are what the run's record says (offline) or extra cached LLM requests (a real LLM)."""
import hashlib
import json
import re
import sqlite3
from collections import Counter

import pytest

from evo.app import snapshot_config
from evo.compose import compose_config
from evo.operators import OPERATORS
from evo.reflection import compare
from evo.search_state import SearchState
from evo.settings import read_settings
from evo.store import Store
from tests.conftest import TOY, run_evo


def operators_in_order(run_dir) -> list[str]:
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return [op for (op,) in db.execute("SELECT operator FROM candidates WHERE id > 0 ORDER BY id")]


@pytest.mark.parametrize("policy", ["ucb1", "thompson", "uniform"])
def test_a_useless_operator_gets_fewer_and_fewer_pulls(policy, tmp_path):
    # m3 is made useless by design: its offline mix answers with the parent unchanged, a
    # repeat that can never improve the archive. The learning policies must leave it;
    # the uniform policy, which learns nothing, is the control.
    run_dir = tmp_path / policy
    only = [f"operators.{name}.weight=0" for name in OPERATORS if name not in ("m1", "e2", "m3")]
    # A fine behaviour grid keeps the useful operators paying (new cells) for the whole
    # run: on the default grid the toy problem is solved within 100 candidates, after which
    # no arm pays and there is nothing left to learn. UCB1's textbook c = sqrt(2) explores
    # for hundreds of pulls when the good arms pay one time in three; c = 0.5 shows the
    # trend within the 160 pulls a test can afford.
    tuned = ["bandit.exploration=0.5"] if policy == "ucb1" else []
    run_evo("run", *TOY, "seed=2", "budget.evaluations=161", f"bandit={policy}", *tuned, *only,
            "llm.mix={m3: {keep: 1.0}}", "archive.measures=[{name: behaviour, bins: 200, range: [0.0, 1.0]}]",
            f"hydra.run.dir={run_dir}", check=True)
    ops = operators_in_order(run_dir)
    n = len(ops) // 3
    thirds = [Counter(ops[:n])["m3"], Counter(ops[n:2 * n])["m3"], Counter(ops[2 * n:])["m3"]]
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        rewards = db.execute("SELECT SUM(reward), COUNT(*) FROM candidates WHERE operator = 'm3'").fetchone()
    assert rewards[0] == 0 and rewards[1] == sum(thirds)
    if policy == "uniform":
        assert all(n >= 10 for n in thirds), thirds  # about 53 / 3 each
    else:
        # Fewer and fewer: each later third below the first, the last well below.
        assert thirds[0] > max(thirds[1], thirds[2]) and thirds[2] <= 0.6 * thirds[0], thirds
        pulls = Counter(ops)
        # Below the useful arm the policy settled on (the other may have lost its early
        # pulls and be as unrewarded as m3: Thompson gave e2 11 pulls and no reward with
        # seed 2 and the default window of 8).
        assert pulls["m3"] < max(pulls["m1"], pulls["e2"]), pulls
        assert pulls["m3"] <= 0.2 * len(ops), pulls  # uniform would give a third


@pytest.fixture(scope="module")
def all_operators_run(tmp_path_factory):
    """A toy run with every operator enabled, uniform choice (so that each is used often)."""
    run_dir = tmp_path_factory.mktemp("search") / "run"
    run_evo("run", *TOY, "seed=5", "budget.evaluations=81", "bandit=uniform", "operators.i1.weight=1.0",
            "operators.fix.weight=1.0", f"hydra.run.dir={run_dir}", check=True)
    settings = read_settings(snapshot_config(run_dir))
    store = Store.open_readonly(run_dir)
    try:
        records = list(store.candidates())
        with sqlite3.connect(run_dir / "run.sqlite") as db:
            prompts = {sample: json.loads(text)["messages"][1][1]
                       for sample, text in db.execute("SELECT sample, request_json FROM llm_cache")}
        # The states candidates were planned from, by the last candidate each saw (the
        # record's `batch`), and the states the long-term reflection was refreshed from
        # (after candidates 0, window, 2 window ...).
        seen = {r.batch for r in records if r.id > 0} | {refresh(r.batch, settings) for r in records if r.id > 0}
        planned = {after: SearchState.from_store(store, settings, below=after + 1) for after in seen}
    finally:
        store.close()
    return records, prompts, planned, settings


def refresh(after: int, settings) -> int:
    """The last candidate seen by the long-term reflection of a plan made after ``after``."""
    return settings.window * (after // settings.window)


def test_each_operator_gets_its_parents_by_its_rule(all_operators_run):
    records, _, planned, settings = all_operators_run
    used = Counter()
    for record in records[1:]:
        assert record.batch == max(0, record.id - settings.window)  # planned once that one was committed
        state = planned[record.batch]
        op = OPERATORS[record.operator]
        used[op.name] += 1
        elites = set(state.elite_ids())
        if op.source == "none":
            assert record.parents == ()
        elif op.source == "best":
            assert record.parents == (state.archive.best().cid,)
        elif op.source == "failed":
            assert len(record.parents) == 1 and record.parents[0] in state.failed
        else:
            assert set(record.parents) <= elites and len(record.parents) == min(op.arity, len(elites))
            if op.source == "ranked":
                scores = [state.records[p].score for p in record.parents]
                assert scores == sorted(scores)
    assert set(used) == set(settings.operator_names), used


def test_offline_reflections_are_computed_from_the_run(all_operators_run):
    records, prompts, planned, settings = all_operators_run
    crossovers = [r for r in records if r.operator == "crossover"]
    elitists = [r for r in records if r.operator == "elitist"]
    assert crossovers and elitists
    for record in crossovers:
        state = planned[record.batch]
        better, worse = (state.records[p] for p in record.parents)
        expected = compare(better.code, worse.code).text(better.score, worse.score)
        assert expected in prompts[record.id]
    lessons_seen = 0
    for record in elitists:
        state = planned[refresh(record.batch, settings)]  # refreshed once per window
        text = state.memory.lessons().text()
        assert (text or "(none yet)") in prompts[record.id]
        lessons_seen += bool(text)
    assert lessons_seen  # the long-term reflection had something to say in this run


def test_curiosity_favours_elites_whose_children_enter_the_archive(all_operators_run):
    records, _, _, settings = all_operators_run
    state = SearchState.for_settings(settings)
    for record in records:
        state.tell(record)
    # Recount the offspring statistics straight from the rows.
    children, successes = Counter(), Counter()
    for r in records:
        if r.status != "llm_failed":
            for p in set(r.parents):
                children[p] += 1
                successes[p] += r.archive_status > 0
    assert state.children == children and state.successes == successes
    import numpy as np

    elites = state.elite_ids()
    picks = Counter(state.select(1, np.random.default_rng(i), "curiosity", 3)[0] for i in range(3000))
    rates = {e: (successes[e] + 1) / (children[e] + 2) for e in elites}
    best, worst = max(elites, key=rates.get), min(elites, key=rates.get)
    assert rates[best] > rates[worst]
    assert picks[best] > picks[worst]
    assert picks[best] / 3000 == pytest.approx(rates[best] / sum(rates.values()), abs=0.03)


@pytest.mark.parametrize("overrides, expected", [
    (("operators.m1.weight=-1",), "operators.m1.weight must be a number >= 0"),
    (("+operators.m9.weight=1",), "operators: unknown m9"),
    (("operators.m1.selection=best",), "operators.m1.selection must be one of"),
    (("bandit.policy=greedy",), "bandit.policy must be one of"),
    (("bandit.window=0",), "bandit.window must be at least 1"),
    (("bandit=thompson", "+bandit.exploration=1.0"), "bandit.exploration does nothing under bandit.policy=thompson"),
    (("llm.mix={m3: {shrink: 1.0}}",), "llm.mix.m3: unknown edit(s) shrink"),
])
def test_search_config_errors_name_the_key(overrides, expected):
    from evo.errors import UserError

    cfg = compose_config(list(overrides))
    with pytest.raises(UserError, match=re.escape(expected)):
        read_settings(cfg)


def test_a_search_config_error_is_one_line_and_leaves_no_run_folder(tmp_path):
    result = run_evo("run", *TOY, "operators.m1.weight=-1", f"hydra.run.dir={tmp_path / 'x'}")
    assert result.returncode == 2
    assert result.stderr.strip() == "evo: error: operators.m1.weight must be a number >= 0 (got -1)"
    assert not (tmp_path / "x").exists()


def answer_by_content(server):
    """Answers that depend on the request alone (not on the order requests arrive in), so
    that the run is one run: bin packing heuristics that aim at a gap of some share of the
    largest room, the share drawn from the request's hash."""
    from llm_server import answer, heuristic_code

    def behaviour(n: int):
        digest = int(hashlib.sha256(json.dumps(server.requests[n]["messages"], sort_keys=True).encode()).hexdigest(), 16)
        code = heuristic_code(0).replace("score = -(bins - item)",
                                         f"score = -np.abs(bins - item - {digest % 31 / 100} * np.max(bins))")
        return answer(f"{{Aim at a gap.}}\n\n```python\n{code}```\n")

    return behaviour


def test_with_an_llm_reflections_are_extra_cached_and_replayable_requests(tmp_path):
    from llm_server import ScriptedServer

    only = [f"operators.{name}.weight=0" for name in OPERATORS if name not in ("m1", "crossover", "elitist")]
    # A window of 4: the long-term reflection is refreshed after candidates 0, 4, 8 ...; in
    # this run elitist mutations 10 and 11 show the one made after candidate 4, 14 and 15
    # the one after 8, 16 and 18 the one after 12.
    common = ["+problem.instance.train_instances=1", "budget.evaluations=21", "seed=5", "window=4", *only]
    run_dir = tmp_path / "llm"
    server = ScriptedServer()
    server.default = answer_by_content(server)
    with server:
        run_evo("run", "llm=local", f"llm.base_url={server.url}", *common, f"hydra.run.dir={run_dir}", check=True)
        asked = server.count
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        cache = {sample: (json.loads(request)["operator"], json.loads(request)["messages"][1][1], text)
                 for sample, request, text in db.execute("SELECT sample, request_json, text FROM llm_cache")}
        rows = db.execute("SELECT id, batch, operator FROM candidates WHERE id > 0 ORDER BY id").fetchall()
    assert asked == len(cache)  # every request once, reflections included
    crossovers = [cid for cid, _, op in rows if op == "crossover"]
    assert crossovers
    for cid in crossovers:
        operator, _, reflection = cache[-2 * cid - 1]
        assert operator == "reflect_short"
        assert reflection.strip() in cache[cid][1]  # the crossover's prompt shows the LLM's reflection
    long_asks = {sample: text for sample, (op, _, text) in cache.items() if op == "reflect_long"}
    assert long_asks  # the run's lessons, once per refresh that an elitist mutation shows
    settings = read_settings(snapshot_config(run_dir))
    store = Store.open_readonly(run_dir)
    shown = Counter()
    try:
        for cid, batch, op in rows:
            if op != "elitist":
                continue
            after = refresh(batch, settings)
            lessons = SearchState.from_store(store, settings, below=after + 1).memory.lessons()
            if lessons.observed:  # evidence to reason from: the LLM's own reflection is shown
                assert long_asks[-2 * after - 2].strip() in cache[cid][1]
                shown[after] += 1
            else:
                assert -2 * after - 2 not in long_asks and (lessons.text() or "(none yet)") in cache[cid][1]
    finally:
        store.close()
    assert set(long_asks) == {-2 * after - 2 for after in shown}
    assert max(shown.values()) >= 2  # a shared one, asked once (asked == len(cache) above)
    assert all(sample >= 0 or op.startswith("reflect_") for sample, (op, _, _) in cache.items())
    # Replayed from the run's cache, with no server at all: the same run, reflections included.
    replay_dir = tmp_path / "replay"
    run_evo("run", "llm=replay", f"llm.source={run_dir}", *common, f"hydra.run.dir={replay_dir}", check=True)
    with sqlite3.connect(run_dir / "run.sqlite") as a, sqlite3.connect(replay_dir / "run.sqlite") as b:
        query = "SELECT id, operator, parents, code, score FROM candidates ORDER BY id"
        assert a.execute(query).fetchall() == b.execute(query).fetchall()
