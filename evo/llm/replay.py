"""Re-run a recorded run with no network: answers come from the source run's LLM cache.

``evo run llm=replay llm.source=RUN_DIR`` reads ``RUN_DIR/run.sqlite``'s ``llm_cache``
table once, at start. A request is matched by its ``sample`` (the candidate's index)
and a digest of its messages, so the model name and parameters do not matter. When the
replayed run asks something the source run never asked (the runs diverged), the answer
is ``Response(error="replay: no recorded answer for sample N")``.

A run of several models (``llm.models``) is replayed with the same model names and
weights (which shape the bandit's choices): a new run without ``llm.models`` takes the
source's (``source_models``, evo.app). Each model replays the answers recorded under its
name, so that two models asked the same question (a shared reflection) keep their own
answers.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping

from evo.errors import UserError
from evo.llm.base import Message, Request, Response

KEYS = frozenset({"backend", "source", "concurrency"})


def messages_digest(messages: Iterable[Any]) -> str:
    """sha256 of the canonical JSON of the [role, content] pairs."""
    pairs = [list(_pair(m)) for m in messages]
    canonical = json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _pair(message: Any) -> tuple[str, str]:
    if isinstance(message, Message):
        return message.role, message.content
    if isinstance(message, Mapping):
        return str(message["role"]), str(message["content"])
    role, content = message  # a [role, content] pair
    return str(role), str(content)


def _recorded_messages(request_json: str) -> list | None:
    """The messages in a cache row's ``request_json`` (a dict with ``messages``, or the list)."""
    try:
        data = json.loads(request_json or "null")
    except json.JSONDecodeError:
        return None
    if isinstance(data, Mapping):
        data = data.get("messages")
    return data if isinstance(data, list) else None


class ReplayBackend:
    """The ``Backend`` for ``llm=replay`` (``backend: replay``)."""

    def __init__(self, cfg: Mapping[str, Any] | Any, name: str = "") -> None:
        from evo.llm.litellm_backend import plain

        c = plain(cfg)
        unknown = sorted(set(c) - KEYS)
        if unknown:
            raise UserError(f"llm: unknown key(s) {', '.join(unknown)} for the replay backend")
        path = source_store(c.get("source"))
        self.source = path
        self.name = name
        self._answers: dict[tuple[int, str], Response] = {}
        self._samples: set[int] = set()
        models = self._load(path)
        # The most frequent recorded model, so that the replayed run's records read the same.
        self.model = max(models, key=models.get) if models else "replay"

    @property
    def params(self) -> dict:
        return {}

    def __len__(self) -> int:
        return len(self._answers)

    def _load(self, path: Path) -> dict[str, int]:
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                columns = {row[1] for row in db.execute("PRAGMA table_info(llm_cache)")}
                named = "model_name" if "model_name" in columns else "''"  # a store of schema 1
                rows = db.execute(
                    f"SELECT sample, model, request_json, text, prompt_tokens, completion_tokens,"
                    f" cost_usd, latency_s, error, {named} FROM llm_cache ORDER BY created, rowid").fetchall()
                config = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise UserError(f"llm.source: cannot read the LLM cache in {path}: {exc}") from None
        configured = _model_names(config[0] if config else None) or {row[-1]: 1.0 for row in rows}
        if configured and self.name not in configured:
            raise UserError(_names_mismatch(path, self.name, configured))
        models: dict[str, int] = {}
        for sample, model, request_json, text, p_tok, c_tok, cost, latency, error, name in rows:
            if name != self.name:
                continue
            messages = _recorded_messages(request_json)
            if sample is None or messages is None:
                continue
            try:
                key = (int(sample), messages_digest(messages))
            except (KeyError, TypeError, ValueError):
                continue
            previous = self._answers.get(key)
            if previous is not None and previous.ok and error:
                continue  # keep a good answer over a later failure of the same request
            self._answers[key] = Response(
                text=text or "", model=model or "replay", prompt_tokens=int(p_tok or 0),
                completion_tokens=int(c_tok or 0), cost_usd=float(cost or 0.0),
                latency_s=float(latency or 0.0), error=error or "", cached=True)
            self._samples.add(int(sample))
            models[model or "replay"] = models.get(model or "replay", 0) + 1
        return models

    def complete(self, request: Request) -> Response:
        found = self._answers.get((request.sample, messages_digest(request.messages)))
        if found is not None:
            return found
        why = " (it was recorded with a different prompt)" if request.sample in self._samples else ""
        return Response(text="", model=self.model,
                        error=f"replay: no recorded answer for sample {request.sample}{why}")


def source_store(source: Any) -> Path:
    """The run database that ``llm.source`` names (a run folder or its run.sqlite)."""
    if not source or source == "???":
        raise UserError("llm.source is missing: evo run llm=replay llm.source=RUN_DIR")
    path = Path(str(source)).expanduser()
    if path.is_dir():
        path = path / "run.sqlite"
    if not path.is_file():
        raise UserError(f"llm.source: no run database at {path}")
    return path


def source_models(source: Any) -> list[dict[str, Any]] | None:
    """The models a source run was made with, as ``llm.models`` entries ({name, weight}),
    or None when it had a single unnamed model (or keeps no config)."""
    path = source_store(source)
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            config = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UserError(f"llm.source: cannot read the run database {path}: {exc}") from None
    models = _model_names(config[0] if config else None)
    if not [name for name in models if name]:
        return None
    return [{"name": name, "weight": weight} for name, weight in models.items()]


def _model_names(config_yaml: str | None) -> dict[str, float]:
    """The models of a run's stored config, name -> weight: {"": 1} for a single unnamed
    model, {} if unknown."""
    if not config_yaml:
        return {}
    from omegaconf import OmegaConf

    try:
        models = OmegaConf.select(OmegaConf.create(config_yaml), "llm.models", default=None)
        if models is None:
            return {"": 1.0}
        return {str(m.get("name")): float(m.get("weight", 1.0)) for m in models}
    except Exception:  # noqa: BLE001 - an unreadable config: judge by the cache alone
        return {}


def _names_mismatch(path: Path, name: str, models: dict[str, float]) -> str:
    named = [n for n in models if n]
    if not name:
        listed = ", ".join(f"{{name: {n}}}" if models[n] == 1 else f"{{name: {n}, weight: {models[n]:g}}}"
                           for n in named)
        return (f"llm.source: {path} was made with several models ({', '.join(named)}); "
                f"replay it with the same models and weights: llm.models=[{listed}]")
    if not named:
        return f"llm.source: {path} was made with one unnamed model; replay it without llm.models"
    return f"llm.source: {path} has no answers from a model named {name!r} (its models: {', '.join(named)})"
