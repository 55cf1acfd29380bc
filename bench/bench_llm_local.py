"""Real local models driving evo: how many answers are valid, what they cost, what they find.

For each model, one `evo run llm=llamacpp` on bin packing (seed 0, workers=1, so that the
sandbox and llama.cpp's one thread each have a core), then the offline mutation model for
the same wall time. From each run's store and its llama.cpp log:

- per operator: candidates, valid share (parsed into the right function and evaluated
  without error; equivalents of an earlier candidate included), new valid share (valid and
  behaving unlike every earlier candidate), parse failures, failed evaluations;
- prompt and completion tokens per candidate, the reflection requests beside them,
  llama.cpp's own prompt and generation speed (tokens/s), seconds per candidate;
- the best training excess % and that heuristic's excess % on EoH's Weibull 5k test set.

    .venv/bin/python bench/bench_llm_local.py [--models 0.5b 1.5b] [--candidates 60] [--out DIR]

Runs go to DIR/<model> and DIR/offline-<model> (default DIR: archives/bench_llm_local). A
finished run is reused and an interrupted one resumed, so the benchmark can be stopped and
started again.
"""
from __future__ import annotations

import argparse
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EVO = [sys.executable, "-m", "evo.cli"]
TEST_SET = "eoh_5k"
VALID = ("ok", "equivalent")


