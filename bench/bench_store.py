"""What the run store costs per candidate, against what the candidate's evaluation costs.

1. A real run: bin packing (FunSearch's Weibull 5k training set), the offline backend,
   --evaluations candidates, in this process. Its records give each candidate's
   evaluation time (``eval_s``, the sandboxed solve plus the trusted verify and replay)
   and the store's real rows: code, thoughts, prompts and answers.
2. Those rows written again into a fresh store, one checkpoint at a time as the engine
   writes them: the LLM answer (``cache_response``, its own transaction) and the candidate
   with the derived state (``commit_candidate``). Then the store grown to --grow
   candidates with copies under new ids, and timed again: the cost must not grow with it.
3. What a resume pays at that size: opening the store for writing (the integrity check)
   and replaying every candidate into the search state.

Target: a checkpoint (answer + candidate) at most 2% of a mean evaluation.

    .venv/bin/python bench/bench_store.py [--evaluations 60] [--grow 10000] [--run-dir DIR]

--run-dir reads an existing run instead of making one. Timings are wall-clock medians; on a
busy machine the p95 column shows the disk's and the scheduler's hiccups.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evo.llm.base import Response  # noqa: E402
from evo.store import CandidateRecord, Store  # noqa: E402


def real_run(evaluations: int, run_dir: Path) -> None:
    from evo.app import execute
    from evo.compose import compose_config

    cfg = compose_config(["problem=bin_packing", "llm=offline", f"budget.evaluations={evaluations}", "seed=0"])
    sys.stderr.write(f"bench_store: a bin packing run of {evaluations} evaluations in {run_dir} ...\n")
    with contextlib.redirect_stdout(io.StringIO()):  # the run's summary; the table is the output
        code = execute(cfg, run_dir)
    if code != 0:
        raise SystemExit(f"bench_store: the run failed (exit {code})")


def read_run(run_dir: Path) -> tuple[list[CandidateRecord], list[tuple], dict]:
    store = Store.open_readonly(run_dir)
    try:
        records = list(store.candidates())
        state = {"bandit": store.get_state("bandit"), "elapsed_s": store.get_state("elapsed_s")}
    finally:
        store.close()
    # The answers as stored rows (the store serves them one key at a time only).
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        answers = [tuple(row) for row in db.execute("SELECT * FROM llm_cache ORDER BY sample")]
    return records, answers, state


def checkpoint_times(store: Store, records: list[CandidateRecord], answers: list[tuple], state: dict,
                     first_id: int) -> tuple[list[float], list[float]]:
    """Write each record (under a fresh id from first_id) and one answer as the engine does;
    the seconds each cache_response and each commit_candidate took."""
    cache_s, commit_s = [], []
    for i, record in enumerate(records):
        cid = first_id + i
        key, _sample, model, request_json, text, pt, ct, cost, latency, error, _created = answers[i % len(answers)]
        response = Response(text=text, model=model, prompt_tokens=pt, completion_tokens=ct, cost_usd=cost,
                            latency_s=latency, error=error)
        t0 = time.perf_counter()
        store.cache_response(f"{key}-{cid}", cid, request_json, response)
        t1 = time.perf_counter()
        store.commit_candidate(replace(record, id=cid), state)
        t2 = time.perf_counter()
        cache_s.append(t1 - t0)
        commit_s.append(t2 - t1)
    return cache_s, commit_s


def p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(0.95 * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--evaluations", type=int, default=60, help="candidates in the real run (default 60)")
    parser.add_argument("--grow", type=int, default=10_000, help="candidates in the grown store (default 10000)")
    parser.add_argument("--run-dir", type=Path, help="read this run instead of making one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        run_dir = args.run_dir or Path(tmp) / "run"
        if args.run_dir is None:
            real_run(args.evaluations, run_dir)
        records, answers, state = read_run(run_dir)
        if not answers:
            raise SystemExit(f"bench_store: {run_dir} has no LLM answers to write")
        evaluated = [r.eval_s for r in records if r.eval_s > 0]
        mean_eval = statistics.fmean(evaluated)

        target = Path(tmp) / "copy"
        target.mkdir()
        store = Store.create(target, {"config": "{}"})
        rows = []
        cache_s, commit_s = checkpoint_times(store, records, answers, state, 0)
        rows.append((f"1-{len(records)}", cache_s, commit_s))
        # Grow to --grow, then time one more run's worth of checkpoints at that size.
        next_id = len(records)
        grow_to = max(args.grow - len(records), next_id)
        while next_id < grow_to:
            chunk = records[: min(len(records), grow_to - next_id)]
            checkpoint_times(store, chunk, answers, state, next_id)
            next_id += len(chunk)
        cache_s, commit_s = checkpoint_times(store, records, answers, state, next_id)
        rows.append((f"{next_id + 1}-{next_id + len(records)}", cache_s, commit_s))
        size_mb = (target / "run.sqlite").stat().st_size / 1e6 + sum(
            p.stat().st_size for p in target.glob("run.sqlite-wal")) / 1e6
        total = store.count()
        store.close()

        t0 = time.perf_counter()
        store = Store.open(target)
        open_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        replayed = sum(1 for _ in store.candidates())
        read_s = time.perf_counter() - t0
        store.close()
        rebuild_s = rebuild_seconds(run_dir, target)

    print(f"Run store cost per candidate: bin packing, offline backend, {len(records)} candidates"
          f" ({len(evaluated)} evaluated, mean evaluation {1000 * mean_eval:.0f} ms)")
    print()
    print(f"{'store size (ids)':<18} {'answer ms':>10} {'candidate ms':>13} {'checkpoint ms':>14} {'p95 ms':>8}"
          f" {'share of eval':>14}")
    for label, cache_s, commit_s in rows:
        both = [a + b for a, b in zip(cache_s, commit_s)]
        share = statistics.median(both) / mean_eval
        print(f"{label:<18} {1000 * statistics.median(cache_s):>10.3f} {1000 * statistics.median(commit_s):>13.3f}"
              f" {1000 * statistics.median(both):>14.3f} {1000 * p95(both):>8.3f} {100 * share:>13.3f}%")
    print()
    print(f"resume at {total} candidates ({size_mb:.1f} MB): open for writing with the integrity check"
          f" {1000 * open_s:.0f} ms; read every candidate {1000 * read_s:.0f} ms ({replayed} rows);"
          f" replay into the search state {1000 * rebuild_s:.0f} ms")
    print("target: a checkpoint <= 2% of a mean evaluation")
    return 0


def rebuild_seconds(run_dir: Path, grown: Path) -> float:
    """SearchState.from_store over the grown store, with the run's own settings."""
    from evo.app import snapshot_config
    from evo.search_state import SearchState
    from evo.settings import read_settings

    settings = read_settings(snapshot_config(run_dir))
    warm = Store.open_readonly(run_dir)
    SearchState.from_store(warm, settings)  # imports and JIT compilation, not part of a replay
    warm.close()
    store = Store.open_readonly(grown)
    try:
        t0 = time.perf_counter()
        SearchState.from_store(store, settings)
        return time.perf_counter() - t0
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
