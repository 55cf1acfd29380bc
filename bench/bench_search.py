"""Which operator choice finds the better heuristic: UCB1, Thompson sampling or uniform.

Bin packing (FunSearch's protocol, trained on the Weibull 5k set), the offline mutation
model, 1,000 evaluations per run, three seeds per policy. For each run: the best
heuristic's excess % on EoH's Weibull 5k test set (evaluated here, in the sandbox), its
training score, the final QD score and coverage, and which operators improved the best.

    .venv/bin/python bench/bench_search.py [--out DIR] [--parallel 2] [--seeds 0 1 2]
        [--policies ucb1 thompson uniform] [--evaluations 1000] [-- extra hydra overrides]

Runs go to DIR/<policy>-s<seed> (default DIR: archives/bench_search). A finished run is
reused, an interrupted one resumed, so the benchmark can be stopped and started again.
Each run uses workers=1 so that ``--parallel`` runs share the machine's cores evenly.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVO = [sys.executable, "-m", "evo.cli"]
TEST_SET = "eoh_5k"


def run_one(run_dir: Path, policy: str, seed: int, evaluations: int, extra: list[str]) -> str:
    """Start, resume or reuse one run; returns how it went."""
    store = run_dir / "run.sqlite"
    if store.exists():
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            done = db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
        if done >= evaluations:
            return "reused"
        args = ["resume", str(run_dir)]
    else:
        args = ["run", f"bandit={policy}", f"seed={seed}", f"budget.evaluations={evaluations}", "workers=1",
                f"hydra.run.dir={run_dir}", *extra]
    started = time.monotonic()
    with open(run_dir.parent / f"{run_dir.name}.log", "a") as log:
        result = subprocess.run([*EVO, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{run_dir.name}: evo {args[0]} exited {result.returncode}; see {run_dir}.log")
    return f"ran in {time.monotonic() - started:.0f} s"


def summarise(run_dir: Path) -> dict:
    """The run's best heuristic on the test set, its QD score and its search dynamics."""
    sys.path.insert(0, str(ROOT))
    from evo.app import load_problem, snapshot_config
    from evo.evaluation import Evaluator
    from evo.settings import read_settings
    from sandbox import Sandbox

    db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    best_id, best_code, train = db.execute(
        "SELECT id, code, score FROM candidates WHERE status = 'ok' ORDER BY score, id LIMIT 1").fetchone()
    last = db.execute("SELECT qd_score, coverage FROM candidates ORDER BY id DESC LIMIT 1").fetchone()
    # Who moved the best: the operator of every candidate that beat all before it.
    improvers, best = [], float("inf")
    for cid, operator, score in db.execute(
            "SELECT id, operator, score FROM candidates WHERE status = 'ok' ORDER BY id"):
        if score < best:
            best = score
            if cid:
                improvers.append(operator)
    pulls = dict(db.execute("SELECT operator, COUNT(*) FROM candidates WHERE id > 0 GROUP BY operator"))
    rewards = dict(db.execute("SELECT operator, SUM(reward) FROM candidates WHERE id > 0 GROUP BY operator"))
    db.close()
    cfg = snapshot_config(run_dir)
    settings = read_settings(cfg)
    problem = load_problem(cfg)
    with Sandbox(settings.test_limits, 1, preload=("numpy", problem.harness)) as sandbox:
        evaluator = Evaluator(problem, sandbox, settings.replay_steps, settings.seed, settings.probe_states)
        result = evaluator.evaluate(best_code, problem.test_sets()[TEST_SET])
    return {
        "best_id": best_id, "train": train, "test": result.verdict.score if result.ok else None,
        "test_error": "" if result.ok else f"{result.status}: {result.error}",
        "qd_score": last[0], "coverage": last[1], "improvers": improvers, "pulls": pulls, "rewards": rewards,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "archives" / "bench_search")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--policies", nargs="+", default=["ucb1", "thompson", "uniform"])
    parser.add_argument("--evaluations", type=int, default=1000)
    parser.add_argument("extra", nargs="*", help="hydra overrides for every run (after --)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(policy, seed, args.out / f"{policy}-s{seed}") for seed in args.seeds for policy in args.policies]
    with ThreadPoolExecutor(args.parallel) as pool:
        futures = {run_dir.name: pool.submit(run_one, run_dir, policy, seed, args.evaluations, args.extra)
                   for policy, seed, run_dir in jobs}
        for name, future in futures.items():
            print(f"{name}: {future.result()}", file=sys.stderr, flush=True)
    rows = {}
    for policy, seed, run_dir in jobs:
        cache = run_dir / "bench_summary.json"
        if not cache.exists():
            cache.write_text(json.dumps(summarise(run_dir)))
        rows[(policy, seed)] = json.loads(cache.read_text())
    print_table(rows, args)
    return 0


def print_table(rows: dict, args: argparse.Namespace) -> None:
    print(f"\nbin packing, offline model, {args.evaluations} evaluations per run; excess % (lower is better),"
          f" best of each run on {TEST_SET} (Best Fit: 4.08)")
    header = f"{'policy':<10} {'seed':>4} {'best id':>7} {'train':>7} {TEST_SET:>7} {'QD score':>9} {'coverage':>8}"
    print(header)
    print("-" * len(header))
    for (policy, seed), r in rows.items():
        test = f"{r['test']:7.2f}" if r["test"] is not None else f"{'failed':>7}"
        print(f"{policy:<10} {seed:>4} {r['best_id']:>7} {r['train']:7.2f} {test} {r['qd_score']:9.1f}"
              f" {100 * r['coverage']:7.1f}%")
    print()
    print(f"{'policy':<10} {'mean ' + TEST_SET:>12} {'best':>6} {'runs <= 2.04':>12} {'mean QD':>9}")
    for policy in args.policies:
        tests = [r["test"] for (p, _), r in rows.items() if p == policy and r["test"] is not None]
        qds = [r["qd_score"] for (p, _), r in rows.items() if p == policy]
        if tests:
            print(f"{policy:<10} {statistics.mean(tests):12.2f} {min(tests):6.2f}"
                  f" {sum(t <= 2.04 for t in tests):>8} of {len(tests)} {statistics.mean(qds):9.1f}")
    print("\noperators: pulls / archive improvements, and how often each moved the best (all runs)")
    for policy in args.policies:
        pulls, rewards, moved = {}, {}, {}
        for (p, _), r in rows.items():
            if p != policy:
                continue
            for op, n in r["pulls"].items():
                pulls[op] = pulls.get(op, 0) + n
                rewards[op] = rewards.get(op, 0) + (r["rewards"].get(op) or 0)
            for op in r["improvers"]:
                moved[op] = moved.get(op, 0) + 1
        cells = "  ".join(f"{op} {pulls[op]}/{rewards[op]:.0f}/{moved.get(op, 0)}" for op in sorted(pulls))
        print(f"{policy:<10} {cells}")


if __name__ == "__main__":
    sys.exit(main())
