"""What deduplication saves in a real run, what the probe costs, and whether it is safe.

An offline run (bin packing unless overridden: ``-- problem=tsp``; a real ``evo run
budget.evaluations=500`` subprocess into a temporary folder, or an existing run with
--run-dir), then, from its store:

  levels     the share of candidates each level decided: syntactic repeat (no process),
             functional hit (probe only), verified hit (probe + evaluation, agreed),
             collision (probe + evaluation, disagreed), full evaluation, not evaluated
             (an answer without usable code);
  saved      evaluation seconds saved: the originals' eval_s summed over the hits that
             were not evaluated, against the seconds spent on probes;
  probe cost the probe as a share of a full evaluation, twice: as recorded in the run
             (mean probe_s / mean eval_s; both include waiting for a sandbox worker while
             the run's other evaluations hold them), and alone (a sample of evaluated
             candidates probed and evaluated again one at a time, best of --repeat), and
             the run's probes and hits priced at the "alone" figures: the net saving
             without the waiting for a sandbox slot that the in-run timings include; and
             a one-state probe, the floor any probe pays for its sandbox job;
  collisions disagreements among the verified hits (must be 0), and with --audit (on by
             default) every unverified functional hit is evaluated too and compared with
             its original: the collisions that the verification sample did not look at.

    .venv/bin/python bench/bench_hashing.py                      # run 500 candidates, then report
    .venv/bin/python bench/bench_hashing.py --run-dir archives/bin_packing/RUN   # report on a run
    .venv/bin/python bench/bench_hashing.py --evaluations 200 --audit 0 -- seed=3
    .venv/bin/python bench/bench_hashing.py --evaluations 300 --workers 1 -- problem=tsp workers=1

Overrides after ``--`` go to ``evo run``. Timings are wall-clock on a machine that may be
busy; the "alone" figures are the ones to compare across machines.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evo.app import load_problem, snapshot_config  # noqa: E402
from evo.evaluation import Evaluator  # noqa: E402
from evo.settings import read_settings  # noqa: E402
from evo.store import CandidateRecord, Store  # noqa: E402
from sandbox import Sandbox  # noqa: E402

LEVELS = (
    ("syntactic", "syntactic repeat (no process)"),
    ("functional", "functional hit (probe only)"),
    ("verified", "verified hit (probe + eval, agreed)"),
    ("collision", "collision (probe + eval, disagreed)"),
    ("full", "full evaluation"),
    ("none", "not evaluated (no usable code)"),
)


@dataclass(frozen=True)
class Audit:
    audited: int
    disagreed: list[tuple[int, int, float | None, float | None]]  # (hit, original, hit score, original score)
    seconds: float


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = _parse(argv)
    if args.run_dir:
        run_dir = Path(args.run_dir)
        wall = None
    else:
        parent = Path(tempfile.mkdtemp(prefix="bench_hashing_"))
        run_dir = parent / "run"
        wall = _run(run_dir, args.evaluations, overrides)
    store = Store.open_readonly(run_dir)
    records = list(store.candidates())
    store.close()
    by_id = {r.id: r for r in records}
    print(f"\nrun: {run_dir} ({len(records)} candidates" + (f", {wall:.0f} s wall clock)" if wall else ")"))

    _print_levels(records)
    _print_savings(records, by_id)
    cfg = snapshot_config(run_dir)
    settings = read_settings(cfg)
    problem = load_problem(cfg)
    print(f"\nprobe: {settings.probe_states} states; verify_rate {settings.verify_rate}")
    with Sandbox(settings.limits, args.workers, preload=("numpy", problem.harness)) as sandbox:
        evaluator = Evaluator(problem, sandbox, settings.replay_steps, settings.seed, settings.probe_states)
        _print_probe_cost(records, evaluator, problem, args.sample, args.repeat)
        audit = _audit(records, by_id, evaluator, problem, args.audit, args.workers)
    _print_collisions(records, by_id, audit)
    return 0


def _parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluations", type=int, default=500, help="candidates in the run (default 500)")
    parser.add_argument("--run-dir", help="report on this existing run instead of starting one")
    parser.add_argument("--sample", type=int, default=20, help="evaluated candidates re-timed alone (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many timings (default 3)")
    parser.add_argument("--audit", default="all",
                        help="unverified functional hits to evaluate and compare: all (default), a number, or 0")
    parser.add_argument("--workers", type=int, default=2, help="sandbox workers for the audit (default 2)")
    return parser.parse_args(argv), overrides


def _run(run_dir: Path, evaluations: int, overrides: list[str]) -> float:
    """A real `evo run` (offline model, bin packing unless overridden) into ``run_dir``."""
    command = [str(Path(sys.executable).with_name("evo")), "run", f"budget.evaluations={evaluations}",
               f"hydra.run.dir={run_dir}", *overrides]
    print("$ " + " ".join(command), file=sys.stderr)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"evo run exited with {done.returncode}")
    return time.perf_counter() - started


# ---- levels and savings -------------------------------------------------------------------------
def level(record: CandidateRecord) -> str:
    if record.dedup in ("syntactic", "functional", "verified", "collision"):
        return record.dedup
    return "full" if record.eval_s > 0 else "none"


def _print_levels(records: list[CandidateRecord]) -> None:
    counts = {key: 0 for key, _ in LEVELS}
    for record in records:
        counts[level(record)] += 1
    print(f"\n{'decided by':<40} {'candidates':>10} {'share':>8}")
    print("-" * 60)
    for key, label in LEVELS:
        print(f"{label:<40} {counts[key]:>10} {100 * counts[key] / len(records):>7.1f}%")
    print(f"{'total':<40} {len(records):>10}")


def _print_savings(records: list[CandidateRecord], by_id: dict[int, CandidateRecord]) -> None:
    hits = [r for r in records if r.dedup in ("syntactic", "functional")]
    saved = sum(by_id[r.equivalent_to].eval_s for r in hits if r.equivalent_to is not None)
    spent = sum(r.eval_s for r in records)
    probes = sum(r.probe_s for r in records)
    print(f"\nevaluation seconds spent            {spent:10.1f}")
    print(f"evaluation seconds saved            {saved:10.1f}  ({100 * saved / (spent + saved):.1f}% of "
          f"{spent + saved:.1f} s that evaluating every candidate would take)")
    print(f"probe seconds spent                 {probes:10.1f}  (net saving {saved - probes:.1f} s)")


# ---- probe cost -----------------------------------------------------------------------------------
def _print_probe_cost(records: list[CandidateRecord], evaluator: Evaluator, problem, sample: int,
                      repeat: int) -> None:
    probed = [r.probe_s for r in records if r.probe_s > 0]
    evaluated = [r.eval_s for r in records if r.eval_s > 0 and r.status in ("ok", "equivalent")]
    if probed and evaluated:
        mean_probe, mean_eval = sum(probed) / len(probed), sum(evaluated) / len(evaluated)
        print(f"in the run: mean probe_s {mean_probe:.3f} s over {len(probed)} probes, mean eval_s "
              f"{mean_eval:.3f} s over {len(evaluated)} valid evaluations: probe = "
              f"{100 * mean_probe / mean_eval:.2f}% of an evaluation")
    # Alone: valid evaluated candidates spread over the run, one job at a time.
    pool = [r for r in records if r.status == "ok" and r.eval_s > 0]
    if not pool or sample <= 0:
        return
    step = max(1, len(pool) // sample)
    chosen = pool[::step][:sample]
    train = problem.train_set()
    evaluator.probe(problem.seed_code)  # builds and caches the probe states once, as a run does
    probe_times, eval_times = [], []
    for record in chosen:
        probe_times.append(min(_timed(lambda: evaluator.probe(record.code)) for _ in range(repeat)))
        eval_times.append(min(_timed(lambda: evaluator.evaluate(record.code, train)) for _ in range(repeat)))
    ratios = sorted(p / e for p, e in zip(probe_times, eval_times))
    probe_alone, eval_alone = sum(probe_times) / len(chosen), sum(eval_times) / len(chosen)
    print(f"alone ({len(chosen)} candidates, best of {repeat}): probe {1000 * probe_alone:.1f} ms, "
          f"evaluation {eval_alone:.3f} s: probe = "
          f"{100 * probe_alone / eval_alone:.2f}% of an evaluation "
          f"(per candidate: median {100 * ratios[len(ratios) // 2]:.2f}%, max {100 * ratios[-1]:.2f}%)")
    one_state = problem.probe_states(1)
    floor = min(_timed(lambda: evaluator.decide(problem.seed_code, one_state)) for _ in range(5 * repeat))
    print(f"a probe of one state, the sandbox's cost of a job before any work: {1000 * floor:.1f} ms = "
          f"{100 * floor / eval_alone:.2f}% of an evaluation")
    hits = sum(1 for r in records if r.dedup == "functional")
    evaluations = sum(1 for r in records if r.eval_s > 0)
    net = hits * eval_alone - len(probed) * probe_alone
    print(f"priced alone: {len(probed)} probes cost {len(probed) * probe_alone:.1f} s, {hits} hits saved "
          f"{hits * eval_alone:.1f} s: net saving {net:.1f} s = {100 * net / ((evaluations + hits) * eval_alone):.1f}% "
          f"of evaluating every candidate")


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ---- collisions ------------------------------------------------------------------------------------
def _same(score: float | None, other: float | None) -> bool:
    """The engine's test of agreement (evo.engine._same_score) on two stored scores."""
    if score is None or other is None:
        return score is None and other is None
    return abs(score - other) <= 1e-9 * max(1.0, abs(other))


