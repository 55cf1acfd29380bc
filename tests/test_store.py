"""The run store: one transaction per checkpoint, whole after any kill, and every bad
store (missing, foreign, corrupt, truncated, newer) refused by `evo resume` in one line."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evo.cli import main
from evo.store import SCHEMA_VERSION, STORE_NAME, CandidateRecord, Store, writer_active, writer_lock
from evo.errors import UserError

REPO = Path(__file__).resolve().parent.parent
CONFIG = "seed: 0\nbudget: {evaluations: 10, llm_calls: null, cost_usd: null, wall_time_s: null}\n"


def record(cid: int, code: str = "") -> CandidateRecord:
    """A candidate row as the engine writes one, with a realistic amount of text."""
    code = code or f"import numpy as np\n\ndef pick(options):\n    return -np.abs(options - {cid / 1000})\n" * 4
    return CandidateRecord(
        id=cid, batch=(cid - 1) // 4, operator="m1", parents=(max(cid - 1, 0),), thought=f"idea {cid} " * 8,
        code=code, status="ok", error="", score=1.0 / (cid + 1), measures=(float(cid % 7), 0.5), cell=cid % 144,
        archive_status=cid % 3, reward=float(cid % 2), syntactic_hash=f"s{cid:019d}", functional_hash=f"f{cid:019d}",
        equivalent_to=None, dedup=None, model="offline", prompt_tokens=900, completion_tokens=300, cost_usd=0.0,
        llm_s=0.5, probe_s=0.01, eval_s=0.2, best_score=0.1, coverage=0.2, qd_score=3.0, created=time.time(),
    )


def make_store(run_dir: Path, candidates: int) -> None:
    run_dir.mkdir(parents=True)
    store = Store.create(run_dir, {"config": CONFIG, "state": "finished"})
    for cid in range(candidates):
        store.commit_candidate(record(cid), {"last": cid})
    store.close()


def resume_error(capsys, *args: str) -> str:
    """`evo resume ARGS` in this process; its error line (it must fail with exactly one)."""
    assert main(["resume", *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evo: error: ") and err.count("\n") == 1, err
    return err.strip()


# ---- the checkpoint -------------------------------------------------------------------------
WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from tests.test_store import record
from evo.store import Store
store = Store.open(Path(sys.argv[1]))
cid = store.count()
print("ready", flush=True)
while True:
    store.commit_candidate(record(cid), {"last": cid})
    cid += 1
"""


def test_a_kill_during_commits_leaves_a_whole_store_with_its_state(tmp_path):
    """SIGKILL a process committing as fast as it can: each time the store is intact, its
    candidates have no gap, and the state committed with the last one is there."""
    make_store(tmp_path / "run", 1)
    rng = random.Random(3)
    for _ in range(4):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "run"), str(REPO)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.02, 0.2))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        store = Store.open(tmp_path / "run")  # a whole store: the integrity check passes
        ids = [r.id for r in store.candidates()]
        assert ids == list(range(len(ids)))
        assert store.get_state("last") == ids[-1]
        store.close()
    assert len(ids) > 20  # the kills landed among commits


# ---- bad stores --------------------------------------------------------------------------------
def test_missing_and_foreign_folders(tmp_path, capsys):
    assert resume_error(capsys, tmp_path / "nope") == f"evo: error: no such run folder: {tmp_path / 'nope'}"
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    assert resume_error(capsys, foreign) == f"evo: error: {foreign} is not an evo run folder (no {STORE_NAME})"
    assert sorted(p.name for p in foreign.iterdir()) == ["cat.jpg"]  # no lock file left in someone's folder


@pytest.mark.parametrize("content, message", [
    (b"", "is not an evo run store (no schema version)"),
    (b"GIF89a not a database at all" * 100, "is not an evo run store (file is not a database)"),
])
def test_a_file_that_is_no_store(tmp_path, capsys, content, message):
    (tmp_path / STORE_NAME).write_bytes(content)
    assert resume_error(capsys, tmp_path).endswith(message)


def test_another_programs_sqlite_file(tmp_path, capsys):
    with sqlite3.connect(tmp_path / STORE_NAME) as db:
        db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('owner', 'someone else')")
    assert resume_error(capsys, tmp_path).endswith("is not an evo run store (no schema version)")


def test_a_newer_schema_is_refused(tmp_path, capsys):
    make_store(tmp_path / "run", 3)
    with sqlite3.connect(tmp_path / "run" / STORE_NAME) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    error = resume_error(capsys, tmp_path / "run")
    assert f"was written by a newer evo (store schema {SCHEMA_VERSION + 1}, this evo reads {SCHEMA_VERSION})" in error
    with pytest.raises(UserError, match="newer evo"):
        Store.open_readonly(tmp_path / "run")  # readers refuse it too


