"""Keeping the LLM busy: slot utilisation and candidates per minute, batches against the window.

A scripted OpenAI-compatible server on 127.0.0.1 (tests/llm_server.py) answers every
request, reflections included, with a valid bin packing heuristic (a different one for
each request, drawn from the request's hash) after a latency drawn from a seeded
lognormal: median 8 s, sigma 0.6, times --scale to keep the benchmark short. Every
configuration gets the same sequence of latencies, in the order requests arrive.

For each number of requests in flight (llm.concurrency, the keys of --candidates), one
run of the batched engine (batch_size = that number, the natural setting) and runs of
this engine with windows of 1 to 4 times that number (--windows). Bin packing on one generated
Weibull instance of 1,000 items, all operators (crossovers and elitist mutations ask for
reflections), workers=2, --candidates candidates per run.

The batched engine is the code at --batched-ref, the last commit before the window,
exported with `git archive` into a temporary folder and run with this venv's python (the
stores and configs of both are the same but for batch_size/window). Both run as
`evo run` subprocesses.

utilisation: seconds with a request in flight at the server, summed over requests, over
(slots x the span from the first request's arrival to the last answer). A finite run ends
with a drain: once its last request is out, slots empty one by one whatever the engine
does; "until the last request" counts the span up to the last request's arrival only (the
requests' time in flight cut there), the share a long run tends to.
cand/min: candidates (the seed excluded) over the span from the first request to the last
commit.

    .venv/bin/python bench/bench_throughput.py [--scale 0.5] [--candidates 4:121,16:321] [--windows 1,2,3,4]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from llm_server import ScriptedServer, answer, heuristic_code  # noqa: E402

# main before the window (issue #16): candidates planned and committed in batches.
BATCHED_REF = "c9d33e675a2d79fa102e2da3901825276c1082a1"
MEDIAN_S, SIGMA = 8.0, 0.6
PROBLEM = ["problem=bin_packing", "+problem.instance.train=weibull-1x1000-seed0", "+problem.instance.tests=[or1]"]


@dataclass(frozen=True)
class Result:
    engine: str
    in_flight: int
    window: int
    candidates: int
    requests: int
    spans: tuple[tuple[float, float], ...]  # (arrival, answer) of each request, seconds from the first
    commits_span_s: float

    @property
    def utilisation(self) -> float:
        end = max(answer for _, answer in self.spans)
        return sum(answer - arrival for arrival, answer in self.spans) / (self.in_flight * end)

    @property
    def utilisation_until_last_request(self) -> float:
        last = max(arrival for arrival, _ in self.spans)
        return sum(min(answer, last) - arrival for arrival, answer in self.spans) / (self.in_flight * last)

    @property
    def per_minute(self) -> float:
        return 60.0 * self.candidates / self.commits_span_s


class LatencyServer:
    """The scripted server with seeded lognormal latencies (by arrival order) and answers
    that depend on the request alone; it notes when each request arrived and how long it
    was held."""

    def __init__(self, seed: int, scale: float):
        self.rng = np.random.default_rng(seed)
        self.scale = scale
        self.delays: list[float] = []
        self.arrivals: dict[int, float] = {}
        self.lock = threading.Lock()
        self.server = ScriptedServer(default=self.behaviour)

    def behaviour(self, n: int):
        with self.lock:
            while len(self.delays) <= n:
                self.delays.append(self.scale * MEDIAN_S * math.exp(SIGMA * self.rng.standard_normal()))
            self.arrivals[n] = time.time()
        messages = json.dumps(self.server.requests[n]["messages"], sort_keys=True).encode()
        share = int(hashlib.sha256(messages).hexdigest(), 16) % 10_000 / 40_000  # 0 to 0.25
        code = heuristic_code(0).replace("score = -(bins - item)",
                                         f"score = -np.abs(bins - item - {share:.4f} * np.max(bins))")
        return answer(f"{{Aim at a gap of {share:.4f} of the largest room.}}\n\n```python\n{code}```\n",
                      delay_s=self.delays[n])

    def spans(self) -> tuple[float, tuple[tuple[float, float], ...]]:
        """The first arrival (epoch seconds), and each request's (arrival, answer) from it."""
        first = min(self.arrivals.values())
        return first, tuple((self.arrivals[n] - first, self.arrivals[n] - first + self.delays[n])
                            for n in sorted(self.arrivals))


