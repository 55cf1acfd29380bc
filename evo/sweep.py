"""Sweeps: `evo run --multirun ...` makes one run per combination of overrides.

Each run of a sweep lives in its own folder of one sweep folder, named after its swept
overrides (``hydra.sweep.subdir`` is ``${hydra:job.override_dirname}``, and the constant
overrides are excluded from it), so the same job always maps to the same folder. Launching a sweep again with the same ``hydra.sweep.dir`` therefore
skips the runs that finished and resumes the ones that were interrupted (a Ctrl-C, a crash,
a SLURM time limit); a job added to the sweep (one more seed) just starts.

The jobs may run in other processes or on other machines (the submitit launchers), where
neither their return value nor their output reaches the launching process. So each job
writes its outcome as a small JSON file into the sweep folder, and the launching process
reads those back for its summary and its exit code.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig, OmegaConf

from evo.errors import EXIT_HOST, EXIT_USAGE, HostError, UserError
from evo.rundir import may_change_on_resume, remove_unstarted
from evo.store import STORE_NAME, Store

# Our presets in conf/hydra/launcher/ carry the same names as the plugin's structured
# configs, so Hydra validates them against those (what we want) and warns that this
# matching is deprecated. The presets set every key, so they work without the matching
# too; the warning would only bury a sweep's output. Set at import: the jobs' processes
# import this module when they unpickle the task, before they compose their config.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/submitit_(local|slurm)' is validated against ConfigStore schema"
)

OUTCOMES_DIR = ".evo-jobs"
# The outcome a job records before its run: what stays if the job is killed on its way.
KILLED = "stopped before its end (killed); launch the sweep again to resume it"
MULTIRUN_FLAGS = ("-m", "--multirun")
INTERRUPTED = (130, 143)  # the exit codes of a run stopped by SIGINT or SIGTERM
_ABSENT = object()


@dataclass(frozen=True)
class Sweep:
    """One launch of a sweep, as planned by the launching process."""

    dir: Path  # absolute; every job of the launch writes below it
    launcher: str  # the launcher's class (hydra.launcher._target_)
    overrides: tuple[str, ...]  # what Hydra is given: the user's, with hydra.sweep.dir pinned
    launch: str  # names this launch's outcome records
    pid: int  # the launching process


@dataclass(frozen=True)
class Outcome:
    """What one job of a sweep did."""

    num: int
    run_dir: str
    action: str  # started | resumed | skipped | failed
    exit_code: int
    message: str  # why the run stopped, or the error


def plan_sweep(overrides: list[str]) -> Sweep:
    """Pin the sweep folder before Hydra launches anything.

    The default ``hydra.sweep.dir`` holds the time and a random token, so it must be
    resolved once, here: the jobs would otherwise each resolve it again, and the user
    needs the one folder to launch the same sweep again.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from evo.compose import compose_config, resolved_folder

    plain = [a for a in overrides if a not in MULTIRUN_FLAGS]
    try:
        parsed = OverridesParser.create().parse_overrides(plain)
    except HydraException as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    cfg = compose_config(fixed, return_hydra_config=True)
    sweep_dir = resolved_folder(cfg, "hydra.sweep.dir", "sweep folder")
    from evo.settings import read_settings

    read_settings(cfg)  # a bad value shared by every job is refused before any job starts
    launcher = str(cfg.hydra.launcher.get("_target_", ""))
    _check_launcher(launcher)
    # The flag first: Hydra's parser refuses it between overrides.
    pinned = ["--multirun", *(a for a in plain if not a.startswith("hydra.sweep.dir=")),
              f"hydra.sweep.dir='{sweep_dir}'", *_folder_names(parsed)]
    launch = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    return Sweep(sweep_dir, launcher, tuple(pinned), launch, os.getpid())


def _folder_names(parsed: list[Any]) -> list[str]:
    """Run folders named after the swept overrides alone (``bandit=ucb1,seed=0``).

    The overrides every job shares name no run apart; left in, they make long names, and
    a value with a slash (``llm.base_url=http://...``) makes nested folders. Without them,
    a sweep launched again with another budget finds its runs (and extends them), and
    one launched with another constant finds runs of another config (and refuses them).
    A sweep of one job keeps all its overrides in its folder's name, as Hydra does.
    """
    task = [o for o in parsed if not o.is_hydra_override()]
    if not any(o.is_sweep_override() for o in task) or any(
            o.get_key_element() == "hydra.job.config.override_dirname.exclude_keys" for o in parsed):
        return []  # nothing swept, or the user chose the exclusions
    constant = sorted({o.get_key_element() for o in task if not o.is_sweep_override()})
    if not constant:
        return []
    quoted = ",".join("'" + key.replace("\\", "\\\\").replace("'", "\\'") + "'" for key in constant)
    return [f"hydra.job.config.override_dirname.exclude_keys=[{quoted}]"]


