"""LiteLLMBackend against a real HTTP server speaking the OpenAI API (no mocks)."""
from __future__ import annotations

import logging
import threading
import time

import pytest

from evo.errors import UserError
from evo.llm.base import Message, Request
from evo.llm.litellm_backend import LiteLLMBackend, litellm
from evo.llm.retry import error_kind, is_provider_failure
from evo.parse import ParseError, parse_answer
from llm_server import (  # noqa: F401  (llm_server is a fixture)
    ScriptedServer, answer, count_tokens, empty, heuristic_answer, huge_answer, llm_server,
    malformed, slow, status, think_answer, truncated_answer,
)

PRICES = {"input": 1e-6, "output": 3e-6}


def request(sample: int = 0, text: str = "Write a priority function.") -> Request:
    return Request(messages=(Message("system", "You write heuristics."), Message("user", text)),
                   operator="i1", parents=(), sample=sample)


def backend(server: ScriptedServer, **over) -> LiteLLMBackend:
    cfg = {"backend": "litellm", "model": "openai/scripted", "base_url": server.url,
           "timeout_s": 5, "max_retries": 2, "retry_backoff_s": 0.05,
           "cost_per_token": PRICES, "concurrency": 4}
    cfg.update(over)
    return LiteLLMBackend(cfg)


def prompt_tokens(req: Request) -> int:
    return count_tokens("".join(m.content for m in req.messages))


def test_normal_answer_fills_text_tokens_cost_latency(llm_server):
    req = request()
    r = backend(llm_server, temperature=0.7, max_tokens=321).complete(req)
    assert r.ok, r.error
    assert r.text == heuristic_answer(0)
    assert r.prompt_tokens == prompt_tokens(req)
    assert r.completion_tokens == count_tokens(r.text)
    assert r.cost_usd == pytest.approx(r.prompt_tokens * 1e-6 + r.completion_tokens * 3e-6)
    assert r.latency_s > 0 and r.model == "openai/scripted" and not r.cached
    assert llm_server.count == 1
    sent = llm_server.requests[0]
    assert sent["model"] == "scripted"
    assert sent["temperature"] == 0.7 and sent["max_tokens"] == 321
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    parsed = parse_answer(r.text, "priority", 2)
    assert "def priority" in parsed.code and parsed.thought.startswith("Variant 0")


def test_a_request_sends_its_stop_text_and_a_cap_below_max_tokens(llm_server):
    """A reflection asks for a short answer: its cap, not llm.max_tokens, limits it; a cap
    above llm.max_tokens does not raise the limit."""
    from dataclasses import replace

    short = replace(request(), stop=("\n```\n\n",), max_tokens=128)
    assert backend(llm_server, max_tokens=321).complete(short).ok
    assert backend(llm_server, max_tokens=100).complete(short).ok
    first, second = llm_server.requests
    assert first["max_tokens"] == 128 and first["stop"] == ["\n```\n\n"]
    assert second["max_tokens"] == 100


def test_the_cache_key_names_a_cap_only_when_there_is_one():
    """Keys of requests without a cap (every request of a run made before caps) are unchanged:
    the last line pins the key that the code before caps gave."""
    from evo.llm import cache_key

    req = request()
    plain = cache_key("m", req.messages, {"max_tokens": 321}, 0)
    assert cache_key("m", req.messages, {"max_tokens": 321}, 0, (), None) == plain
    assert cache_key("m", req.messages, {"max_tokens": 321}, 0, (), 128) != plain
    assert plain == "fd55b70cda54123d0a57a910b28d6bd6807324792636151bfec87a7994043fa7"


