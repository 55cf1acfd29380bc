"""The run's config, read once from Hydra's DictConfig into typed, checked values.

Code below this point receives a ``Settings`` and never looks at the raw config again;
every check here turns a wrong value into one readable line (a ``UserError``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evo.archive import MeasureAxis
from evo.bandit import POLICY_NAMES, REWARD_PER, REWARDS, BanditConfig, arm_name
from evo.errors import UserError
from evo.llm.models import Endpoint, endpoints
from evo.measures import MEASURES
from evo.operators import OPERATORS, OperatorChoice
from evo.selection import SELECTION_RULES
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
    window: int  # candidates in flight; with the seed it fixes the run (evo.engine)
    budget: Budget
    operators: tuple[OperatorChoice, ...]  # the enabled operators, in config order
    selection: str
    tournament_size: int
    measures: tuple[str, ...]
    axes: tuple[MeasureAxis, ...]
    qd_reference: float
    bandit: BanditConfig
    limits: Limits
    test_limits: Limits  # for test sets, which can be far larger than the training set
    replay_steps: int
    models: tuple[Endpoint, ...]  # the run's LLMs: one unnamed, or several named (llm.models)
    max_consecutive_llm_failures: int
    probe_states: int  # 0 turns the functional hash off
    verify_rate: float

    @property
    def arms(self) -> tuple[str, ...]:
        # An arm per (operator, model): the operator alone for a single unnamed model.
        return tuple(arm_name(op.name, m.name) for m in self.models for op in self.operators)

    @property
    def arm_weights(self) -> dict[str, float]:
        return {arm_name(op.name, m.name): op.weight * m.weight for m in self.models for op in self.operators}

    @property
    def operator_names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.operators)

    def operator_choice(self, name: str) -> OperatorChoice:
        return next(op for op in self.operators if op.name == name)

    @property
    def bandit_policy(self) -> str:
        return self.bandit.policy


def read_settings(cfg: DictConfig) -> Settings:
    budget = cfg.budget
    settings = Settings(
        seed=_int(cfg, "seed", minimum=0),
        workers=_int(cfg, "workers", minimum=1),
        # A run made before the window planned in batches of batch_size: its window is that size.
        window=_int(cfg, "batch_size" if "window" not in cfg and "batch_size" in cfg else "window", minimum=1),
        budget=Budget(
            evaluations=_int(budget, "evaluations", minimum=1, where="budget"),
            llm_calls=_optional(budget, "llm_calls", int, "budget"),
            cost_usd=_optional(budget, "cost_usd", float, "budget"),
            wall_time_s=_optional(budget, "wall_time_s", float, "budget"),
        ),
        operators=_operators(cfg.get("operators")),
        selection=str(cfg.archive.selection),
        tournament_size=_int(cfg.archive, "tournament_size", minimum=1, where="archive"),
        measures=tuple(m.name for m in cfg.archive.measures),
        axes=tuple(MeasureAxis(str(m.name), int(m.bins), float(m.range[0]), float(m.range[1]))
                   for m in cfg.archive.measures),
        qd_reference=float(cfg.problem.qd_reference),
        bandit=_bandit(cfg.bandit),
        limits=_limits(cfg.sandbox, factor=1.0),
        # Runs made before test_time_factor existed keep their training limits for tests.
        test_limits=_limits(cfg.sandbox, factor=float(cfg.sandbox.get("test_time_factor", 1.0))),
        replay_steps=_int(cfg.evaluation, "replay_steps", minimum=0, where="evaluation"),
        models=_models(cfg.llm),
        max_consecutive_llm_failures=_int(cfg.evaluation, "max_consecutive_llm_failures", minimum=1,
                                          where="evaluation"),
        probe_states=_int(cfg.hashing, "probe_states", minimum=0, where="hashing"),
        verify_rate=float(cfg.hashing.verify_rate),
    )
    _check_choices(settings)
    return settings


def _check_choices(s: Settings) -> None:
    rules = " | ".join(SELECTION_RULES)
    if s.selection not in SELECTION_RULES:
        raise UserError(f"archive.selection must be one of {rules} (got {s.selection!r})")
    for op in s.operators:
        if op.selection is not None and op.selection not in SELECTION_RULES:
            raise UserError(f"operators.{op.name}.selection must be one of {rules} or null (got {op.selection!r})")
    from evo.llm import check_config

    for model in s.models:
        check_config(model.config)  # a wrong llm config is caught before the run starts
    for axis in s.axes:
        if axis.name not in MEASURES:
            raise UserError(f"archive.measures: unknown measure {axis.name!r}; choose from {', '.join(MEASURES)}")
        if axis.bins < 1 or not axis.low < axis.high:
            raise UserError(f"archive.measures.{axis.name}: need bins >= 1 and range low < high")
    if not 0.0 <= s.verify_rate <= 1.0:
        raise UserError(f"hashing.verify_rate must be within [0, 1] (got {s.verify_rate})")
    for name in ("wall_time_s", "cpu_time_s"):
        if getattr(s.limits, name) <= 0:
            raise UserError(f"sandbox.{name} must be positive")


def _operators(node: Any) -> tuple[OperatorChoice, ...]:
    """``operators:`` maps a name to ``{weight, selection}``; a weight of 0 disables the
    operator. A plain list of names (all weights 1) is accepted too."""
    if node is None:
        raise UserError("operators: missing; e.g. operators: {m1: {weight: 1.0}}")
    if OmegaConf.is_list(node) or isinstance(node, (list, tuple)):
        entries = {str(name): {} for name in node}
    elif OmegaConf.is_dict(node) or isinstance(node, dict):
        entries = {}
        for name, value in node.items():
            if value is None:
                value = {}
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = {"weight": value}  # shorthand: `m1: 2.0`
            elif not (OmegaConf.is_dict(value) or isinstance(value, dict)):
                raise UserError(f"operators.{name} must be a mapping like {{weight: 1.0}} (got {value!r})")
            entries[str(name)] = value
    else:
        raise UserError(f"operators must be a mapping of operator names (got {node!r})")
    unknown = [name for name in entries if name not in OPERATORS]
    if unknown:
        raise UserError(f"operators: unknown {', '.join(unknown)}; choose from {', '.join(OPERATORS)}")
    out = []
    for name, value in entries.items():
        extra = sorted(set(value) - {"weight", "selection"})
        if extra:
            raise UserError(f"operators.{name}: unknown key(s) {', '.join(extra)}; use weight and selection")
        weight = value.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise UserError(f"operators.{name}.weight must be a number >= 0 (got {weight!r})")
        selection = value.get("selection")
        if selection is not None and OPERATORS[name].source not in ("archive", "ranked"):
            raise UserError(f"operators.{name}.selection: {name} does not draw its parents from the archive "
                            f"({OPERATORS[name].source}); remove the key")
        if weight > 0:
            out.append(OperatorChoice(name, float(weight), None if selection is None else str(selection)))
    if not out:
        raise UserError(f"operators: none enabled (every weight is 0); choose from {', '.join(OPERATORS)}")
    if all(OPERATORS[op.name].source == "failed" for op in out):
        raise UserError("operators: fix alone cannot start a run (it repairs failures); enable another operator")
    return tuple(out)


def _models(node: Any) -> tuple[Endpoint, ...]:
    if node.get("models") is None:
        # The single model: its concurrency is checked as it always was.
        _int(node, "concurrency", minimum=1, where="llm")
    return endpoints(OmegaConf.to_container(node, resolve=True))


def _bandit(node: Any) -> BanditConfig:
    known = {"policy", "exploration", "gamma", "discount", "window", "reward", "reward_per"}
    extra = sorted(set(node) - known)
    if extra:
        raise UserError(f"bandit: unknown key(s) {', '.join(extra)}; known: {', '.join(sorted(known))}")
    policy = str(node.get("policy"))
    if policy not in POLICY_NAMES:
        raise UserError(f"bandit.policy must be one of {', '.join(POLICY_NAMES)} (got {policy!r})")
    reward = str(node.get("reward", "improvement"))
    if reward not in REWARDS:
        raise UserError(f"bandit.reward must be one of {', '.join(REWARDS)} (got {reward!r})")
    # A key that the chosen policy would ignore is a mistake worth one line, not silence.
    only = {"exploration": ("ucb1",), "gamma": ("exp3",), "discount": ("ucb1", "thompson", "exp3"),
            "window": ("ucb1", "thompson", "exp3")}
    for key, policies in only.items():
        if node.get(key) is not None and policy not in policies:
            raise UserError(f"bandit.{key} does nothing under bandit.policy={policy} (only {', '.join(policies)})")
    reward_per = str(node.get("reward_per", "request"))
    if reward_per not in REWARD_PER:
        raise UserError(f"bandit.reward_per must be one of {', '.join(REWARD_PER)} (got {reward_per!r})")
    values: dict[str, Any] = {"policy": policy, "reward": reward, "reward_per": reward_per}
    for key in ("exploration", "gamma", "discount"):
        value = node.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"bandit.{key} must be a number (got {value!r})")
        values[key] = float(value)
    window = node.get("window")
    if window is not None:
        values["window"] = _int(node, "window", minimum=1, where="bandit")
    try:
        return BanditConfig(**values)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _limits(node: Any, factor: float) -> Limits:
    values = OmegaConf.to_container(node, resolve=True)
    values.pop("test_time_factor", None)
    try:
        limits = Limits(**values)
    except TypeError as exc:
        raise UserError(f"sandbox: {exc}") from None
    return replace(limits, wall_time_s=limits.wall_time_s * factor, cpu_time_s=limits.cpu_time_s * factor)


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
