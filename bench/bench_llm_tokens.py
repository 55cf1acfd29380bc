"""Tokens and money per candidate, per operator, with the engine's real prompts.

Each operator's prompt is rendered by the engine (``evo.operators.render``) with real
parents (the problem's seed and baseline heuristics) and sent through LiteLLMBackend to
the scripted OpenAI-compatible test server (real HTTP, no provider). Tokens are counted
twice: the server's stand-in (4 characters a token, what the tests use) and a real
tokenizer (litellm's bundled o200k_base for gpt-4o-mini; Claude's tokenizer gives more).
The answer is the scripted EoH answer, so the completion side is short; real models
write 150-600 tokens (``--completion-tokens`` prices that instead).

    .venv/bin/python bench/bench_llm_tokens.py [--problem bin_packing tsp] [--completion-tokens 400]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from evo.llm.base import Request  # noqa: E402
from evo.llm.litellm_backend import LiteLLMBackend, litellm  # noqa: E402
from evo.operators import OPERATORS, Parent, render  # noqa: E402
from llm_server import ScriptedServer, answer, heuristic_answer  # noqa: E402

PRICED = ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5")
ERROR = "IndexError: index 7 is out of bounds for axis 0 with size 7"


def load_problem(name: str):
    # Under a `problem` key, as Hydra composes it: the instance refers to ${problem.train}.
    root = OmegaConf.create({"problem": OmegaConf.load(ROOT / "conf" / "problem" / f"{name}.yaml")})
    return instantiate(root.problem.instance)


def parents_for(problem, arity: int, failed: bool) -> list[Parent]:
    codes = [problem.seed_code, *problem.baselines.values()]
    names = ["the seed heuristic", *problem.baselines]
    out = []
    for i in range(arity):
        code = codes[i % len(codes)]
        out.append(Parent(cid=i + 1, thought=f"Variant of {names[i % len(names)]}.", code=code,
                          score=None if failed else 4.0 + i, error=ERROR if failed else ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", nargs="+", default=["bin_packing", "tsp"])
    ap.add_argument("--completion-tokens", type=int, default=400,
                    help="a realistic answer length for the projected cost columns")
    ap.add_argument("--evaluations", type=int, default=400, help="run length for the projection")
    args = ap.parse_args()

    lib = litellm()
    header = (f"{'problem':<12} {'op':<10} {'par':>3} {'prompt chars':>12} {'prompt tok/4':>12} "
              f"{'prompt o200k':>12} {'answer tok':>10} {'ms':>6} "
              + " ".join(f"{'$/cand ' + m.split('/')[1][:14]:>22}" for m in PRICED))
    print(header)
    print("-" * len(header))
    summary = []
    with ScriptedServer(default=lambda n: answer(heuristic_answer(n))) as server:
        backend = LiteLLMBackend({"model": "openai/bench", "base_url": server.url, "max_retries": 0,
                                  "cost_per_token": {"input": 0.0, "output": 0.0}})
        backend.complete(Request(render(OPERATORS["i1"], "warm", "def f():", "x", []), "i1", (), -1))
        for name in args.problem:
            problem = load_problem(name)
            rows = []
            for op in OPERATORS.values():
                parents = parents_for(problem, op.arity, failed=op.source == "failed")
                reflection = "Tighter fits helped; large constants hurt." if op.reflection else ""
                messages = render(op, problem.description, problem.signature, problem.score_name,
                                  parents, reflection)
                start = time.perf_counter()
                response = backend.complete(Request(messages, op.name, tuple(p.code for p in parents), len(rows)))
                ms = 1000 * (time.perf_counter() - start)
                assert response.ok, response.error
                chars = sum(len(m.content) for m in messages)
                real = lib.token_counter(model="gpt-4o-mini",
                                         messages=[{"role": m.role, "content": m.content} for m in messages])
                costs = []
                for model in PRICED:
                    p, c = lib.cost_per_token(model=model, prompt_tokens=real,
                                              completion_tokens=args.completion_tokens)
                    costs.append(p + c)
                rows.append((real, response.completion_tokens, costs))
                print(f"{name:<12} {op.name:<10} {op.arity:>3} {chars:>12} {response.prompt_tokens:>12} "
                      f"{real:>12} {response.completion_tokens:>10} {ms:>6.1f} "
                      + " ".join(f"{cost:>22.6f}" for cost in costs))
            mean_prompt = statistics.mean(r[0] for r in rows)
            mean_costs = [statistics.mean(r[2][i] for r in rows) for i in range(len(PRICED))]
            summary.append((name, mean_prompt, mean_costs))
        assert server.count == 1 + sum(len(OPERATORS) for _ in args.problem)

    print()
    print("concurrency: 24 requests, the server answering each after 200 ms")
    with ScriptedServer(default=lambda n: answer(heuristic_answer(n), delay_s=0.2)) as server:
        backend = LiteLLMBackend({"model": "openai/bench", "base_url": server.url, "max_retries": 0,
                                  "cost_per_token": {"input": 0.0, "output": 0.0}})
        for threads in (1, 4, 8):
            requests = [Request(render(OPERATORS["i1"], f"task {i}", "def f():", "x", []), "i1", (), i)
                        for i in range(24)]
            start = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                results = list(pool.map(backend.complete, requests))
            wall = time.perf_counter() - start
            assert all(r.ok for r in results)
            print(f"  {threads} threads: {wall:5.2f} s, {len(requests) / wall:5.1f} requests/s")
    print()
    print(f"projection: {args.evaluations} candidates, operators used equally, "
          f"{args.completion_tokens} answer tokens each")
    for name, mean_prompt, mean_costs in summary:
        money = ", ".join(f"{m}: ${c * args.evaluations:.3f}" for m, c in zip(PRICED, mean_costs))
        tokens = mean_prompt + args.completion_tokens
        print(f"  {name:<12} {mean_prompt:7.0f} prompt tokens/candidate, "
              f"{tokens * args.evaluations / 1e6:.2f} M tokens in all; {money}")


if __name__ == "__main__":
    main()
