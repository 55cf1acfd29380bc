"""`evo run` end to end: real engine, real sandbox, real store, through the command line."""
import sqlite3

import pytest

from tests.conftest import TOY, run_evo


@pytest.mark.parametrize("override, expected", [
    ("problem=nope", "unknown problem 'nope'; available: bin_packing, tsp"),
    ("llm=nope", "unknown llm 'nope'; available:"),
    ("budget.evaluations=0", "budget.evaluations must be at least 1"),
    ("budget.evaluations=-5", "budget.evaluations must be at least 1"),
    ("budget.cost_usd=-1", "budget.cost_usd must be a positive number or null"),
    ("seed=abc", "seed must be an integer"),
    ("archive.selection=best", "archive.selection must be"),
])
def test_bad_input_is_one_line_and_leaves_no_run_folder(override, expected, run_dir):
    result = run_evo("run", override, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()


def test_unknown_command_and_missing_run_folder(tmp_path):
    result = run_evo("frobnicate")
    assert result.returncode == 2 and result.stderr.startswith("evo: error: unknown command")
    result = run_evo("resume", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "no such run folder" in result.stderr


def test_a_run_stores_every_candidate_and_reports_its_best(run_dir):
    result = run_evo("run", *TOY, "budget.evaluations=33", f"hydra.run.dir={run_dir}", check=True)
    assert "best:" in result.stdout and "largest" in result.stdout
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    db = sqlite3.connect(run_dir / "run.sqlite")
    rows = db.execute("SELECT id, operator, parents, thought, code, status, score, measures, eval_s FROM candidates"
                      " ORDER BY id").fetchall()
    assert [r[0] for r in rows] == list(range(33))
    assert rows[0][1] == "seed"
    evaluated = [r for r in rows if r[5] == "ok"]
    assert len(evaluated) >= 5
    assert all(r[3] and "def pick" in r[4] and r[6] is not None and r[7] and r[8] > 0 for r in evaluated)
    seed_score = rows[0][6]
    assert min(r[6] for r in evaluated) < seed_score  # the search finds something better than the seed


def _digest(stdout: str) -> str:
    return next(line.split()[-1] for line in stdout.splitlines() if line.startswith("digest:"))


def test_one_seed_gives_one_run_whatever_the_parallelism(tmp_path):
    first = run_evo("run", *TOY, "seed=7", "budget.evaluations=30", f"hydra.run.dir={tmp_path / 'a'}", check=True)
    second = run_evo("run", *TOY, "seed=7", "budget.evaluations=30", "workers=1",
                     f"hydra.run.dir={tmp_path / 'b'}", check=True)
    other = run_evo("run", *TOY, "seed=8", "budget.evaluations=30", f"hydra.run.dir={tmp_path / 'c'}", check=True)
    assert _digest(first.stdout) == _digest(second.stdout)
    assert _digest(first.stdout) != _digest(other.stdout)
    codes = [sqlite3.connect(tmp_path / d / "run.sqlite").execute("SELECT code FROM candidates ORDER BY id").fetchall()
             for d in ("a", "b")]
    assert codes[0] == codes[1]
