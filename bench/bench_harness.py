"""How much of an evaluation is the harness's own work (issue #3), and what the probe costs.

    .venv/bin/python bench/bench_harness.py [--repeat 11] [--heavy] [--no-cold]

For each problem and heuristic on the training set, in-process:

  total = harness.solve + problem.verify, what an evaluation costs in the sandbox;
  bare  = the heuristic's own cost on exactly the inputs it gets during that solve, in the
          same order and as warm in cache as there;
  harness share = (total - bare) / total; the target is <= 20%.

How "bare" is measured. Calls of a few microseconds cannot be timed one by one with a CPU
clock (``time.process_time`` is a system call of about the same order), so bare is a
difference of whole solves: one with ``fn`` wrapped as ``once(x) = fn(x)`` and one with
``more(x) = fn(x); fn(x); fn(x); return fn(x)``. Both return what ``fn`` returns, so the
harness takes the same decisions and hands over the same arrays in the same order
(checked); ``(more - once) / 3`` is the cost of one call of ``fn`` on each of those inputs,
right after a call on the same input, i.e. warm in cache as inside the harness (whose
argument buffer is reused on every step). The wrapper's own frame is in both runs and
cancels out; three extra calls rather than one make the difference large against the
noise of the two solves.

The old definition (the arrays recorded during a solve, then replayed) is printed as
"bare cold s" for comparison: replaying 5,000 recorded 30 kB arrays streams them from
memory, so each call pays cache misses it never pays inside the harness and "bare" comes
out up to twice the heuristic's real cost, flattering the harness.

Robustness on a shared machine (2 cores, other engineers' test runs, where wall time ran
at 3x CPU time): CPU time (``time.process_time``), not wall time. The unit of timing is one
instance for bin packing (25-40 ms) and the whole set for TSP (8 ms, run ``inner`` times
per sample to reach ~20 ms). In each of ``--repeat`` rounds every unit is timed under every
variant (solve, once, more, with_argmax) back to back in an order that rotates between
rounds, so the variants compared see the same load; each (variant, unit) keeps its best
sample and the bests are summed. The "by round" column is the share computed inside each
round on its own (quartiles over the rounds): how far the load moves it. The results are
checked first (a warm-up): every variant must take the same decisions. GC stays enabled,
as in production.

The second table shows what the harness cannot avoid without changing the protocol: the
argmax over all the priorities (bin packing: measured the same way, solve with ``fn``
plus three more ``argmax`` of its result, minus ``once``, over 3) and ``problem.verify``
(trusted code in problems/*/problem.py, not the harness); "floor share" is the harness
share if the harness did nothing else, "rest" the harness's own bookkeeping per call.

Then the probe: harness.decide on problem.probe_states(n) against one training solve
(target <= 5%).
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = str(Path(__file__).resolve().parents[1])
TARGET = 20.0  # % harness share, issue #3
clock = time.process_time


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


# A heavier priority in the style of evolved heuristics (several array ops), for contrast.
GAP_AVOIDING = '''import numpy as np


def priority(item, bins):
    gap = bins - item
    score = -gap / item
    score = score - 3.0 * ((gap > 0) & (gap < 0.08 * np.max(bins)))
    return score + 0.01 * (bins == np.max(bins))
'''


EXTRA = 3  # extra calls per step in the "more" variant: the difference to measure is 3x larger


def _bp_wrappers(fn):
    def once(item, bins):
        return fn(item, bins)

    def more(item, bins):  # 1 + EXTRA calls
        fn(item, bins)
        fn(item, bins)
        fn(item, bins)
        return fn(item, bins)

    def with_argmax(item, bins):  # 1 + EXTRA argmaxes of the result
        p = fn(item, bins)
        p.argmax()
        p.argmax()
        p.argmax()
        return p

    return once, more, with_argmax


def _tsp_wrappers(fn):
    def once(c, d, u, m):
        return fn(c, d, u, m)

    def more(c, d, u, m):
        fn(c, d, u, m)
        fn(c, d, u, m)
        fn(c, d, u, m)
        return fn(c, d, u, m)

    return once, more, None


def _timed(run: Callable[[], object], inner: int) -> float:
    t0 = clock()
    for _ in range(inner):
        run()
    return (clock() - t0) / inner


def _inner(run: Callable[[], object], at_least: float = 0.02) -> int:
    """How many runs make one sample of at least ``at_least`` CPU seconds."""
    return max(1, min(100, int(at_least / max(_timed(run, 1), 1e-6)) + 1))


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def measure(units, verify, fn, wrappers, repeat: int) -> dict[str, float]:
    """CPU seconds of solve(fn), solve(once), solve(more), solve(with_argmax) (when given) and
    verify, each the sum over ``units`` (one solve each: an instance, or a whole small set)
    of its best sample over ``repeat`` rounds. In each round every unit is timed under
    every variant back to back, in an order that rotates from round to round, so the
    variants compared see the same machine load; short units are run ``inner`` times per
    sample. Also the quartiles over rounds of the share computed within each round, as a
    check of stability. The runs that check the decisions double as a warm-up."""
    once, more, with_argmax = wrappers
    variants = {"solve": fn, "once": once, "more": more}
    if with_argmax is not None:
        variants["argmax"] = with_argmax
    decisions = []
    for unit in units:
        got = unit(fn)
        for w in variants.values():  # same trajectory, hence the same inputs in the same order
            if not _same(unit(w), got):
                raise AssertionError("the wrapped heuristic took other decisions: is it deterministic?")
        decisions.extend(got)
    names = list(variants)
    runs = [{k: (lambda u=unit, f=f: u(f)) for k, f in variants.items()} for unit in units]
    inner = [_inner(r["solve"]) for r in runs]
    v_run = lambda: verify(decisions)  # noqa: E731
    v_inner = _inner(v_run)
    samples = {k: [[] for _ in units] for k in names}
    v_samples = []
    gc.collect()
    for r in range(repeat):
        order = names[r % len(names):] + names[:r % len(names)]
        for u, (run, n_in) in enumerate(zip(runs, inner)):
            for k in order:
                samples[k][u].append(_timed(run[k], n_in))
        v_samples.append(_timed(v_run, v_inner))
    best = {k: sum(min(s) for s in samples[k]) for k in names}
    out = {"solve": best["solve"], "verify": min(v_samples), "bare": (best["more"] - best["once"]) / EXTRA}
    # The same share computed within each round (all variants of a round ran side by side):
    # its spread over the rounds shows how much the machine's load moves the result.
    per_round = {k: np.sum(samples[k], axis=0) for k in names}
    total_r = per_round["solve"] + np.asarray(v_samples)
    shares = (total_r - (per_round["more"] - per_round["once"]) / EXTRA) / total_r * 100
    out["round_shares"] = np.percentile(shares, [25, 50, 75]).tolist()
    if "argmax" in best:
        out["argmax"] = (best["argmax"] - best["once"]) / EXTRA
    return out


def bp_cold_bare(bp_harness, ds, fn, repeat: int) -> float:
    """The old definition: arrays recorded during a solve (one instance at a time, to bound
    memory), then replayed; best of ``repeat`` per instance, summed."""
    total = 0.0
    for inst in ds.instances:
        rec = []

        def record(item, bins, _rec=rec):
            _rec.append((item, np.array(bins)))
            return fn(item, bins)

        bp_harness.pack(record, inst.items, inst.capacity)
        best = float("inf")
        for _ in range(repeat):
            t0 = clock()
            for item, bins in rec:
                fn(item, bins)
            best = min(best, clock() - t0)
        total += best
        del rec
        gc.collect()
    return total


def tsp_cold_bare(tsp_harness, payload, fn, repeat: int) -> float:
    rec = []

    def record(c, d, u, m):
        rec.append((c, d, u.copy(), m))
        return fn(c, d, u, m)

    tsp_harness.solve(record, payload)

    def replay():
        for c, d, u, m in rec:
            fn(c, d, u, m)

    return min(_timed(replay, 10) for _ in range(repeat))


def rows(repeat: int, heavy: bool, cold: bool) -> list[dict]:
    BinPacking, bp_harness, TSP, tsp_harness = _problems()
    out = []
    bp = BinPacking()
    ds = bp.train_set()
    payload = bp.solve_payload(ds)
    calls = sum(len(i.items) for i in ds.instances)
    heuristics = [("best_fit", bp.baselines["best_fit"])] + ([("gap_avoiding", GAP_AVOIDING)] if heavy else [])
    for label, source in heuristics:
        fn = _entry(source, "priority")
        units = [lambda f, p={"capacities": [c], "items": [i]}: bp_harness.solve(f, p)
                 for c, i in zip(payload["capacities"], payload["items"])]
        r = measure(units, lambda d: bp.verify(ds, d), fn, _bp_wrappers(fn),
                    repeat if label == "best_fit" else max(3, repeat // 3))
        r.update(problem="bin_packing", heuristic=label, set=ds.name, calls=calls)
        r["cold"] = bp_cold_bare(bp_harness, ds, fn, 3) if cold else None
        out.append(r)
    tsp = TSP()
    ds = tsp.train_set()
    payload = tsp.solve_payload(ds)
    fn = _entry(tsp.baselines["nearest_neighbour"], "select_next_node")
    r = measure([lambda f: tsp_harness.solve(f, payload)], lambda d: tsp.verify(ds, d), fn, _tsp_wrappers(fn), repeat)
    r.update(problem="tsp", heuristic="nearest_neighbour", set=ds.name,
             calls=sum(len(i.coords) - 1 for i in ds.instances))
    r["cold"] = tsp_cold_bare(tsp_harness, payload, fn, repeat) if cold else None
    out.append(r)
    return out


def probe_rows(repeat: int) -> list[tuple]:
    """harness.decide on the probe (n states) against one training solve, CPU seconds, both
    best of ``repeat`` interleaved rounds."""
    BinPacking, bp_harness, TSP, tsp_harness = _problems()
    bp, tsp = BinPacking(), TSP()
    bf = _entry(bp.baselines["best_fit"], "priority")
    nn = _entry(tsp.baselines["nearest_neighbour"], "select_next_node")
    cases = [("bin_packing", bp_harness, bf, bp.solve_payload(bp.train_set()), bp, (200, 300, 500)),
             ("tsp", tsp_harness, nn, tsp.solve_payload(tsp.train_set()), tsp, (50, 100, 200))]
    out = []
    for name, harness, fn, payload, problem, sizes in cases:
        runs = {"full": lambda h=harness, f=fn, p=payload: h.solve(f, p)}
        for n in sizes:
            runs[n] = lambda h=harness, f=fn, s=problem.probe_states(n): h.decide(f, s)
        inner = {k: _inner(run) for k, run in runs.items()}
        best = {k: float("inf") for k in runs}
        for _ in range(repeat):
            for k, run in runs.items():
                best[k] = min(best[k], _timed(run, inner[k]))
        out.extend((name, n, best[n], best["full"]) for n in sizes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=11, help="interleaved rounds; each variant keeps its best")
    parser.add_argument("--heavy", action="store_true", help="also a heavier, evolved-style bin packing heuristic (slow)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold recorded-array bare column")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; CPU seconds, best of {args.repeat}")
    print()
    results = rows(args.repeat, args.heavy, not args.no_cold)
    head = (f"{'problem':<12} {'heuristic':<18} {'calls':>6} {'solve s':>8} {'verify s':>8} {'total s':>8} "
            f"{'bare s':>8} {'harness share':>13} {'target':>7} {'met?':>5} {'by round 25/50/75%':>18} "
            f"{'bare cold s':>11}")
    print(head)
    unstable = False
    for r in results:
        total = r["solve"] + r["verify"]
        share = (total - r["bare"]) / total * 100
        cold = f"{r['cold']:>11.4f}" if r["cold"] is not None else f"{'-':>11}"
        print(f"{r['problem']:<12} {r['heuristic']:<18} {r['calls']:>6} {r['solve']:>8.4f} {r['verify']:>8.4f} "
              f"{total:>8.4f} {r['bare']:>8.4f} {share:>12.1f}% {'<=' + format(TARGET, 'g') + '%':>7} "
              f"{'yes' if share <= TARGET else 'NO':>5} {'/'.join(f'{x:.0f}' for x in r['round_shares']):>18} "
              f"{cold}")
        unstable |= abs(share - r["round_shares"][1]) > 5
    if unstable:
        print("(the best-of share and the rounds' median differ by more than 5 points: the load moved a lot; rerun)")
    print()
    print("What the harness cannot avoid (same runs): the argmax over all priorities, and the trusted verify.")
    print(f"{'problem':<12} {'heuristic':<18} {'bare s':>8} {'argmax s':>8} {'verify s':>8} {'rest s':>8} "
          f"{'floor share':>11} {'per call: bare us':>17} {'argmax us':>9} {'verify us':>9} {'rest us':>8}")
    for r in results:
        total = r["solve"] + r["verify"]
        argmax = r.get("argmax", 0.0)  # TSP: the heuristic returns the node itself
        rest = total - r["bare"] - argmax - r["verify"]
        floor = (argmax + r["verify"]) / (r["bare"] + argmax + r["verify"]) * 100
        us = 1e6 / r["calls"]
        print(f"{r['problem']:<12} {r['heuristic']:<18} {r['bare']:>8.4f} {argmax:>8.4f} {r['verify']:>8.4f} "
              f"{rest:>8.4f} {floor:>10.1f}% {r['bare'] * us:>17.2f} {argmax * us:>9.2f} "
              f"{r['verify'] * us:>9.2f} {rest * us:>8.2f}")
    print()
    print(f"{'problem':<12} {'probe n':>7} {'probe s':>8} {'train solve s':>13} {'probe/train':>11}")
    for problem, n, probe, full in probe_rows(args.repeat):
        print(f"{problem:<12} {n:>7} {probe:>8.4f} {full:>13.4f} {probe / full * 100:>10.1f}%")


if __name__ == "__main__":
    main()
