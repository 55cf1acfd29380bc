"""The interface every problem implements.

A problem knows its benchmark data, how a heuristic is run on it (the *harness*,
executed inside the sandbox next to untrusted code) and how the decisions that come
back are checked and scored (here, in the trusted parent). It knows nothing of LLMs,
evolution or the sandbox's internals, and imports nothing from ``evo``.

Scores are "lower is better" everywhere (excess %, gap %, tour length).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence


class Infeasible(Exception):
    """The decisions break a rule of the problem; the message names the first violation."""


@dataclass(frozen=True)
class Dataset:
    """A named benchmark set. ``instances`` is problem-specific and never leaves the parent
    except through ``Problem.solve_payload``."""

    name: str
    instances: tuple[Any, ...]
    reference: float | None = None  # e.g. the mean L1 bound or mean optimum, for tables


@dataclass(frozen=True)
class Verdict:
    """The trusted side's reading of a heuristic's decisions on one dataset."""

    score: float  # lower is better
    per_instance: tuple[float, ...]
    behaviour: float  # the problem's behaviour measure, in [0, 1]
    # Extra named numbers for tables and reports (e.g. TSP's mean tour length next to its gap
    # score, bin packing's mean bins used). Optional; the engine needs none of them.
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Replay:
    """States sampled along a trajectory and the choices the decisions imply for them."""

    states: Any  # payload for ``harness.decide``
    expected: tuple[int, ...]


class Problem(Protocol):
    name: str
    entry: str  # name of the function the heuristic defines
    arg_names: tuple[str, ...]  # its parameters, in order
    harness: str  # dotted module, imported inside the sandbox, with solve() and decide()
    description: str  # task text shown to the LLM (what the function must do)
    signature: str  # e.g. "def priority(item: float, bins: np.ndarray) -> np.ndarray:"
    score_name: str  # e.g. "excess %"
    seed_code: str  # the heuristic evolution starts from
    baselines: Mapping[str, str]  # name -> source of a reference heuristic
    vocabulary: Sequence[str]  # expressions over arg_names, for the offline mutation model

    def train_set(self) -> Dataset: ...

    def test_sets(self) -> dict[str, Dataset]: ...

    def solve_payload(self, dataset: Dataset) -> Any:
        """What ``harness.solve(fn, payload)`` receives inside the sandbox."""

    def verify(self, dataset: Dataset, decisions: Any) -> Verdict:
        """Check the decisions (raise Infeasible) and compute the score from them."""

    def replay(self, dataset: Dataset, decisions: Any, n: int, seed: int) -> Replay:
        """Sample n states from the trajectory the decisions describe."""

    def probe_states(self, n: int) -> Any:
        """A fixed payload of n states for ``harness.decide``: the functional hash's probe."""
