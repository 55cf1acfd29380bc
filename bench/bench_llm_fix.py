"""How often a local model's repair operator (`fix`) repairs the failures it is given.

The failures are real ones: candidates of the local-model runs of bench_llm_local.py whose
code ran and failed (an error, a timeout, a wrong shape...), distinct by code, evaluated
again so that each is shown with the error today's code gives it (one that no longer
fails is left out). Each model
is asked to repair each of them with the engine's own `fix` prompt, sampling parameters and
stop text; its answer is parsed and evaluated on the run's training set, as the engine
would. A failure counts as repaired when the answer evaluates without error; "unchanged"
answers give the failed code back.

    .venv/bin/python bench/bench_llm_fix.py [--models 0.5b 1.5b] [--failures 20] [--runs DIR ...]

Default runs: every model run under archives/bench_llm_local (not the offline twins).
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omegaconf import OmegaConf  # noqa: E402

from evo.app import load_problem, snapshot_config  # noqa: E402
from evo.evaluation import Evaluator  # noqa: E402
from evo.hashing import syntactic_hash  # noqa: E402
from evo.llm.base import Request  # noqa: E402
from evo.llm.llamacpp import LlamaCppBackend  # noqa: E402
from evo.llm.local_models import find_model  # noqa: E402
from evo.operators import ANSWER_STOP, OPERATORS, Parent, render  # noqa: E402
from evo.parse import ParseError, parse_answer  # noqa: E402
from evo.search_state import REPAIRABLE  # noqa: E402
from evo.settings import read_settings  # noqa: E402
from sandbox import Sandbox  # noqa: E402

OUTCOMES = ("repaired", "still failing", "unchanged", "unparseable", "llm failed")


def failures(runs: list[Path], limit: int, evaluator: Evaluator, train) -> list[Parent]:
    """Distinct failed candidates (by code) with the errors they give today, in run and id order."""
    seen: set[str] = set()
    found: list[Parent] = []
    marks = ", ".join("?" * len(REPAIRABLE))
    for run_dir in runs:
        with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
            rows = db.execute(f"SELECT id, thought, code, error FROM candidates WHERE status IN ({marks})"
                              " AND code != '' ORDER BY id", REPAIRABLE).fetchall()
        for cid, thought, code, _ in rows:
            if code in seen or len(found) >= limit:
                continue
            seen.add(code)
            result = evaluator.evaluate(code, train)
            if not result.ok:
                found.append(Parent(cid, thought, code, None, result.error))
    return found


def repair(backend: LlamaCppBackend, evaluator: Evaluator, problem, train, failed: Parent, sample: int) -> str:
    """Ask for one repair and say how it went (one of OUTCOMES)."""
    messages = render(OPERATORS["fix"], problem.description, problem.signature, problem.score_name, [failed])
    response = backend.complete(Request(messages, "fix", (failed.code,), sample, stop=ANSWER_STOP))
    if not response.ok:
        return "llm failed"
    try:
        parsed = parse_answer(response.text, problem.entry, len(problem.arg_names))
    except ParseError:
        return "unparseable"
    if syntactic_hash(parsed.code, problem.entry) == syntactic_hash(failed.code, problem.entry):
        return "unchanged"
    return "repaired" if evaluator.evaluate(parsed.code, train).ok else "still failing"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["0.5b", "1.5b"])
    parser.add_argument("--failures", type=int, default=20)
    parser.add_argument("--runs", nargs="+", type=Path)
    ns = parser.parse_args()
    runs = ns.runs or sorted(p.parent for p in (ROOT / "archives" / "bench_llm_local").glob("qwen*/run.sqlite"))
    if not runs:
        parser.error("no runs: run bench/bench_llm_local.py first, or name them with --runs")
    cfg = snapshot_config(runs[0])
    problem = load_problem(cfg)
    train = problem.train_set()  # loaded once: every failure and every answer is evaluated on it
    llm = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "llm" / "llamacpp.yaml"))
    llm.pop("models")  # the group's list of named models, not a key of one model's config
    rows = []
    with Sandbox(read_settings(cfg).limits, 1, preload=("numpy", problem.harness)) as sandbox:
        evaluator = Evaluator(problem, sandbox, 0, 0)
        given = failures(runs, ns.failures, evaluator, train)
        kinds = Counter(p.error.splitlines()[-1].split(":")[0] for p in given)
        print(f"# {len(given)} distinct failures from {', '.join(p.name for p in runs)}: {dict(kinds)}")
        for name in ns.models:
            model = find_model(name).name
            backend = LlamaCppBackend({**llm, "model": model}, Path("/tmp") / f"bench-llm-fix-{model}")
            started = time.monotonic()
            try:
                outcomes = Counter(repair(backend, evaluator, problem, train, failed, 10_000 + k)
                                   for k, failed in enumerate(given))
            finally:
                backend.close()
            rows.append((model, outcomes, time.monotonic() - started))
    print("\n| model | failures given | " + " | ".join(OUTCOMES) + " | repaired share | s per repair |")
    print("|---|---|" + "---|" * len(OUTCOMES) + "---|---|")
    for model, outcomes, seconds in rows:
        n = sum(outcomes.values())
        print(f"| {model} | {n} | " + " | ".join(str(outcomes[o]) for o in OUTCOMES)
              + f" | {outcomes['repaired'] / n:.0%} | {seconds / n:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
