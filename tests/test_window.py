"""One seed and one window give one run, whatever the latencies (issue #16).

Runs against the scripted LLM server whose answers depend on the request alone and whose
latencies are random, drawn differently for each run, so that answers arrive in another
order every time; reflections (a crossover's own request, the shared long-term one) are
on. The runs must be the same run: the same candidates, the same archive digest and the
same LLM requests. (Workers and SIGKILL + resume are covered offline in test_run.py and
test_resume.py.)
"""
from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter

from evo.app import execute
from evo.cli import compose_config
from evo.operators import ANSWER_STOP, REFLECTION_MAX_TOKENS
from llm_server import ScriptedServer, answer
from tests.conftest import TOY
from tests.test_resume import outcome
from tests.test_resume_llm import answer_for

RUN = [*TOY, "seed=11", "budget.evaluations=31", "window=5", "operators.crossover.weight=2.0",
       "operators.elitist.weight=2.0"]


def run_with_latencies(run_dir, latency_seed: int, concurrency: int, overrides: tuple[str, ...] = ()):
    rng = random.Random(latency_seed)
    delays: list[float] = []

    def behaviour(n: int):
        while len(delays) <= n:
            delays.append(rng.uniform(0.0, 0.15))
        return answer(answer_for(server.requests[n]).text, delay_s=delays[n])

    server = ScriptedServer(default=behaviour)
    with server:
        args = ["llm=local", f"llm.base_url={server.url}", "llm.model=openai/test", f"llm.concurrency={concurrency}",
                "llm.max_retries=0", "llm.timeout_s=60", "llm.api_key_env=null"]
        assert execute(compose_config([*RUN, *args, *overrides]), run_dir) == 0
        requests = list(server.requests)
    return outcome(run_dir), requests


def test_latencies_and_concurrency_do_not_change_the_run(tmp_path):
    first, asked = run_with_latencies(tmp_path / "a", latency_seed=1, concurrency=3)
    second, _ = run_with_latencies(tmp_path / "b", latency_seed=2, concurrency=2, overrides=("workers=1",))
    assert second.records == first.records
    assert second.digest == first.digest
    assert second.cache_keys == first.cache_keys
    assert len(asked) == len(first.cache_keys)  # every request once, shared reflections included
    with sqlite3.connect(tmp_path / "a" / "run.sqlite") as db:
        asks = Counter(json.loads(r)["operator"] for (r,) in db.execute("SELECT request_json FROM llm_cache"))
    assert asks["reflect_short"] and asks["reflect_long"], asks
    # Reflections are capped short; candidates' answers end where their code block closes.
    capped = [body for body in asked if body["max_tokens"] == REFLECTION_MAX_TOKENS]
    assert len(capped) == asks["reflect_short"] + asks["reflect_long"]
    assert all(body["stop"] == list(ANSWER_STOP) for body in asked if body not in capped)
    # The window is part of the run: another window, another run.
    other, _ = run_with_latencies(tmp_path / "c", latency_seed=1, concurrency=3, overrides=("window=3",))
    assert other.records != first.records
