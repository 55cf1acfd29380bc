"""The run's LLMs: one endpoint, or several named ones that the bandit chooses among.

Without ``llm.models`` the ``llm`` node is the run's one endpoint, unnamed: its arms are
plain operators and its cache keys are those of every run made before several models
existed. With ``llm.models``, each entry is a named endpoint and a full llm config:

    llm:
      backend: litellm            # the defaults of every entry with this backend
      model: openai/gpt-4o-mini
      models:
        - {name: mini}                                      # the defaults as they are
        - {name: strong, model: openai/gpt-4.1, weight: 0.5, concurrency: 2}
        - {name: local, backend: llamacpp, model: qwen2.5-coder-1.5b}

An entry takes the top-level keys as defaults when it has the same backend (or names
none); an entry with another backend takes none of them, since they would not fit it.
``name`` names the model in the arms (``m1@mini``), the records, the cache and the
tables; ``weight`` (default 1) multiplies the prior weight of its arms.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from evo.errors import UserError

# The keys each backend reads; an entry may also have ``name`` and ``weight``.
_OFFLINE_KEYS = frozenset({"backend", "model", "concurrency", "mix", "max_nodes"})
_ENTRY_KEYS = frozenset({"name", "weight"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Endpoint:
    """One LLM of the run. ``name`` is "" for the single model of a run without
    ``llm.models`` (its arms carry no model)."""

    name: str
    config: Mapping[str, Any]  # the llm config of this endpoint alone (no name, weight, models)
    weight: float
    concurrency: int

    @property
    def backend(self) -> str:
        return str(self.config.get("backend"))

    @property
    def asks_llm(self) -> bool:
        """False for the offline model: it reads the computed reflections, asks nothing."""
        return self.backend != "offline"


def _backend_keys(backend: str) -> frozenset[str] | None:
    """The config keys a backend reads (None for an unknown backend)."""
    if backend == "offline":
        return _OFFLINE_KEYS
    if backend == "litellm":
        from evo.llm.litellm_backend import KEYS

        return KEYS
    if backend == "llamacpp":
        from evo.llm.llamacpp import KEYS

        return KEYS
    if backend == "replay":
        from evo.llm.replay import KEYS

        return KEYS
    return None


def endpoints(llm: Mapping[str, Any]) -> tuple[Endpoint, ...]:
    """The endpoints of an ``llm`` config node (a plain mapping), checked: a wrong
    ``llm.models`` is one readable line (a UserError)."""
    models = llm.get("models")
    top = {k: v for k, v in llm.items() if k != "models"}
    if models is None:
        return (Endpoint("", top, 1.0, _concurrency(top, "llm")),)
    if not isinstance(models, (list, tuple)):
        raise UserError(f"llm.models must be a list of models like [{{name: a}}, {{name: b, model: ...}}] "
                        f"(got {models!r})")
    if not models:
        raise UserError("llm.models is empty: give at least one model, or remove the key for the single llm config")
    out: list[Endpoint] = []
    for index, entry in enumerate(models):
        where = f"llm.models[{index}]"
        if not isinstance(entry, Mapping):
            raise UserError(f"{where} must be a mapping like {{name: a, model: ...}} (got {entry!r})")
        name = _name(entry.get("name"), where)
        where = f"llm.models[{index}] ({name})"
        if any(e.name == name for e in out):
            raise UserError(f"llm.models: the name {name!r} is used twice; each model needs its own name")
        backend = entry.get("backend", top.get("backend"))
        inherited = top if backend == top.get("backend") else {}
        config = {**inherited, **{k: v for k, v in entry.items() if k not in _ENTRY_KEYS}, "backend": backend}
        known = _backend_keys(str(backend))
        if known is None:
            raise UserError(f"{where}.backend must be one of offline, litellm, llamacpp, replay (got {backend!r})")
        unknown = sorted(set(entry) - known - _ENTRY_KEYS)
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} for the {backend} backend; "
                            f"known: {', '.join(sorted(known | _ENTRY_KEYS))}")
        out.append(Endpoint(name, config, _weight(entry.get("weight", 1.0), where), _concurrency(config, where)))
    return tuple(out)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: every model needs a name (name: mini), used in arms like m1@mini")
    if "@" in value:
        raise UserError(f"{where}: the name {value!r} has an '@', which separates operator and model in an arm")
    if not _NAME.fullmatch(value):
        raise UserError(f"{where}: the name {value!r} must be letters, digits, '.', '_' or '-'")
    return value


def _weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"{where}.weight must be a number > 0 (got {value!r}); remove the model to disable it")
    return float(value)


def _concurrency(config: Mapping[str, Any], where: str) -> int:
    value = config.get("concurrency", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{where}.concurrency must be an integer >= 1 (got {value!r})")
    return value
