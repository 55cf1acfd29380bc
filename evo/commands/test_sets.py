"""The best candidate's scores on the training and test sets, beside the baselines.

Test-set scores are computed on demand in the sandbox, exactly as ``evo evaluate`` does,
and cached in the run's ``test_scores`` table: a candidate's under its id and the set's
name, a baseline's under id ``BASELINE_ID`` and ``baseline:<name>:<set>``. The cache is
written through a short connection of its own under the run's writer lock, and only
when no writer holds the run: a live run's single writer is never raced or blocked.
"""
from __future__ import annotations

import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from evo.commands.common import BASELINE_ID, Run, baseline_key, finite
from evo.errors import HostError, UserError
from evo.store import CandidateRecord, Store, writer_active, writer_lock
from problems.base import Dataset, Problem


@dataclass(frozen=True)
class Job:
    """One (heuristic, dataset) score that is not cached yet."""

    cid: int
    key: str  # the dataset key of test_scores
    code: str
    dataset: Dataset


def score_table(run: Run, best: CandidateRecord | None, compute: bool) -> dict[str, Any]:
    """The ``scores`` section of ``evo inspect`` (keys documented in evo/commands/README.md)."""
    from evo.app import load_problem

    try:
        problem = load_problem(run.cfg)
        sets = [("train", problem.train_set().name, problem.train_set()),
                *(("test", name, dataset) for name, dataset in problem.test_sets().items())]
    except UserError as exc:
        return {"available": False, "error": str(exc), "score_name": None, "candidate": None, "sets": [], "note": ""}
    cached = {BASELINE_ID: run.store.test_scores(BASELINE_ID)}
    if best is not None:
        cached[best.id] = run.store.test_scores(best.id)
    missing = _missing(problem, best, sets, cached)
    note = ""
    if missing and compute:
        computed = _evaluate(run, problem, missing)
        note = _save(run, missing, computed)
        for job, value in zip(missing, computed):
            cached[job.cid][job.key] = value
    elif missing:
        note = f"{len(missing)} scores not computed (--no-test)"
    rows = []
    for split, name, dataset in sets:
        if best is None:
            best_cell = {"score": None, "error": "", "source": "missing"}
        elif split == "train":
            best_cell = {"score": finite(best.score), "error": "", "source": "run"}
        else:
            best_cell = _cell(cached[best.id], name, computed_keys(missing, best.id))
        baselines = {b: _cell(cached[BASELINE_ID], baseline_key(b, name), computed_keys(missing, BASELINE_ID))
                     for b in problem.baselines}
        rows.append({"name": name, "split": split, "instances": len(dataset.instances),
                     "reference": finite(dataset.reference), "best": best_cell, "baselines": baselines})
    return {"available": True, "error": "", "score_name": problem.score_name,
            "candidate": None if best is None else best.id, "sets": rows, "note": note}


def computed_keys(jobs: list[Job], cid: int) -> set[str]:
    return {job.key for job in jobs if job.cid == cid}


def _missing(problem: Problem, best: CandidateRecord | None, sets: list[tuple[str, str, Dataset]],
             cached: dict[int, dict[str, tuple[float | None, str]]]) -> list[Job]:
    if best is None:
        return []  # nothing to compare the baselines with yet
    jobs = []
    for split, name, dataset in sets:
        if split == "test" and name not in cached[best.id]:
            jobs.append(Job(best.id, name, best.code, dataset))
        for baseline, code in problem.baselines.items():
            if baseline_key(baseline, name) not in cached[BASELINE_ID]:
                jobs.append(Job(BASELINE_ID, baseline_key(baseline, name), code, dataset))
    return jobs


def _cell(cache: dict[str, tuple[float | None, str]], key: str, computed: set[str]) -> dict[str, Any]:
    if key not in cache:
        return {"score": None, "error": "", "source": "missing"}
    score, error = cache[key]
    return {"score": finite(score), "error": error, "source": "computed" if key in computed else "cache"}


def _evaluate(run: Run, problem: Problem, jobs: list[Job]) -> list[tuple[float | None, str]]:
    """Score the jobs in the sandbox, as many at once as the run had workers."""
    from evo.evaluation import Evaluator
    from sandbox import Sandbox, SandboxError

    settings = run.settings
    if sys.stderr.isatty():
        sys.stderr.write(f"evaluating {len(jobs)} test-set scores in the sandbox (skip with --no-test)...\n")
    try:
        with Sandbox(settings.test_limits, settings.workers, preload=("numpy", problem.harness)) as sandbox:
            evaluator = Evaluator(problem, sandbox, settings.replay_steps, settings.seed, settings.probe_states)

            def one(job: Job) -> tuple[float | None, str]:
                result = evaluator.evaluate(job.code, job.dataset)
                return (result.verdict.score, "") if result.ok else (None, f"{result.status}: {result.error}")

            with ThreadPoolExecutor(settings.workers) as pool:
                return list(pool.map(one, jobs))
    except SandboxError as exc:  # the host's fault (a full temporary folder, say), not the heuristic's
        raise HostError(f"the sandbox cannot run jobs: {exc} (or skip the test sets with --no-test)") from None


def _save(run: Run, jobs: list[Job], results: list[tuple[float | None, str]]) -> str:
    """Cache the new scores; returns a note for the user when they could not be cached.

    The cache is written as the run's writer writes: under its lock, taken without
    waiting. A live run holds that lock, so its scores are simply not cached."""
    if writer_active(run.run_dir):
        return "scores not cached: the run is being written (they will be computed again next time)"
    try:
        with writer_lock(run.run_dir):
            store = Store.open(run.run_dir)
            try:
                for job, (score, error) in zip(jobs, results):
                    store.save_test_score(job.cid, job.key, score, error)
            finally:
                store.close()
    except (UserError, HostError) as exc:
        return f"scores not cached: {exc}"
    except (sqlite3.Error, OSError) as exc:
        return f"scores not cached: {exc}"
    return ""
