"""`evo export RUN_DIR [--id ID] [-o FILE]`: a standalone .py of the best (or a chosen)
heuristic, which `evo evaluate FILE` accepts as it is.

The header comment names the run, the candidate, its score and its thought, and the
exact `evo evaluate` command that scores it on the run's own problem and training set.
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from evo.commands.common import Run, fmt_score, open_run, parser
from evo.errors import UserError
from evo.store import CandidateRecord

_NUMPY = re.compile(r"^\s*import\s+numpy\s+as\s+np\s*$", re.MULTILINE)


def main(args: list[str]) -> int:
    cli = parser("export", "write a standalone .py of the best (or a chosen) heuristic")
    cli.add_argument("run_dir", type=Path)
    cli.add_argument("--id", type=int, default=None, help="the candidate to export (default: the best)")
    cli.add_argument("-o", "--output", type=Path, default=None, help="file to write (default: standard output)")
    ns = cli.parse_args(args)
    with open_run(ns.run_dir) as run:
        if ns.id is None:
            record = run.best()
            if record is None:
                raise UserError(f"{ns.run_dir} has no valid candidate yet")
        else:
            record = run.record(ns.id)
        text = standalone(run, record, ns.output)
    if ns.output is None:
        sys.stdout.write(text)
        return 0
    if ns.output.is_dir():
        raise UserError(f"{ns.output} is a folder; give a file name")
    try:
        ns.output.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {ns.output}: {exc.strerror}") from None
    sys.stderr.write(f"wrote candidate #{record.id} to {ns.output}\n")
    return 0


def standalone(run: Run, record: CandidateRecord, output: Path | None) -> str:
    if not record.code:
        raise UserError(f"candidate #{record.id} has no code ({record.status}: {record.error})")
    group = run.problem_group()
    command = ["evo", "evaluate", str(output) if output else "FILE"]
    if group and not any(o.split("=", 1)[0].lstrip("+~") == "problem" for o in run.problem_overrides()):
        command.append(f"problem={group}")
    command += run.problem_overrides()
    origin = f"made by {record.operator}" + (f" from {', '.join(f'#{p}' for p in record.parents)}"
                                              if record.parents else "")
    lines = [
        f"Exported by `evo export` from the run {run.run_dir.resolve()}",
        f"problem: {run.meta.get('problem', '?')}, seed {run.settings.seed}",
        f"candidate #{record.id}, {origin}; status {record.status}"
        + (f" (equivalent to #{record.equivalent_to})" if record.equivalent_to is not None else ""),
        f"training score: {fmt_score(record.score)} (lower is better)",
    ]
    if record.error:
        lines.append(f"error: {record.error}")
    lines += [f"thought: {line}" if i == 0 else f"  {line}"
              for i, line in enumerate((record.thought or "(none)").splitlines())]
    lines += ["", "Score it again on the training and test sets with:", "  " + shlex.join(command)]
    header = "\n".join(f"# {line}".rstrip() for line in lines)
    code = record.code.strip("\n")
    if not _NUMPY.search(code):
        code = "import numpy as np\n\n" + code
    return f"{header}\n\n{code}\n"
