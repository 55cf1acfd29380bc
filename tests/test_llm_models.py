"""Several LLMs in one run (llm.models): two scripted OpenAI-compatible servers on 127.0.0.1.

"strong" answers every request with a valid heuristic and costs ten times as much per
token as "weak", two thirds of whose answers are not code. Per request the strong model pays
better; per dollar the weak one does. Answers depend on the request's content alone, so a
request sent again (after a kill) gets the same answer, and the runs are deterministic.
"""
from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import time
from contextlib import closing, redirect_stdout
from pathlib import Path

import pytest

from evo.errors import UserError
from llm_server import ScriptedServer, answer
from tests.conftest import TOY, run_evo
from tests.test_resume import Background, committed, outcome

BUDGET = 70
PRICES = {"strong": 1e-5, "weak": 1e-6}  # USD per token, prompt and completion alike


def _digest(body: dict) -> int:
    return int(hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest(), 16)


def _toy_answer(body: dict):
    """A valid heuristic aiming at a target that the prompt decides, so different
    prompts get different behaviours (new cells of the archive)."""
    digest = _digest(body)
    target, power = (digest % 997) / 997, 1 + (digest >> 12) % 3
    code = f"import numpy as np\n\n\ndef pick(options):\n    return -np.abs(options - {target:.3f}) ** {power}\n"
    return answer(f"{{Prefer options near {target:.3f}.}}\n\n```python\n{code}```\n")


def _weak_answer(body: dict):
    if (_digest(body) >> 40) % 3:
        return answer("I am not sure how to write this function.")
    return _toy_answer(body)


class Servers:
    """The two servers, answering from the request's content."""

    def __init__(self) -> None:
        self.strong = ScriptedServer(default=lambda n: _toy_answer(self.strong.requests[n])).start()
        self.weak = ScriptedServer(default=lambda n: _weak_answer(self.weak.requests[n])).start()

    def counts(self) -> dict[str, int]:
        return {"strong": self.strong.count, "weak": self.weak.count}

    def models(self) -> str:
        entries = [f"{{name: {name}, base_url: '{server.url}', "
                   f"cost_per_token: {{input: {PRICES[name]}, output: {PRICES[name]}}}}}"
                   for name, server in (("strong", self.strong), ("weak", self.weak))]
        return f"llm.models=[{', '.join(entries)}]"

    def close(self) -> None:
        self.strong.close()
        self.weak.close()


# Three operators (six arms), so that the bandit learns within a short run; crossover and
# the elitist mutation send reflection requests, the elitist ones shared per model.
OPERATORS = ["~operators.i1", "~operators.e1", "~operators.e2", "~operators.m2", "~operators.m3", "~operators.fix"]


def run_args(servers: Servers, *extra: str, seed: int = 1) -> list[str]:
    # Both models are one model id on two servers: their names keep their answers apart.
    return [*TOY, f"seed={seed}", f"budget.evaluations={BUDGET}", "window=4", "bandit=thompson", *OPERATORS, "llm=local",
            "llm.model=openai/test", "llm.concurrency=2", "llm.max_retries=0", "llm.timeout_s=60",
            servers.models(), *extra]


@pytest.fixture(scope="module")
def servers():
    both = Servers()
    yield both
    both.close()


@pytest.fixture(scope="module")
def per_request(servers, tmp_path_factory):
    """A two-model run with the bandit rewarded per request, uninterrupted."""
    from evo.app import execute
    from evo.compose import compose_config

    run_dir = tmp_path_factory.mktemp("per_request") / "run"
    before = servers.counts()
    with open(run_dir.parent / "stdout.txt", "w") as out, redirect_stdout(out):
        assert execute(compose_config(run_args(servers)), run_dir) == 0
    after = servers.counts()
    return run_dir, {name: after[name] - before[name] for name in after}


def pulls_by_model(run_dir: Path, from_id: int = 0) -> dict[str, int]:
    with closing(sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT model_name, COUNT(*) FROM candidates WHERE id >= ? AND operator != 'seed'"
                               " GROUP BY model_name", (from_id,)).fetchall())


