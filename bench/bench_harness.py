"""How much of an evaluation is the harness's own work, and what the functional-hash probe costs.

For each problem and baseline heuristic on the training set:
  total  = harness.solve in-process + problem.verify (the trusted check), each best of --repeat;
  bare   = the same heuristic called alone on the very arguments it saw during solve
           (recorded first, one instance at a time to bound memory), best of --repeat;
  harness share = (total - bare) / total. The target is <= 20%.
The recorded arrays are cold in cache when replayed (25,000 of them), so "bare" can cost more
than the same calls inside the harness, which reuses one warm buffer. The last two columns
are the stricter reading: "hot fn" = time spent inside the heuristic during solve itself,
and the harness share against that.
Then the probe: harness.decide on problem.probe_states(n) against one full training solve;
the target is <= 5%.

    .venv/bin/python bench/bench_harness.py [--repeat 5]

Timings are wall-clock; on a busy machine take the best of several repeats.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = str(Path(__file__).resolve().parents[1])


def _problems():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from problems.bin_packing import BinPacking
    from problems.bin_packing import harness as bp_harness
    from problems.tsp import TSP
    from problems.tsp import harness as tsp_harness

    return BinPacking, bp_harness, TSP, tsp_harness


def _entry(source: str, name: str):
    namespace: dict = {}
    exec(source, namespace)
    return namespace[name]


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


# A heavier priority in the style of evolved heuristics (several array ops), for contrast.
GAP_AVOIDING = '''import numpy as np


def priority(item, bins):
    gap = bins - item
    score = -gap / item
    score = score - 3.0 * ((gap > 0) & (gap < 0.08 * np.max(bins)))
    return score + 0.01 * (bins == np.max(bins))
'''


def _hot(run, fn, repeat: int) -> float:
    """Seconds spent inside ``fn`` while ``run(wrapped)`` runs it in the harness (best of
    ``repeat``): the heuristic's cost on warm, in-cache arrays."""
    clock = time.perf_counter
    best = float("inf")
    for _ in range(repeat):
        spent = [0.0]

        def wrapped(*args, _spent=spent):
            t0 = clock()
            out = fn(*args)
            _spent[0] += clock() - t0
            return out

        run(wrapped)
        best = min(best, spent[0])
    return best


def bin_packing_rows(repeat: int) -> list[tuple]:
    BinPacking, bp_harness, _, _ = _problems()
    problem = BinPacking()
    ds = problem.train_set()
    payload = problem.solve_payload(ds)
    rows = []
    for label, source in (("best_fit", problem.baselines["best_fit"]), ("gap_avoiding", GAP_AVOIDING)):
        fn = _entry(source, "priority")
        decisions = bp_harness.solve(fn, payload)
        solve = _best(lambda: bp_harness.solve(fn, payload), repeat)
        verify = _best(lambda: problem.verify(ds, decisions), repeat)
        bare_runs = []
        for _ in range(repeat):
            bare = 0.0
            calls = 0
            for inst in ds.instances:
                rec = []

                def record(item, bins, _rec=rec, _fn=fn):
                    _rec.append((item, np.array(bins)))
                    return _fn(item, bins)

                bp_harness.pack(record, inst.items, inst.capacity)
                t0 = time.perf_counter()
                for item, bins in rec:
                    fn(item, bins)
                bare += time.perf_counter() - t0
                calls += len(rec)
                del rec
            bare_runs.append(bare)
        bare = min(bare_runs)
        hot = _hot(lambda f: bp_harness.solve(f, payload), fn, repeat)
        rows.append(("bin_packing", label, ds.name, calls, solve, verify, bare, hot))
    return rows


def tsp_rows(repeat: int) -> list[tuple]:
    _, _, TSP, tsp_harness = _problems()
    problem = TSP()
    ds = problem.train_set()
    payload = problem.solve_payload(ds)
    fn = _entry(problem.baselines["nearest_neighbour"], "select_next_node")
    decisions = tsp_harness.solve(fn, payload)
    solve = _best(lambda: tsp_harness.solve(fn, payload), repeat)
    verify = _best(lambda: problem.verify(ds, decisions), repeat)
    rec = []

    def record(c, d, u, m):
        rec.append((c, d, u.copy(), m))
        return fn(c, d, u, m)

    tsp_harness.solve(record, payload)

    def bare_calls():
        for c, d, u, m in rec:
            fn(c, d, u, m)

    bare = _best(bare_calls, repeat)
    hot = _hot(lambda f: tsp_harness.solve(f, payload), fn, repeat)
    return [("tsp", "nearest_neighbour", ds.name, len(rec), solve, verify, bare, hot)]


def probe_rows(repeat: int) -> list[tuple]:
    BinPacking, bp_harness, TSP, tsp_harness = _problems()
    rows = []
    bp = BinPacking()
    bf = _entry(bp.baselines["best_fit"], "priority")
    payload = bp.solve_payload(bp.train_set())
    full = _best(lambda: bp_harness.solve(bf, payload), max(1, repeat // 2))
    for n in (200, 300, 500):
        states = bp.probe_states(n)
        rows.append(("bin_packing", n, _best(lambda: bp_harness.decide(bf, states), repeat), full))
    tsp = TSP()
    nn = _entry(tsp.baselines["nearest_neighbour"], "select_next_node")
    payload = tsp.solve_payload(tsp.train_set())
    full = _best(lambda: tsp_harness.solve(nn, payload), repeat)
    for n in (50, 100, 200):
        states = tsp.probe_states(n)
        rows.append(("tsp", n, _best(lambda: tsp_harness.decide(nn, states), repeat), full))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'problem':<12} {'heuristic':<18} {'set':<20} {'calls':>6} {'solve s':>8} {'verify s':>8} "
          f"{'total s':>8} {'bare s':>8} {'harness':>8} {'hot fn s':>8} {'harness':>8}")
    for problem, label, name, calls, solve, verify, bare, hot in bin_packing_rows(args.repeat) + tsp_rows(args.repeat):
        total = solve + verify
        share = (total - bare) / total * 100
        share_hot = (total - hot) / total * 100
        print(f"{problem:<12} {label:<18} {name:<20} {calls:>6} {solve:>8.3f} {verify:>8.3f} {total:>8.3f} "
              f"{bare:>8.3f} {share:>7.1f}% {hot:>8.3f} {share_hot:>7.1f}%")
    print()
    print(f"{'problem':<12} {'probe n':>7} {'probe s':>8} {'train solve s':>13} {'probe/train':>11}")
    for problem, n, probe, full in probe_rows(args.repeat):
        print(f"{problem:<12} {n:>7} {probe:>8.4f} {full:>13.3f} {probe / full * 100:>10.1f}%")


if __name__ == "__main__":
    main()
