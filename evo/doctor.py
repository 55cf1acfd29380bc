"""`evo doctor [overrides]`: is the configured LLM reachable, and what does a call cost?

One tiny request to the configured endpoint, then one line each for the backend, model,
endpoint, key, latency, tokens, cost, answer and error. The key's value is never shown,
only the name of the variable that holds it and whether it is set. For ``llm=llamacpp``
the doctor starts the local server, asks for a few dozen tokens of code and reports the
server's start-up time and the generation speed, then stops the server. With
``llm.models``, each model is checked in turn.

Exit codes: 0 the endpoint answered; 1 the request failed; 2 the llm config is wrong.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from evo.errors import UserError
from evo.llm.base import Message, Request

PROBE = Request(
    messages=(Message("system", "You are a health check. Reply with the single word: ok"),
              Message("user", "ping")),
    operator="doctor", parents=(), sample=-1,
)

# Long enough an answer to measure a local model's generation speed.
SPEED_PROBE = Request(
    messages=(Message("user", "Write a Python function that returns the n-th Fibonacci number. Code only."),),
    operator="doctor", parents=(), sample=-1,
)


def doctor(llm_cfg: Any, out: Callable[[str], None] | None = None) -> int:
    """Check every model of the llm config (each of ``llm.models``, one after the other);
    the exit code is the worst of theirs."""
    from evo.llm.litellm_backend import plain
    from evo.llm.models import endpoints

    say = out or (lambda line: print(line, file=sys.stdout, flush=True))
    try:
        models = endpoints(plain(llm_cfg))
    except UserError as exc:
        say(f"error:     config: {exc}")
        return 2
    codes = []
    for model in models:
        if model.name:
            if codes:
                say("")
            say(f"llm.models: {model.name}")
        codes.append(_check(dict(model.config), say))
    return max(codes)


def _check(cfg: dict, say: Callable[[str], None]) -> int:
    kind = cfg.get("backend")
    say(f"backend:   {kind}")
    try:
        if kind == "litellm":
            return _litellm(cfg, say)
        if kind == "llamacpp":
            return _llamacpp(cfg, say)
        if kind == "replay":
            return _replay(cfg, say)
        if kind == "offline":
            say(f"model:     {cfg.get('model', 'offline-mutation')}")
            say("status:    ok (built in: no endpoint, no key, no cost)")
            return 0
        raise UserError(f"llm.backend must be one of offline, litellm, llamacpp, replay (got {kind!r})")
    except UserError as exc:
        say(f"error:     config: {exc}")
        return 2


def _litellm(cfg: dict, say: Callable[[str], None]) -> int:
    from evo.llm.litellm_backend import LiteLLMBackend

    # One retry at most: a doctor should answer in seconds, and say what it saw.
    backend = LiteLLMBackend({**cfg, "max_retries": min(int(cfg.get("max_retries", 1)), 1)})
    say(f"model:     {backend.model}")
    say(f"endpoint:  {backend.base_url or 'the provider default'}")
    if backend.api_key_env:
        state = "set" if os.environ.get(backend.api_key_env) else "NOT SET"
        say(f"key:       ${backend.api_key_env} ({state})")
    else:
        say("key:       none configured" + (" (a dummy is sent)" if backend.base_url else
                                              " (litellm reads the provider's usual variable)"))
    return _report(backend.complete(PROBE), backend.cost_per_token is not None, say)


def _report(response: Any, priced: bool, say: Callable[[str], None]) -> int:
    from evo.llm.retry import error_kind

    if response.latency_s:
        say(f"latency:   {response.latency_s:.2f} s")
    if response.prompt_tokens or response.completion_tokens:
        say(f"tokens:    {response.prompt_tokens} in, {response.completion_tokens} out")
    priced = priced or response.cost_usd > 0
    if response.prompt_tokens or response.completion_tokens:
        note = "" if priced else " (no price known for this model: set llm.cost_per_token)"
        say(f"cost:      ${response.cost_usd:.6f}{note}")
    if response.text:
        say(f"answer:    {' '.join(response.text.split())[:80]!r}")
    if response.error:
        say(f"error:     {response.error}")
        hint = _HINTS.get(error_kind(response.error))
        if hint:
            say(f"hint:      {hint}")
        return 1
    say("status:    ok")
    return 0


def _llamacpp(cfg: dict, say: Callable[[str], None]) -> int:
    from evo.llm.llamacpp import LlamaCppBackend

    with tempfile.TemporaryDirectory(prefix="evo-doctor-") as tmp:
        say(f"model:     {cfg.get('model')} (starting a llama.cpp server with {cfg.get('threads', 1)} thread(s))")
        backend = LlamaCppBackend(cfg, Path(tmp))
        try:
            say(f"endpoint:  {backend.server.url} (ready in {backend.server.startup_s:.1f} s)")
            response = backend.complete(SPEED_PROBE)
            code = _report(response, True, say)
            if response.ok and response.completion_tokens and response.latency_s:
                say(f"speed:     {response.completion_tokens / response.latency_s:.1f} tokens/s "
                    f"(prompt and generation together)")
            if not response.ok:
                say(f"server:    {_tail(Path(tmp) / 'llm-server.log')}")
            return code
        finally:
            backend.close()


def _tail(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:200] if lines else "(empty log)"


def _replay(cfg: dict, say: Callable[[str], None]) -> int:
    from evo.llm.replay import ReplayBackend

    backend = ReplayBackend(cfg)
    say(f"model:     {backend.model} (recorded)")
    say(f"source:    {backend.source}")
    say(f"answers:   {len(backend)} recorded")
    if not len(backend):
        say("error:     replay: the source run recorded no LLM answers")
        return 1
    say("status:    ok")
    return 0


_HINTS = {
    "auth": "check the key in the variable named by llm.api_key_env",
    "not_found": "check llm.model (litellm ids look like openai/gpt-4o-mini) and llm.base_url",
    "connection": "is the server running, and is llm.base_url right (it usually ends in /v1)?",
    "timeout": "raise llm.timeout_s, or check that the server is not overloaded",
    "empty": "the model returned no text: a reasoning model may need a larger llm.max_tokens",
}