def inspect_json(run_dir: Path) -> dict:
    result = run_evo("inspect", str(run_dir), "--json", "--no-test", check=True)
    return json.loads(result.stdout)


# ---- the bandit chooses the model ---------------------------------------------------------------
def test_the_bandit_prefers_the_better_model_per_request_and_the_cheaper_one_per_dollar(
        servers, per_request, tmp_path):
    from evo.app import execute
    from evo.compose import compose_config

    run_dir, _ = per_request
    later = pulls_by_model(run_dir, from_id=BUDGET // 2)  # once the bandit has learned
    assert later["strong"] > 1.5 * later["weak"], later

    per_usd = tmp_path / "per_usd"
    assert execute(compose_config(run_args(servers, "bandit.reward_per=usd")), per_usd) == 0
    later = pulls_by_model(per_usd, from_id=BUDGET // 2)
    assert later["weak"] > 1.5 * later["strong"], later
    # Each arm's recorded model: every candidate after the seed names its model.
    assert set(pulls_by_model(per_usd)) == {"strong", "weak"}


def test_the_per_model_table_counts_what_each_server_saw(per_request):
    run_dir, seen = per_request
    s = inspect_json(run_dir)
    models = s["llm"]["models"]
    assert set(models) == {"strong", "weak"}
    with closing(sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)) as db:
        for name, row in models.items():
            # Every request the server answered is in the cache under its name, once.
            assert row["requests"] == seen[name] > 0
            assert row["model"] == "openai/test"
            candidates = db.execute("SELECT status, archive_status, score, id, prompt_tokens FROM candidates"
                                    " WHERE model_name = ?", (name,)).fetchall()
            assert row["candidates"] == len(candidates)
            assert row["valid"] == sum(c[0] in ("ok", "equivalent") for c in candidates)
            assert row["valid_share"] == pytest.approx(row["valid"] / len(candidates))
            assert row["improvements"] == sum(c[1] > 0 for c in candidates)
            best = min((c for c in candidates if c[0] == "ok"), key=lambda c: (c[2], c[3]))
            assert (row["best_score"], row["best_id"]) == (best[2], best[3])
            tokens = db.execute("SELECT SUM(prompt_tokens + completion_tokens), SUM(cost_usd) FROM llm_cache"
                                " WHERE model_name = ?", (name,)).fetchone()
            assert row["prompt_tokens"] + row["completion_tokens"] == tokens[0]
            assert row["cost_usd"] == pytest.approx(tokens[0] * PRICES[name])
    weak, strong = models["weak"], models["strong"]
    assert weak["valid_share"] < 0.8 and strong["valid_share"] == 1.0  # the weak model's prose is invalid
    # The bandit's arms are operator@model, and their pulls are the candidates' models.
    arms = s["bandit"]["arms"]
    assert "m1@strong" in arms and "m1@weak" in arms and "m1" not in arms
    for name in models:
        assert sum(a["pulls"] for arm, a in arms.items() if arm.endswith("@" + name)) == models[name]["candidates"]
    # The run's own summary gave each model's requests.
    summary = (run_dir.parent / "stdout.txt").read_text()
    assert f"  strong:     {seen['strong']} requests" in summary and f"  weak:       {seen['weak']} requests" in summary
    text = run_evo("inspect", str(run_dir), "--no-test", check=True).stdout
    assert "models" in text and "strong" in text and "weak" in text
    # The report draws the same table, and its arms chart counts pulls per operator@model.
    page = run_evo("report", str(run_dir), "-o", "-", check=True).stdout
    data = json.loads(page.split('id="evo-data">', 1)[1].split("</script>", 1)[0])
    assert data["summary"]["llm"]["models"] == models
    assert sum(arm.endswith("@weak") for arm in data["series"]["arm"]) == models["weak"]["candidates"]


# ---- replay and resume ------------------------------------------------------------------------
def test_replay_of_a_two_model_run_sends_no_request(servers, per_request, tmp_path):
    from evo.app import execute
    from evo.compose import compose_config

    source, _ = per_request
    before = servers.counts()
    replayed = tmp_path / "replayed"
    overrides = [*TOY, "seed=1", f"budget.evaluations={BUDGET}", "window=4", "bandit=thompson", *OPERATORS, "llm=replay",
                 f"llm.source={source}", "llm.models=[{name: strong}, {name: weak}]"]
    assert execute(compose_config(overrides), replayed) == 0
    assert servers.counts() == before
    assert outcome(replayed).digest == outcome(source).digest
    assert pulls_by_model(replayed) == pulls_by_model(source)
    # Without llm.models, a replay takes the source's models (names and weights).
    assert execute(compose_config(overrides[:-1]), tmp_path / "plain") == 0
    assert outcome(tmp_path / "plain").digest == outcome(source).digest and servers.counts() == before
    with pytest.raises(UserError, match=r"no answers from a model named 'strung' \(its models: strong, weak\)"):
        execute(compose_config([*overrides[:-1], "llm.models=[{name: strung}, {name: weak}]"]), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # refused before a run folder was made


def test_sigkill_and_resume_give_the_same_run(servers, per_request, tmp_path):
    reference, _ = per_request
    run_dir = tmp_path / "killed"
    job = Background(tmp_path, "part0", "run", *run_args(servers), f"hydra.run.dir={run_dir}")
    deadline = time.monotonic() + 120
    while committed(run_dir) < BUDGET // 3:
        assert job.process.poll() is None and time.monotonic() < deadline, job.text()
        time.sleep(0.02)
    job.process.send_signal(signal.SIGKILL)
    job.wait()
    assert committed(run_dir) < BUDGET
    job = Background(tmp_path, "part1", "resume", str(run_dir))
    assert job.wait() == 0, job.text()
    assert outcome(run_dir) == outcome(reference)


# ---- offline: two named models, one run per seed ------------------------------------------------
def test_two_offline_models_give_one_run_per_seed(tmp_path):
    from evo.app import execute
    from evo.compose import compose_config

    overrides = [*TOY, "seed=2", "budget.evaluations=40",
                 "llm.models=[{name: plain}, {name: keeper, weight: 2, mix: {m1: {keep: 1.0}, m2: {keep: 1.0}}}]",
                 "bandit.reward_per=second"]
    assert execute(compose_config([*overrides, "workers=1"]), tmp_path / "a") == 0
    assert execute(compose_config([*overrides, "workers=2"]), tmp_path / "b") == 0
    a, b = outcome(tmp_path / "a"), outcome(tmp_path / "b")
    assert a == b
    assert set(pulls_by_model(tmp_path / "a")) == {"plain", "keeper"}


# ---- config errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("models, message", [
    ("[]", "llm.models is empty"),
    ("[{name: a}, {name: a}]", "the name 'a' is used twice"),
    ("[{name: a, colour: red}]", r"llm.models\[0\] \(a\): unknown key\(s\) colour for the offline backend"),
    ("[{name: a@b}]", "has an '@'"),
    ("[{name: a, weight: 0}]", r"llm.models\[0\] \(a\).weight must be a number > 0"),
    ("[{name: a, weight: -1}]", "must be a number > 0"),
    ("[{model: x}]", "every model needs a name"),
    ("[{name: a, backend: nosuch}]", "backend must be one of"),
    ("[{name: a, concurrency: 0}]", "concurrency must be an integer >= 1"),
])
def test_a_bad_models_list_is_one_line_before_any_run_folder(models, message):
    from evo.compose import compose_config
    from evo.settings import read_settings

    with pytest.raises(UserError, match=message):
        read_settings(compose_config([*TOY, f"llm.models={models}"]))


