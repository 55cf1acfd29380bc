"""A hang costs one timeout, not two (issue #18): real hostile candidates through `evo run`.

A candidate whose functional-hash probe times out or runs out of memory ends with that
status: its full evaluation, on more and larger states, would only hit the limit again.
One that raises an error on a probe state still goes on to its full evaluation, since
the probe's synthetic states may be harsher than real instances.
"""
from __future__ import annotations

import sqlite3

from llm_server import ScriptedServer, answer
from tests.conftest import TOY, run_evo
from tests.fixtures.toy_problem import Toy

LIMIT_S = 3.0


def toy_answer(body: str) -> str:
    return f"{{A candidate.}}\n\n```python\nimport numpy as np\n\n\ndef pick(options):\n{body}```\n"


def probe_only_error() -> str:
    """Code that fails on a probe state and on no training row (nor its replays, which are
    training rows): it raises when the first option exceeds every training row's first."""
    problem = Toy()
    highest = max(float(row[0]) for row in problem.train_set().instances)
    probes = problem.probe_states(256)["options"]
    assert (probes[:, 0] > highest).any(), "no probe state is harsher than the training rows"
    return (f"    if options[0] > {highest!r}:\n        raise ValueError('an option beyond the training rows')\n"
            "    return -np.abs(options - 0.3)\n")


def test_a_probe_that_hits_a_limit_ends_the_candidate_and_an_error_does_not(tmp_path):
    bodies = [
        "    while True:\n        pass\n",  # 1: loops
        "    return np.ones(50 * 10**9 // 8)[: len(options)]\n",  # 2: allocates 50 GB
        probe_only_error(),  # 3: fails on a probe state only
        "    return -np.abs(options - 0.25)\n",  # 4: plain
    ]
    run_dir = tmp_path / "run"
    with ScriptedServer(default=lambda n: answer(toy_answer(bodies[n]))) as server:
        result = run_evo(
            "run", *TOY, "llm=local", f"llm.base_url={server.url}", "llm.api_key_env=null", "llm.concurrency=1",
            "window=1", *[f"operators.{op}.weight=0" for op in ("i1", "e1", "e2", "m2", "m3", "crossover",
                                                                  "elitist", "fix")],
            f"sandbox.wall_time_s={LIMIT_S}", f"sandbox.cpu_time_s={LIMIT_S}", "budget.evaluations=5",
            f"hydra.run.dir={run_dir}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert server.count == 4
    db = sqlite3.connect(run_dir / "run.sqlite")
    db.row_factory = sqlite3.Row
    rows = {r["id"]: r for r in db.execute("SELECT * FROM candidates")}

    loop, allocation, harsh, plain = rows[1], rows[2], rows[3], rows[4]
    # The loop: one timeout, on the probe, and no evaluation after it.
    assert loop["status"] == "timeout" and loop["error"].startswith("on the probe states: ")
    assert loop["probe_s"] >= LIMIT_S - 0.5 and loop["eval_s"] == 0 and loop["functional_hash"] is None
    # The allocation: out of memory on the probe, and no evaluation after it.
    assert allocation["status"] == "memory" and allocation["error"].startswith("on the probe states: ")
    assert allocation["eval_s"] == 0
    # An error on a probe state: no functional hash, but a full evaluation, which passes.
    assert harsh["status"] == "ok" and harsh["functional_hash"] is None
    assert harsh["probe_s"] > 0 and harsh["eval_s"] > 0 and harsh["score"] is not None
    assert plain["status"] == "ok" and plain["functional_hash"] is not None
