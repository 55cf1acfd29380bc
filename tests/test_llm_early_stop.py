"""A provider that refuses every request stops the run early, with a clear message."""
import sqlite3

from llm_server import ScriptedServer, status
from tests.conftest import run_evo


def test_a_wrong_key_stops_the_run_instead_of_burning_its_budget(tmp_path):
    run_dir = tmp_path / "run"
    with ScriptedServer(default=lambda n: status(401, message="Incorrect API key provided")) as server:
        result = run_evo("run", "llm=local", f"llm.base_url={server.url}", "llm.max_retries=0",
                         "budget.evaluations=200", "evaluation.max_consecutive_llm_failures=6",
                         f"hydra.run.dir={run_dir}")
        requests = server.count
    assert result.returncode == 1, result.stderr
    assert "llm: 6 requests in a row failed; last error: auth:" in result.stdout
    rows = sqlite3.connect(run_dir / "run.sqlite").execute("SELECT status FROM candidates WHERE id > 0").fetchall()
    assert [r[0] for r in rows] == ["llm_failed"] * 6
    # The window in flight (8) and one more planned at each of the first five commits at
    # most, never the 199 of the budget.
    assert requests <= 8 + 5
