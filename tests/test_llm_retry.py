"""The retry policy and the error kinds the engine's early stop relies on."""
from __future__ import annotations

import email.utils
import random
import time

import pytest

from evo.llm.retry import (
    MAX_WAIT_S, PROVIDER_KINDS, backoff_s, error_kind, is_provider_failure, kind_of_status, may_retry,
    retry_after_s,
)


@pytest.mark.parametrize("error, kind", [
    ("", ""), ("auth: HTTP 401: bad key", "auth"), ("rate_limit: HTTP 429 after 6 attempts", "rate_limit"),
    ("replay: no recorded answer for sample 3", "replay"), ("something odd happened", "unknown"),
    ("Weird: Capitalised", "unknown"),
])
def test_error_kind(error, kind):
    assert error_kind(error) == kind


def test_provider_failures_are_the_providers_not_the_prompts():
    assert PROVIDER_KINDS == {"rate_limit", "server", "timeout", "connection", "auth", "permission", "not_found"}
    for error in ("empty: no text", "bad_request: HTTP 400: too long", "replay: no recorded answer", "", "parse: x"):
        assert not is_provider_failure(error)
    assert is_provider_failure("connection: cannot reach http://127.0.0.1:9/v1")


@pytest.mark.parametrize("status, kind", [(429, "rate_limit"), (500, "server"), (502, "server"), (503, "server"),
                                          (529, "server"), (408, "timeout"), (504, "timeout"), (401, "auth"),
                                          (403, "permission"), (404, "not_found"), (400, "bad_request"),
                                          (422, "bad_request"), (None, "unknown")])
def test_kind_of_status(status, kind):
    assert kind_of_status(status) == kind


def test_retry_after_forms():
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after_s({"retry-after": date}) <= 31
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None and retry_after_s(None) is None


def test_backoff_is_exponential_with_jitter_and_capped():
    rng = random.Random(0)
    for attempt in range(8):
        waits = [backoff_s(attempt, 1.0, None, rng) for _ in range(200)]
        full = min(MAX_WAIT_S, 2.0 ** attempt)
        assert min(waits) >= 0.5 * full and max(waits) <= full
        assert len(set(waits)) > 100  # jittered


def test_retry_after_wins_with_a_little_jitter():
    rng = random.Random(1)
    waits = [backoff_s(0, 30.0, 2.0, rng) for _ in range(100)]
    assert all(2.0 <= w <= 2.2 for w in waits)
    assert backoff_s(0, 1.0, 3600.0, rng) == MAX_WAIT_S


def test_which_kinds_are_retried_and_how_often():
    assert may_retry("rate_limit", 4, 5) and not may_retry("rate_limit", 5, 5)
    assert may_retry("server", 0, 1) and may_retry("timeout", 0, 1)
    assert may_retry("connection", 1, 5) and not may_retry("connection", 2, 5)
    for kind in ("auth", "permission", "not_found", "bad_request", "empty", "unknown"):
        assert not may_retry(kind, 0, 5)
    assert not may_retry("server", 0, 0)
