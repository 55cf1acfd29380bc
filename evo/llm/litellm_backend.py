"""Any chat model litellm knows (hosted APIs, or an OpenAI-compatible local server).

One ``complete`` call is one chat request, tried again on 429, 5xx, timeouts and lost
connections with exponential backoff and jitter (a server's ``Retry-After`` wins). The
openai client's own retries are switched off (``max_retries=0``) so that every wait is
ours and visible. ``complete`` never raises: a request that still fails comes back as
``Response(error="<kind>: <reason>")`` (kinds in ``evo.llm.retry``).

API keys are read from the environment variable named by ``api_key_env`` at each call.
They are never stored on the object, and they are scrubbed from error messages.
"""
from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
from typing import Any, Mapping

from evo.errors import UserError
from evo.llm.base import Request, Response
from evo.llm.retry import backoff_s, kind_of_status, may_retry, retry_after_s

log = logging.getLogger("evo.llm")

KEYS = frozenset({"backend", "model", "base_url", "api_key_env", "temperature", "top_p", "max_tokens",
                  "timeout_s", "max_retries", "retry_backoff_s", "cost_per_token", "concurrency"})
DUMMY_KEY = "not-needed"  # local servers that check no key still want the header
_KEYISH = re.compile(r"\b(sk|key|pk|rk)-[A-Za-z0-9_\-*]{6,}")

_import_lock = threading.Lock()
_litellm_module = None


def litellm():
    """Import litellm once, offline: its price list comes from the installed package."""
    global _litellm_module
    with _import_lock:
        if _litellm_module is None:
            os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
            import litellm as module

            module.suppress_debug_info = True
            module.telemetry = False
            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
                logging.getLogger(name).setLevel(logging.WARNING)  # one INFO line per call
            _litellm_module = module
    return _litellm_module


def _warm_import() -> None:
    try:
        litellm()
    except Exception:  # reported by the first request
        pass