def test_a_bad_models_list_on_the_command_line(tmp_path):
    run_dir = tmp_path / "run"
    result = run_evo("run", *TOY, "llm.models=[{name: a}, {name: a}]", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "used twice" in result.stderr
    assert "Traceback" not in result.stderr and not run_dir.exists()


def test_a_single_model_keeps_its_arms_and_cache_keys():
    """A run without llm.models: plain operator arms, and the cache keys of runs made
    before several models existed (the key's formula, written out)."""
    from evo.compose import compose_config
    from evo.llm import cache_key
    from evo.llm.base import Message
    from evo.settings import read_settings

    settings = read_settings(compose_config([*TOY]))
    assert all("@" not in arm for arm in settings.arms) and "m1" in settings.arms
    messages = (Message("user", "hello"),)
    old = hashlib.sha256(json.dumps({"model": "m", "messages": [["user", "hello"]], "params": {"temperature": 1.0},
                                     "sample": 3}, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert cache_key("m", messages, {"temperature": 1.0}, 3) == old
    assert cache_key("m", messages, {"temperature": 1.0}, 3, name="a") != old
    named = read_settings(compose_config([*TOY, "llm.models=[{name: a, weight: 3}, {name: b}]"]))
    assert len(named.arms) == 2 * len(settings.arms) and "m1@a" in named.arms
    assert named.arm_weights["m1@a"] == 3 * named.arm_weights["m1@b"]


def test_reward_per_cost_weighs_each_pull_by_its_cost():
    """Unit check of the weighting: a pull weighs its cost over the mean so far, at
    least MIN_COST_SHARE, and the offline model's time is no cost."""
    from evo.search_state import MIN_COST_SHARE, SearchState
    from evo.store import CandidateRecord

    def record(cid: int, model: str, cost: float) -> CandidateRecord:
        return CandidateRecord(
            id=cid, batch=cid - 1, operator="m1", parents=(0,), thought="", code="", status="invalid", error="",
            score=None, measures=None, cell=None, archive_status=0, reward=0.0, syntactic_hash=None,
            functional_hash=None, equivalent_to=None, dedup=None, model="x", prompt_tokens=0, completion_tokens=0,
            cost_usd=cost, llm_s=10 * cost, probe_s=0.0, eval_s=0.0, best_score=None, coverage=0.0, qd_score=0.0,
            created=0.0, model_name=model)

    from evo.bandit import BanditConfig

    state = SearchState.empty((), 1.0, ("m1@a", "m1@b", "m1@c"), BanditConfig(policy="thompson", reward_per="usd"),
                              recorded=True, free_models=frozenset({"c"}))
    for cid, (model, cost) in enumerate([("a", 3.0), ("b", 1.0), ("b", 0.0), ("c", 5.0)], start=1):
        state.tell(record(cid, model, cost))
    stats = state.bandit.stats
    # means after each: 3, 2, 4/3, 1: a weighs 1, b 0.5 then the floor, c (free) the floor
    assert stats["m1@a"].weight_sum == pytest.approx(1.0)
    assert stats["m1@b"].weight_sum == pytest.approx(0.5 + MIN_COST_SHARE)
    assert stats["m1@c"].weight_sum == pytest.approx(MIN_COST_SHARE)
    assert [s.pulls for s in stats.values()] == [1, 2, 1]


def test_a_store_made_before_several_models_is_read_and_migrated(tmp_path):
    """A store of schema 1 (no model_name columns) is read as it is, with the same digest,
    and migrated when it is resumed; its arms and cache keys stay those of one model."""
    from evo.app import execute
    from evo.compose import compose_config
    from evo.store import SCHEMA_VERSION

    run_dir = tmp_path / "old"
    assert execute(compose_config([*TOY, "seed=4", "budget.evaluations=12"]), run_dir) == 0
    before = outcome(run_dir)
    with closing(sqlite3.connect(run_dir / "run.sqlite")) as db:
        for table in ("candidates", "llm_cache"):
            db.execute(f"ALTER TABLE {table} DROP COLUMN model_name")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        db.commit()
    s = inspect_json(run_dir)
    assert s["archive_digest"] == before.digest and list(s["llm"]["models"]) == ["offline-mutation"]
    assert all("@" not in arm for arm in s["bandit"]["arms"])
    assert run_evo("resume", str(run_dir), "budget.evaluations=+4").returncode == 0
    with closing(sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert db.execute("SELECT COUNT(*), MAX(model_name) FROM candidates").fetchone() == (16, "")
        keys = {k for (k,) in db.execute("SELECT key FROM llm_cache")}
    assert before.cache_keys < keys  # the old answers' keys are kept, the new ones added
    whole = tmp_path / "whole"
    assert execute(compose_config([*TOY, "seed=4", "budget.evaluations=16"]), whole) == 0
    assert outcome(run_dir).digest == outcome(whole).digest and outcome(whole).cache_keys == keys
