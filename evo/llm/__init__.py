"""Text backends and the run's LLM cache.

``make_backend`` turns the ``llm`` config node into a backend. ``CachedBackend`` puts the
run store in front of any backend: an answer is written the moment it arrives, and a
request that was answered before (same model, messages, parameters and sample) is served
from the store, so a resumed run never pays for it twice.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from evo.errors import UserError
from evo.llm.base import Backend, Message, Request, Response

# Keys of an llm config node that shape an answer, and so belong in the cache key.
_ANSWER_PARAMS = ("temperature", "max_tokens", "top_p")


def check_config(llm: Mapping[str, Any]) -> None:
    """Refuse a wrong llm config with a UserError before a run folder is made, as far as
    that can be done without starting anything."""
    kind = llm.get("backend")
    if kind == "offline":
        from evo.llm.offline import mixes

        mixes(llm.get("mix"))  # a wrong edit name
    elif kind == "llamacpp":
        from evo.llm.llamacpp import installed_model

        installed_model(llm)  # the model and the server are installed


def check_sources(models: Iterable[Any]) -> None:
    """Refuse a replay whose source cannot serve it (missing, or made with other models)
    before a new run's folder is made. Not part of ``check_config``: a replayed run stays
    readable after its source is gone."""
    from evo.llm.replay import ReplayBackend

    for model in models:
        if model.backend == "replay":
            ReplayBackend(model.config, model.name)


@contextmanager
def open_backend(llm: Mapping[str, Any], entry: str, vocabulary: tuple[str, ...], seed: int,
                 log_dir: Path, name: str = "") -> Iterator[Backend]:
    """The configured backend, and whatever it runs (a local LLM server) stopped on exit."""
    backend = make_backend(llm, entry, vocabulary, seed, log_dir, name)
    try:
        yield backend
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()


def make_backend(llm: Mapping[str, Any], entry: str, vocabulary: tuple[str, ...], seed: int,
                 log_dir: Path | None = None, name: str = "") -> Backend:
    """A backend for one model's llm config (an ``Endpoint.config``); ``log_dir`` receives
    a local server's log; ``name``: the model's configured name ("" for a single unnamed
    model). A backend with a ``close`` method must be closed (``open_backend`` does it)."""
    kind = llm.get("backend")
    if kind == "offline":
        from evo.llm.offline import MAX_NODES, OfflineBackend

        return OfflineBackend(entry, vocabulary, seed, llm.get("mix"), int(llm.get("max_nodes") or MAX_NODES))
    if kind == "litellm":
        from evo.llm.litellm_backend import LiteLLMBackend

        return LiteLLMBackend(llm)
    if kind == "llamacpp":
        from evo.llm.llamacpp import LlamaCppBackend

        if log_dir is None:
            raise ValueError("the llamacpp backend needs a folder for its server's log")
        return LlamaCppBackend(llm, log_dir, name)
    if kind == "replay":
        from evo.llm.replay import ReplayBackend

        return ReplayBackend(llm, name)
    raise UserError(f"llm.backend must be one of offline, litellm, llamacpp, replay (got {kind!r})")


def cache_key(model: str, messages: tuple[Message, ...], params: Mapping[str, Any], sample: int,
              stop: tuple[str, ...] = (), max_tokens: int | None = None, name: str = "") -> str:
    key: dict[str, Any] = {"model": model, "messages": [[m.role, m.content] for m in messages],
                           "params": dict(params), "sample": sample}
    if stop:  # absent when empty, so that the keys of runs made before stop existed still match
        key["stop"] = list(stop)
    if max_tokens is not None:  # likewise
        key["max_tokens"] = max_tokens
    if name:  # likewise: absent for a single unnamed model
        key["name"] = name
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class CachedBackend:
    """A backend with the run store in front of it. ``name``: the model's configured name
    (llm.models), part of the key, so that two models with the same model id (two servers
    of one model, say) never share answers; "" for a single unnamed model, whose keys are
    those of runs made before several models existed."""

    def __init__(self, backend: Backend, store: Any, llm: Mapping[str, Any], name: str = ""):
        self.backend = backend
        self.model = backend.model
        self.name = name
        self.store = store
        self.params = {k: llm[k] for k in _ANSWER_PARAMS if llm.get(k) is not None}

    def complete(self, request: Request) -> Response:
        key = cache_key(self.model, request.messages, self.params, request.sample, request.stop,
                        request.max_tokens, self.name)
        row = self.store.cached_response(key)
        if row is not None and not row["error"]:
            return Response(
                text=row["text"], model=row["model"], prompt_tokens=row["prompt_tokens"],
                completion_tokens=row["completion_tokens"], cost_usd=row["cost_usd"],
                latency_s=row["latency_s"], cached=True,
            )
        response = self.backend.complete(request)
        request_json = json.dumps(
            {"operator": request.operator, "messages": [[m.role, m.content] for m in request.messages]}
        )
        self.store.cache_response(key, request.sample, request_json, response, self.name)
        return response