@pytest.mark.parametrize("damage", ["truncated at 30%", "truncated at 95%", "a page zeroed"])
def test_a_damaged_store_is_refused_before_anything_is_written(tmp_path, capsys, damage):
    run_dir = tmp_path / "run"
    make_store(run_dir, 300)
    path = run_dir / STORE_NAME
    pages = path.stat().st_size // 4096
    with open(path, "r+b") as handle:
        if damage.startswith("truncated"):
            handle.truncate(int(pages * int(damage[-3:-1]) / 100) * 4096)  # a copy cut short
        else:
            handle.seek(pages // 2 * 4096)  # a page in the middle of the candidates' b-tree
            handle.write(bytes(4096))
    before = path.read_bytes()
    error = resume_error(capsys, run_dir)
    assert f"{path} is damaged (truncated or corrupt: " in error, error
    assert path.read_bytes() == before


# ---- resume overrides ----------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("seed=1", "seed cannot change on resume: only budget.*, sandbox.*, workers may"),
    ("llm.model=gpt", "llm.model cannot change on resume"),
    ("budget.evaluations", "override 'budget.evaluations' must look like key=value"),
])
def test_overrides_that_would_change_the_experiment_are_refused(tmp_path, capsys, override, message):
    make_store(tmp_path / "run", 3)
    assert message in resume_error(capsys, tmp_path / "run", override)


@pytest.mark.parametrize("override, message", [
    ("budget.nope=3", "unknown config key 'budget.nope'"),
    ("budget.llm_calls=+5", "budget.llm_calls has no limit to extend; give it a value (budget.llm_calls=N)"),
    ("budget.evaluations=+many", "budget.evaluations=+many: 'many' is not a number"),
])
def test_bad_budget_overrides_leave_the_stored_config_alone(tmp_path, capsys, override, message):
    make_store(tmp_path / "run", 3)
    assert message in resume_error(capsys, tmp_path / "run", override)
    store = Store.open_readonly(tmp_path / "run")
    assert store.config_yaml() == CONFIG
    assert store.run_state() == "finished"
    store.close()


# ---- one writer --------------------------------------------------------------------------------
def test_the_writer_lock_admits_one_writer_and_tells_readers(tmp_path, capsys):
    make_store(tmp_path / "run", 2)
    with writer_lock(tmp_path / "run"):
        assert writer_active(tmp_path / "run")
        with pytest.raises(UserError, match="is being written by another evo process"):
            with writer_lock(tmp_path / "run"):
                pass
        assert "is being written by another evo process" in resume_error(capsys, tmp_path / "run")
    assert not writer_active(tmp_path / "run")
    with sqlite3.connect(tmp_path / "run" / STORE_NAME) as db:
        db.execute("UPDATE meta SET value = 'running' WHERE key = 'state'")
    store = Store.open_readonly(tmp_path / "run")
    assert store.run_state() == "killed"  # says running, but nobody holds the lock
    store.close()


def test_a_folder_name_with_uri_characters(tmp_path):
    run_dir = tmp_path / "runs #1?x=y"
    make_store(run_dir, 2)
    store = Store.open_readonly(run_dir)
    assert store.count() == 2
    store.close()
    assert os.path.exists(run_dir / STORE_NAME)


def test_creation_is_one_transaction(tmp_path):
    """Tables and meta land together: a creation that fails half-way (here, a meta value
    SQLite cannot store; in life, a kill) leaves no store without its schema version."""
    with pytest.raises(sqlite3.ProgrammingError):
        Store.create(tmp_path, {"config": object()})  # type: ignore[dict-item]
    with sqlite3.connect(tmp_path / STORE_NAME) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_stored_config_from_another_evo_version_is_one_line(tmp_path, capsys):
    from omegaconf import OmegaConf

    from evo.compose import compose_config
    from tests.conftest import TOY

    cfg = OmegaConf.to_container(compose_config(TOY), resolve=True)
    del cfg["archive"]  # as if this evo had added the archive's settings since the run began
    make_store(tmp_path / "run", 3)
    with sqlite3.connect(tmp_path / "run" / STORE_NAME) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (OmegaConf.to_yaml(cfg),))
    error = resume_error(capsys, tmp_path / "run")
    assert "does not fit this version of evo" in error and "resume it with the evo that made it" in error
