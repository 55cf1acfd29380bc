"""A whole `evo run llm=local` against the scripted server, interrupted, then resumed.

The server answers with valid bin packing heuristics. On the last request of the run it
sends SIGTERM to evo, so the run stops with answers in its cache that no candidate has
used yet. The resume must take them from the cache: the server sees no new request.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llm_server import ScriptedServer, answer, count_tokens, heuristic_answer, heuristic_code

ROOT = Path(__file__).resolve().parents[1]
EVO = Path(sys.executable).with_name("evo")
SECRET = "sk-e2e-0123456789abcdef0123"
PRICE_IN, PRICE_OUT = 1e-6, 2e-6
EVALUATIONS = 9  # the seed and two batches of four LLM candidates
REQUESTS = EVALUATIONS - 1

pytestmark = pytest.mark.skipif(not EVO.exists(), reason="the evo console script is not installed")


def evo(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, EVO_E2E_KEY=SECRET)
    return subprocess.run([str(EVO), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_run_records_tokens_and_cost_and_resume_is_served_from_the_cache(tmp_path):
    run_dir = tmp_path / "run"
    pid: list[int] = []

    def behaviour(n: int):
        if n == REQUESTS - 1 and pid:
            os.kill(pid[0], signal.SIGTERM)  # "Ctrl-C" while the last batch is in flight
            return answer(heuristic_answer(n), delay_s=1.0)
        return answer(heuristic_answer(n))

    with ScriptedServer(default=behaviour) as server:
        args = ["run", "llm=local", f"llm.base_url={server.url}", "llm.api_key_env=EVO_E2E_KEY",
                f"llm.cost_per_token.input={PRICE_IN}", f"llm.cost_per_token.output={PRICE_OUT}",
                f"budget.evaluations={EVALUATIONS}", f"hydra.run.dir={run_dir}"]
        env = dict(os.environ, EVO_E2E_KEY=SECRET)
        process = subprocess.Popen([str(EVO), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        pid.append(process.pid)
        out, err = process.communicate(timeout=240)
        assert process.returncode in (130, 143) and "interrupted" in out, (process.returncode, out, err)
        assert server.count == REQUESTS
        assert all(h["authorization"] == f"Bearer {SECRET}" for h in server.headers)

        with sqlite3.connect(run_dir / "run.sqlite") as db:
            committed = db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
        assert committed < EVALUATIONS  # the interrupt left work for the resume

        resumed = evo("resume", str(run_dir))
        assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
        assert server.count == REQUESTS  # every answer came from the cache
        sent_prompts = sorted(count_tokens("".join(m["content"] for m in body["messages"]))
                              for body in server.requests)

    db = sqlite3.connect(run_dir / "run.sqlite")
    db.row_factory = sqlite3.Row
    cache = {row["sample"]: row for row in db.execute("SELECT * FROM llm_cache")}
    candidates = db.execute("SELECT * FROM candidates WHERE id > 0 ORDER BY id").fetchall()
    assert len(candidates) == REQUESTS and sorted(cache) == [c["id"] for c in candidates]

    # The summary says what the LLM cost: the requests and tokens the server saw.
    completion = sum(count_tokens(heuristic_answer(n)) for n in range(REQUESTS))
    assert (f"llm:          {REQUESTS} requests, {sum(sent_prompts):,} prompt + {completion:,} completion tokens, $"
            in resumed.stdout), resumed.stdout

    answers = {heuristic_answer(n): n for n in range(REQUESTS)}
    codes = {heuristic_code(n) for n in range(REQUESTS)}
    for row in cache.values():
        messages = json.loads(row["request_json"])["messages"]
        assert row["error"] == "" and row["text"] in answers
        assert row["prompt_tokens"] == count_tokens("".join(content for _, content in messages))
        assert row["completion_tokens"] == count_tokens(row["text"])
        assert row["cost_usd"] == pytest.approx(row["prompt_tokens"] * PRICE_IN + row["completion_tokens"] * PRICE_OUT)
        assert row["model"] == "openai/local-model"
    assert sorted(r["prompt_tokens"] for r in cache.values()) == sent_prompts
    for c in candidates:
        row = cache[c["id"]]
        assert (c["prompt_tokens"], c["completion_tokens"]) == (row["prompt_tokens"], row["completion_tokens"])
        assert c["cost_usd"] == pytest.approx(row["cost_usd"]) and c["cost_usd"] > 0
        assert c["code"] in codes, c["code"]  # the scripted code, parsed out exactly
        assert c["status"] in ("ok", "equivalent"), (c["status"], c["error"])

    # The key went to the server and nowhere else.
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    # llm=replay, the server gone: the same candidates, from the recorded answers.
    replay_dir = tmp_path / "replayed"
    replayed = evo("run", "llm=replay", f"llm.source={run_dir}", f"budget.evaluations={EVALUATIONS}",
                   f"hydra.run.dir={replay_dir}")
    assert replayed.returncode == 0, (replayed.stdout, replayed.stderr)
    again = sqlite3.connect(replay_dir / "run.sqlite")
    columns = "id, operator, code, status, score, prompt_tokens, completion_tokens, cost_usd"
    assert (again.execute(f"SELECT {columns} FROM candidates ORDER BY id").fetchall()
            == sqlite3.connect(run_dir / "run.sqlite").execute(f"SELECT {columns} FROM candidates ORDER BY id").fetchall())
