"""Which operator to use next: a multi-armed bandit over the enabled operators.

An arm is a name: an operator ("m1"), or an operator and a model ("m1@mini", see
``arm_name``) when the run has several LLMs (``llm.models``); nothing here reads it.

Policies: uniform, UCB1, Thompson sampling (Beta-Bernoulli) and EXP3. Each can forget, so
that it follows a search whose best operator changes over the run (an operator that
pays early, like a restructuring one, often stops paying once the archive is good):
``discount`` multiplies all past statistics by gamma at every update (discounted UCB /
Thompson / EXP3), ``window`` keeps only the last W updates (sliding-window variants).

Every arm has a prior weight from config. The weight multiplies the arm's index under
every policy: its probability under uniform and EXP3 (the exploration share included),
its upper confidence bound under UCB1, its posterior draw under Thompson sampling. So a
weight of 2 makes an arm about twice as likely under the randomised policies, and makes
UCB1 and Thompson demand half the evidence before they prefer another arm.

A pull may weigh more or less than one (``bandit.reward_per``, see ``update``): then an
arm's statistics are rewards per unit of cost, and a model ten times cheaper but half as
good wins.

The bandit's state is a pure function of its updates in order: the engine replays the
committed candidates to rebuild it, so nothing here is stored apart from the snapshot
shown by ``evo inspect``.

An arm is rewarded after its candidate is committed. Candidates in flight together (the
engine's window) are chosen before any of them returns, so each choice counts the
earlier choices still in flight as pending pulls; otherwise a deterministic policy (UCB1)
would pick one arm for the whole window.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

POLICY_NAMES = ("uniform", "ucb1", "thompson", "exp3")
REWARDS = ("improvement", "qd_gain")
REWARD_PER = ("request", "usd", "second")


def arm_name(operator: str, model: str | None = None) -> str:
    """The arm of an operator, or of an operator and a model when several LLMs compete."""
    return operator if not model else f"{operator}@{model}"


def arm_operator(arm: str) -> str:
    """The operator of an arm (see ``arm_name``)."""
    return arm.split("@", 1)[0]


def arm_model(arm: str) -> str:
    """The model's name of an arm, "" for an arm of the single unnamed model."""
    return arm.split("@", 1)[1] if "@" in arm else ""


@dataclass(frozen=True)
class BanditConfig:
    policy: str = "ucb1"
    exploration: float = math.sqrt(2.0)  # UCB1's c in mean + c * sqrt(ln N / n)
    gamma: float = 0.1  # EXP3's exploration share (and its learning rate gamma / K)
    discount: float | None = None  # in (0, 1]: past statistics fade by this factor per update
    window: int | None = None  # only the last `window` updates count
    reward: str = "improvement"  # "improvement": 1 if the archive improved; "qd_gain": normalised QD gain
    reward_per: str = "request"  # "request", or per unit of cost: "usd", "second" (evo.search_state)

    def __post_init__(self) -> None:
        if self.policy not in POLICY_NAMES:
            raise ValueError(f"unknown bandit policy {self.policy!r}; choose from {', '.join(POLICY_NAMES)}")
        if self.reward not in REWARDS:
            raise ValueError(f"unknown bandit reward {self.reward!r}; choose from {', '.join(REWARDS)}")
        if self.reward_per not in REWARD_PER:
            raise ValueError(f"bandit.reward_per must be one of {', '.join(REWARD_PER)} (got {self.reward_per!r})")
        if self.discount is not None and self.window is not None:
            raise ValueError("bandit: set discount or window, not both")
        if self.discount is not None and not 0.0 < self.discount <= 1.0:
            raise ValueError(f"bandit.discount must be in (0, 1] (got {self.discount})")
        if self.window is not None and self.window < 1:
            raise ValueError(f"bandit.window must be at least 1 (got {self.window})")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"bandit.gamma must be in (0, 1] (got {self.gamma})")
        if self.exploration < 0.0:
            raise ValueError(f"bandit.exploration must be >= 0 (got {self.exploration})")


