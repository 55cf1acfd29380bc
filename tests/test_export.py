"""`evo export` round-trips through `evo evaluate`: the file it writes is accepted as it is,
and the command in its header scores it again to the score the run stored."""
from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_evo
from tests.test_inspect import TEST_SETS, TRAIN_SET, evo, evo_json, small_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_run(tmp_path_factory)


def stored(run_dir: Path, query: str, *params) -> list[tuple]:
    db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(query, params).fetchall()
    finally:
        db.close()


def header_command(text: str) -> list[str]:
    """The `evo evaluate ...` line the export's header gives."""
    line = next(line for line in text.splitlines() if line.startswith("#   evo evaluate "))
    return shlex.split(line[1:].strip())


def test_export_of_the_best_round_trips_through_evaluate(run_dir, tmp_path, capsys):
    best_id, best_score, thought = stored(
        run_dir, "SELECT id, score, thought FROM candidates WHERE status = 'ok' ORDER BY score, id LIMIT 1")[0]
    target = tmp_path / "best.py"
    code, _, err = evo(capsys, "export", run_dir, "-o", target)
    assert code == 0 and str(target) in err
    text = target.read_text()
    assert f"candidate #{best_id}" in text and f"{best_score:.4f}" in text and thought in text
    assert str(run_dir.resolve()) in text and "import numpy as np" in text
    # The header's command names the run's problem and training set: run it as it is.
    command = header_command(text)
    assert command[:3] == ["evo", "evaluate", str(target)]
    assert f"problem.train={TRAIN_SET}" in command
    result = run_evo(*command[1:], "--json", check=True)
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    assert report["train"][TRAIN_SET]["score"] == pytest.approx(best_score, rel=1e-12, abs=1e-12)
    # And the test-set scores `evo inspect` computes are the ones `evo evaluate` gives.
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    sets = {r["name"]: r for r in evo_json(capsys, "inspect", copy)["scores"]["sets"]}
    for name in TEST_SETS:
        assert sets[name]["best"]["score"] == pytest.approx(report["test"][name]["score"], rel=1e-12)
        for baseline, score in report["baselines"].items():
            assert sets[name]["baselines"][baseline]["score"] == pytest.approx(score[name], rel=1e-12)


def test_export_of_a_chosen_candidate_to_standard_output(run_dir, tmp_path, capsys):
    # A valid candidate other than the seed: the code an operator wrote.
    cid, score, code_text = stored(
        run_dir, "SELECT id, score, code FROM candidates WHERE status = 'ok' AND id > 0 ORDER BY id LIMIT 1")[0]
    code, out, err = evo(capsys, "export", run_dir, "--id", cid)
    assert code == 0 and err == ""
    assert f"candidate #{cid}" in out and code_text.strip() in out
    assert header_command(out)[2] == "FILE"
    body = "\n".join(line for line in out.splitlines() if not line.startswith("#"))
    compile(body, "export", "exec")  # a module on its own
    # Round trip of the operator's code too, through a file evaluate reads.
    path = tmp_path / f"chosen-{cid}.py"
    path.write_text(out)
    command = header_command(out)
    command[2] = str(path)
    report = json.loads(run_evo(*command[1:], "--json", check=True).stdout)
    assert report["train"][TRAIN_SET]["score"] == pytest.approx(score, rel=1e-12, abs=1e-12)


def test_export_refuses_what_it_cannot_write(run_dir, tmp_path, capsys):
    code, _, err = evo(capsys, "export", run_dir, "-o", tmp_path)
    assert code == 2 and "is a folder" in err and len(err.strip().splitlines()) == 1
