"""Resuming runs that talk to an LLM server (the scripted OpenAI-compatible server).

* An answer received before a stop is never requested again: the server counts requests.
  (That the run ends the same whatever the stops is shown offline in test_resume.py, and
  for a stop in a batch with an LLM below.)
* A stop in the middle of a batch, right after a functional-hash collision, resumes into
  the same candidates as the run left alone.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from llm_server import ScriptedServer, answer
from tests.conftest import TOY
from tests.test_resume import Background, committed, evo_traceback, outcome

CONCURRENCY = 2


def toy_answer(code_body: str, thought: str = "Prefer options near a target.") -> str:
    code = f"import numpy as np\n\n\ndef pick(options):\n{code_body}"
    return f"{{{thought}}}\n\n```python\n{code}```\n"


_TARGETS = (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


def answer_for(body: dict):
    """An answer that depends on the request's content alone, so that a request sent
    again (after a kill) gets the same answer, as a cached one would be."""
    digest = int(hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest(), 16)
    target, power = _TARGETS[digest % len(_TARGETS)], 1 + (digest >> 8) % 3
    return answer(toy_answer(f"    return -np.abs(options - {target}) ** {power}\n"))


def llm_args(server: ScriptedServer) -> list[str]:
    return ["llm=local", f"llm.base_url={server.url}", "llm.model=openai/test", f"llm.concurrency={CONCURRENCY}",
            "llm.max_retries=0", "llm.timeout_s=60"]


def cached_answers(run_dir: Path) -> int:
    with closing(sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)) as db:
        return db.execute("SELECT COUNT(*) FROM llm_cache WHERE error = ''").fetchone()[0]


def test_no_answer_is_paid_twice_across_ctrl_c_and_sigkill(tmp_path):
    """Requests the server answered are in the cache, and a resume asks only for the rest:
    the server's count exceeds the cache's by the requests in flight at each hard stop.
    And a first Ctrl-C sends no new request: the batch's queued requests stay unsent."""
    mode = "hang first"

    def behaviour(n: int):
        text = answer_for(server.requests[n]).text
        # The run's first request is held until the server closes (never answered); the
        # others take a while, so that most of a batch's requests wait in a queue.
        if mode == "hang first":
            return answer(text, delay_s=600 if n == 0 else 0.1)
        return answer(text)

    server = ScriptedServer(default=behaviour).start()
    # Batches of 12 with 2 requests at a time; no reflection requests, so that the first
    # request is candidate 1's, which the engine waits for first.
    run = [*TOY, "seed=5", "budget.evaluations=30", "window=12", "~operators.crossover", "~operators.elitist"]
    run_dir = tmp_path / "run"
    try:
        # 1. Ctrl-C while candidate 1's request hangs and candidate 2's is slow.
        job = Background(tmp_path, "part0", "run", *run, *llm_args(server), f"hydra.run.dir={run_dir}")
        wait_for(lambda: server.count >= 2, job)
        job.process.send_signal(signal.SIGINT)
        at_signal = server.count
        time.sleep(1.0)
        # The first Ctrl-C waits for what is in flight, and sends nothing new (one request
        # may have been on its way out as the signal landed).
        assert job.process.poll() is None, job.text()
        assert server.count - at_signal <= 1, (at_signal, server.count)
        job.process.send_signal(signal.SIGINT)  # the second stops at once
        assert job.wait(10) == 130
        assert "stopping now" in job.text() and not evo_traceback(job.text())
        hung = server.count - cached_answers(run_dir)
        assert hung == 1  # every answer received is in the cache; the unanswered one is not
        mode = "fast"

        # 2. SIGKILL at a random moment after some progress.
        before = committed(run_dir)
        job = Background(tmp_path, "part1", "resume", str(run_dir))
        wait_for(lambda: committed(run_dir) > before, job)
        time.sleep(random.Random(5).uniform(0.0, 0.3))
        job.process.kill()
        job.wait()

        # 3. To the end.
        job = Background(tmp_path, "part2", "resume", str(run_dir))
        assert job.wait() == 0, job.text()
        resent = server.count - cached_answers(run_dir)
        # Re-sent: the hung request, plus at most those in flight at the SIGKILL.
        assert hung <= resent <= hung + CONCURRENCY, (hung, resent)
    finally:
        server.close()


def wait_for(condition, job: Background, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert job.process.poll() is None and time.monotonic() < deadline, job.text()
        time.sleep(0.01)


# ---- a collision, then a stop before the next twin of the batch is committed ------------------
def test_a_stop_right_after_a_collision_resumes_into_the_same_candidates(tmp_path):
    """Candidates 1-3 of the first batch behave alike on the probe states. 2 and 3 also
    agree on the training set, where 1 differs: 2 is a collision with 1 (kept, evaluated).
    3 must be compared with 1 again, the first of its kind - after a stop between the
    commits of 2 and 3 as much as without one."""
    from evo.app import execute, resume
    from evo.compose import compose_config
    from tests.fixtures.toy_problem import Toy

    row_sum = repr(float(Toy().train_set().instances[0].sum()))
    near = "    return -np.abs(options - 0.3)\n"
    tricky = (f"    if abs(float(options.sum()) - {row_sum}) < 1e-9:\n        return options\n"
              "    return -np.abs(options - 0.3)\n")
    tricky_too = (f"    choice = -np.abs(options - 0.3)\n    if abs(float(options.sum()) - {row_sum}) < 1e-9:\n"
                  "        choice = options\n    return choice\n")
    scripted = [near, tricky, tricky_too]
    with ScriptedServer(default=lambda n: answer(toy_answer(scripted[n] if n < 3 else
                                                            f"    return options * {n}.0\n"))) as server:
        overrides = [*TOY, "budget.evaluations=5", "window=4", "hashing.verify_rate=1.0", *llm_args(server),
                     "llm.concurrency=1",  # answers in id order: the n-th request is candidate n
                     "~operators.crossover", "~operators.elitist"]  # no reflection requests
        whole = tmp_path / "whole"
        assert execute(compose_config(overrides), whole) == 0
    with sqlite3.connect(whole / "run.sqlite") as db:
        rows = db.execute("SELECT id, status, dedup, equivalent_to FROM candidates WHERE id <= 3 ORDER BY id")
        assert [tuple(r) for r in rows] == [(0, "ok", None, None), (1, "ok", None, None), (2, "ok", "collision", None),
                                            (3, "ok", "collision", None)]

    # The store as a kill between the commits of candidates 2 and 3 leaves it (commits are
    # atomic and in id order; the batch's answers may all have arrived).
    stopped = tmp_path / "stopped"
    shutil.copytree(whole, stopped)
    with sqlite3.connect(stopped / "run.sqlite") as db:
        db.execute("DELETE FROM candidates WHERE id >= 3")
    assert resume(stopped, []) == 0  # every answer comes from the cache: the server is gone
    assert outcome(stopped) == outcome(whole)
