"""Sandbox overhead benchmark: 50 honest bin-packing heuristics, in-process vs sandboxed.

    .venv/bin/python bench/bench_sandbox.py [--heuristics 50] [--items 5000]

Each heuristic is evaluated on 5 seeded instances of Weibull(3, 45) item sizes clipped to
[1, 100] and rounded (capacity 100) by bench/binpack_harness.solve. Three timed runs:
  A: plain exec + call in this process (no isolation at all),
  B: through Sandbox(workers=1), jobs submitted one after another,
  C: through Sandbox(workers=2), all jobs submitted at once.
Results of B and C are checked to equal A's decisions exactly.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from sandbox import Job, Limits, Sandbox  # noqa: E402
import binpack_harness as bench_harness  # noqa: E402  (beside this script)


def instances(n_inst: int, n_items: int, seed: int = 2024) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(np.round(45.0 * rng.weibull(3.0, n_items)), 1, 100) for _ in range(n_inst)]


def heuristics(n: int) -> list[str]:
    head = "import numpy as np\n\ndef priority(item, bins):\n"
    forms = [
        lambda c: f"    return -(bins - item) * {c:.3f}\n",                          # best fit
        lambda c: f"    return -np.arange(len(bins)) * {c:.3f}\n",                    # first fit
        lambda c: f"    return (bins - item) * {c:.3f}\n",                             # worst fit
        lambda c: f"    r = bins - item\n    return -r + {c:.3f} * (r < {10 * c:.2f})\n",
        lambda c: f"    return -np.abs(bins - item - {c:.3f})\n",
        lambda c: f"    return np.log(bins) - {c:.3f} * item / bins\n",
        lambda c: f"    s = bins - item\n    return -(s ** {1 + c / 5:.3f}) - {c:.3f} * (bins == bins.max())\n",
        lambda c: f"    return -(bins - item) + np.sin(bins * {c:.3f}) * 0.1\n",
        lambda c: f"    x = (bins - item) / bins\n    return -x * {c:.3f} + (x == 0) * 1e6\n",
        lambda c: f"    return item / bins - {c:.3f} * (bins - item) ** 2 / 1e4\n",
    ]
    return [head + forms[i % len(forms)](0.5 + 0.37 * (i // len(forms)) + 0.01 * i) for i in range(n)]


def score(insts, decisions) -> float:
    return float(np.mean([len(np.unique(d)) for d in decisions]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heuristics", type=int, default=50)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--instances", type=int, default=5)
    args = ap.parse_args()
    insts = instances(args.instances, args.items)
    payload = {"capacity": 100.0, "instances": insts}
    codes = heuristics(args.heuristics)
    jobs = [Job(code=c, entry="priority", harness="binpack_harness", call="solve", payload=payload)
            for c in codes]
    limits = Limits(wall_time_s=120, cpu_time_s=120, memory_mb=2048, output_bytes=65536)

    t0, c0 = time.perf_counter(), time.process_time()
    ref = []
    for c in codes:
        ns: dict = {}
        exec(compile(c, "<candidate>", "exec"), ns)
        ref.append(bench_harness.solve(ns["priority"], payload))
    t_in, cpu_in = time.perf_counter() - t0, time.process_time() - c0

    results = {}
    for workers in (1, 2):
        t_start = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with Sandbox(limits, workers=workers, preload=["numpy", "binpack_harness"]) as sb:
            t_ready = time.perf_counter()
            if workers == 1:
                outs = [sb.run(j) for j in jobs]
            else:
                outs = [f.result() for f in [sb.submit(j) for j in jobs]]
            t_done = time.perf_counter()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # server + all job children, reaped
        cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        bad = [o for o in outs if o.status != "ok"]
        assert not bad, bad[:2]
        for o, r in zip(outs, ref):
            assert all(np.array_equal(a, b) for a, b in zip(o.result, r)), "sandbox result differs"
        results[workers] = (t_done - t_ready, t_ready - t_start, float(np.mean([o.wall_s for o in outs])), cpu)

    n = len(codes)
    t1, start1, job1, cpu1 = results[1]
    t2, start2, _, cpu2 = results[2]
    rows = [
        ("in-process exec (no isolation)", t_in, n / t_in, "1.00x"),
        ("sandbox, 1 worker, sequential", t1, n / t1, f"{t1 / t_in:.3f}x wall vs in-process"),
        ("sandbox, 2 workers, all submitted", t2, n / t2, f"{t1 / t2:.2f}x throughput vs 1 worker"),
    ]
    print(f"{n} heuristics x {args.instances} instances x {args.items} items "
          f"({n * args.instances * args.items:,} priority calls per run), cpus={os.cpu_count()}")
    print(f"{'run':36s} {'wall s':>8s} {'jobs/s':>8s}  ratio")
    for name, t, tp, ratio in rows:
        print(f"{name:36s} {t:8.2f} {tp:8.2f}  {ratio}")
    print(f"sandbox overhead: {100 * (t1 / t_in - 1):+.1f}% wall (target <= +10%); "
          f"2-worker speed-up {t1 / t2:.2f}x (target >= 1.8x)")
    print(f"server start-up (not in the timings above): {start1:.2f} s (1 worker), {start2:.2f} s (2 workers); "
          f"mean per-job wall inside the sandbox {job1:.3f} s")
    print(f"CPU seconds (robust to other load on the machine): in-process {cpu_in:.2f}, "
          f"sandbox 1 worker {cpu1:.2f} ({100 * (cpu1 / cpu_in - 1):+.1f}%, incl. server start), "
          f"2 workers {cpu2:.2f}; load average now {os.getloadavg()[0]:.1f}")
    print(f"mean bins used (best heuristic): {min(score(insts, r) for r in ref):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
