"""Starting and resuming a run: from a composed config to a finished engine loop.

A run can stop at any moment and be resumed without losing or changing anything (see
``evo.store`` for why nothing but the store is needed). Stopping, by signal:

* the first SIGINT (Ctrl-C) or SIGTERM stops gracefully: no new LLM request or evaluation
  is started, the candidates in flight are finished and committed (an evaluation may take
  up to ``sandbox.wall_time_s``), and the exact resume command is printed;
* a second one stops at once (``os._exit``); what was committed stays, and what was in
  flight is redone on resume, its LLM answers served from the run's cache;
* SIGKILL, or a crash, behaves like the second signal.

A fault of the host (the run folder's filesystem full or read-only, the sandbox's
temporary folder unusable: ``evo.host``) stops the run too: what was committed stays, the
state says ``failed`` with the fault as its reason, and the command ends with one line
and exit code 74. The run resumes once the cause is gone.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import sqlite3
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evo.errors import HostError, UserError
from evo.host import Reserve, write_fault
from evo.search_state import SearchState
from evo.settings import Settings, read_settings
from evo.store import STORE_NAME, Store, writer_lock
from problems.base import Problem

if TYPE_CHECKING:
    from evo.engine import Engine
    from evo.evaluation import Evaluator
    from sandbox import SandboxError

# The engine, the sandbox and Hydra's instantiate are imported where a run starts or a
# problem is loaded: read-only commands import this module for snapshot_config and should
# answer in well under a second (evo/commands/README.md).

log = logging.getLogger("evo")

INTERRUPTED = "interrupted"


def load_problem(cfg: DictConfig) -> Problem:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(cfg.problem.instance)
    except InstantiationException as exc:
        # The problem's own word on its arguments or files, else the first line of Hydra's.
        first = str(exc.__cause__) if isinstance(exc.__cause__, ValueError) else str(exc).strip().splitlines()[0]
        raise UserError(f"problem {cfg.problem.instance.get('_target_')!r} cannot be loaded: {first}") from None


def execute(cfg: DictConfig, run_dir: Path, fresh: bool = True) -> int:
    """Start the run ``cfg`` in ``run_dir`` (``fresh``), or continue the run there with
    ``cfg`` as its config from now on. Returns the exit code."""
    if fresh:
        _replay_models(cfg)
    settings = read_settings(cfg)
    problem = load_problem(cfg)
    run_dir = Path(run_dir)
    if fresh and (run_dir / STORE_NAME).exists():
        _restore_snapshot_file(run_dir)
        raise UserError(f"{run_dir} already holds a run; use `evo resume {run_dir}`")
    if fresh:
        from evo.llm import check_sources

        check_sources(settings.models)
    run_dir.mkdir(parents=True, exist_ok=True)
    with writer_lock(run_dir), Reserve(run_dir) as reserve:
        if fresh:
            store = Store.create(run_dir, {"problem": cfg.problem.instance._target_, "seed": str(settings.seed),
                                           "config": _config_yaml(cfg)})
        else:
            store = Store.open(run_dir)
            try:
                store.set_meta("config", _config_yaml(cfg))
            except BaseException:
                store.close()
                raise
        return _drive(settings, problem, store, run_dir, reserve, resumed=not fresh)


def _replay_models(cfg: DictConfig) -> None:
    """A replay without ``llm.models`` of a run made with several models takes the
    source's models (names and weights), so that it makes the same choices; they are
    stored with the run's config, which a resume and the read-only commands read."""
    llm = cfg.llm
    if llm.get("backend") != "replay" or llm.get("models") is not None:
        return
    from evo.llm.replay import source_models

    models = source_models(llm.get("source"))
    if models is not None:
        OmegaConf.update(cfg, "llm.models", models, merge=False, force_add=True)


