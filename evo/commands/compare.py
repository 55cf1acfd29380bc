"""`evo compare DIR... [--json] [--test] [--html FILE]`: a table of runs side by side.

Each DIR is a run folder or a folder holding runs below it (a sweep folder). The table has
one row per group of runs whose configs are equal but for the seed; the columns are the
config keys that differ between the groups, then the best training score, the best
candidate's score on each test set, QD score, evaluations, wall time and cost, each as
mean ± standard deviation over the group's seeds. The ``--json`` keys are documented in
docs/sweeps.md. ``--html FILE`` writes a self-contained page: best score against
evaluations for every run (inline SVG), and the table (evo.commands.compare_html).

Test-set scores are the ones ``evo inspect`` cached in each run's store; ``--test``
computes the missing ones the same way (evo.commands.test_sets) and caches them too.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from evo.commands.common import finite, open_run, parser, write_json
from evo.commands.compare_html import write_page
from evo.commands.test_sets import score_table
from evo.errors import UserError
from evo.store import STORE_NAME
from evo.sweep import flat_config

# Keys that never make two runs different experiments of interest to a comparison.
IGNORED_KEYS = ("seed",)


@dataclass(frozen=True)
class RunResult:
    """One run, as the comparison sees it."""

    run_dir: Path
    seed: int
    state: str
    stop_reason: str
    config: dict[str, Any]  # the run's config as dotted keys
    choices: dict[str, str]  # Hydra's config group choices (problem=..., bandit=...)
    score_name: str | None
    best_id: int | None
    best_score: float | None
    test_scores: dict[str, float | None]  # test set -> the best candidate's score (None: not known)
    tests_missing: int  # test-set scores of the best candidate not cached
    qd_score: float
    coverage: float
    evaluations: int
    elapsed_s: float
    cost_usd: float
    curve: tuple[tuple[int, float], ...]  # (evaluations, best score) wherever the best improved


@dataclass(frozen=True)
class Group:
    """Runs whose configs are equal but for the seed."""

    config: dict[str, Any]  # the varying columns' values
    runs: tuple[RunResult, ...] = field(default_factory=tuple)


def main(args: list[str]) -> int:
    cli = parser("compare", "a table of runs (run folders or sweep folders)")
    cli.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run folders, or folders holding runs")
    cli.add_argument("--json", action="store_true", help="machine-readable output (keys in docs/sweeps.md)")
    cli.add_argument("--test", action="store_true",
                     help="compute the test-set scores not cached yet (in the sandbox; cached for next time)")
    cli.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML page with a plot")
    ns = cli.parse_args(args)
    if ns.html is not None and ns.html.is_dir():
        raise UserError(f"--html {ns.html} is a folder; give a file name")
    runs = read_runs(find_runs(ns.dirs), compute_tests=ns.test)
    comparison = compare(runs)
    if ns.json:
        write_json(comparison)
    else:
        _print(comparison)
    if ns.html is not None:
        write_page(ns.html, comparison, {str(r.run_dir): r.curve for r in runs}, *table_rows(comparison))
        if not ns.json:
            sys.stdout.write(f"plot written to {ns.html}\n")
    return 0


# ---- finding and reading runs ------------------------------------------------------------
def find_runs(dirs: Iterable[Path]) -> list[tuple[Path, bool]]:
    """The run folders named or found below ``dirs``, each with whether it was named."""
    found: dict[Path, bool] = {}
    for path in dirs:
        if not path.exists():
            raise UserError(f"no such folder: {path}")
        if not path.is_dir():
            raise UserError(f"{path} is not a folder")
        if (path / STORE_NAME).is_file():
            found[path.resolve()] = True
            continue
        below = sorted(p.parent for p in path.rglob(STORE_NAME)
                       if not any(part.startswith(".") for part in p.relative_to(path).parts[:-1]))
        if not below:
            raise UserError(f"{path} holds no evo run (no {STORE_NAME} in it or below it)")
        for run_dir in below:
            found.setdefault(run_dir.resolve(), False)
    return list(found.items())


def read_runs(run_dirs: list[tuple[Path, bool]], compute_tests: bool) -> list[RunResult]:
    runs = []
    for run_dir, named in run_dirs:
        try:
            runs.append(read_run(run_dir, compute_tests))
        except UserError as exc:
            if named:
                raise
            # One damaged run must not hide the rest of a sweep.
            sys.stderr.write(f"evo: warning: {run_dir} left out: {exc}\n")
    if not runs:
        raise UserError("none of the runs could be read")
    return runs


def read_run(run_dir: Path, compute_tests: bool) -> RunResult:
    with open_run(run_dir) as run:
        best = run.best()
        scores = score_table(run, best, compute=compute_tests)
        tests = {row["name"]: row["best"] for row in scores["sets"] if row["split"] == "test"}
        records = run.records
        return RunResult(
            run_dir=run_dir,
            seed=run.settings.seed,
            state=run.run_state,
            stop_reason=run.meta.get("stop_reason", "") if run.run_state != "running" else "",
            config=flat_config(run.cfg),
            choices=_choices(run_dir),
            score_name=scores["score_name"],
            best_id=None if best is None else best.id,
            best_score=None if best is None else finite(best.score),
            test_scores={name: cell["score"] for name, cell in tests.items()},
            tests_missing=sum(cell["source"] == "missing" for cell in tests.values()) if best else 0,
            qd_score=run.state.archive.qd_score,
            coverage=run.state.archive.coverage,
            evaluations=len(records),
            elapsed_s=float(run.store.get_state("elapsed_s") or 0.0),
            cost_usd=float(run.store.totals()["cost_usd"]),
            curve=_curve(r.best_score for r in records),
        )


def _choices(run_dir: Path) -> dict[str, str]:
    """The run's Hydra group choices (problem, llm, bandit ...), Hydra's own left out."""
    path = run_dir / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return {}
    choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices", default=None) or {}
    return {str(k): str(v) for k, v in choices.items() if not str(k).startswith("hydra/")}


def _curve(best_scores: Iterable[float | None]) -> tuple[tuple[int, float], ...]:
    points: list[tuple[int, float]] = []
    count = 0
    for count, score in enumerate(best_scores, start=1):
        if score is not None and math.isfinite(score) and (not points or score < points[-1][1]):
            points.append((count, score))
    if points and points[-1][0] != count:
        points.append((count, points[-1][1]))  # the line runs on to the last evaluation
    return tuple(points)


# ---- the comparison ----------------------------------------------------------------------
def varying_columns(runs: list[RunResult]) -> list[str]:
    """What tells the runs apart, seeds aside: a differing Hydra group choice by its name
    (``bandit``), and every differing config key that such a choice does not explain."""
    groups = sorted({g for r in runs for g in r.choices if len({r2.choices.get(g) for r2 in runs}) > 1})
    keys = sorted({k for r in runs for k in r.config}
                  - set(IGNORED_KEYS))
    columns: list[str] = list(groups)
    for key in keys:
        values = {_hashable(r.config.get(key)) for r in runs}
        if len(values) < 2:
            continue
        owner = next((g for g in groups if key.startswith(g.replace("/", ".") + ".")), None)
        if owner is not None and _explained_by(runs, owner, key):
            continue
        columns.append(key)
    return columns


def _explained_by(runs: list[RunResult], group: str, key: str) -> bool:
    seen: dict[str | None, Any] = {}
    for r in runs:
        value = _hashable(r.config.get(key))
        if seen.setdefault(r.choices.get(group), value) != value:
            return False
    return True


def _column_value(run: RunResult, column: str) -> Any:
    return run.choices[column] if column in run.choices and "." not in column else run.config.get(column)


def group_runs(runs: list[RunResult], columns: list[str]) -> list[Group]:
    by_key: dict[tuple, list[RunResult]] = {}
    for run in runs:
        key = tuple(_hashable(_column_value(run, c)) for c in columns)
        by_key.setdefault(key, []).append(run)
    groups = [Group({c: _column_value(members[0], c) for c in columns},
                    tuple(sorted(members, key=lambda r: (r.seed, str(r.run_dir)))))
              for members in by_key.values()]
    # Best first (lower is better); groups without a valid candidate last.
    return sorted(groups, key=lambda g: (_mean([r.best_score for r in g.runs]) is None,
                                         _mean([r.best_score for r in g.runs]) or 0.0,
                                         [str(v) for v in g.config.values()]))


def compare(runs: list[RunResult]) -> dict[str, Any]:
    """The comparison as plain data: what ``--json`` prints and the table shows."""
    columns = varying_columns(runs)
    groups = group_runs(runs, columns)
    test_sets = list(dict.fromkeys(name for r in runs for name in r.test_scores))  # the problem's order
    names = {r.score_name for r in runs if r.score_name}
    base = _common_parent([r.run_dir for r in runs])
    return {
        "score_name": names.pop() if len(names) == 1 else None,
        "columns": columns,
        "test_sets": test_sets,
        "tests_missing": sum(r.tests_missing for r in runs),
        "groups": [_group_json(g, test_sets) for g in groups],
        "runs": [_run_json(r, columns, base) for g in groups for r in g.runs],
    }


def _group_json(group: Group, test_sets: list[str]) -> dict[str, Any]:
    runs = group.runs
    states: dict[str, int] = {}
    for r in runs:
        states[r.state] = states.get(r.state, 0) + 1
    return {
        "config": {k: _plain(v) for k, v in group.config.items()},
        "seeds": [r.seed for r in runs],
        "runs": [str(r.run_dir) for r in runs],
        "states": states,
        "best_score": stats([r.best_score for r in runs]),
        "test_scores": {name: stats([r.test_scores.get(name) for r in runs]) for name in test_sets},
        "qd_score": stats([r.qd_score for r in runs]),
        "coverage": stats([r.coverage for r in runs]),
        "evaluations": stats([float(r.evaluations) for r in runs]),
        "elapsed_s": stats([r.elapsed_s for r in runs]),
        "cost_usd": stats([r.cost_usd for r in runs]),
    }


def _run_json(run: RunResult, columns: list[str], base: Path) -> dict[str, Any]:
    return {
        "run_dir": str(run.run_dir),
        "label": _label(run.run_dir, base),
        "name": " ".join([*(f"{c}={_text(_column_value(run, c))}" for c in columns), f"seed={run.seed}"]),
        "config": {c: _plain(_column_value(run, c)) for c in columns},
        "seed": run.seed,
        "state": run.state,
        "stop_reason": run.stop_reason,
        "best_id": run.best_id,
        "best_score": run.best_score,
        "test_scores": run.test_scores,
        "qd_score": run.qd_score,
        "coverage": run.coverage,
        "evaluations": run.evaluations,
        "elapsed_s": run.elapsed_s,
        "cost_usd": run.cost_usd,
    }


def stats(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """Mean and sample standard deviation (n - 1) of the known values; std is null for one."""
    known = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not known:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(known) / len(known)
    std = math.sqrt(sum((v - mean) ** 2 for v in known) / (len(known) - 1)) if len(known) > 1 else None
    return {"mean": mean, "std": std, "n": len(known)}


def _mean(values: list[float | None]) -> float | None:
    return stats(values)["mean"]  # type: ignore[return-value]


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (list, dict)) else value


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool, list, dict)) else str(value)


def _common_parent(paths: list[Path]) -> Path:
    if len(paths) == 1:
        return paths[0].parent
    return Path(os.path.commonpath([str(p) for p in paths]))


def _label(run_dir: Path, base: Path) -> str:
    try:
        return str(run_dir.relative_to(base)) or run_dir.name
    except ValueError:
        return str(run_dir)


# ---- the table ---------------------------------------------------------------------------
def table_rows(comparison: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table, as text (shared by the terminal and the HTML page)."""
    score = comparison["score_name"] or "score"
    header = [*comparison["columns"], "seeds", "state", f"best {score}",
              *[f"test {name}" for name in comparison["test_sets"]],
              "QD score", "evals", "wall", "cost $"]
    rows = []
    for g in comparison["groups"]:
        rows.append([
            *[_text(v) for v in g["config"].values()],
            ",".join(str(s) for s in g["seeds"]),
            ", ".join(f"{n} {s}" if len(g["states"]) > 1 else s for s, n in g["states"].items()),
            _pm(g["best_score"], "{:.4f}"),
            *[_pm(g["test_scores"][name], "{:.4f}") for name in comparison["test_sets"]],
            _pm(g["qd_score"], "{:.2f}"),
            _pm(g["evaluations"], "{:.0f}"),
            _pm(g["elapsed_s"], "{}", _duration),
            _pm(g["cost_usd"], "{:.4f}"),
        ])
    return header, rows


def _pm(s: dict[str, Any], fmt: str, convert: Any = None) -> str:
    if s["mean"] is None:
        return "—"
    show = convert or (lambda v: v)
    text = fmt.format(show(s["mean"]))
    if s["std"]:  # none for one run; zero when the seeds agree, which needs no ± 0
        text += " ± " + fmt.format(show(s["std"]))
    return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _text(value: Any) -> str:
    return "—" if value is None else str(value)


def _print(comparison: dict[str, Any]) -> None:
    # Piped to a file, the table keeps its rows whole rather than wrap at 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 250)
    header, rows = table_rows(comparison)
    n_runs = len(comparison["runs"])
    title = (f"{n_runs} runs in {len(rows)} group{'s' if len(rows) > 1 else ''}; mean ± std over seeds;"
             " lower scores are better"
             if n_runs > len(rows) else f"{n_runs} runs; lower scores are better")
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i < len(comparison["columns"]) + 2 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if not comparison["columns"] and len(rows) == 1 and n_runs > 1:
        console.print("the runs' configs differ only in their seeds")
    if comparison["tests_missing"]:
        console.print(f"{comparison['tests_missing']} test-set scores are not cached yet: compute them with --test")
