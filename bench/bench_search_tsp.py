"""Search quality on TSP: how far below nearest neighbour the best heuristic of a run gets.

Constructive TSP (EoH's protocol, trained on 64 random instances of 50 cities), the offline
mutation model, 1,000 evaluations per run, three seeds, the default bandit. For each run,
the best heuristic on the training set is evaluated here (in the sandbox) on the four
random test sets and on TSPLIB, beside nearest neighbour. The anchors are ReEvo's table
(mean tour length relative to nearest neighbour on its own instances of the same
distribution; problems/tsp/data/SOURCES.md): the target is the median run at least as far
below nearest neighbour as ReEvo on all four random sets, and below it on TSPLIB.

    .venv/bin/python bench/bench_search_tsp.py [--out DIR] [--parallel 2] [--seeds 0 1 2]
        [--evaluations 1000] [-- extra hydra overrides]

Runs go to DIR/tsp-s<seed> (default DIR: archives/bench_search_tsp). A finished run is
reused and an interrupted one resumed (bench/bench_search.py's ``run_one``), so the
benchmark can be stopped and started again. Each run uses workers=1 so that ``--parallel``
runs share the machine's cores evenly.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_search import run_one  # noqa: E402

SETS = ("tsp20", "tsp50", "tsp100", "tsp200", "tsplib")
# Mean tour length relative to nearest neighbour, %, on ReEvo's own TSP20/50/100/200 sets:
# EoH 4.079 / 6.233 / 8.601 / 12.307 and ReEvo 4.091 / 6.227 / 8.568 / 12.093 against nearest
# neighbour's 4.447 / 6.892 / 9.651 / 13.425.
ANCHORS = {
    "EoH": {"tsp20": -8.3, "tsp50": -9.6, "tsp100": -10.9, "tsp200": -8.3},
    "ReEvo": {"tsp20": -8.0, "tsp50": -9.7, "tsp100": -11.2, "tsp200": -9.9},
}


def summarise(run_dir: Path) -> dict:
    """The run's best heuristic and nearest neighbour on every set: mean length and gap %."""
    import sqlite3

    from evo.app import load_problem, snapshot_config
    from evo.evaluation import Evaluator
    from evo.settings import read_settings
    from sandbox import Sandbox

    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        best_id, best_code, train = db.execute(
            "SELECT id, code, score FROM candidates WHERE status = 'ok' ORDER BY score, id LIMIT 1").fetchone()
        failed = db.execute("SELECT COUNT(*) FROM candidates WHERE status NOT IN ('ok', 'equivalent')").fetchone()[0]
        total, qd_score, coverage = db.execute(
            "SELECT COUNT(*), (SELECT qd_score FROM candidates ORDER BY id DESC LIMIT 1),"
            " (SELECT coverage FROM candidates ORDER BY id DESC LIMIT 1) FROM candidates").fetchone()
    cfg = snapshot_config(run_dir)
    settings = read_settings(cfg)
    problem = load_problem(cfg)
    tests = problem.test_sets()
    nearest = problem.baselines["nearest_neighbour"]
    rows = {}
    with Sandbox(settings.test_limits, 1, preload=("numpy", problem.harness)) as sandbox:
        evaluator = Evaluator(problem, sandbox, settings.replay_steps, settings.seed, settings.probe_states)
        for name in SETS:
            rows[name] = {}
            for who, code in (("best", best_code), ("nearest", nearest)):
                result = evaluator.evaluate(code, tests[name])
                rows[name][who] = ({"gap": result.verdict.score, "length": result.verdict.metrics["mean_length"]}
                                   if result.ok else {"error": f"{result.status}: {result.error}"})
    return {"best_id": best_id, "train": train, "code": best_code, "failed": failed, "candidates": total,
            "qd_score": qd_score, "coverage": coverage, "sets": rows}


def relative(row: dict) -> float | None:
    """The best heuristic's mean length relative to nearest neighbour's, in %."""
    if "length" not in row["best"] or "length" not in row["nearest"]:
        return None
    return 100.0 * (row["best"]["length"] / row["nearest"]["length"] - 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "archives" / "bench_search_tsp")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--evaluations", type=int, default=1000)
    parser.add_argument("extra", nargs="*", help="hydra overrides for every run (after --)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, args.out / f"tsp-s{seed}") for seed in args.seeds]
    extra = ["problem=tsp", *args.extra]
    with ThreadPoolExecutor(args.parallel) as pool:
        futures = {run_dir.name: pool.submit(run_one, run_dir, "thompson", seed, args.evaluations, extra)
                   for seed, run_dir in jobs}
        for name, future in futures.items():
            print(f"{name}: {future.result()}", file=sys.stderr, flush=True)
    runs = {}
    for seed, run_dir in jobs:
        cache = run_dir / "bench_summary.json"
        if not cache.exists():
            cache.write_text(json.dumps(summarise(run_dir)))
        runs[seed] = json.loads(cache.read_text())
    print_table(runs, args.evaluations)
    return 0


def _cell(value: float | None, fmt: str = "{:+.1f}") -> str:
    return fmt.format(value) if value is not None else "failed"


def print_table(runs: dict, evaluations: int) -> None:
    print(f"\nTSP, offline model, {evaluations} evaluations per run (Thompson sampling); each run's best heuristic "
          "on the training set.\nPer set: mean tour length (nearest neighbour's in brackets), length relative to "
          "nearest neighbour %, gap % to the reference (LKH tours; TSPLIB optima)")
    header = f"{'seed':>4} {'best':>5} {'train gap':>9} {'failed':>7}  " + "  ".join(f"{s:^26}" for s in SETS)
    print(header)
    print("-" * len(header))
    for seed, r in runs.items():
        cells = []
        for name in SETS:
            row = r["sets"][name]
            if "length" not in row["best"]:
                cells.append(f"{'failed':^26}")
                continue
            cells.append(f"{row['best']['length']:>9.2f} ({row['nearest']['length']:.2f}) {_cell(relative(row)):>5}"
                         f" {row['best']['gap']:5.2f}")
        failed = f"{100 * r['failed'] / r['candidates']:.1f}%"
        print(f"{seed:>4} {r['best_id']:>5} {r['train']:9.2f} {failed:>7}  " + "  ".join(cells))
    print("\nlength relative to nearest neighbour, % (lower is better): median run against the anchors")
    print(f"{'':<18}" + "".join(f"{s:>9}" for s in SETS))
    medians = {}
    for name in SETS:
        values = [v for v in (relative(r["sets"][name]) for r in runs.values()) if v is not None]
        medians[name] = statistics.median(values) if values else None
    print(f"{'median run':<18}" + "".join(f"{_cell(medians[s]):>9}" for s in SETS))
    for label, anchor in ANCHORS.items():
        print(f"{label + ' (own sets)':<18}" + "".join(f"{_cell(anchor[s]) if s in anchor else '':>9}"
                                                       for s in SETS))
    reevo = ANCHORS["ReEvo"]
    met = [s for s in reevo if medians[s] is not None and medians[s] <= reevo[s]]
    below = medians["tsplib"] is not None and medians["tsplib"] < 0
    print(f"\ntarget: at least as far below nearest neighbour as ReEvo on {len(met)} of 4 random sets "
          f"({', '.join(met) or 'none'}); below nearest neighbour on tsplib: {'yes' if below else 'no'}")


if __name__ == "__main__":
    sys.exit(main())