def test_429_waits_retry_after_then_succeeds(llm_server):
    # A 30 s backoff base shows that the server's Retry-After (1 s) sets the wait.
    llm_server.script(status(429, retry_after=1), answer("{t}\n```python\ndef priority(item, bins):\n    return bins\n```"))
    start = time.monotonic()
    r = backend(llm_server, retry_backoff_s=30).complete(request())
    elapsed = time.monotonic() - start
    assert r.ok, r.error
    assert llm_server.count == 2
    assert 1.0 <= elapsed < 3.0
    assert r.latency_s == pytest.approx(elapsed, abs=0.05)


def test_429_forever_gives_rate_limit_error(llm_server):
    llm_server.script(*[status(429, retry_after=0)] * 3)
    r = backend(llm_server, max_retries=2).complete(request())
    assert error_kind(r.error) == "rate_limit" and "3 attempts" in r.error
    assert llm_server.count == 3 and r.cost_usd == 0 and r.text == ""


def test_500_is_retried_then_succeeds(llm_server):
    llm_server.script(status(500), status(503))
    r = backend(llm_server).complete(request())
    assert r.ok, r.error
    assert llm_server.count == 3


def test_500_forever_gives_server_error(llm_server):
    llm_server.script(*[status(500)] * 5)
    r = backend(llm_server, max_retries=1).complete(request())
    assert r.error.startswith("server: HTTP 500") and llm_server.count == 2
    assert is_provider_failure(r.error)


def test_answer_slower_than_timeout(llm_server):
    llm_server.script(slow(3))
    start = time.monotonic()
    r = backend(llm_server, timeout_s=0.5, max_retries=0).complete(request())
    assert error_kind(r.error) == "timeout", r.error
    assert time.monotonic() - start < 2.5


def test_timeout_is_retried(llm_server):
    llm_server.script(slow(3))
    r = backend(llm_server, timeout_s=0.5, max_retries=1).complete(request())
    assert r.ok, r.error
    assert llm_server.count == 2


def test_malformed_json_is_retried_and_reported(llm_server):
    llm_server.script(malformed())
    assert backend(llm_server).complete(request()).ok
    llm_server.reset()
    llm_server.script(malformed(), malformed())
    r = backend(llm_server, max_retries=1).complete(request())
    assert error_kind(r.error) == "server", r.error
    assert llm_server.count == 2


def test_empty_content_is_an_error_but_its_tokens_are_paid(llm_server):
    llm_server.script(empty())
    r = backend(llm_server).complete(request())
    assert error_kind(r.error) == "empty" and not is_provider_failure(r.error)
    assert r.prompt_tokens > 0 and r.cost_usd > 0
    assert llm_server.count == 1  # not retried


def test_null_content(llm_server):
    llm_server.script(answer(None))
    assert error_kind(backend(llm_server).complete(request()).error) == "empty"


def test_truncated_code_reaches_the_parser_which_says_why(llm_server):
    llm_server.script(answer(truncated_answer(), finish_reason="length"))
    r = backend(llm_server).complete(request())
    assert r.ok
    with pytest.raises(ParseError, match="truncated|syntax"):
        parse_answer(r.text, "priority", 2)


def test_two_megabyte_answer(llm_server):
    llm_server.script(answer(huge_answer()))
    r = backend(llm_server).complete(request())
    assert r.ok and len(r.text) > 2_000_000
    start = time.monotonic()
    parsed = parse_answer(r.text, "priority", 2)
    assert time.monotonic() - start < 1.0
    assert "def priority" in parsed.code


def test_think_preamble(llm_server):
    llm_server.script(answer(think_answer(3)), answer(think_answer(4, closed=False)))
    b = backend(llm_server)
    first = parse_answer(b.complete(request()).text, "priority", 2)
    assert first.thought.startswith("Variant 3") and "def priority(x)" not in first.code
    # An unterminated <think> hides everything after it: no code is better than its code.
    with pytest.raises(ParseError):
        parse_answer(b.complete(request()).text, "priority", 2)


@pytest.mark.parametrize("code, kind", [(401, "auth"), (403, "permission"), (404, "not_found"),
                                        (400, "bad_request")])
