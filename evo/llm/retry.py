"""How a failed LLM request is named, whether it is tried again, and how long to wait.

Every failed ``Response`` carries ``error = "<kind>: <reason>"``. The kinds are stable
(tests and the engine rely on them):

==============  =======================================  =========  ================
kind            what happened                            retried    provider failure
==============  =======================================  =========  ================
``rate_limit``  HTTP 429                                 yes        yes
``server``      HTTP 5xx, or an unreadable response      yes        yes
``timeout``     no answer within ``timeout_s``           yes        yes
``connection``  the endpoint cannot be reached           twice      yes
``auth``        HTTP 401, or the key's env var is unset  no         yes
``permission``  HTTP 403                                 no         yes
``not_found``   HTTP 404 (unknown model or endpoint)     no         yes
``bad_request`` HTTP 400/413/422 (e.g. prompt too long)  no         no
``empty``       HTTP 200 with no text (tokens are paid)  no         no
``replay``      no recorded answer (replay backend)      no         no
``unknown``     anything else                            no         no
==============  =======================================  =========  ================

A *provider failure* says nothing about the prompt: when every request fails that way
the run cannot make progress, and the engine should stop (``is_provider_failure``).
"""
from __future__ import annotations

import email.utils
import random
import re
import time

PROVIDER_KINDS = frozenset({"rate_limit", "server", "timeout", "connection", "auth", "permission", "not_found"})
RETRYABLE_KINDS = frozenset({"rate_limit", "server", "timeout", "connection"})
CONNECTION_RETRIES = 2  # a wrong base_url should fail in seconds, not minutes
MAX_WAIT_S = 60.0  # longest single wait, even when Retry-After asks for more


def error_kind(error: str) -> str:
    """The kind of a ``Response.error`` ("" for no error)."""
    if not error:
        return ""
    head, sep, _ = error.partition(":")
    return head if sep and re.fullmatch(r"[a-z_]+", head) else "unknown"


def is_provider_failure(error: str) -> bool:
    """True when the error is the provider's, not the prompt's: N in a row mean stop."""
    return error_kind(error) in PROVIDER_KINDS


def kind_of_status(status: int | None) -> str:
    if status is None:
        return "unknown"
    if status == 429:
        return "rate_limit"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "server"
    return {401: "auth", 403: "permission", 404: "not_found"}.get(
        status, "bad_request" if 400 <= status < 500 else "unknown")


def retry_after_s(headers) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    if not headers:
        return None
    try:
        value = headers.get("retry-after-ms")
        if value is not None:
            return max(0.0, float(value) / 1000.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, AttributeError):
        return None


def backoff_s(attempt: int, base_s: float, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
    """The wait before retry number ``attempt`` (0-based).

    Exponential with jitter (``base * 2**attempt`` scaled by a factor in [0.5, 1]); a
    server's ``Retry-After`` wins when it is given, plus up to 10 % jitter so that the
    concurrent requests it stopped do not all come back in the same instant.
    """
    rng = rng or random
    if retry_after is not None:
        return min(MAX_WAIT_S, retry_after * (1.0 + 0.1 * rng.random()))
    return min(MAX_WAIT_S, base_s * (2 ** attempt)) * (0.5 + 0.5 * rng.random())


def may_retry(kind: str, attempt: int, max_retries: int) -> bool:
    if kind not in RETRYABLE_KINDS:
        return False
    limit = min(max_retries, CONNECTION_RETRIES) if kind == "connection" else max_retries
    return attempt < limit
