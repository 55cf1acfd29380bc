"""`evo show RUN_DIR ID [--json]`: one candidate: thought, code, scores, measures, cell,
operator, parents, lineage back to the seed, and its error if it failed.

The lineage follows first parents: the parent whose code the operator changed (for a
crossover, the first of the pair); the other parents are listed beside each step.
``--json`` keys are documented in evo/commands/README.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.syntax import Syntax

from evo.commands.common import Run, finite, fmt_score, lineage, open_run, parser, write_json
from evo.store import CandidateRecord


def main(args: list[str]) -> int:
    cli = parser("show", "one candidate: thought, code, scores, lineage and error")
    cli.add_argument("run_dir", type=Path)
    cli.add_argument("id", type=int, help="the candidate's id (see `evo elites`)")
    cli.add_argument("--json", action="store_true", help="machine-readable output (see evo/commands/README.md)")
    ns = cli.parse_args(args)
    with open_run(ns.run_dir) as run:
        payload = describe(run, run.record(ns.id))
    if ns.json:
        write_json(payload)
    else:
        _print(payload)
    return 0


def describe(run: Run, record: CandidateRecord) -> dict[str, Any]:
    elite_ids = {e.cell: e.cid for e in run.state.archive.elites()}
    return {
        "run_dir": str(run.run_dir),
        "id": record.id,
        "operator": record.operator,
        "parents": list(record.parents),
        "status": record.status,
        "error": record.error,
        "thought": record.thought,
        "code": record.code,
        "score": finite(record.score),
        "test_scores": {name: {"score": finite(score), "error": error}
                        for name, (score, error) in sorted(run.store.test_scores(record.id).items())},
        "measures": run.measures(record),
        "cell": run.cell_coordinates(record.cell),
        "cell_index": record.cell,
        "elite": record.cell is not None and elite_ids.get(record.cell) == record.id,
        "archive_status": record.archive_status,
        "equivalent_to": record.equivalent_to,
        "dedup": record.dedup,
        "model": record.model,
        "model_name": record.model_name,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": record.cost_usd,
        "llm_s": record.llm_s,
        "probe_s": record.probe_s,
        "eval_s": record.eval_s,
        "lineage": [{"id": r.id, "operator": r.operator, "parents": list(r.parents), "score": finite(r.score),
                     "status": r.status} for r in lineage(run.state.records, record.id)],
    }


def _print(c: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    parents = ", ".join(f"#{p}" for p in c["parents"]) or "none"
    console.print(f"[bold]candidate #{c['id']}[/bold]  {c['status']}  by {c['operator']} from {parents}")
    if c["equivalent_to"] is not None:
        console.print(f"equivalent to #{c['equivalent_to']} ({c['dedup']} hash): its result is reused")
    elif c["dedup"] == "collision":
        console.print("functional hash collision: it hashed like an earlier candidate but scored differently")
    console.print(f"thought    {c['thought'] or '(none)'}")
    if c["score"] is not None:
        console.print(f"score      {fmt_score(c['score'])} (training set)")
    for name, test in c["test_scores"].items():
        shown = fmt_score(test["score"]) if test["score"] is not None else test["error"]
        console.print(f"           {shown} on {name}")
    if c["measures"] is not None:
        measures = ", ".join(f"{k} {v:.4g}" for k, v in c["measures"].items())
        place = f"cell {tuple(c['cell'])}" + (" (the elite of its cell)" if c["elite"] else "") if c["cell"] else ""
        console.print(f"measures   {measures}  {place}".rstrip())
    if c["error"]:
        console.print(f"[red]error[/red]      {c['error']}")
    if c["model"]:
        named = f"{c['model_name']} ({c['model']})" if c["model_name"] else c["model"]
        console.print(f"llm        {named}: {c['prompt_tokens']} + {c['completion_tokens']} tokens,"
                      f" ${c['cost_usd']:.4f}, {c['llm_s']:.2f} s; evaluation {c['eval_s']:.2f} s")
    if c["code"] and console.is_terminal:
        console.print(Syntax(c["code"], "python", line_numbers=False, word_wrap=True))
    elif c["code"]:
        console.print(c["code"].rstrip("\n"), markup=False)  # piped: the code exactly, no padding
    console.print("lineage (first parent at each step; other parents in brackets)")
    for step in c["lineage"]:
        if step["parents"]:
            others = " ".join(f"#{p}" for p in step["parents"][1:])
            origin = f"← {step['operator']} of #{step['parents'][0]}" + (f" [+{others}]" if others else "")
        else:
            origin = step["operator"]
        score = fmt_score(step["score"]) if step["score"] is not None else step["status"]
        console.print(f"  #{step['id']:<6} {score:>10}  {origin}")
