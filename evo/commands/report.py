"""`evo report RUN_DIR [-o FILE]`: one self-contained HTML file of a run.

The archive heatmap (click a cell: the elite's thought, code and lineage), progress of
the best score, QD score and coverage, the bandit's arms over time, LLM cost and tokens,
a table per model (requests, tokens, cost, time, valid share, archive improvements, best
found), and dedup statistics. Everything is inlined (CSS, JS, data): the file opens offline and
fetches nothing. The data is JSON in a ``<script type="application/json">`` element,
with every ``<``, ``>`` and ``&`` escaped so that no text in it can end the element.

The report never evaluates anything: test-set scores appear as far as ``evo inspect``
has cached them.
"""
from __future__ import annotations

import html
import json
import re
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from evo.bandit import arm_name
from evo.commands.common import Run, finite, lineage, open_run, parser
from evo.commands.inspect import summarise
from evo.errors import UserError

DEFAULT_NAME = "report.html"


def main(args: list[str]) -> int:
    cli = parser("report", "write a self-contained HTML report of a run")
    cli.add_argument("run_dir", type=Path)
    cli.add_argument("-o", "--output", type=Path, default=None,
                     help=f"file to write (default: RUN_DIR/{DEFAULT_NAME}; '-' for standard output)")
    ns = cli.parse_args(args)
    with open_run(ns.run_dir) as run:
        page = render(report_data(run))
    if str(ns.output) == "-":
        sys.stdout.write(page)
        return 0
    output = ns.output or ns.run_dir / DEFAULT_NAME
    if output.is_dir():
        raise UserError(f"{output} is a folder; give a file name")
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
    sys.stderr.write(f"wrote {output}\n")
    return 0


def report_data(run: Run) -> dict[str, Any]:
    """Everything the page draws (its shape is read by evo/report_html/report.js)."""
    summary = summarise(run, compute_tests=False)
    records = run.records
    elites = run.state.archive.elites()
    # Full text only for what can be clicked: the elites and their lineages.
    shown: dict[int, Any] = {}
    for elite in elites:
        for record in lineage(run.state.records, elite.cid):
            if record.id not in shown:
                shown[record.id] = {
                    "id": record.id, "operator": record.operator, "parents": list(record.parents),
                    "status": record.status, "score": finite(record.score), "thought": record.thought,
                    "code": record.code, "error": record.error, "equivalent_to": record.equivalent_to,
                    "measures": list(record.measures) if record.measures is not None else None,
                    "cell": run.cell_coordinates(record.cell),
                }
    return {
        "run": {
            "dir": str(run.run_dir), "problem": summary["problem"], "state": summary["state"],
            "stop_reason": summary["stop_reason"], "seed": summary["seed"],
            "score_name": summary["scores"]["score_name"], "digest": summary["archive_digest"],
            "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "summary": summary,
        "axes": [{"name": a.name, "bins": a.bins, "low": a.low, "high": a.high} for a in run.settings.axes],
        "elites": [{"id": e.cid, "cell": run.cell_coordinates(e.cell), "score": finite(e.score),
                    "measures": list(e.measures)} for e in elites],
        # One column per field, one entry per candidate in id order: compact for long runs.
        "series": {
            "id": [r.id for r in records],
            "operator": [r.operator for r in records],
            "arm": [arm_name(r.operator, r.model_name) for r in records],  # the bandit's arm (operator@model)
            "status": [r.status for r in records],
            "reward": [r.reward for r in records],
            "best": [finite(r.best_score) for r in records],
            "coverage": [r.coverage for r in records],
            "qd": [r.qd_score for r in records],
            "cost": [r.cost_usd for r in records],
            "tokens": [r.prompt_tokens + r.completion_tokens for r in records],
        },
        "details": {str(cid): detail for cid, detail in sorted(shown.items())},
    }


def embed_json(payload: Any) -> str:
    """JSON that is safe inside a <script> element: no "<", ">" or "&" survives as such,
    so neither "</script>" nor "<!--" can appear, whatever the thoughts and code say."""
    text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(payload: dict[str, Any]) -> str:
    assets = resources.files("evo") / "report_html"
    page = (assets / "report.html").read_text(encoding="utf-8")
    title = f"evo report: {payload['run']['problem']} ({payload['run']['dir']})"
    values = {
        "TITLE": html.escape(title),
        "CSS": (assets / "report.css").read_text(encoding="utf-8"),
        "JS": (assets / "report.js").read_text(encoding="utf-8"),
        "DATA": embed_json(payload),
    }
    # One pass: an inserted value is never searched for markers again.
    return re.sub(r"__EVO_(TITLE|CSS|JS|DATA)__", lambda m: values[m.group(1)], page)
