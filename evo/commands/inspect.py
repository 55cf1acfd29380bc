"""`evo inspect RUN_DIR [--json] [--no-test]`: a run's summary.

The problem, the budget used and left, the run's state, the best candidate on the
training set and on every test set beside the baselines, coverage and QD score, counts
by status, dedup statistics, LLM use, the bandit's arms and the archive digest. The
``--json`` keys are documented in evo/commands/README.md.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evo.commands.common import SANDBOX_FAILURES, Run, finite, fmt_score, open_run, parser, write_json
from evo.commands.test_sets import score_table
from evo.store import CandidateRecord


def main(args: list[str]) -> int:
    cli = parser("inspect", "summary of a run: budget, best, coverage, QD score, cost, dedup")
    cli.add_argument("run_dir", type=Path)
    cli.add_argument("--json", action="store_true", help="machine-readable output (see evo/commands/README.md)")
    cli.add_argument("--no-test", action="store_true",
                     help="do not evaluate anything: show only test-set scores cached by earlier calls")
    ns = cli.parse_args(args)
    with open_run(ns.run_dir) as run:
        summary = summarise(run, compute_tests=not ns.no_test)
    if ns.json:
        write_json(summary)
    else:
        _print(summary)
    return 0


def summarise(run: Run, compute_tests: bool) -> dict[str, Any]:
    records = run.records
    best = run.best()
    archive = run.state.archive
    return {
        "run_dir": str(run.run_dir),
        "problem": run.meta.get("problem") or str(run.cfg.problem.instance.get("_target_")),
        "seed": run.settings.seed,
        "state": run.run_state,
        # Only a run that recorded its end has a reason of this session (a killed one's
        # reason, if any, is from an earlier session).
        "stop_reason": run.meta.get("stop_reason") if run.run_state in ("finished", "interrupted", "failed") else None,
        "budget": _budget(run, records),
        "best": None if best is None else {
            "id": best.id, "score": finite(best.score), "thought": best.thought, "operator": best.operator,
            "cell": run.cell_coordinates(best.cell), "measures": run.measures(best),
        },
        "scores": score_table(run, best, compute=compute_tests),
        "archive": {
            "coverage": archive.coverage,
            "occupied_cells": len(archive.elites()),
            "cells": _cells(run),
            "qd_score": archive.qd_score,
        },
        "archive_digest": run.state.digest(),
        "counts": _counts(records),
        "dedup": _dedup(run.state.records),
        "llm": _llm(run, records),
        "bandit": _bandit(run),
    }


def _bandit(run: Run) -> dict[str, Any]:
    """The documented keys of the bandit's snapshot (policy-specific extras stay out of
    the stable JSON)."""
    snapshot = run.state.bandit.snapshot()
    arms = {arm: {"pulls": stats["pulls"], "mean_reward": stats["mean_reward"], "probability": stats["probability"]}
            for arm, stats in snapshot["arms"].items()}
    return {"policy": snapshot["policy"], "arms": arms}


def _cells(run: Run) -> int:
    total = 1
    for axis in run.settings.axes:
        total *= axis.bins
    return total


def _budget(run: Run, records: list[CandidateRecord]) -> dict[str, dict[str, float | None]]:
    budget = run.settings.budget
    totals = run.store.totals()
    used = {
        "evaluations": len(records),
        "llm_calls": totals["n"],
        "cost_usd": totals["cost_usd"],
        "wall_time_s": float(run.store.get_state("elapsed_s") or 0.0),
    }
    result = {}
    for key, spent in used.items():
        limit = getattr(budget, key)
        result[key] = {"limit": limit, "used": spent, "remaining": None if limit is None else max(0, limit - spent)}
    return result


def _counts(records: list[CandidateRecord]) -> dict[str, Any]:
    by_status = Counter(r.status for r in records)
    return {
        "total": len(records),
        "valid": by_status["ok"],
        "equivalent": by_status["equivalent"],
        "invalid": by_status["invalid"],
        "failed": sum(by_status[s] for s in SANDBOX_FAILURES),
        "llm_failed": by_status["llm_failed"],
        "by_status": dict(sorted(by_status.items())),
    }


def _dedup(records: dict[int, CandidateRecord]) -> dict[str, Any]:
    kinds = Counter(r.dedup for r in records.values() if r.dedup)
    # A syntactic or functional hit was never evaluated: it saved its original's
    # evaluation time. A verified hit was evaluated anyway (to catch collisions); it saved nothing.
    saved = sum(records[r.equivalent_to].eval_s for r in records.values()
                if r.dedup in ("syntactic", "functional") and r.equivalent_to in records)
    return {
        "syntactic": kinds["syntactic"],
        "functional": kinds["functional"],
        "verified": kinds["verified"],
        "collisions": kinds["collision"],
        "eval_seconds_saved": saved,
        "eval_seconds_spent": sum(r.eval_s for r in records.values()),
        "probe_seconds_spent": sum(r.probe_s for r in records.values()),
    }


def _llm(run: Run, records: list[CandidateRecord]) -> dict[str, Any]:
    totals = run.store.totals()
    return {
        "calls": totals["n"],
        "prompt_tokens": totals["prompt_tokens"],
        "completion_tokens": totals["completion_tokens"],
        "cost_usd": totals["cost_usd"],
        "failed_candidates": sum(r.status == "llm_failed" for r in records),
        "seconds": sum(r.llm_s for r in records),
        "models": _models(run, records),
    }


def _models(run: Run, records: list[CandidateRecord]) -> dict[str, dict[str, Any]]:
    """Per model (its configured name, or the provider's model id for a single unnamed
    model): what it was paid (the LLM cache: every answer, reflections included) and what
    its candidates achieved."""
    usage = run.store.usage_by_model()
    rows: dict[str, dict[str, Any]] = {}

    def row(label: str) -> dict[str, Any]:
        return rows.setdefault(label, {
            "model": "", "candidates": 0, "requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
            "seconds": 0.0, "valid": 0, "valid_share": None, "improvements": 0, "best_id": None, "best_score": None})

    for label, used in usage.items():
        row(label).update({k: used[k] or 0 for k in used})
    for r in records:
        if not r.model and not r.model_name:
            continue  # the seed asks no model
        out = row(r.model_name or r.model)
        out["model"] = out["model"] or r.model
        out["candidates"] += 1
        out["valid"] += r.status in ("ok", "equivalent")
        out["improvements"] += r.archive_status > 0
        if r.status == "ok" and finite(r.score) is not None and (out["best_score"] is None or r.score < out["best_score"]):
            out["best_id"], out["best_score"] = r.id, r.score
    for out in rows.values():
        out["valid_share"] = out["valid"] / out["candidates"] if out["candidates"] else None
    return rows


# ---- the human view ----------------------------------------------------------------------
def _print(s: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    state = s["state"] + (f" ({s['stop_reason']})" if s["stop_reason"] else "")
    console.print(f"[bold]{s['run_dir']}[/bold]  {state}")
    scores = s["scores"]
    score_name = scores.get("score_name") or "score"
    console.print(f"problem      {s['problem']}  ({score_name}, lower is better), seed {s['seed']}")
    console.print("budget       " + "  ".join(_budget_text(k, v) for k, v in s["budget"].items()))
    best = s["best"]
    if best is None:
        console.print("best         none yet (no valid candidate)")
    else:
        console.print(f"best         #{best['id']} ({best['operator']}) {score_name} {fmt_score(best['score'])}"
                      f"  cell {tuple(best['cell'] or ())}")
        console.print(f"thought      {best['thought']}")
    a = s["archive"]
    console.print(f"archive      coverage {100 * a['coverage']:.1f}% ({a['occupied_cells']} of {a['cells']} cells),"
                  f" QD score {a['qd_score']:.2f}, digest {s['archive_digest']}")
    c = s["counts"]
    console.print(f"candidates   {c['total']}: valid {c['valid']}, equivalent {c['equivalent']}, invalid {c['invalid']},"
                  f" failed {c['failed']}, llm failed {c['llm_failed']}")
    d = s["dedup"]
    console.print(f"dedup        syntactic {d['syntactic']}, functional {d['functional']}, verified {d['verified']},"
                  f" collisions {d['collisions']}; saved {d['eval_seconds_saved']:.1f} s of evaluation"
                  f" (spent {d['eval_seconds_spent']:.1f} s, probes {d['probe_seconds_spent']:.1f} s)")
    llm = s["llm"]
    console.print(f"llm          {llm['calls']} calls, {llm['prompt_tokens']} prompt + {llm['completion_tokens']}"
                  f" completion tokens, ${llm['cost_usd']:.4f}, {llm['seconds']:.1f} s"
                  + (f"; {llm['failed_candidates']} failed" if llm["failed_candidates"] else ""))
    _print_scores(console, scores, best)
    _print_models(console, llm["models"], score_name)
    _print_bandit(console, s["bandit"])


def _budget_text(key: str, item: dict[str, float | None]) -> str:
    label, shown = {
        "evaluations": ("evaluations", lambda v: f"{v:g}"),
        "llm_calls": ("llm calls", lambda v: f"{v:g}"),
        "cost_usd": ("cost", lambda v: f"${v:.4f}"),
        "wall_time_s": ("wall time", lambda v: f"{v:.0f} s"),
    }[key]
    if item["limit"] is None:
        return f"{label} {shown(item['used'])} (no limit)"
    return f"{label} {shown(item['used'])}/{shown(item['limit'])} ({shown(item['remaining'])} left)"


def _print_scores(console: Console, scores: dict[str, Any], best: dict[str, Any] | None) -> None:
    if not scores["available"]:
        console.print(f"[yellow]test sets    not available: {scores['error']}[/yellow]")
        return
    if best is None or not scores["sets"]:
        return
    baselines = list(scores["sets"][0]["baselines"])
    table = Table(title=f"{scores['score_name']} (lower is better)", title_justify="left")
    for name in ("set", "n", f"best #{best['id']}", *baselines):
        table.add_column(name, justify="left" if name == "set" else "right")
    for row in scores["sets"]:
        label = row["name"] + (" (train)" if row["split"] == "train" else "")
        cells = [_cell(row["best"]), *(_cell(row["baselines"][b]) for b in baselines)]
        table.add_row(label, str(row["instances"]), *cells)
    console.print(table)
    if scores["note"]:
        console.print(scores["note"])


def _cell(cell: dict[str, Any]) -> str:
    if cell["score"] is not None:
        return fmt_score(cell["score"])
    if cell["source"] == "missing":
        return "—"
    return cell["error"].split(":")[0] or "failed"


def _print_models(console: Console, models: dict[str, dict[str, Any]], score_name: str) -> None:
    if not models:
        return
    table = Table(title="models (requests, tokens, cost, time: all answers paid for, reflections included)",
                  title_justify="left")
    for name in ("model", "cands", "reqs", "tokens", "cost $", "time s", "valid", "impr", "best"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for label, m in models.items():
        valid = "—" if m["valid_share"] is None else f"{100 * m['valid_share']:.0f}%"
        best = "—" if m["best_id"] is None else f"{fmt_score(m['best_score'])} #{m['best_id']}"
        table.add_row(label, str(m["candidates"]), str(m["requests"]), str(m["prompt_tokens"] + m["completion_tokens"]),
                      f"{m['cost_usd']:.4f}", f"{m['seconds']:.1f}", valid, str(m["improvements"]), best)
    console.print(table)


def _print_bandit(console: Console, bandit: dict[str, Any]) -> None:
    table = Table(title=f"bandit ({bandit['policy']})", title_justify="left")
    for name in ("arm", "pulls", "mean reward", "probability"):
        table.add_column(name, justify="left" if name == "arm" else "right")
    for arm, stats in bandit["arms"].items():
        table.add_row(arm, str(stats["pulls"]), f"{stats['mean_reward']:.3f}", f"{stats['probability']:.3f}")
    console.print(table)