def resume(run_dir: Path, overrides: list[str]) -> int:
    """Continue the run in ``run_dir`` from its store and its stored config, with
    ``overrides`` (``key=value``, or ``key=+N`` to add N to a budget) applied on top.
    The caller has checked that only keys that may change on resume are overridden."""
    run_dir = Path(run_dir)
    Store.open_readonly(run_dir).close()  # a foreign folder is refused before a lock file lands in it
    with writer_lock(run_dir), Reserve(run_dir) as reserve:
        store = Store.open(run_dir)
        try:
            cfg = _stored_config(store, run_dir)
            for override in overrides:
                _apply_override(cfg, override)
            settings = _settings_of_stored(cfg, run_dir)
            problem = load_problem(cfg)
            if overrides:
                # The store first: it is what the next resume reads. The file is for people.
                store.set_meta("config", _config_yaml(cfg))
                _write_snapshot_file(run_dir, cfg)
        except BaseException:
            store.close()
            raise
        return _drive(settings, problem, store, run_dir, reserve, resumed=True)


def snapshot_config(run_dir: Path) -> DictConfig:
    """The config a run continues with: the one in its store (``evo resume`` overrides
    included), or Hydra's ``.hydra/config.yaml`` for a store written before it kept one."""
    store = Store.open_readonly(Path(run_dir))
    try:
        return _stored_config(store, Path(run_dir))
    finally:
        store.close()


def resume_command(run_dir: Path) -> str:
    return f"evo resume {shlex.quote(str(run_dir))}"


