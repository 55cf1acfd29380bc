"""The run's config, read once from Hydra's DictConfig into typed, checked values.

Code below this point receives a ``Settings`` and never looks at the raw config again;
every check here turns a wrong value into one readable line (a ``UserError``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evo.archive import MeasureAxis
from evo.bandit import POLICIES
from evo.errors import UserError
from evo.measures import MEASURES
from evo.operators import OPERATORS
from sandbox import Limits


@dataclass(frozen=True)
class Budget:
    evaluations: int
    llm_calls: int | None
    cost_usd: float | None
    wall_time_s: float | None


@dataclass(frozen=True)
class Settings:
    seed: int
    workers: int
    batch_size: int
    budget: Budget
    operators: tuple[str, ...]
    selection: str
    tournament_size: int
    measures: tuple[str, ...]
    axes: tuple[MeasureAxis, ...]
    qd_reference: float
    bandit_policy: str
    limits: Limits
    replay_steps: int
    llm: dict[str, Any]
    llm_concurrency: int
    max_consecutive_llm_failures: int
    probe_states: int  # 0 turns the functional hash off
    verify_rate: float


def read_settings(cfg: DictConfig) -> Settings:
    budget = cfg.budget
    settings = Settings(
        seed=_int(cfg, "seed", minimum=0),
        workers=_int(cfg, "workers", minimum=1),
        batch_size=_int(cfg, "batch_size", minimum=1),
        budget=Budget(
            evaluations=_int(budget, "evaluations", minimum=1, where="budget"),
            llm_calls=_optional(budget, "llm_calls", int, "budget"),
            cost_usd=_optional(budget, "cost_usd", float, "budget"),
            wall_time_s=_optional(budget, "wall_time_s", float, "budget"),
        ),
        operators=tuple(cfg.operators),
        selection=str(cfg.archive.selection),
        tournament_size=_int(cfg.archive, "tournament_size", minimum=1, where="archive"),
        measures=tuple(m.name for m in cfg.archive.measures),
        axes=tuple(MeasureAxis(str(m.name), int(m.bins), float(m.range[0]), float(m.range[1]))
                   for m in cfg.archive.measures),
        qd_reference=float(cfg.problem.qd_reference),
        bandit_policy=str(cfg.bandit.policy),
        limits=Limits(**OmegaConf.to_container(cfg.sandbox, resolve=True)),
        replay_steps=_int(cfg.evaluation, "replay_steps", minimum=0, where="evaluation"),
        llm=OmegaConf.to_container(cfg.llm, resolve=True),
        llm_concurrency=_int(cfg.llm, "concurrency", minimum=1, where="llm"),
        max_consecutive_llm_failures=_int(cfg.evaluation, "max_consecutive_llm_failures", minimum=1,
                                          where="evaluation"),
        probe_states=_int(cfg.hashing, "probe_states", minimum=0, where="hashing"),
        verify_rate=float(cfg.hashing.verify_rate),
    )
    _check_choices(settings)
    return settings


def _check_choices(s: Settings) -> None:
    unknown = [op for op in s.operators if op not in OPERATORS]
    if unknown or not s.operators:
        raise UserError(f"operators: unknown {unknown or '(none enabled)'}; choose from {', '.join(OPERATORS)}")
    if s.selection not in ("uniform", "tournament"):
        raise UserError(f"archive.selection must be uniform or tournament (got {s.selection!r})")
    for axis in s.axes:
        if axis.name not in MEASURES:
            raise UserError(f"archive.measures: unknown measure {axis.name!r}; choose from {', '.join(MEASURES)}")
        if axis.bins < 1 or not axis.low < axis.high:
            raise UserError(f"archive.measures.{axis.name}: need bins >= 1 and range low < high")
    if s.bandit_policy not in POLICIES:
        raise UserError(f"bandit.policy must be one of {', '.join(POLICIES)} (got {s.bandit_policy!r})")
    if not 0.0 <= s.verify_rate <= 1.0:
        raise UserError(f"hashing.verify_rate must be within [0, 1] (got {s.verify_rate})")
    for name in ("wall_time_s", "cpu_time_s"):
        if getattr(s.limits, name) <= 0:
            raise UserError(f"sandbox.{name} must be positive")


def _int(node: Any, key: str, minimum: int, where: str = "") -> int:
    name = f"{where}.{key}" if where else key
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be an integer (got {value!r})")
    if value < minimum:
        raise UserError(f"{name} must be at least {minimum} (got {value})")
    return value


def _optional(node: Any, key: str, kind: type, where: str) -> Any:
    value = node.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UserError(f"{where}.{key} must be a positive number or null (got {value!r})")
    return kind(value)
