"""Resumable runs (issue #8): stop a run at any moment, resume it, lose nothing, change nothing.

Real `evo` processes on the toy problem with the offline backend, stopped with SIGKILL,
SIGINT (once and twice) and SIGTERM at seeded random moments, then resumed: the run they
end with must be the run left alone - the same archive digest, the same candidates and
the same LLM requests.
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import EVO, REPO, TOY, evo_env, run_evo

BUDGET = 40
RUN = [*TOY, "seed=3", f"budget.evaluations={BUDGET}"]
# Timing fields differ from run to run by nature; everything else must not.
TIMING = ("llm_s", "probe_s", "eval_s", "created")


# ---- what a run ended with -----------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    digest: str
    records: list[tuple]
    cache_keys: frozenset[str]


def outcome(run_dir: Path) -> Outcome:
    """The archive digest, rebuilt from the store as `evo inspect` does, plus the rows."""
    from evo.app import snapshot_config
    from evo.search_state import SearchState
    from evo.settings import read_settings
    from evo.store import Store

    store = Store.open_readonly(run_dir)
    try:
        digest = SearchState.from_store(store, read_settings(snapshot_config(run_dir))).digest()
    finally:
        store.close()
    with closing(sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = [tuple((k, r[k]) for k in r.keys() if k not in TIMING)
                for r in db.execute("SELECT * FROM candidates ORDER BY id")]
        keys = frozenset(k for (k,) in db.execute("SELECT key FROM llm_cache"))
    return Outcome(digest, rows, keys)


def committed(run_dir: Path) -> int:
    path = run_dir / "run.sqlite"
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
    except sqlite3.OperationalError:  # the store is being created: no table yet
        return 0


def evo_traceback(text: str) -> bool:
    """Whether evo's own code failed with a traceback. (The sandbox server, which shares
    evo's stderr, prints one when its parent dies with answers in flight: its bug.)"""
    return any(f"{os.sep}evo{os.sep}" in line for line in text.splitlines() if line.lstrip().startswith("File "))


def meta_state(run_dir: Path) -> tuple[str, str]:
    with closing(sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)) as db:
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('state', 'stop_reason')"))
    return meta.get("state", ""), meta.get("stop_reason", "")


class Background:
    """`evo ARGS` in the background, its output in files (the sandbox server inherits
    stderr and may outlive a killed evo for a moment: a pipe would block the reader)."""

    def __init__(self, folder: Path, name: str, *args: str, env: dict[str, str] | None = None):
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen([*EVO, *args], stdout=out, stderr=err, env={**evo_env(), **(env or {})},
                                            cwd=REPO, stdin=subprocess.DEVNULL)

    def wait(self, timeout: float = 180) -> int:
        return self.process.wait(timeout)

    def text(self) -> str:
        return self.out.read_text() + self.err.read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Background:
    """The uninterrupted run, started at once: it runs beside the interrupted ones."""
    folder = tmp_path_factory.mktemp("reference")
    return Background(folder, "reference", "run", *RUN, f"hydra.run.dir={folder / 'run'}")


def reference_outcome(reference: Background) -> Outcome:
    assert reference.wait() == 0, reference.text()
    return outcome(Path(reference.process.args[-1].split("=", 1)[1]))


# ---- stopping a run at random moments ---------------------------------------------------------
def stop_and_resume(run_dir: Path, stops: list[tuple[int, ...]], seed: int) -> list[int]:
    """Start the run, stop it once per entry of ``stops`` (each a burst of signals, e.g.
    two SIGINTs), resuming it each time, then resume it to its end. The moment of each
    stop is random (seeded): a moment after the process committed something new."""
    rng = random.Random(seed)
    codes = []
    for i, burst in enumerate(stops):
        args = ["run", *RUN, f"hydra.run.dir={run_dir}"] if i == 0 else ["resume", str(run_dir)]
        before = committed(run_dir)
        job = Background(run_dir.parent, f"part{i}", *args)
        deadline = time.monotonic() + 120
        while committed(run_dir) <= before and job.process.poll() is None:
            assert time.monotonic() < deadline, job.text()
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.25))  # anywhere: answering, probing, evaluating, committing
        for n, sig in enumerate(burst):
            if n:
                time.sleep(rng.uniform(0.0, 0.1))
            if job.process.poll() is None:
                job.process.send_signal(sig)
        code = job.wait()
        codes.append(code)
        text = job.text()
        assert not evo_traceback(text), text
        if code == 0 or meta_state(run_dir)[0] == "finished":
            # The run ended before the stop arrived, or while it printed its summary (its
            # state already finished, its signal handlers gone): nothing left to interrupt.
            break
        if burst == (signal.SIGKILL,):
            assert code == -signal.SIGKILL, text
        else:
            assert code == 128 + burst[0], text
            assert f"Resume with: evo resume {run_dir}" in text, text  # printed at the first signal
            if len(burst) == 1:  # a graceful stop records itself; a hard one leaves "running"
                assert meta_state(run_dir) == ("interrupted", "interrupted")
    final = run_evo("resume", str(run_dir))
    assert final.returncode == 0, final.stdout + final.stderr
    assert f"budget.evaluations reached ({BUDGET})" in final.stdout
    return codes


