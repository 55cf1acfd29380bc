"""The `evo` command line. Every bad input ends as one line on stderr and a non-zero exit."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from evo.compose import compose_config, hydra_errors_raised, register_resolvers, resolved_folder
from evo.errors import EXIT_HOST, EXIT_USAGE, HostError, UserError
from evo.rundir import RESUMABLE_KEYS, RESUMABLE_PREFIXES, may_change_on_resume, remove_unstarted

USAGE = """usage: evo COMMAND ...

  run [overrides]                   start a run (a Hydra app; --multirun sweeps)
  resume RUN_DIR [overrides]        continue a run where it stopped; budget.*, sandbox.*, workers may
                                    change (budget.evaluations=+500 extends a run)
  inspect RUN_DIR [--json] [--no-test]
                                    summary: budget used, best, coverage, QD score, cost, dedup
  elites RUN_DIR [--json] [--sort score|cell|id]
                                    the archive, one row per occupied cell
  show RUN_DIR ID [--json]          thought, code, scores, lineage and error of one candidate
  export RUN_DIR [--id ID] [-o F]   a standalone .py of the best (or chosen) heuristic
  report RUN_DIR [-o F]             HTML report (default RUN_DIR/report.html; -o - for stdout)
  compare DIR... [--json] [--test] [--html FILE]
                                    a table of runs (run folders or sweep folders)
  evaluate FILE [problem=NAME] [--json]
                                    evaluate a heuristic file on the train and test sets
  doctor [overrides]                check the configured LLM endpoint with one tiny request
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else EXIT_USAGE
    command, rest = args[0], args[1:]
    handler = COMMANDS.get(command)
    try:
        if handler is None:
            raise UserError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
        return handler(rest)
    except UserError as exc:
        sys.stderr.write(f"evo: error: {exc}\n")
        return EXIT_USAGE
    except HostError as exc:
        sys.stderr.write(f"evo: error: {exc}\n")
        return EXIT_HOST
    except KeyboardInterrupt:
        sys.stderr.write("evo: interrupted\n")
        return 130


# ---- run ---------------------------------------------------------------------------------
def _run(overrides: list[str]) -> int:
    register_resolvers()
    if any(a.startswith("-") for a in overrides):  # a sweep, or Hydra's --cfg, --info ...
        return _hydra_app(overrides, run_dir=None)
    # One run. Its whole config is checked before Hydra makes a run folder, so that bad
    # input leaves none; and the folder is pinned, so that a fault of the host while
    # Hydra writes its config snapshot there leaves none either.
    from evo.settings import read_settings

    cfg = compose_config(overrides, return_hydra_config=True)
    read_settings(cfg)
    run_dir = resolved_folder(cfg, "hydra.run.dir", "run folder")
    pinned = [*(a for a in overrides if not a.startswith("hydra.run.dir=")), f"hydra.run.dir='{run_dir}'"]
    return _hydra_app(pinned, run_dir)


def _hydra_app(overrides: list[str], run_dir: Path | None) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from evo.app import execute
    from evo.host import write_fault
    from evo.store import STORE_NAME
    from evo.sweep import MULTIRUN_FLAGS, launch, plan_sweep, run_job

    exit_codes: list[int] = []
    flags = [a for a in overrides if a.startswith("-")]
    # A sweep (and not --cfg, --info ...): its folder is pinned and its jobs run or resume.
    sweep = plan_sweep(overrides) if flags and all(f in MULTIRUN_FLAGS for f in flags) else None

    @hydra.main(config_path="pkg://conf", config_name="config", version_base="1.3")
    def task(cfg) -> int | None:
        job_dir = Path(HydraConfig.get().runtime.output_dir)
        if sweep is not None:
            return run_job(sweep, cfg, job_dir, HydraConfig.get().job.num)
        try:
            exit_codes.append(execute(cfg, job_dir, fresh=True))
        except (UserError, HostError) as exc:
            remove_unstarted(job_dir)
            sys.stderr.write(f"evo: error: {exc}\n")
            exit_codes.append(EXIT_HOST if isinstance(exc, HostError) else EXIT_USAGE)
        return None

    saved = sys.argv
    sys.argv = ["evo run", *(sweep.overrides if sweep else overrides)]
    try:
        if sweep is not None:
            return launch(sweep, task)
        if run_dir is None:  # --cfg, --info ...: Hydra's own business
            task()
            return max(exit_codes, default=0)
        try:
            with hydra_errors_raised():
                task()
        except OSError as exc:
            if (run_dir / STORE_NAME).exists():
                raise
            # Hydra could not make the run folder or write its config snapshot there.
            remove_unstarted(run_dir)
            raise write_fault(exc, run_dir) from None
    finally:
        sys.argv = saved
    return max(exit_codes, default=0)


# ---- resume ------------------------------------------------------------------------------
def _resume(args: list[str]) -> int:
    parser = _parser("resume", "continue an interrupted or finished run")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overrides", nargs="*",
                        help="budget.*, sandbox.* or workers overrides, e.g. budget.evaluations=+500")
    ns = parser.parse_args(args)
    for override in ns.overrides:
        key, sep, _ = override.partition("=")
        if not sep or not key:
            raise UserError(f"override {override!r} must look like key=value")
        if not may_change_on_resume(key):
            allowed = ", ".join([f"{p}*" for p in RESUMABLE_PREFIXES] + list(RESUMABLE_KEYS))
            raise UserError(f"{key} cannot change on resume: only {allowed} may, as anything else would make"
                            " the rest of the run a different experiment; start a new run with `evo run` instead")
    from evo.store import Store, writer_active

    # The cheap refusals come before the engine's imports, which take seconds.
    Store.open_readonly(ns.run_dir).close()
    if writer_active(ns.run_dir):
        raise UserError(f"{ns.run_dir} is being written by another evo process; wait for it or stop it first"
                        " (read-only commands such as `evo inspect` work meanwhile)")
    from evo.app import resume

    return resume(ns.run_dir, ns.overrides)


# ---- evaluate ----------------------------------------------------------------------------
def _evaluate(args: list[str]) -> int:
    parser = _parser("evaluate", "evaluate a heuristic file on the problem's train and test sets")
    parser.add_argument("file", type=Path)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. problem=tsp")
    parser.add_argument("--json", action="store_true", help="machine-readable output (see README)")
    ns = parser.parse_args(args)
    from evo.evaluate_file import evaluate_file

    return evaluate_file(ns.file, compose_config(ns.overrides), as_json=ns.json)


def _doctor(overrides: list[str]) -> int:
    from evo.doctor import doctor

    return doctor(compose_config(overrides).llm)


def _command_module(name: str) -> Callable[[list[str]], int]:
    """Read-only commands live in evo/commands/<name>.py, each with main(args) -> int."""

    def handler(args: list[str]) -> int:
        import importlib

        return importlib.import_module(f"evo.commands.{name}").main(args)

    return handler


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"evo {command}", description=description)

    def error(message: str) -> None:
        raise UserError(f"evo {command}: {message}")

    parser.error = error  # type: ignore[method-assign]
    return parser


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": _run,
    "resume": _resume,
    "inspect": _command_module("inspect"),
    "elites": _command_module("elites"),
    "show": _command_module("show"),
    "export": _command_module("export"),
    "report": _command_module("report"),
    "compare": _command_module("compare"),
    "evaluate": _evaluate,
    "doctor": _doctor,
}

if __name__ == "__main__":
    sys.exit(main())
