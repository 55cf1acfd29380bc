"""Which operator to use next: a multi-armed bandit over the enabled operators.

An arm is rewarded after its candidate is committed. Candidates of one batch are chosen
before any of them returns, so each choice counts the batch's earlier choices as
pending pulls; otherwise a deterministic policy would pick one arm for the whole batch.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ArmStats:
    pulls: int = 0
    reward_sum: float = 0.0

    @property
    def mean(self) -> float:
        return self.reward_sum / self.pulls if self.pulls else 0.0


@dataclass
class Bandit:
    arms: tuple[str, ...]
    policy: str = "ucb1"
    exploration: float = math.sqrt(2.0)
    stats: dict[str, ArmStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown bandit policy {self.policy!r}; choose from {', '.join(POLICIES)}")
        for arm in self.arms:
            self.stats.setdefault(arm, ArmStats())

    def choose(self, rng: np.random.Generator, pending: Counter) -> str:
        probabilities = POLICIES[self.policy](self, pending)
        return self.arms[int(rng.choice(len(self.arms), p=probabilities))]

    def update(self, arm: str, reward: float) -> None:
        stats = self.stats[arm]
        stats.pulls += 1
        stats.reward_sum += reward

    def probabilities(self) -> dict[str, float]:
        return dict(zip(self.arms, POLICIES[self.policy](self, Counter())))

    def snapshot(self) -> dict:
        p = self.probabilities()
        return {
            "policy": self.policy,
            "arms": {a: {"pulls": s.pulls, "mean_reward": s.mean, "probability": p[a]} for a, s in self.stats.items()},
        }


def _uniform(bandit: Bandit, pending: Counter) -> np.ndarray:
    return np.full(len(bandit.arms), 1.0 / len(bandit.arms))


def _ucb1(bandit: Bandit, pending: Counter) -> np.ndarray:
    pulls = np.array([bandit.stats[a].pulls + pending[a] for a in bandit.arms], dtype=float)
    if (pulls == 0).any():
        # Untried arms first, in order: deterministic and cheap.
        choice = np.zeros(len(pulls))
        choice[int(np.argmax(pulls == 0))] = 1.0
        return choice
    means = np.array([bandit.stats[a].mean for a in bandit.arms])
    values = means + bandit.exploration * np.sqrt(np.log(pulls.sum()) / pulls)
    choice = np.zeros(len(pulls))
    choice[int(np.argmax(values))] = 1.0
    return choice


POLICIES = {"uniform": _uniform, "ucb1": _ucb1}