# ---- the run ---------------------------------------------------------------------------
def _drive(settings: Settings, problem: Problem, store: Store, run_dir: Path, reserve: Reserve,
           resumed: bool) -> int:
    """Run the engine on an open store (under the writer lock, with the reserve held) and
    close the store."""
    from evo.engine import Engine
    from evo.evaluation import Evaluator
    from sandbox import SandboxError
    from evo.llm import CachedBackend, open_backend
    from evo.progress import Progress
    from sandbox import Sandbox, SandboxError

    file_log: logging.Handler | None = None
    reason: str | None = None
    received: list[int] = []
    try:
        file_log = _log_to(run_dir)
        store.set_run_state("running", "")
        log.info("%s run in %s (%d candidates committed)", "resuming" if resumed else "starting", run_dir,
                 store.count())
        # The sandbox's fork server starts before any LLM client: it is a lean process
        # of its own, never a fork of this one once litellm's threads run.
        try:
            sandbox = Sandbox(settings.limits, settings.workers, preload=("numpy", problem.harness))
        except SandboxError as exc:
            raise HostError(f"the sandbox cannot start: {exc}") from None
        with sandbox:
            evaluator = Evaluator(problem, sandbox, settings.replay_steps, settings.seed, settings.probe_states)
            with ExitStack() as opened:
                backends = {}
                for model in settings.models:  # each closed (its local server stopped) on exit
                    raw = opened.enter_context(open_backend(model.config, problem.entry, tuple(problem.vocabulary),
                                                            settings.seed, run_dir, model.name))
                    backends[model.name] = CachedBackend(raw, store, model.config, model.name)
                progress = Progress(settings.budget.evaluations, problem.score_name)
                engine = Engine(settings, problem, store, evaluator, backends, progress)
                try:
                    with _graceful_interrupts(engine, run_dir, settings, received):
                        reason = engine.run()
                finally:
                    progress.close()
            store.set_run_state(INTERRUPTED if reason == INTERRUPTED else "finished", reason)
            log.info("stopped: %s", reason)
            _print_summary(settings, problem, store, evaluator, run_dir, reason)
    except KeyboardInterrupt:  # a Ctrl-C before the graceful handler was in place, or after it
        if reason is None:
            _mark_stopped(store, INTERRUPTED, "interrupted while starting")
            _say(f"\nevo: stopped; resume with: {resume_command(run_dir)}\n")
        raise
    except (HostError, SandboxError) as exc:
        raise _stopped_by_host(exc, store, run_dir, reserve, reason) from None
    except BaseException as exc:
        if reason is None:
            _mark_stopped(store, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        store.close()
        if file_log is not None:
            _close_log(file_log)
    if reason == INTERRUPTED:
        return 128 + (received[0] if received else signal.SIGINT)
    return 1 if reason.startswith("llm:") else 0


def _stopped_by_host(exc: HostError | SandboxError, store: Store, run_dir: Path, reserve: Reserve,
                     reason: str | None) -> HostError:
    """A fault of the host stopped the run: record it in the room the reserve kept, and
    say what to do. (Jobs the sandbox cannot start, for want of a temporary folder or of
    processes, are the host's fault too, never the candidate's.)"""
    fault = exc if isinstance(exc, HostError) else HostError(f"the sandbox cannot run jobs: {exc}")
    reserve.release()
    # After the engine stopped (writing its state, say), the run has its own reason; a
    # resume then finishes whatever could not be written. It is the same advice.
    if reason is None:
        _mark_stopped(store, "failed", f"host: {fault}")
        try:
            log.error("stopped: host: %s", fault)
        except HostError:
            pass  # the log cannot take it; the store has it
    else:  # the engine's own reason, whose write failed: the reserve makes room for it
        _mark_stopped(store, INTERRUPTED if reason == INTERRUPTED else "finished", reason)
    try:
        kept = store.count()
        note = f" ({kept} committed candidate{'' if kept == 1 else 's'} kept)"
    except sqlite3.Error:  # a disk failing for reads too: what it holds, it holds
        note = ""
    return HostError(f"{fault}, then resume with: {resume_command(run_dir)}{note}")


def _mark_stopped(store: Store, state: str, reason: str) -> None:
    try:
        store.set_run_state(state, reason)
    except Exception:  # noqa: BLE001 - the original error matters more than this note
        pass


@contextmanager
def _graceful_interrupts(engine: Engine, run_dir: Path, settings: Settings, received: list[int]) -> Iterator[None]:
    """First SIGINT or SIGTERM: start nothing new, finish and commit what is in flight,
    stop. Second: stop at once. ``received`` collects the signals."""
    command = resume_command(run_dir)

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            _say(f"\nevo: stopping now; the committed candidates are kept. Resume with: {command}\n")
            os._exit(128 + signum)
        engine.stop_requested.set()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        _say(f"\nevo: stopping after the candidates in flight (up to {settings.limits.wall_time_s:g} s);"
             f" {name} again stops at once. Resume with: {command}\n")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _say(text: str) -> None:
    """Write to stderr from a signal handler: os.write, because the handler may run while
    the main thread is inside a buffered write to stderr (the progress line), and a
    buffered stream entered again from a handler raises."""
    try:
        os.write(2, text.encode())
    except OSError:  # stderr closed (the terminal went away): the stop goes on silently
        pass


class _RunLog(logging.FileHandler):
    """``run.log``. A line the host refuses stops the run like any other refused write
    (logging's own way is to print a traceback and go on)."""

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            raise write_fault(exc, Path(self.baseFilename).parent) from None
        super().handleError(record)


def _log_to(run_dir: Path) -> logging.Handler:
    try:
        handler = _RunLog(run_dir / "run.log")
    except OSError as exc:
        raise write_fault(exc, run_dir) from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def _close_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    try:
        handler.close()
    except OSError:
        pass  # its last lines could not be written; the store holds the run's state


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
    if any(m.asks_llm for m in settings.models):
        totals = store.totals()
        out.write(f"llm:          {totals['n']:,} requests, {totals['prompt_tokens']:,} prompt + "
                  f"{totals['completion_tokens']:,} completion tokens, ${totals['cost_usd']:.4f}\n")
        if len(settings.models) > 1:  # and each model's share (evo inspect has the whole table)
            for name, used in store.usage_by_model().items():
                out.write(f"  {name + ':':<12}{used['requests']:,} requests, {used['prompt_tokens']:,} prompt + "
                          f"{used['completion_tokens']:,} completion tokens, ${used['cost_usd']:.4f}\n")
    if last is not None:
        out.write(f"coverage:     {100 * last.coverage:.1f}% of cells, QD score {last.qd_score:.2f}\n")
        out.write(f"digest:       {SearchState.from_store(store, settings).digest()}\n")
    if best is not None:
        out.write(f"best:         #{best.id} {problem.score_name} {best.score:.4f}\n")
        out.write(f"thought:      {best.thought}\n")
    if reason == INTERRUPTED:
        # A stop asked for no new work: the baselines are left for the finished run.
        out.write(f"\nresume with: {resume_command(run_dir)}\n")
        return
    if best is None:
        return
    train = problem.train_set()
    out.write(f"\n{problem.score_name} on the training set {train.name}:\n")
    out.write(f"  {'best (#' + str(best.id) + ')':<16} {best.score:8.4f}\n")
    for name, code in problem.baselines.items():
        result = evaluator.evaluate(code, train)
        score = f"{result.verdict.score:8.4f}" if result.ok else f"failed: {result.error}"
        out.write(f"  {name:<16} {score}\n")


# ---- the stored config -----------------------------------------------------------------
def _config_yaml(cfg: DictConfig) -> str:
    # Resolved, so that a resume in another environment (an ${oc.env:...} model name,
    # say) continues with exactly the values the run started with.
    return OmegaConf.to_yaml(cfg, resolve=True)


def _stored_config(store: Store, run_dir: Path) -> DictConfig:
    text = store.config_yaml()
    try:
        if text is not None:
            cfg = OmegaConf.create(text)
        else:
            path = run_dir / ".hydra" / "config.yaml"
            if not path.is_file():
                raise UserError(f"{run_dir} keeps no config (neither in its store nor in .hydra/config.yaml)")
            cfg = OmegaConf.load(path)
    except (OmegaConfBaseException, ValueError) as exc:  # yaml's errors are ValueErrors
        raise UserError(f"the config stored with {run_dir} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, DictConfig):
        raise UserError(f"the config stored with {run_dir} is not a mapping")
    return cfg


def _settings_of_stored(cfg: DictConfig, run_dir: Path) -> Settings:
    try:
        return read_settings(cfg)
    except (KeyError, OmegaConfBaseException) as exc:
        # A key this evo needs and the run's config lacks (or the reverse): the run was
        # made by another version of evo. Say so rather than show a traceback.
        raise UserError(f"the config stored with {run_dir} does not fit this version of evo"
                        f" ({type(exc).__name__}: {str(exc).splitlines()[0]}); resume it with the evo that made it"
                        ) from None


def _apply_override(cfg: DictConfig, override: str) -> None:
    """``key=value`` sets a value; ``key=+N`` adds N to the current number (a budget
    extended by N); ``key=null`` lifts a limit."""
    key, _, text = override.partition("=")
    missing = object()
    current = OmegaConf.select(cfg, key, default=missing)
    if current is missing:
        raise UserError(f"unknown config key {key!r}")
    if text.startswith("+"):
        if current is None:
            raise UserError(f"{key} has no limit to extend; give it a value ({key}=N) instead of +N")
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            raise UserError(f"{key}=+N adds to a number, but {key} is {current!r}; give a value instead")
        increment = _number(key, text[1:])
        value = current + increment
    else:
        # Hydra's own parser: "500" is 500, "1.5" is 1.5, "null" is None, as in `evo run`.
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import HydraException

        try:
            value = OverridesParser.create().parse_overrides([override])[0].value()
        except HydraException as exc:
            raise UserError(f"{override!r}: {str(exc).splitlines()[0]}") from None
    OmegaConf.update(cfg, key, value, merge=False)


def _number(key: str, text: str) -> int | float:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    raise UserError(f"{key}=+{text}: {text!r} is not a number")


def _restore_snapshot_file(run_dir: Path) -> None:
    """`evo run` into a folder that holds a run: Hydra has already written the new launch's
    config over the run's .hydra/config.yaml. Put the run's own back from its store."""
    try:
        store = Store.open_readonly(run_dir)
        try:
            text = store.config_yaml()
        finally:
            store.close()
        if text is not None:
            _write_snapshot_file(run_dir, OmegaConf.create(text))
    except (UserError, OSError, OmegaConfBaseException, ValueError):
        pass  # the refusal that follows is what matters; a damaged store is reported on resume


def _write_snapshot_file(run_dir: Path, cfg: DictConfig) -> None:
    folder = run_dir / ".hydra"
    folder.mkdir(exist_ok=True)
    temporary = folder / "config.yaml.tmp"
    OmegaConf.save(cfg, temporary)
    os.replace(temporary, folder / "config.yaml")  # whole or not at all
