"""`evo evaluate FILE`: a heuristic file on the training set and every test set, in the
sandbox, with the problem's baselines beside it.

It fails fast. The training set runs under the run's own limits (``sandbox.*``), as in a
run; only test sets get ``sandbox.test_time_factor`` times the time. Once the heuristic has
failed on the training set, nothing else is run: every test set says "skipped", and the
baselines are scored on the training set alone. A failure on one test set does not stop
the others.

The ``--json`` output is a stable contract (see README.md):
``{"problem", "file", "status", "error", "train": {set: row}, "test": {set: row},
"baselines": {name: {set: score}}, "functional_hash"}`` where a row is
``{"instances", "reference", "score", "status", "error"}``; a skipped row has status
``"skipped"`` and says why in ``error``, and the baselines have no score for it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from evo.app import load_problem
from evo.errors import UserError
from evo.evaluation import Evaluator
from evo.parse import ParseError, parse_answer
from evo.settings import Settings, read_settings
from problems.base import Dataset, Problem
from sandbox import Sandbox

SKIPPED = "skipped"


def evaluate_file(path: Path, cfg: DictConfig, as_json: bool) -> int:
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    settings = read_settings(cfg)
    problem = load_problem(cfg)
    try:
        code = parse_answer(path.read_text(), problem.entry, len(problem.arg_names)).code
    except ParseError as exc:
        raise UserError(f"{path}: {exc}") from None
    train = problem.train_set()
    tests = problem.test_sets()
    report: dict[str, Any] = {"problem": problem.name, "file": str(path), "status": "ok", "error": "",
                              "train": {}, "test": {}, "baselines": {b: {} for b in problem.baselines},
                              "functional_hash": None}
    with Sandbox(settings.limits, settings.workers, preload=("numpy", problem.harness)) as sandbox:
        evaluator = _evaluator(problem, sandbox, settings)
        _progress(f"evaluating on {train.name}")
        row = report["train"][train.name] = _row(evaluator, code, train)
        trained = row["status"] == "ok"
        if trained and settings.probe_states:
            report["functional_hash"] = evaluator.probe(code).hash
        _baselines(report, problem, evaluator, {train.name: train})
    if trained:
        with Sandbox(settings.test_limits, settings.workers, preload=("numpy", problem.harness)) as sandbox:
            evaluator = _evaluator(problem, sandbox, settings)
            for name, dataset in tests.items():
                _progress(f"evaluating on {name}")
                report["test"][name] = _row(evaluator, code, dataset)
            _baselines(report, problem, evaluator, tests)
    else:
        for name, dataset in tests.items():
            report["test"][name] = {"instances": len(dataset.instances), "reference": dataset.reference,
                                    "score": None, "status": SKIPPED,
                                    "error": f"not run: the heuristic failed on the training set ({row['status']})"}
            for scores in report["baselines"].values():
                scores[name] = None
    failures = [row for split in ("train", "test") for row in report[split].values()
                if row["status"] not in ("ok", SKIPPED)]
    if failures:
        report["status"], report["error"] = failures[0]["status"], failures[0]["error"]
    _progress("")
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_table(report, problem.score_name)
    return 0 if not failures else 1


def _evaluator(problem: Problem, sandbox: Sandbox, settings: Settings) -> Evaluator:
    return Evaluator(problem, sandbox, settings.replay_steps, settings.seed, settings.probe_states)


def _baselines(report: dict[str, Any], problem: Problem, evaluator: Evaluator, sets: dict[str, Dataset]) -> None:
    for baseline, baseline_code in problem.baselines.items():
        for name, dataset in sets.items():
            _progress(f"{baseline} on {name}")
            report["baselines"][baseline][name] = _row(evaluator, baseline_code, dataset)["score"]


def _row(evaluator: Evaluator, code: str, dataset: Dataset) -> dict[str, Any]:
    result = evaluator.evaluate(code, dataset)
    return {
        "instances": len(dataset.instances),
        "reference": dataset.reference,
        "score": result.verdict.score if result.ok else None,
        "status": result.status,
        "error": result.error,
    }


def _print_table(report: dict[str, Any], score_name: str) -> None:
    baselines = list(report["baselines"])
    labels = {name: f"{name} (train)" for name in report["train"]} | {name: name for name in report["test"]}
    width = max(24, *(len(label) for label in labels.values()))
    header = f"{'set':<{width}} {'n':>4} {'reference':>10} {'heuristic':>10} " + " ".join(f"{b:>13}" for b in baselines)
    lines = [f"{report['file']} on {report['problem']} ({score_name}, lower is better)", header, "-" * len(header)]
    for split in ("train", "test"):
        for name, row in report[split].items():
            score = f"{row['score']:10.2f}" if row["score"] is not None else f"{row['status']:>10}"
            reference = f"{row['reference']:10.2f}" if row["reference"] is not None else f"{'':>10}"
            others = " ".join(_fmt(report["baselines"][b][name], row["status"]) for b in baselines)
            lines.append(f"{labels[name]:<{width}} {row['instances']:>4} {reference} {score} {others}")
    if any(row["reference"] is None for split in ("train", "test") for row in report[split].values()):
        lines.append(f"a set without a reference is not scored as {score_name} (see problems/README.md)")
    if report["status"] != "ok":
        lines.append(f"{report['status']}: {report['error']}")
    skipped = [row for row in report["test"].values() if row["status"] == SKIPPED]
    if skipped:
        lines.append(f"test sets {SKIPPED}: {skipped[0]['error']}")
    sys.stdout.write("\n".join(lines) + "\n")


def _fmt(score: float | None, status: str) -> str:
    if score is not None:
        return f"{score:13.2f}"
    return f"{SKIPPED if status == SKIPPED else 'failed':>13}"


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + message)
        sys.stderr.flush()