def test_client_errors_are_not_retried(llm_server, code, kind):
    llm_server.script(status(code))
    r = backend(llm_server, max_retries=3).complete(request())
    assert error_kind(r.error) == kind, r.error
    assert llm_server.count == 1
    assert is_provider_failure(r.error) == (kind != "bad_request")


def test_key_comes_from_env_and_never_leaks(llm_server, monkeypatch):
    secret = "sk-test-9f8e7d6c5b4a39281706"
    monkeypatch.setenv("EVO_TEST_KEY", secret)
    llm_server.script(status(401, message=f"Incorrect API key provided: {secret}"))
    b = backend(llm_server, api_key_env="EVO_TEST_KEY")
    r = b.complete(request())
    assert llm_server.headers[0]["authorization"] == f"Bearer {secret}"
    assert error_kind(r.error) == "auth"
    assert secret not in r.error and secret[:12] not in r.error
    assert secret not in repr(b) and secret not in repr(vars(b))


def test_missing_key_for_a_hosted_model_fails_without_a_request(monkeypatch):
    monkeypatch.delenv("EVO_TEST_ABSENT_KEY", raising=False)
    b = LiteLLMBackend({"model": "openai/gpt-4o-mini", "api_key_env": "EVO_TEST_ABSENT_KEY"})
    r = b.complete(request())
    assert r.error == "auth: environment variable EVO_TEST_ABSENT_KEY is not set"


def test_local_server_without_a_key_gets_a_dummy(llm_server, monkeypatch):
    monkeypatch.delenv("EVO_TEST_ABSENT_KEY", raising=False)
    assert backend(llm_server, api_key_env="EVO_TEST_ABSENT_KEY").complete(request()).ok
    assert llm_server.headers[0]["authorization"] == "Bearer not-needed"


def test_unreachable_endpoint_is_a_connection_error_quickly():
    with ScriptedServer() as server:
        url = server.url
    start = time.monotonic()
    r = LiteLLMBackend({"model": "openai/x", "base_url": url, "max_retries": 5,
                        "retry_backoff_s": 0.05, "cost_per_token": PRICES}).complete(request())
    assert error_kind(r.error) == "connection", r.error
    assert url in r.error and time.monotonic() - start < 3
    assert is_provider_failure(r.error)


def test_known_model_is_priced_from_litellm(llm_server):
    b = backend(llm_server, model="openai/gpt-4o-mini", cost_per_token=None)
    r = b.complete(request())
    p, c = litellm().cost_per_token(model="gpt-4o-mini", prompt_tokens=r.prompt_tokens,
                                    completion_tokens=r.completion_tokens)
    assert r.cost_usd == pytest.approx(p + c) and r.cost_usd > 0


def test_unknown_model_costs_zero_and_warns_once(llm_server, caplog):
    b = backend(llm_server, model="openai/no-such-model-xyz", cost_per_token=None)
    with caplog.at_level(logging.WARNING, logger="evo.llm"):
        first, second = b.complete(request()), b.complete(request(1))
    assert first.ok and second.ok and first.cost_usd == 0 == second.cost_usd
    warnings = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(warnings) == 1


def test_concurrent_requests_from_threads(llm_server):
    b = backend(llm_server)
    llm_server.script(status(429, retry_after=0), status(500))
    results = [None] * 12

    def work(i):
        results[i] = b.complete(request(i, f"prompt {i}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in results), [r.error for r in results]
    assert llm_server.count == 14
    assert len({r.text for r in results}) == 12


def test_config_node_is_checked():
    with pytest.raises(UserError, match="temprature"):
        LiteLLMBackend({"model": "openai/x", "temprature": 0.5})
    with pytest.raises(UserError, match="model"):
        LiteLLMBackend({"model": ""})
    with pytest.raises(UserError, match="cost_per_token"):
        LiteLLMBackend({"model": "openai/x", "cost_per_token": {"input": 1}})