def plain(cfg: Any) -> dict:
    """A config node (DictConfig or mapping) as a plain, resolved dict."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return dict(cfg or {})


class LiteLLMBackend:
    """The ``Backend`` for ``llm=openai|anthropic|local`` (``backend: litellm``)."""

    def __init__(self, cfg: Mapping[str, Any] | Any, *, seed: int | None = None) -> None:
        c = plain(cfg)
        unknown = sorted(set(c) - KEYS)
        if unknown:
            raise UserError(f"llm: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
        self.model = str(c.get("model") or "")
        if not self.model:
            raise UserError("llm.model is empty: give a litellm model id such as openai/gpt-4o-mini")
        self.base_url = c.get("base_url") or None
        self.api_key_env = c.get("api_key_env") or None
        self.temperature = float(c.get("temperature", 1.0))
        self.top_p = None if c.get("top_p") is None else float(c["top_p"])
        self.max_tokens = int(c.get("max_tokens", 2048))
        self.timeout_s = float(c.get("timeout_s", 120.0))
        self.max_retries = int(c.get("max_retries", 5))
        self.retry_backoff_s = float(c.get("retry_backoff_s", 1.0))
        self.cost_per_token = _prices(c.get("cost_per_token"))
        if self.timeout_s <= 0 or self.max_retries < 0 or self.max_tokens <= 0 or self.retry_backoff_s < 0:
            raise UserError("llm: timeout_s and max_tokens must be > 0, max_retries and retry_backoff_s >= 0")
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._warned_cost = False
        self._warn_lock = threading.Lock()
        # litellm takes 3-12 s to import on a busy 2-core machine: start now, in the
        # background, so that the import overlaps the seed's evaluation.
        threading.Thread(target=_warm_import, name="litellm-import", daemon=True).start()

    @property
    def params(self) -> dict:
        """The sampling parameters that change an answer (part of the cache key)."""
        params = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        return params if self.top_p is None else {**params, "top_p": self.top_p}

    def __repr__(self) -> str:
        return f"LiteLLMBackend(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    # --- the request ---------------------------------------------------------------

    def complete(self, request: Request) -> Response:
        key, problem = self._api_key()
        if problem:
            return Response(text="", model=self.model, error=problem)
        try:
            lib = litellm()
        except Exception as exc:  # a broken install must not crash the engine's thread
            return Response(text="", model=self.model, error=f"unknown: cannot import litellm: {exc}")
        start = time.monotonic()  # latency: the requests and the waits between them
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": self.temperature,
            "max_tokens": min(self.max_tokens, request.max_tokens or self.max_tokens),
            "timeout": self.timeout_s,
            "max_retries": 0,
            "drop_params": True,  # e.g. reasoning models that refuse a temperature
        }
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if self.base_url:
            kwargs["api_base"] = self.base_url
        if key:
            kwargs["api_key"] = key
        attempt = 0
        while True:
            try:
                raw = lib.completion(**kwargs)
            except Exception as exc:  # every failure becomes a Response
                kind, reason, wait_hint = self._classify(lib, exc, key)
                if may_retry(kind, attempt, self.max_retries):
                    with self._rng_lock:
                        delay = backoff_s(attempt, self.retry_backoff_s, wait_hint, self._rng)
                    log.info("llm %s (attempt %d), retrying in %.1f s", kind, attempt + 1, delay)
                    time.sleep(delay)
                    attempt += 1
                    continue
                tries = f" after {attempt + 1} attempts" if attempt else ""
                return Response(text="", model=self.model, latency_s=time.monotonic() - start,
                                error=f"{kind}: {reason}{tries}")
            return self._response(raw, time.monotonic() - start)

    def _api_key(self) -> tuple[str | None, str]:
        """The key and, when a required key is missing, the error to report."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "")
            if key:
                return key, ""
            if not self.base_url:
                return None, f"auth: environment variable {self.api_key_env} is not set"
        # A local server: litellm's openai route insists on some key.
        return (DUMMY_KEY if self.base_url else None), ""

    def _response(self, raw: Any, latency: float) -> Response:
        try:
            choice = raw.choices[0]
            text = choice.message.content or ""
            finish = getattr(choice, "finish_reason", None)
        except (AttributeError, IndexError, TypeError):
            text, finish = "", "missing choices"
        usage = getattr(raw, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = self.cost(prompt_tokens, completion_tokens)
        error = "" if text.strip() else f"empty: the model returned no text (finish_reason={finish})"
        return Response(text=text, model=self.model, prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens, cost_usd=cost, latency_s=latency, error=error)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one call: ``cost_per_token`` from the config, else litellm's price list."""
        if self.cost_per_token is not None:
            return prompt_tokens * self.cost_per_token[0] + completion_tokens * self.cost_per_token[1]
        try:
            prompt_cost, completion_cost = litellm().cost_per_token(
                model=self.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            return float(prompt_cost) + float(completion_cost)
        except Exception:
            with self._warn_lock:
                if not self._warned_cost:
                    self._warned_cost = True
                    log.warning("llm: no price known for %s; its cost is recorded as 0 "
                                "(set llm.cost_per_token={input: USD, output: USD} to count it)", self.model)
            return 0.0

    def _classify(self, lib: Any, exc: Exception, key: str | None) -> tuple[str, str, float | None]:
        """(kind, one-line reason without secrets, seconds the server asked us to wait)."""
        status = getattr(exc, "status_code", None)
        causes = _chain(exc)
        if any(isinstance(e, (lib.Timeout, TimeoutError)) or "Timeout" in type(e).__name__ for e in causes):
            kind, status = "timeout", None
        elif any(isinstance(e, (lib.APIConnectionError, ConnectionError, socket.gaierror))
                 or type(e).__name__ in ("ConnectError", "APIConnectionError") for e in causes):
            # litellm reports a refused connection or an unknown host as HTTP 500
            kind, status = "connection", None
        elif isinstance(status, int):
            kind = kind_of_status(status)
        else:
            kind = "unknown"
        headers = getattr(exc, "litellm_response_headers", None)
        if headers is None:
            headers = getattr(getattr(exc, "response", None), "headers", None)
        reason = str(getattr(exc, "message", "") or exc or type(exc).__name__)
        reason = reason.split("\nModel:")[0]  # litellm's debug tail (model, api base)
        reason = " ".join(reason.split())
        reason = re.sub(r"^(litellm\.\w+: )?(\w+Error: )?(OpenAIException - )?", "", reason) or type(exc).__name__
        if kind == "connection":
            reason = f"cannot reach {self.base_url or 'the provider'} ({reason})"
        if isinstance(status, int) and not reason.startswith("HTTP"):
            reason = f"HTTP {status}: {reason}"
        return kind, scrub(reason, key)[:300], retry_after_s(headers)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (litellm wraps openai's, which wraps httpx's)."""
    seen: list[BaseException] = []
    while exc is not None and len(seen) < 10 and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def scrub(text: str, key: str | None) -> str:
    """Remove an API key (and anything shaped like one) from a message."""
    if key and key != DUMMY_KEY and len(key) >= 4:
        text = text.replace(key, "***")
    return _KEYISH.sub(lambda m: m.group(1) + "-***", text)


def _prices(node: Any) -> tuple[float, float] | None:
    if node is None:
        return None
    node = plain(node)
    try:
        return float(node["input"]), float(node["output"])
    except (KeyError, TypeError, ValueError):
        raise UserError("llm.cost_per_token must be {input: USD per token, output: USD per token}") from None