def run_or_resume(cfg: DictConfig, run_dir: Path) -> tuple[str, int]:
    """Run one job of a sweep in ``run_dir``: start it, resume it, or skip it if finished.

    Returns what was done and the exit code; a UserError means nothing could be done.
    """
    action = decide(cfg, run_dir)
    return action, carry_out(action, cfg, run_dir)


def decide(cfg: DictConfig, run_dir: Path) -> str:
    """What a job of a sweep does with its folder: ``started`` a new run, ``resumed`` an
    unfinished one, or ``skipped`` a finished one. A finished run is resumed too when the
    job's budgets differ from the run's (a sweep launched again with a larger budget
    extends its runs), or when its LLM provider stopped it. A folder holding a run of
    another config is refused."""
    from evo.app import snapshot_config

    if not (run_dir / STORE_NAME).exists():
        return "started"
    changed = _changed_keys(snapshot_config(run_dir), cfg)
    fixed = [k for k in changed if not may_change_on_resume(k)]
    if fixed:
        shown = ", ".join(fixed[:3]) + (" ..." if len(fixed) > 3 else "")
        raise UserError(f"{run_dir} holds a run with another config ({shown} differ);"
                        " launch the sweep with a new hydra.sweep.dir")
    meta = _meta(run_dir)
    # A run the provider stopped (llm: ... failed in a row) has budget left: resumed.
    done = meta.get("state") == "finished" and not meta.get("stop_reason", "").startswith("llm:")
    if done and not any(k.startswith("budget.") for k in changed):
        return "skipped"
    return "resumed"


