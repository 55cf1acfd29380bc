"""`evo elites RUN_DIR [--json] [--sort score|cell|id]`: the archive, one row per occupied cell.

The archive is rebuilt from the store as the run recorded it (see common.open_run), so the
rows are the elites the run would select parents from right now. ``--json`` keys are documented
in evo/commands/README.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evo.commands.common import Run, finite, fmt_score, open_run, parser, write_json

SORTS = ("score", "cell", "id")


def main(args: list[str]) -> int:
    cli = parser("elites", "the archive, one row per occupied cell")
    cli.add_argument("run_dir", type=Path)
    cli.add_argument("--json", action="store_true", help="machine-readable output (see evo/commands/README.md)")
    cli.add_argument("--sort", choices=SORTS, default="score", help="row order (default: score, best first)")
    ns = cli.parse_args(args)
    with open_run(ns.run_dir) as run:
        rows = elite_rows(run, ns.sort)
        axes = [{"name": a.name, "bins": a.bins, "range": [a.low, a.high]} for a in run.settings.axes]
        payload = {"run_dir": str(run.run_dir), "state": run.run_state, "axes": axes,
                   "archive_digest": run.state.digest(), "elites": rows}
    if ns.json:
        write_json(payload)
    else:
        _print(payload)
    return 0


def elite_rows(run: Run, sort: str = "score") -> list[dict[str, Any]]:
    rows = []
    for elite in run.state.archive.elites():  # best first, ties by id
        record = run.state.records[elite.cid]
        rows.append({
            "cell": run.cell_coordinates(elite.cell),
            "cell_index": elite.cell,
            "measures": dict(zip(run.settings.measures, elite.measures)),
            "score": finite(elite.score),
            "id": elite.cid,
            "operator": record.operator,
            "thought": record.thought,
        })
    if sort == "cell":
        rows.sort(key=lambda r: r["cell_index"])
    elif sort == "id":
        rows.sort(key=lambda r: r["id"])
    return rows


def _print(payload: dict[str, Any]) -> None:
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # piped or logged: keep thoughts on one line
    axes = payload["axes"]
    table = Table(title=f"{len(payload['elites'])} elites of {payload['run_dir']} ({payload['state']})",
                  title_justify="left")
    table.add_column("cell", no_wrap=True)
    for axis in axes:
        table.add_column(axis["name"], justify="right")
    table.add_column("score", justify="right")
    table.add_column("id", justify="right")
    table.add_column("op")
    table.add_column("thought", no_wrap=True, overflow="ellipsis")
    for row in payload["elites"]:
        measures = [f"{row['measures'][a['name']]:.4g}" for a in axes]
        table.add_row(str(tuple(row["cell"])), *measures, fmt_score(row["score"]), f"#{row['id']}",
                      row["operator"], row["thought"])
    console.print(table)
