"""How fast the read-only commands answer on a finished run (issue #16: under 1 s of wall time).

`evo inspect`, `evo elites` and `evo show` (the best candidate) on a finished run of
--evaluations candidates, each started --repeat times as a whole process (`python -m
evo.cli`), after one warm-up each. The warm-up of inspect also fills its test-score cache
(the first inspect of a run evaluates the best candidate and the baselines on every test
set, which takes minutes; later ones read the cache). Beside them, for scale, an
interpreter that only imports pyribs, which these commands no longer need.

The run: bin packing, the offline model, one generated Weibull instance of 1,000 items
(a few minutes for 1,000 candidates); --run-dir reads an existing run instead.

    .venv/bin/python bench/bench_readonly.py [--evaluations 1000] [--repeat 5] [--run-dir DIR]

Wall and CPU seconds of the whole process (start-up and imports included), min / median /
max. The machine is shared: compare within one run of this script, and read the load
printed with it.
"""
from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = ["problem=bin_packing", "+problem.instance.train=weibull-1x1000-seed0"]


def make_run(evaluations: int, run_dir: Path) -> None:
    sys.stderr.write(f"bench_readonly: a bin packing run of {evaluations} candidates in {run_dir} ...\n")
    subprocess.run([sys.executable, "-m", "evo.cli", "run", *PROBLEM, f"budget.evaluations={evaluations}",
                    f"hydra.run.dir={run_dir}"], cwd=ROOT, check=True, capture_output=True)


def timed(command: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--evaluations", type=int, default=1000)
    cli.add_argument("--repeat", type=int, default=5)
    cli.add_argument("--run-dir", type=Path, help="an existing finished run to read")
    ns = cli.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-readonly-") as tmp:
        run_dir = ns.run_dir or Path(tmp) / "run"
        if ns.run_dir is None:
            make_run(ns.evaluations, run_dir)
        with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM candidates").fetchone()
            (best,) = db.execute("SELECT id FROM candidates WHERE status = 'ok' ORDER BY score, id LIMIT 1").fetchone()
        evo = [sys.executable, "-m", "evo.cli"]
        commands = {
            "evo inspect RUN": [*evo, "inspect", str(run_dir)],
            "evo elites RUN": [*evo, "elites", str(run_dir)],
            f"evo show RUN {best}": [*evo, "show", str(run_dir), str(best)],
            "python -c 'import ribs' (for scale)": [sys.executable, "-c", "import ribs"],
        }
        rows = []
        load = os.getloadavg()[0]
        for name, command in commands.items():
            timed(command)  # warm-up (inspect: fills the test-score cache)
            times = [timed(command) for _ in range(ns.repeat)]
            rows.append((name, [w for w, _ in times], [c for _, c in times]))
        load = max(load, os.getloadavg()[0])
    print(f"# a finished run of {count} candidates; {ns.repeat} runs each after a warm-up; "
          f"load average up to {load:.1f}")
    print("| command | wall s (min / median / max) | CPU s (min / median / max) |")
    print("|---|---|---|")
    for name, walls, cpus in rows:
        print(f"| `{name}` | {spread(walls)} | {spread(cpus)} |")


if __name__ == "__main__":
    main()