def run_once(source: Path, engine: str, in_flight: int, window: int, candidates: int, seed: int, scale: float,
             folder: Path) -> Result:
    key = "batch_size" if engine == "batches" else "window"
    run_dir = folder / f"{engine}-{in_flight}-{window}"
    latency = LatencyServer(seed, scale)
    with latency.server as server:
        command = [sys.executable, "-m", "evo.cli", "run", *PROBLEM, "llm=local", f"llm.base_url={server.url}",
                   "llm.api_key_env=null", "llm.model=openai/scripted", f"llm.concurrency={in_flight}",
                   "llm.max_retries=0", "llm.timeout_s=600", f"{key}={window}", "workers=2", "seed=0",
                   f"budget.evaluations={candidates + 1}", f"hydra.run.dir={run_dir}"]
        env = dict(os.environ, PYTHONPATH=str(source))
        done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench_throughput: {engine} {in_flight}/{window} failed:\n{done.stderr[-2000:]}")
        first, spans = latency.spans()
        requests = server.count
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        (last_commit,) = db.execute("SELECT MAX(created) FROM candidates").fetchone()
    return Result(engine, in_flight, window, candidates, requests, spans, last_commit - first)


def export(ref: str, folder: Path) -> Path:
    target = folder / "batched"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--scale", type=float, default=0.5, help="latencies are the lognormal's times this")
    cli.add_argument("--candidates", default="4:121,16:321",
                     help="candidates per run, for each number of requests in flight (IN_FLIGHT:N,...)")
    cli.add_argument("--windows", default="1,2,3,4", help="windows as multiples of the requests in flight")
    cli.add_argument("--seed", type=int, default=0, help="the latencies' seed")
    cli.add_argument("--batched-ref", default=BATCHED_REF, help="git ref of the batched engine")
    ns = cli.parse_args()
    plan = {int(k): int(v) for k, v in (item.split(":") for item in ns.candidates.split(","))}
    multiples = [int(m) for m in ns.windows.split(",")]
    print(f"# {uptime()}")
    print(f"# latencies: lognormal, median {MEDIAN_S * ns.scale:g} s (8 s x {ns.scale:g}), sigma {SIGMA}, "
          f"seed {ns.seed}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        folder = Path(tmp)
        batched = export(ns.batched_ref, folder)
        for in_flight, candidates in plan.items():
            runs = [(batched, "batches", in_flight)] + [(ROOT, "window", m * in_flight) for m in multiples]
            for source, engine, size in runs:
                sys.stderr.write(f"bench_throughput: {engine}={size}, {in_flight} in flight, {candidates} candidates\n")
                results.append(run_once(source, engine, in_flight, size, candidates, ns.seed, ns.scale, folder))
    print()
    print("| in flight | engine | batch / window | candidates | requests | span (s) | utilisation "
          "| until the last request | cand/min | vs batches |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        base = next(b for b in results if b.in_flight == r.in_flight and b.engine == "batches")
        print(f"| {r.in_flight} | {r.engine} | {r.window} | {r.candidates} | {r.requests} | {r.commits_span_s:.0f} "
              f"| {100 * r.utilisation:.0f}% | {100 * r.utilisation_until_last_request:.0f}% | {r.per_minute:.1f} "
              f"| {r.per_minute / base.per_minute:.2f}x |")
    print(f"\n# {uptime()}")


if __name__ == "__main__":
    main()
