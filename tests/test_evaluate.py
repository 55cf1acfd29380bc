"""`evo evaluate` fails fast: the training set under the run's own limits, nothing more once
the heuristic failed there, and a failure on one test set leaves the others to run."""
from __future__ import annotations

import json
import time

from tests.conftest import REPO, run_evo

LOOP = '''import numpy as np


def select_next_node(current_node, destination_node, unvisited_nodes, distance_matrix):
    while True:
        pass
'''
# Best Fit, except on instances of more than 200 items (EoH 1k's), where it loops.
LOOPS_ON_BIG = '''import numpy as np


def priority(item, bins):
    while len(bins) > 200:
        pass
    return -(bins - item)
'''
LIMITS = ["sandbox.wall_time_s=1", "sandbox.cpu_time_s=1", "sandbox.test_time_factor=3"]


def test_a_heuristic_that_fails_on_the_training_set_stops_there(tmp_path):
    path = tmp_path / "loop.py"
    path.write_text(LOOP)
    started = time.monotonic()
    result = run_evo("evaluate", str(path), "problem=tsp", *LIMITS, "--json")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    train = report["train"]["random-64x50-seed0"]
    assert train["status"] == "timeout" and "1.0 s" in train["error"]  # the run's limit, not 3 times it
    assert report["status"] == "timeout" and report["functional_hash"] is None
    assert set(report["test"]) == {"tsp20", "tsp50", "tsp100", "tsp200", "tsplib"}
    for row in report["test"].values():
        assert row["status"] == "skipped" and row["score"] is None
        assert row["error"] == "not run: the heuristic failed on the training set (timeout)"
    assert report["baselines"]["nearest_neighbour"]["random-64x50-seed0"] > 0
    assert all(report["baselines"]["nearest_neighbour"][name] is None for name in report["test"])
    assert elapsed < 17  # one 1 s timeout; run, the training set and five test sets would take 3 s each
    table = run_evo("evaluate", str(path), "problem=tsp", *LIMITS)
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    assert [line.split()[-2:] for line in lines if line.startswith("tsp")] == [["skipped", "skipped"]] * 5
    assert "test sets skipped: not run: the heuristic failed on the training set (timeout)" in lines


def test_a_failure_on_one_test_set_does_not_stop_the_others(tmp_path):
    path = tmp_path / "loops_on_big.py"
    path.write_text(LOOPS_ON_BIG)
    result = run_evo("evaluate", str(path), "problem=bin_packing", "problem.train=weibull-2x100-seed0",
                     "problem.tests=[eoh_1k,or1]", *LIMITS, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["train"]["weibull-2x100-seed0"]["status"] == "ok"
    big, small = report["test"]["eoh_1k"], report["test"]["or1"]
    assert big["status"] == "timeout" and "3.0 s" in big["error"]  # test sets: test_time_factor x the limit
    assert small["status"] == "ok" and round(small["score"], 2) == 5.81  # Best Fit on OR1, as published
    assert report["status"] == "timeout"
    assert report["baselines"]["best_fit"]["eoh_1k"] > 0  # the baselines still run on every set


def test_a_good_heuristic_reports_everything():
    best_fit = REPO / "tests" / "fixtures" / "heuristics" / "bin_packing" / "best_fit.py"
    result = run_evo("evaluate", str(best_fit), "problem=bin_packing", "problem.train=weibull-2x100-seed0",
                     "problem.tests=[or1]", "--json", check=True)
    report = json.loads(result.stdout)
    assert report["status"] == "ok" and report["functional_hash"]
    assert report["test"]["or1"]["score"] == report["baselines"]["best_fit"]["or1"]
