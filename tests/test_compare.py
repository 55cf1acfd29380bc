"""`evo compare`: which config keys tell runs apart, grouping over seeds, mean ± std, the
order of the rows, the plot, and bad input. (On a real sweep's runs: tests/test_sweep.py.)"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from evo.cli import main
from evo.commands.compare import RunResult, _curve, compare, stats, table_rows
from evo.commands.compare_html import _ticks, plot_svg


def result(name: str, seed: int, best: float | None, policy: str = "ucb1", workers: int = 2,
           tests: dict[str, float | None] | None = None, qd: float = 1.0) -> RunResult:
    config = {"seed": seed, "workers": workers, "bandit.policy": policy, "bandit.exploration": 1.0,
              "budget.evaluations": 10}
    return RunResult(
        run_dir=Path("/sweeps/s") / name, seed=seed, state="finished", stop_reason="budget.evaluations reached (10)",
        config=config, choices={"bandit": policy, "problem": "toy"}, score_name="regret", best_id=3,
        best_score=best, test_scores=tests or {}, tests_missing=0, qd_score=qd, coverage=0.1, evaluations=10,
        elapsed_s=60.0 + seed, cost_usd=0.01, curve=((1, 0.5), (4, best or 0.5), (10, best or 0.5)))


def test_runs_that_differ_only_in_seed_form_one_group_with_mean_and_sample_std():
    runs = [result("a", 0, 0.2), result("b", 1, 0.4), result("c", 2, 0.6)]
    c = compare(runs)
    assert c["columns"] == []
    [group] = c["groups"]
    assert group["seeds"] == [0, 1, 2]
    assert group["best_score"]["n"] == 3
    assert group["best_score"]["mean"] == pytest.approx(0.4)
    assert group["best_score"]["std"] == pytest.approx(0.2)  # sample std: sqrt((0.04 + 0 + 0.04) / 2)
    assert group["elapsed_s"]["mean"] == pytest.approx(61.0)
    assert group["states"] == {"finished": 3}
    header, rows = table_rows(c)
    assert header[:2] == ["seeds", "state"]
    assert rows[0][:4] == ["0,1,2", "finished", "0.4000 ± 0.2000", "1.00"]


def test_a_differing_group_choice_is_one_column_and_the_keys_it_explains_are_not_shown():
    runs = [result("u0", 0, 0.30, "uniform"), result("u1", 1, 0.50, "uniform"),
            result("b0", 0, 0.10), result("b1", 1, 0.20, workers=4)]
    c = compare(runs)
    # bandit.policy follows from the bandit choice; workers differs on its own.
    assert c["columns"] == ["bandit", "workers"]
    # Best first; groups split by every varying column, seeds pooled.
    assert [(g["config"], g["seeds"]) for g in c["groups"]] == [
        ({"bandit": "ucb1", "workers": 2}, [0]),
        ({"bandit": "ucb1", "workers": 4}, [1]),
        ({"bandit": "uniform", "workers": 2}, [0, 1]),
    ]
    assert c["groups"][0]["best_score"] == {"mean": 0.1, "std": None, "n": 1}
    names = [r["name"] for r in c["runs"]]
    assert names == ["bandit=ucb1 workers=2 seed=0", "bandit=ucb1 workers=4 seed=1",
                     "bandit=uniform workers=2 seed=0", "bandit=uniform workers=2 seed=1"]


def test_test_scores_unknown_for_some_runs_are_left_out_of_the_mean_and_groups_without_a_best_go_last():
    runs = [result("a", 0, 0.2, tests={"big": 1.0}), result("b", 1, 0.4, tests={"big": None}),
            result("c", 0, None, "uniform")]
    c = compare(runs)
    assert c["test_sets"] == ["big"]
    first, last = c["groups"]
    assert first["test_scores"]["big"] == {"mean": 1.0, "std": None, "n": 1}
    assert last["config"] == {"bandit": "uniform"} and last["best_score"]["mean"] is None
    header, rows = table_rows(c)
    assert header[header.index("test big")] == "test big"
    assert rows[1][header.index("best regret")] == "—"


def test_stats_and_curve_and_ticks():
    assert stats([None, float("nan")]) == {"mean": None, "std": None, "n": 0}
    assert stats([2.0, 2.0])["std"] == 0.0
    # Only improvements are points, and the line runs on to the last evaluation.
    assert _curve([None, 0.9, 0.9, 0.5, 0.7, None]) == ((2, 0.9), (4, 0.5), (6, 0.5))
    assert _ticks(0, 40) == [0, 10, 20, 30, 40]
    assert _ticks(0.013, 0.44)[:2] == [0.1, 0.2] and all(math.isfinite(t) for t in _ticks(0.013, 0.44))


def test_the_plot_is_inline_svg_with_one_line_and_legend_entry_per_run():
    runs = [result("a", 0, 0.2), result("b", 1, 0.4, "uniform")]
    svg = plot_svg([("a <1>", "#111111", "", runs[0].curve), ("b", "#222222", "7 4", runs[1].curve)], "regret")
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert "a &lt;1&gt;" in svg and "a <1>" not in svg  # labels are escaped
    assert "No run has a valid candidate" in plot_svg([("a", "#111111", "", ())], "regret")


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"evo: error: no such folder: {tmp_path / 'missing'}\n"
    assert main(["compare", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"evo: error: {tmp_path} holds no evo run (no run.sqlite in it or below it)\n"
    assert main(["compare"]) == 2
    assert capsys.readouterr().err.startswith("evo: error: evo compare: the following arguments are required")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.sqlite").write_text("not a database")
    assert main(["compare", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evo: error: ") and err.count("\n") == 1