def run(run_dir: Path, args: list[str], done_when: int | None, resume_with: list[str] = ()) -> str:
    """Start, resume or reuse one run; returns how it went."""
    store = run_dir / "run.sqlite"
    if store.exists():
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            state = dict(db.execute("SELECT key, value FROM meta")).get("state")
            done = db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
        if not resume_with and ((done_when is None and state == "finished")
                                or (done_when is not None and done >= done_when)):
            return "reused"
        # A run made for fewer candidates is extended; an interrupted one continues.
        extend = [f"budget.evaluations={done_when}"] if done_when else []
        command = ["resume", str(run_dir), *extend, *resume_with]
    else:
        command = ["run", *args, f"hydra.run.dir={run_dir}"]
    started = time.monotonic()
    with open(run_dir.parent / f"{run_dir.name}.log", "a") as log:
        result = subprocess.run([*EVO, *command], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{run_dir.name}: evo {command[0]} exited {result.returncode}; see {run_dir}.log")
    return f"ran in {time.monotonic() - started:.0f} s"


def run_offline(run_dir: Path, wall_s: float) -> str:
    """The offline model for ``wall_s`` seconds (extended when the LLM run was)."""
    if (run_dir / "run.sqlite").exists():
        if elapsed_s(run_dir) >= wall_s - 1:
            return "reused"
        return run(run_dir, [], None, resume_with=[f"budget.wall_time_s={wall_s:.0f}"])
    return run(run_dir, ["llm=offline", f"budget.wall_time_s={wall_s:.0f}", "budget.evaluations=100000",
                         "workers=1", "seed=0"], None)


def candidates(run_dir: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db.execute("SELECT * FROM candidates WHERE id > 0 ORDER BY id").fetchall()


def elapsed_s(run_dir: Path) -> float:
    from evo.store import Store

    store = Store.open_readonly(run_dir)
    try:
        return float(store.get_state("elapsed_s") or 0.0)
    finally:
        store.close()


def reflections(run_dir: Path) -> tuple[int, int, int]:
    """Reflection requests (negative samples): count, prompt and completion tokens."""
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        n, p, c = db.execute("SELECT COUNT(*), SUM(prompt_tokens), SUM(completion_tokens) FROM llm_cache "
                             "WHERE sample < 0").fetchone()
    return n, p or 0, c or 0


_PERF = re.compile(r"llama_perf_context_print:\s+(prompt eval|eval) time =\s+([\d.]+) ms /\s+(\d+)")


def server_speed(run_dir: Path) -> tuple[float, float]:
    """llama.cpp's own prompt and generation speed over the run, tokens/s."""
    totals = defaultdict(lambda: [0.0, 0])
    log = run_dir / "llm-server.log"
    for kind, ms, tokens in _PERF.findall(log.read_text(errors="replace") if log.exists() else ""):
        totals[kind][0] += float(ms)
        totals[kind][1] += int(tokens)

    def rate(kind: str) -> float:
        ms, tokens = totals[kind]
        return 1000 * tokens / ms if ms else float("nan")

    return rate("prompt eval"), rate("eval")


def best_on_test(run_dir: Path) -> tuple[int, float, float | None]:
    """The best candidate: id, training excess %, excess % on the test set."""
    from evo.app import load_problem, snapshot_config
    from evo.evaluation import Evaluator
    from evo.settings import read_settings
    from sandbox import Sandbox

    ok = [c for c in candidates(run_dir) if c["status"] == "ok"]
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        seed_row = db.execute("SELECT id, code, score FROM candidates WHERE id = 0").fetchone()
    best = min([(c["score"], c["id"], c["code"]) for c in ok] + [(seed_row[2], 0, seed_row[1])])
    cfg = snapshot_config(run_dir)
    problem = load_problem(cfg)
    with Sandbox(read_settings(cfg).test_limits, 1, preload=("numpy", problem.harness)) as sandbox:
        result = Evaluator(problem, sandbox, 0, 0).evaluate(best[2], problem.test_sets()[TEST_SET])
    return best[1], best[0], result.verdict.score if result.ok else None


def operator_table(rows: list[sqlite3.Row]) -> list[tuple]:
    by_op: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for row in rows:
        by_op[row["operator"]].append(row)
    table = []
    for operator, group in [*sorted(by_op.items()), ("all", rows)]:
        statuses = Counter(r["status"] for r in group)
        n = len(group)
        valid = sum(statuses[s] for s in VALID)
        failed = n - valid - statuses["invalid"] - statuses["llm_failed"]
        table.append((operator, n, valid / n, statuses["ok"] / n, statuses["invalid"], failed, statuses["llm_failed"]))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["0.5b", "1.5b"])
    parser.add_argument("--candidates", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "archives" / "bench_llm_local")
    args = parser.parse_args()
    from evo.llm.local_models import find_model

    args.out.mkdir(parents=True, exist_ok=True)
    evaluations = args.candidates + 1  # the seed is candidate 0
    summary = []
    for short in args.models:
        model = find_model(short).name
        llm_dir, offline_dir = args.out / model, args.out / f"offline-{model}"
        how = run(llm_dir, ["llm=llamacpp", f"llm.model={model}", f"budget.evaluations={evaluations}", "workers=1",
                            "seed=0"], evaluations)
        print(f"{model}: {how}", flush=True)
        wall = elapsed_s(llm_dir)
        how = run_offline(offline_dir, wall)
        print(f"offline for {wall:.0f} s: {how}", flush=True)
        rows = candidates(llm_dir)
        print(f"\n## {model}: {len(rows)} candidates in {wall / 60:.1f} min\n")
        print("| operator | candidates | valid | new valid | parse failures | failed evaluations | LLM failures |")
        print("|---|---|---|---|---|---|---|")
        for op, n, valid, new, invalid, failed, llm_failed in operator_table(rows):
            print(f"| {op} | {n} | {valid:.0%} | {new:.0%} | {invalid} | {failed} | {llm_failed} |")
        n_reflect, p_reflect, c_reflect = reflections(llm_dir)
        prompt_speed, gen_speed = server_speed(llm_dir)
        best = best_on_test(llm_dir)
        offline_rows = candidates(offline_dir)
        offline_best = best_on_test(offline_dir)
        summary.append({
            "model": model, "candidates": len(rows), "wall_min": wall / 60,
            "valid": sum(r["status"] in VALID for r in rows) / len(rows),
            "new": sum(r["status"] == "ok" for r in rows) / len(rows),
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows) / len(rows),
            "completion_tokens": sum(r["completion_tokens"] for r in rows) / len(rows),
            "reflections": f"{n_reflect} ({p_reflect / max(n_reflect, 1):.0f} + {c_reflect / max(n_reflect, 1):.0f} tokens)",
            "prompt_speed": prompt_speed, "gen_speed": gen_speed, "s_per_candidate": wall / len(rows),
            "best": best, "offline_candidates": len(offline_rows), "offline_best": offline_best,
        })
    print("\n## Summary (bin packing, seed 0, workers=1; excess %, lower is better; Best Fit: 3.98 train, 4.08 test)\n")
    print("| model | candidates | valid | new valid | prompt / completion tokens per candidate | reflection requests "
          "| llama.cpp prompt / generation tokens/s | s per candidate | best (train) | its EoH 5k test "
          "| offline model, same wall time: candidates, best train, its test |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        bid, btrain, btest = s["best"]
        oid, otrain, otest = s["offline_best"]
        print(f"| {s['model']} | {s['candidates']} | {s['valid']:.0%} | {s['new']:.0%} "
              f"| {s['prompt_tokens']:.0f} / {s['completion_tokens']:.0f} | {s['reflections']} "
              f"| {s['prompt_speed']:.1f} / {s['gen_speed']:.1f} | {s['s_per_candidate']:.1f} "
              f"| #{bid} {btrain:.2f} | {_fmt(btest)} | {s['offline_candidates']}, #{oid} {otrain:.2f}, {_fmt(otest)} |")
    return 0


def _fmt(value: float | None) -> str:
    return "failed" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