def _audit(records: list[CandidateRecord], by_id: dict[int, CandidateRecord], evaluator: Evaluator, problem,
           limit: str, workers: int) -> Audit | None:
    hits = [r for r in records if r.dedup == "functional" and r.equivalent_to is not None]
    count = len(hits) if limit == "all" else int(limit)
    if count <= 0 or not hits:
        return None
    hits = hits[:count]
    train = problem.train_set()
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda r: evaluator.evaluate(r.code, train), hits))
    disagreed = []
    for record, result in zip(hits, results):
        original = by_id[record.equivalent_to]
        same_status = result.status == original.status or (result.ok and original.status in ("ok", "equivalent"))
        score = result.verdict.score if result.ok else None
        if not (same_status and (not result.ok or _same(score, original.score))):
            disagreed.append((record.id, original.id, score, original.score))
    return Audit(len(hits), disagreed, time.perf_counter() - started)


def _print_collisions(records: list[CandidateRecord], by_id: dict[int, CandidateRecord], audit: Audit | None) -> None:
    verified = [r for r in records if r.dedup in ("verified", "collision")]
    collisions = [r for r in verified if r.dedup == "collision"]
    print(f"\ncollisions among verified hits: {len(collisions)} of {len(verified)}"
          + ("" if not collisions else ": " + ", ".join(f"#{r.id}" for r in collisions)) + "  (must be 0)")
    if audit is None:
        return
    print(f"audit of unverified functional hits: {len(audit.disagreed)} of {audit.audited} disagree with their "
          f"original ({audit.seconds:.0f} s)")
    for hit, original, score, original_score in audit.disagreed[:20]:
        print(f"  #{hit} scored {score} but took #{original}'s {original_score}")


if __name__ == "__main__":
    raise SystemExit(main())
