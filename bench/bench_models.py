"""Two LLMs in one run: what each model was paid and what it found, and whom the bandit chose.

One `evo run` on bin packing with `llm.models` = the 0.5B and the 1.5B Qwen2.5-Coder
(`llm=llamacpp`: each model its own llama.cpp server with one thread, one request at a
time; workers=1, so that on 2 cores the sandbox and the generation each have a core most
of the time). Then the per-model table of `evo inspect --json` (requests, tokens, time,
valid share, archive improvements, best found) and each model's pulls in the first and
the second half of the run.

    .venv/bin/python bench/bench_models.py [--candidates 36] [--reward-per second] [--out DIR] [-- overrides]
    .venv/bin/python bench/bench_models.py --scripted    # two scripted servers instead of the local models

``--scripted`` replaces the local models by two scripted OpenAI-compatible servers on
127.0.0.1 (tests/llm_server.py): "strong" answers every request with a valid heuristic
after 1 s, "weak" after 0.2 s, but only one answer in three is code. A finished run in
DIR is reused (delete it to measure again).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
EVO = [sys.executable, "-m", "evo.cli"]
LOCAL = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")


def local_models() -> str:
    entries = [f"{{name: '{name.split('-')[-1]}', model: {name}}}" for name in LOCAL]
    return f"llm.models=[{', '.join(entries)}]"


def scripted_servers():
    from llm_server import ScriptedServer, answer

    def content(body: dict) -> int:
        return int(hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest(), 16)

    def heuristic(body: dict) -> str:
        """A valid heuristic whose constants the prompt decides: varied behaviours."""
        d = content(body)
        aim, power = (d % 50) / 100, 1 + (d >> 8) % 3
        code = ("import numpy as np\n\n\ndef priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
                f"    return -np.abs(bins - item - {aim:.2f} * np.max(bins)) ** {power}\n")
        return f"{{Aim at {aim:.2f} of the fullest bin's room.}}\n\n```python\n{code}```\n"

    strong = ScriptedServer(default=lambda n: answer(heuristic(strong.requests[n]), delay_s=1.0))
    weak = ScriptedServer(default=lambda n: answer(
        heuristic(weak.requests[n]) if content(weak.requests[n]) % 3 == 0
        else "I would write a priority function here.", delay_s=0.2))
    return strong.start(), weak.start()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def pulls_by_half(run_dir: Path, candidates: int) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, model_name FROM candidates WHERE id > 0").fetchall()
    half = candidates // 2
    out: dict[str, list[int]] = {}
    for cid, name in rows:
        out.setdefault(name, [0, 0])[cid > half] += 1
    return {name: (a, b) for name, (a, b) in sorted(out.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=36)
    parser.add_argument("--reward-per", default="second", choices=("request", "usd", "second"))
    parser.add_argument("--scripted", action="store_true", help="two scripted servers instead of the local models")
    parser.add_argument("--out", type=Path, default=ROOT / "archives" / "bench_models")
    parser.add_argument("overrides", nargs="*", help="more evo overrides (after --)")
    ns = parser.parse_args()

    run_dir = ns.out / ("scripted" if ns.scripted else "local") / f"{ns.reward_per}-{ns.candidates}"
    servers = ()
    common = ["problem=bin_packing", "seed=0", "workers=1", f"budget.evaluations={ns.candidates + 1}",
              f"bandit.reward_per={ns.reward_per}", *ns.overrides, f"hydra.run.dir={run_dir}"]
    if ns.scripted:
        servers = scripted_servers()
        entries = [f"{{name: {name}, base_url: '{server.url}'}}" for name, server in zip(("strong", "weak"), servers)]
        args = ["llm=local", "llm.model=openai/scripted", "llm.concurrency=1", "llm.max_retries=0",
                f"llm.models=[{', '.join(entries)}]", *common]
    else:
        args = ["llm=llamacpp", "llm.concurrency=1", "llm.threads=1", local_models(), *common]
    print(f"before: {uptime()}", flush=True)
    started = time.monotonic()
    try:
        if not (run_dir / "run.sqlite").exists():
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
                code = subprocess.run([*EVO, "run", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
            if code != 0:
                print(f"evo run exited {code}; see {run_dir}.log")
                return 1
            print(f"evo run {' '.join(args)}\nran in {time.monotonic() - started:.0f} s", flush=True)
        else:
            print(f"reusing {run_dir}")
    finally:
        for server in servers:
            server.close()
    print(f"after:  {uptime()}")
    summary = json.loads(subprocess.run([*EVO, "inspect", str(run_dir), "--json", "--no-test"], cwd=ROOT,
                                        capture_output=True, text=True, check=True).stdout)
    halves = pulls_by_half(run_dir, ns.candidates)
    print(f"\n{ns.candidates} candidates after the seed, bandit {summary['bandit']['policy']}, "
          f"reward per {ns.reward_per}; best overall #{summary['best']['id']} "
          f"{summary['best']['score']:.4f} (excess %, training set)\n")
    print("| model | candidates | requests | tokens | s per request | time s | valid | improvements | best excess % "
          "| pulls 1st half | 2nd half |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m in summary["llm"]["models"].items():
        best = "—" if m["best_id"] is None else f"{m['best_score']:.4f} (#{m['best_id']})"
        first, second = halves.get(name, (0, 0))
        per = m["seconds"] / m["requests"] if m["requests"] else float("nan")
        valid = "—" if m["valid_share"] is None else f"{100 * m['valid_share']:.0f}%"
        print(f"| {name} | {m['candidates']} | {m['requests']} | {m['prompt_tokens'] + m['completion_tokens']} | "
              f"{per:.1f} | {m['seconds']:.0f} | {valid} | {m['improvements']} | {best} | {first} | {second} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
