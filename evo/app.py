"""Starting and resuming a run: from a composed config to a finished engine loop."""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from evo.engine import Engine
from evo.errors import UserError
from evo.evaluation import Evaluator
from evo.llm import CachedBackend, make_backend
from evo.progress import Progress
from evo.search_state import SearchState
from evo.settings import Settings, read_settings
from evo.store import Store
from problems.base import Problem
from sandbox import Sandbox

log = logging.getLogger("evo")


def load_problem(cfg: DictConfig) -> Problem:
    from hydra.errors import InstantiationException

    try:
        return instantiate(cfg.problem.instance)
    except InstantiationException as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"problem {cfg.problem.instance.get('_target_')!r} cannot be loaded: {first}") from None


def execute(cfg: DictConfig, run_dir: Path, fresh: bool) -> int:
    """Run (or resume) the run in ``run_dir`` to the end of its budget. Returns an exit code."""
    settings = read_settings(cfg)
    problem = load_problem(cfg)
    with _single_writer(run_dir):
        store = (Store.create(run_dir, {"problem": cfg.problem.instance._target_, "seed": str(settings.seed)})
                 if fresh else Store.open(run_dir))
        _log_to(run_dir)
        log.info("%s run in %s", "starting" if fresh else "resuming", run_dir)
        # The sandbox's fork server starts before any LLM client: it is a lean process
        # of its own, never a fork of this one once litellm's threads run.
        with Sandbox(settings.limits, settings.workers, preload=("numpy", problem.harness)) as sandbox:
            evaluator = Evaluator(problem, sandbox, settings.replay_steps, settings.seed, settings.probe_states)
            backend = CachedBackend(make_backend(settings.llm, problem.entry, tuple(problem.vocabulary),
                                                 settings.seed), store, settings.llm)
            progress = Progress(settings.budget.evaluations, problem.score_name)
            engine = Engine(settings, problem, store, evaluator, backend, progress)
            with _graceful_interrupts(engine, run_dir):
                reason = engine.run()
            progress.close()
            store.set_meta("state", "interrupted" if reason == "interrupted" else "finished")
            store.set_meta("stop_reason", reason)
            log.info("stopped: %s", reason)
            _print_summary(settings, problem, store, evaluator, run_dir, reason)
        store.close()
    return 130 if reason == "interrupted" else (1 if reason.startswith("llm:") else 0)


@contextmanager
def _single_writer(run_dir: Path) -> Iterator[None]:
    """Only one process writes a run; readers need no lock."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"{run_dir} is being written by another evo process; wait for it or stop it first") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@contextmanager
def _graceful_interrupts(engine: Engine, run_dir: Path) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): finish what is in flight, commit, stop. Second: stop now."""

    def handler(signum: int, frame: object) -> None:
        if engine.stop_requested.is_set():
            sys.stderr.write(f"\nstopping now; resume with: evo resume {run_dir}\n")
            os._exit(130)
        engine.stop_requested.set()
        sys.stderr.write("\nstopping after the candidates in flight (Ctrl-C again to stop at once)\n")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _log_to(run_dir: Path) -> None:
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _print_summary(settings: Settings, problem: Problem, store: Store, evaluator: Evaluator, run_dir: Path,
                   reason: str) -> None:
    records = list(store.candidates())
    ok = [r for r in records if r.status == "ok" and r.score is not None]
    best = min(ok, key=lambda r: (r.score, r.id)) if ok else None
    last = records[-1] if records else None
    out = sys.stdout
    out.write(f"\nrun folder:   {run_dir}\n")
    out.write(f"stopped:      {reason}\n")
    out.write(f"evaluations:  {len(records)} (valid {len([r for r in records if r.status in ('ok', 'equivalent')])})\n")
    if last is not None:
        out.write(f"coverage:     {100 * last.coverage:.1f}% of cells, QD score {last.qd_score:.2f}\n")
        out.write(f"digest:       {SearchState.from_store(store, settings).digest()}\n")
    if best is None:
        return
    out.write(f"best:         #{best.id} {problem.score_name} {best.score:.4f}\n")
    out.write(f"thought:      {best.thought}\n")
    train = problem.train_set()
    out.write(f"\n{problem.score_name} on the training set {train.name}:\n")
    out.write(f"  {'best (#' + str(best.id) + ')':<16} {best.score:8.4f}\n")
    for name, code in problem.baselines.items():
        result = evaluator.evaluate(code, train)
        score = f"{result.verdict.score:8.4f}" if result.ok else f"failed: {result.error}"
        out.write(f"  {name:<16} {score}\n")
    if reason == "interrupted":
        out.write(f"\nresume with: evo resume {run_dir}\n")


def snapshot_config(run_dir: Path) -> DictConfig:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} has no config snapshot (.hydra/config.yaml)")
    return OmegaConf.load(path)
