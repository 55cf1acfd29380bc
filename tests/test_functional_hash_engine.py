"""Functional hashing end to end: real `evo run`s against the scripted LLM server.

The server answers with chosen heuristics, one per candidate (one candidate per batch and
one request at a time, so request n is candidate n + 1). The store then shows each level
of deduplication as the engine recorded it:

* a reformatted copy of a committed candidate: "syntactic", no process started (probe_s 0);
* a rescaled Best Fit: "functional", equivalent to the seed, with the seed's score and
  measures but its own operator and parents, and no evaluation (eval_s 0);
* with hashing.verify_rate=1 every hit is evaluated anyway: agreement is "verified";
* with a one-state probe (fresh bins only), Best Fit and First Fit share a hash;
  verification finds the disagreement: "collision", and the candidate keeps its own
  (different) score.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import run_evo
from evo.evaluation import Evaluator
from llm_server import ScriptedServer, answer
from problems.bin_packing import BinPacking
from sandbox import Limits, Sandbox

CORPUS = Path(__file__).parent / "fixtures" / "heuristics" / "bin_packing"
# One generated instance of 1,000 Weibull items keeps each run to a few seconds.
TRAIN_SET = "weibull-1x1000-seed0"
TRAIN = [f"problem.train={TRAIN_SET}", "problem.tests=[or1]"]

BEST_FIT_SCALED = '''import numpy as np

def priority(item, bins):
    return 2.0 * (item - bins) + 5.0
'''
SEED_REFORMATTED = '''import numpy as np


def priority(size: float, capacities: np.ndarray) -> np.ndarray:
    # the seed, with other names, no docstring and another layout
    return -( capacities
              - size )
'''
FIRST_FIT = (CORPUS / "first_fit.py").read_text()
FIRST_FIT_SHIFTED = FIRST_FIT.replace("return -np.arange(len(bins), dtype=float)",
                                      "return 100.0 - np.arange(len(bins), dtype=float)")


def _answer(n: int, code: str) -> str:
    return f"{{Candidate {n}.}}\n\n```python\n{code}```\n"


def _run(tmp_path: Path, name: str, codes: list[str], *overrides: str) -> dict[int, sqlite3.Row]:
    """A run whose LLM candidates are ``codes``, in order; its candidate rows by id."""
    run_dir = tmp_path / name

    def behaviour(n: int):
        return answer(_answer(n, codes[n]))

    with ScriptedServer(default=behaviour) as server:
        result = run_evo(
            "run", "llm=local", f"llm.base_url={server.url}", "llm.api_key_env=null", "llm.concurrency=1",
            "window=1", "operators.crossover.weight=0", "operators.elitist.weight=0",
            f"budget.evaluations={len(codes) + 1}", *TRAIN, *overrides, f"hydra.run.dir={run_dir}", timeout=240)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert server.count == len(codes)  # no request other than the candidates'
    db = sqlite3.connect(run_dir / "run.sqlite")
    db.row_factory = sqlite3.Row
    return {row["id"]: row for row in db.execute("SELECT * FROM candidates ORDER BY id")}


def test_repeats_and_equivalents_take_the_original_result_and_keep_their_lineage(tmp_path: Path) -> None:
    rows = _run(tmp_path, "dedup", [BEST_FIT_SCALED, SEED_REFORMATTED, FIRST_FIT, FIRST_FIT_SHIFTED],
                "hashing.verify_rate=0")
    seed, scaled, copy, first_fit, shifted = (rows[i] for i in range(5))
    assert seed["status"] == "ok" and seed["functional_hash"] and seed["dedup"] is None

    # A rescaled Best Fit: same decisions on the probe, the seed's result, no evaluation.
    assert scaled["dedup"] == "functional" and scaled["status"] == "equivalent"
    assert scaled["equivalent_to"] == 0 and scaled["functional_hash"] == seed["functional_hash"]
    assert scaled["score"] == seed["score"] and scaled["measures"] == seed["measures"]
    assert scaled["eval_s"] == 0 and scaled["probe_s"] > 0
    # ... and its own lineage: the operator and parents that made it, not the seed's.
    assert scaled["operator"] not in ("seed", "") and scaled["code"] == BEST_FIT_SCALED
    assert all(p in rows and p < scaled["id"] for p in json.loads(scaled["parents"]))

    # The seed reformatted: recognised on its syntax, without starting any process.
    assert copy["dedup"] == "syntactic" and copy["equivalent_to"] == 0
    assert copy["probe_s"] == 0 and copy["eval_s"] == 0 and copy["score"] == seed["score"]

    # First Fit is new; First Fit plus a constant is First Fit again.
    assert first_fit["dedup"] is None and first_fit["status"] == "ok" and first_fit["eval_s"] > 0
    assert first_fit["functional_hash"] != seed["functional_hash"] and first_fit["score"] != seed["score"]
    assert shifted["dedup"] == "functional" and shifted["equivalent_to"] == 3
    assert shifted["score"] == first_fit["score"] and shifted["measures"] == first_fit["measures"]


@pytest.fixture(scope="module")
def one_state_collision() -> None:
    """Precondition of the collision test: on a one-state probe, Best Fit and First Fit decide
    alike (the state offers fresh bins only: both take the first)."""
    problem = BinPacking(train=TRAIN_SET, tests=["or1"])
    with Sandbox(Limits(wall_time_s=30), workers=1, preload=("numpy", problem.harness)) as sandbox:
        evaluator = Evaluator(problem, sandbox, replay_steps=0, seed=0, probe_states=1)
        seed, first_fit = evaluator.probe(problem.seed_code), evaluator.probe(FIRST_FIT)
    assert seed.hash is not None and seed.hash == first_fit.hash, "the one-state probe tells them apart"


def test_verification_confirms_agreement_and_records_a_collision(tmp_path: Path, one_state_collision: None) -> None:
    rows = _run(tmp_path, "verify", [BEST_FIT_SCALED, FIRST_FIT],
                "hashing.verify_rate=1.0", "hashing.probe_states=1")
    seed, scaled, first_fit = rows[0], rows[1], rows[2]
    assert scaled["functional_hash"] == first_fit["functional_hash"] == seed["functional_hash"]

    # Evaluated although its hash was known; the evaluation agreed.
    assert scaled["dedup"] == "verified" and scaled["status"] == "equivalent" and scaled["equivalent_to"] == 0
    assert scaled["eval_s"] > 0 and scaled["score"] == seed["score"]

    # Evaluated although its hash was known; the evaluation disagreed: a collision, and the
    # candidate keeps its own result.
    assert first_fit["dedup"] == "collision" and first_fit["status"] == "ok" and first_fit["equivalent_to"] is None
    assert first_fit["eval_s"] > 0 and first_fit["score"] != seed["score"]