def carry_out(action: str, cfg: DictConfig, run_dir: Path) -> int:
    if action == "skipped":
        sys.stdout.write(f"{run_dir}: already finished; skipped\n")
        return 0
    from evo.app import execute

    return execute(cfg, run_dir, fresh=action == "started")


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """A config as dotted keys to plain values, resolved."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def run_job(sweep: Sweep, cfg: DictConfig, run_dir: Path, job_num: int) -> int:
    """The task of one job of ``sweep``: run, resume or skip it, and record what happened."""
    try:
        action = decide(cfg, run_dir)
        # Recorded before the run: a job killed on its way still shows in the summary.
        _record(sweep, Outcome(job_num, str(run_dir), action, 130, KILLED))
        code = carry_out(action, cfg, run_dir)
        message = "already finished" if action == "skipped" else _meta(run_dir).get("stop_reason", "")
    except (UserError, HostError) as exc:
        if run_dir.is_dir():
            remove_unstarted(run_dir)
        sys.stderr.write(f"evo: error: {exc}\n")
        action, code, message = "failed", EXIT_HOST if isinstance(exc, HostError) else EXIT_USAGE, str(exc)
    _record(sweep, Outcome(job_num, str(run_dir), action, code, message))
    if code in INTERRUPTED and os.getpid() == sweep.pid:
        # Jobs running inside the launching process (Hydra's basic launcher): a Ctrl-C
        # stops the sweep, not only the job it arrived in.
        raise KeyboardInterrupt
    return code


def outcomes(sweep: Sweep) -> list[Outcome]:
    folder = sweep.dir / OUTCOMES_DIR / sweep.launch
    found = [Outcome(**json.loads(p.read_text())) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(found, key=lambda o: o.num)


def launch(sweep: Sweep, start: Callable[[], None]) -> int:
    """Launch the sweep (``start`` runs Hydra's multirun), then report what each job did.

    Hydra prints a launcher's errors (no ``srun``, a refused ``sbatch``, a job that died)
    as a traceback and exits; with HYDRA_FULL_ERROR it raises them, and they become one
    line here. Errors of evo's own code keep their traceback.
    """
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException
    from submitit.core.utils import FailedSubmissionError, UncompletedJobError

    from evo.compose import hydra_errors_raised

    sys.stderr.write(f"sweep folder: {sweep.dir}\n")
    local = sweep.launcher.endswith(".LocalLauncher")
    try:
        with hydra_errors_raised(), _ctrl_c_to_the_jobs(local):
            start()
    except KeyboardInterrupt:
        if sweep.launcher.endswith(".SlurmLauncher"):
            # A Ctrl-C stops only the waiting here; the cluster runs the jobs to their end.
            sys.stderr.write(f"\nstopped waiting; the jobs go on in SLURM (squeue lists them)."
                             f" `evo compare {sweep.dir}` shows the runs as they are.\n")
            return 130
        if local:
            _wait_for_writers(sweep.dir, timeout_s=60)
        return report(sweep, interrupted=True)
    except MissingConfigException as exc:
        report(sweep)
        group, _, value = (exc.missing_cfg_file or "").partition("/")
        if exc.options:
            raise UserError(f"unknown {group} {value!r}; available: {', '.join(exc.options)}") from None
        raise UserError(_last_line(exc)) from None
    except (HydraException, OmegaConfBaseException) as exc:
        report(sweep)
        raise UserError(_last_line(exc)) from None
    except (UncompletedJobError, FailedSubmissionError) as exc:
        if any(o.message == KILLED for o in outcomes(sweep)):
            return report(sweep, interrupted=True)  # a second Ctrl-C stopped the runs at once
        report(sweep)
        raise UserError(f"the launcher failed: {_last_line(exc)} (jobs' logs: {sweep.dir / '.submitit'})") from None
    return report(sweep)


@contextmanager
def _ctrl_c_to_the_jobs(local: bool) -> Iterator[None]:
    """With the local launcher, a Ctrl-C is for the runs alone.

    A terminal's Ctrl-C reaches every process of the sweep. submitit's controller
    processes would pass it on to their job a second time (which stops a run at once,
    as a second Ctrl-C does) and kill it a second later. Ignored here, the signal is
    ignored by the controllers started here too (an ignored signal is inherited), while
    each run catches it itself: the runs stop gracefully, their outcomes come back, and
    the summary says they were interrupted. A second Ctrl-C stops the runs at once.
    """
    if not local:
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def report(sweep: Sweep, interrupted: bool = False) -> int:
    """Print what each job of this launch did; return the sweep's exit code."""
    done = outcomes(sweep)
    out = sys.stderr
    if not done and not interrupted:
        return 0
    out.write(f"\nsweep folder: {sweep.dir}\n")
    width = max((len(_relative(o.run_dir, sweep.dir)) for o in done), default=0)
    for o in done:
        out.write(f"  {_relative(o.run_dir, sweep.dir):<{width}}  {o.action:<8} {o.message}\n")
    interrupted = interrupted or any(o.exit_code in INTERRUPTED for o in done)
    if interrupted or any(o.exit_code != 0 for o in done):
        out.write(f"finish it: launch the same command again with hydra.sweep.dir={sweep.dir}\n")
    if done:
        out.write(f"compare the runs: evo compare {sweep.dir}\n")
    if interrupted:
        return 130
    return max((o.exit_code for o in done), default=0)


def _check_launcher(target: str) -> None:
    if target.endswith(".SlurmLauncher") and not (shutil.which("sbatch") and shutil.which("srun")):
        raise UserError("hydra/launcher=submitit_slurm needs SLURM (sbatch and srun on PATH): launch the sweep"
                        " from a login node of the cluster, or use hydra/launcher=submitit_local")


def _wait_for_writers(sweep_dir: Path, timeout_s: float) -> None:
    """After a Ctrl-C, the jobs of other processes commit what is in flight and stop; their
    outcomes are worth waiting a little for."""
    from evo.store import writer_active

    deadline = time.monotonic() + timeout_s
    runs = [p.parent for p in sweep_dir.rglob(STORE_NAME)]
    while time.monotonic() < deadline and any(writer_active(r) for r in runs):
        time.sleep(0.2)


def _last_line(exc: BaseException) -> str:
    """An error's most telling line: the last one of a job's traceback, or the first of a message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if any(line.startswith("Traceback") for line in lines) else lines[0]


def _record(sweep: Sweep, outcome: Outcome) -> None:
    folder = sweep.dir / OUTCOMES_DIR / sweep.launch
    folder.mkdir(parents=True, exist_ok=True)
    # Written whole, then renamed: the launching process never reads half a record.
    tmp = folder / f".{outcome.num}.json.tmp"
    tmp.write_text(json.dumps(asdict(outcome)))
    tmp.replace(folder / f"{outcome.num}.json")


def _meta(run_dir: Path) -> dict[str, str]:
    store = Store.open_readonly(run_dir)
    try:
        return store.meta()
    finally:
        store.close()


def _changed_keys(before: DictConfig, after: DictConfig) -> list[str]:
    a, b = flat_config(before), flat_config(after)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, _ABSENT) != b.get(k, _ABSENT))


def _relative(path: str, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base)) or "."
    except ValueError:
        return path