KILLS = [(signal.SIGKILL,)] * 5
GRACEFUL = [(signal.SIGINT,), (signal.SIGTERM,), (signal.SIGINT, signal.SIGINT), (signal.SIGTERM,), (signal.SIGINT,)]


@pytest.fixture(scope="module")
def stopped_runs(tmp_path_factory, reference) -> dict[str, tuple[Path, Future]]:
    """The two stop-and-resume sequences, run side by side (each is mostly waiting)."""
    pool = ThreadPoolExecutor(2)
    runs = {}
    for name, stops, seed in (("kill", KILLS, 11), ("graceful", GRACEFUL, 12)):
        run_dir = tmp_path_factory.mktemp(name) / "run"
        runs[name] = (run_dir, pool.submit(stop_and_resume, run_dir, stops, seed))
    yield runs
    pool.shutdown(wait=True)


def test_sigkill_at_five_random_moments_changes_nothing(stopped_runs, reference):
    run_dir, codes = stopped_runs["kill"]
    codes = codes.result()
    assert codes.count(-signal.SIGKILL) >= 4, codes  # the stops really happened mid-run
    got, want = outcome(run_dir), reference_outcome(reference)
    assert got.records == want.records
    assert got.digest == want.digest
    # No request the uninterrupted run did not make, none missing.
    assert got.cache_keys == want.cache_keys


def test_sigint_once_and_twice_and_sigterm_change_nothing(stopped_runs, reference):
    run_dir, codes = stopped_runs["graceful"]
    codes = codes.result()
    assert len([c for c in codes if c != 0]) >= 4, codes
    got, want = outcome(run_dir), reference_outcome(reference)
    assert got.records == want.records
    assert got.digest == want.digest
    assert got.cache_keys == want.cache_keys
    assert meta_state(run_dir) == ("finished", f"budget.evaluations reached ({BUDGET})")


def test_a_finished_run_extended_on_resume_equals_the_longer_run(tmp_path, reference):
    run_dir = tmp_path / "run"
    short = run_evo("run", *RUN, "budget.evaluations=23", f"hydra.run.dir={run_dir}")
    assert short.returncode == 0 and "budget.evaluations reached (23)" in short.stdout, short.stderr
    # workers may change too: results are committed in id order whatever the parallelism.
    extended = run_evo("resume", str(run_dir), f"budget.evaluations=+{BUDGET - 23}", "workers=1")
    assert extended.returncode == 0, extended.stderr
    assert f"budget.evaluations reached ({BUDGET})" in extended.stdout
    got, want = outcome(run_dir), reference_outcome(reference)
    assert got.records == want.records and got.digest == want.digest
    # The extension is part of the run's config from now on, for the next resume.
    from evo.app import snapshot_config

    assert snapshot_config(run_dir).budget.evaluations == BUDGET
    assert f"evaluations: {BUDGET}\n" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_one_writer_per_run_while_readers_read(tmp_path):
    from evo.store import Store

    run_dir = tmp_path / "run"
    writer = Background(tmp_path, "writer", "run", *TOY, "budget.evaluations=100000", f"hydra.run.dir={run_dir}")
    try:
        deadline = time.monotonic() + 120
        while committed(run_dir) < 3:
            assert writer.process.poll() is None and time.monotonic() < deadline, writer.text()
            time.sleep(0.05)
        second = run_evo("resume", str(run_dir), "budget.evaluations=7")
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == (f"evo: error: {run_dir} is being written by another evo process; wait for it"
                                         " or stop it first (read-only commands such as `evo inspect` work meanwhile)")
        # Nor may a new run start there.
        clash = run_evo("run", *TOY, "seed=9", f"hydra.run.dir={run_dir}")
        assert clash.returncode == 2
        assert clash.stderr.strip() == f"evo: error: {run_dir} already holds a run; use `evo resume {run_dir}`"
        # Neither changed the run's config, though Hydra wrote the clash's over the file.
        snapshot = (run_dir / ".hydra" / "config.yaml").read_text()
        assert "evaluations: 100000" in snapshot and "\nseed: 0\n" in snapshot
        reader = Store.open_readonly(run_dir)
        try:
            assert reader.run_state() == "running"
            first = reader.count()
            while reader.count() == first:  # the reader sees the writer's commits as they land
                assert time.monotonic() < deadline
                time.sleep(0.05)
            writer.process.kill()
            writer.wait()
            assert reader.run_state() == "killed"  # the store still says running; the lock says dead
        finally:
            reader.close()
    finally:
        if writer.process.poll() is None:
            writer.process.kill()
            writer.wait()