@dataclass
class ArmStats:
    """Statistics of one arm. ``pulls`` counts every update; the others are the effective
    (discounted or windowed) values the policy reads."""

    pulls: int = 0
    weight_sum: float = 0.0  # effective number of pulls (each weighs its cost, see Bandit.update)
    reward_sum: float = 0.0  # effective sum of rewards
    gain: float = 0.0  # EXP3's effective importance-weighted reward sum

    @property
    def mean(self) -> float:
        return self.reward_sum / self.weight_sum if self.weight_sum > 0 else 0.0


@dataclass(frozen=True)
class _Update:
    arm: str
    reward: float
    probability: float
    cost: float


@dataclass
class Bandit:
    arms: tuple[str, ...]
    config: BanditConfig = field(default_factory=BanditConfig)
    weights: Mapping[str, float] = field(default_factory=dict)  # prior weight per arm; 1 when absent
    stats: dict[str, ArmStats] = field(default_factory=dict)
    _recent: deque = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("a bandit needs at least one arm")
        for arm in self.arms:
            self.stats.setdefault(arm, ArmStats())
        self._prior = np.array([float(self.weights.get(a, 1.0)) for a in self.arms])
        if (self._prior <= 0).any():
            raise ValueError("arm weights must be positive (leave an arm out to disable it)")

    @property
    def policy(self) -> str:
        return self.config.policy

    # ---- choosing ------------------------------------------------------------------
    def choose(self, rng: np.random.Generator, pending: Counter | None = None,
               available: Iterable[str] | None = None) -> str:
        """One arm. ``pending``: arms chosen for candidates in flight, not yet rewarded;
        ``available``: the arms that can be used now (all when None)."""
        mask = self._mask(available)
        if self.policy == "thompson":
            draws = self._thompson_draws(rng, 1)[0]
            return self.arms[_argmax_masked(self._prior * draws, mask)]
        p = self._probabilities(pending or Counter(), mask)
        return self.arms[int(rng.choice(len(self.arms), p=p))]

    def probabilities(self, available: Iterable[str] | None = None) -> dict[str, float]:
        """The chance each arm is chosen next (with no pending pulls)."""
        mask = self._mask(available)
        if self.policy == "thompson":
            # No closed form: a Monte Carlo estimate with a fixed generator, so that the
            # snapshot is a pure function of the bandit's state like everything else.
            draws = self._thompson_draws(np.random.default_rng(0), 4000) * self._prior
            draws[:, ~mask] = -np.inf
            counts = np.bincount(np.argmax(draws, axis=1), minlength=len(self.arms))
            return dict(zip(self.arms, (counts / counts.sum()).tolist()))
        return dict(zip(self.arms, self._probabilities(Counter(), mask).tolist()))

    def _mask(self, available: Iterable[str] | None) -> np.ndarray:
        if available is None:
            return np.ones(len(self.arms), dtype=bool)
        allowed = set(available)
        mask = np.array([a in allowed for a in self.arms])
        if not mask.any():
            raise ValueError("no available arm")
        return mask

    def _probabilities(self, pending: Counter, mask: np.ndarray) -> np.ndarray:
        return _POLICIES[self.policy](self, pending, mask)

    def _thompson_draws(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # Beta(1 + successes, 1 + failures); a reward in [0, 1] counts fractionally.
        s = np.array([self.stats[a].reward_sum for a in self.arms])
        f = np.array([self.stats[a].weight_sum - self.stats[a].reward_sum for a in self.arms])
        return rng.beta(1.0 + s, 1.0 + np.maximum(f, 0.0), size=(n, len(self.arms)))

    # ---- learning ------------------------------------------------------------------
    def update(self, arm: str, reward: float, probability: float = 1.0, cost: float = 1.0) -> None:
        """Reward one pull of ``arm``. ``probability``: the chance the policy gave the arm
        when it was chosen (EXP3's importance weight; ignored by the other policies).
        ``cost``: what the pull weighs, 1 for an average one (``bandit.reward_per``): the
        arm's mean becomes reward per unit of cost, and Thompson sampling counts the
        unrewarded part of the cost as failures."""
        if arm not in self.stats:
            raise KeyError(f"unknown arm {arm!r}")
        if not cost > 0:
            raise ValueError(f"a pull's cost must be positive (got {cost})")
        reward = min(max(float(reward), 0.0), 1.0)
        update = _Update(arm, reward, max(float(probability), 1e-12), float(cost))
        self.stats[arm].pulls += 1
        if self.config.window is not None:
            self._recent.append(update)
            if len(self._recent) > self.config.window:
                old = self._recent.popleft()
                self._apply(old, -1.0)
            self._apply(update, 1.0)
            return
        if self.config.discount is not None and self.config.discount < 1.0:
            for stats in self.stats.values():
                stats.weight_sum *= self.config.discount
                stats.reward_sum *= self.config.discount
                stats.gain *= self.config.discount
        self._apply(update, 1.0)

    def _apply(self, update: _Update, sign: float) -> None:
        stats = self.stats[update.arm]
        stats.weight_sum += sign * update.cost
        stats.reward_sum += sign * update.reward
        stats.gain += sign * update.reward / (update.probability * update.cost)
        if abs(stats.weight_sum) < 1e-9:  # a window emptied of this arm: no float residue
            stats.weight_sum = stats.reward_sum = stats.gain = 0.0

    def snapshot(self) -> dict:
        p = self.probabilities()
        return {
            "policy": self.policy,
            "config": {k: v for k, v in self.config.__dict__.items()},
            "arms": {
                a: {"pulls": s.pulls, "mean_reward": s.mean, "probability": p[a],
                    "effective_pulls": s.weight_sum, "weight": float(w)}
                for (a, s), w in zip(self.stats.items(), self._prior)
            },
        }


def _argmax_masked(values: np.ndarray, mask: np.ndarray) -> int:
    values = np.where(mask, values, -np.inf)
    return int(np.argmax(values))


def _normalise(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = np.where(mask, weights, 0.0)
    return weights / weights.sum()


def _uniform(bandit: Bandit, pending: Counter, mask: np.ndarray) -> np.ndarray:
    return _normalise(bandit._prior, mask)


def _ucb1(bandit: Bandit, pending: Counter, mask: np.ndarray) -> np.ndarray:
    pulls = np.array([bandit.stats[a].weight_sum + pending[a] for a in bandit.arms], dtype=float)
    choice = np.zeros(len(pulls))
    untried = mask & (pulls <= 0)
    if untried.any():
        # Untried arms first, the heaviest prior first, then in order: deterministic and cheap.
        choice[_argmax_masked(np.where(untried, bandit._prior, -np.inf), untried)] = 1.0
        return choice
    means = np.array([bandit.stats[a].mean for a in bandit.arms])
    total = pulls[mask].sum()
    # Masked arms may be untried: keep their (unused) bonus finite.
    bonus = bandit.config.exploration * np.sqrt(max(math.log(total), 0.0) / np.maximum(pulls, 1e-12))
    choice[_argmax_masked(bandit._prior * (means + bonus), mask)] = 1.0
    return choice


def _exp3(bandit: Bandit, pending: Counter, mask: np.ndarray) -> np.ndarray:
    k = int(mask.sum())
    gamma = bandit.config.gamma
    gains = np.array([bandit.stats[a].gain for a in bandit.arms])
    logits = np.where(mask, (gamma / k) * gains + np.log(bandit._prior), -np.inf)
    exploit = np.exp(logits - logits[mask].max())
    exploit /= exploit.sum()
    return (1.0 - gamma) * exploit + gamma * _normalise(bandit._prior, mask)


_POLICIES: dict[str, Callable[[Bandit, Counter, np.ndarray], np.ndarray]] = {
    "uniform": _uniform,
    "ucb1": _ucb1,
    "exp3": _exp3,
}
