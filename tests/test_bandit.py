"""The operator bandit on synthetic arms: regret in the order theory predicts, forgetting,
prior weights, pending pulls, availability, and the snapshot `evo inspect` shows."""
from collections import Counter

import numpy as np
import pytest

from evo.bandit import Bandit, BanditConfig, arm_name

MEANS = (0.1, 0.2, 0.3, 0.35, 0.5)
ARMS = tuple(f"a{i}" for i in range(len(MEANS)))


def play(config: BanditConfig, means, horizon: int, seed: int, change_at: int | None = None,
         weights: dict | None = None) -> tuple[float, Counter]:
    """Pseudo-regret of one seeded run on Bernoulli arms; ``change_at``: there the worst
    arm becomes the best by far (an arm the policy has learnt to leave alone)."""
    bandit = Bandit(tuple(f"a{i}" for i in range(len(means))), config, weights or {})
    rng, env = np.random.default_rng(seed), np.random.default_rng(1000 + seed)
    regret, pulls = 0.0, Counter()
    current = np.array(means)
    for t in range(horizon):
        if change_at is not None and t == change_at:
            current[int(np.argmin(current))] = 0.9
        # EXP3 weighs a reward by the chance its arm had; the others ignore it.
        probabilities = bandit.probabilities() if config.policy == "exp3" else None
        arm = bandit.choose(rng)
        i = int(arm[1:])
        bandit.update(arm, float(env.random() < current[i]), probabilities[arm] if probabilities else 1.0)
        regret += current.max() - current[i]
        pulls[arm] += 1
    return regret, pulls


def mean_regret(config: BanditConfig, horizon: int = 1500, seeds: int = 4, **kw) -> float:
    return float(np.mean([play(config, MEANS, horizon, s, **kw)[0] for s in range(seeds)]))


def test_regret_follows_theory_on_bernoulli_arms():
    uniform = mean_regret(BanditConfig("uniform"))
    ucb1 = mean_regret(BanditConfig("ucb1"))
    thompson = mean_regret(BanditConfig("thompson"))
    exp3 = mean_regret(BanditConfig("exp3"))
    # Uniform's regret grows linearly (mean gap 0.21 per pull); UCB1's and Thompson's
    # logarithmically, Thompson with the smaller constant; EXP3, made for adversaries,
    # pays its fixed exploration share and a sqrt(T) learning cost but still learns.
    assert uniform == pytest.approx(1500 * (0.5 - np.mean(MEANS)), rel=0.05)
    assert thompson < ucb1 < 0.4 * uniform
    assert thompson < 0.15 * uniform
    assert exp3 < 0.5 * uniform


def test_forgetting_follows_a_change_of_the_best_arm():
    # Thompson sampling's posterior on an arm it has learnt to avoid is narrow, so it
    # hardly ever tries it again; forgetting widens it. (UCB1's bonus grows for an arm
    # left alone, so it re-explores by itself and forgetting only adds exploration: on
    # this scenario its plain form is best, which is why forgetting is off by default.)
    horizon, change = 2000, 1000
    plain = mean_regret(BanditConfig("thompson"), horizon, change_at=change)
    assert mean_regret(BanditConfig("thompson", discount=0.995), horizon, change_at=change) < 0.6 * plain
    assert mean_regret(BanditConfig("thompson", window=200), horizon, change_at=change) < 0.6 * plain
    plain = mean_regret(BanditConfig("exp3"), horizon, change_at=change)
    assert mean_regret(BanditConfig("exp3", window=400), horizon, change_at=change) < 0.85 * plain


def test_a_window_remembers_exactly_its_last_updates():
    rng = np.random.default_rng(3)
    history = [(ARMS[int(rng.integers(5))], float(rng.random() < 0.4), float(rng.uniform(0.1, 1))) for _ in range(60)]
    windowed = Bandit(ARMS, BanditConfig("exp3", window=20))
    fresh = Bandit(ARMS, BanditConfig("exp3"))
    for update in history:
        windowed.update(*update)
    for update in history[-20:]:
        fresh.update(*update)
    for arm in ARMS:
        assert windowed.stats[arm].weight_sum == pytest.approx(fresh.stats[arm].weight_sum)
        assert windowed.stats[arm].reward_sum == pytest.approx(fresh.stats[arm].reward_sum)
        assert windowed.stats[arm].gain == pytest.approx(fresh.stats[arm].gain)
    assert windowed.probabilities() == pytest.approx(fresh.probabilities())
    assert sum(windowed.stats[a].pulls for a in ARMS) == 60  # pulls count everything


def test_a_discount_weighs_an_update_by_gamma_to_its_age():
    bandit = Bandit(("a", "b"), BanditConfig("ucb1", discount=0.5))
    for reward in (1.0, 0.0, 1.0):
        bandit.update("a", reward)
    bandit.update("b", 1.0)
    # a: rewards 1, 0, 1 of ages 3, 2, 1 -> weights 1/8, 1/4, 1/2
    assert bandit.stats["a"].weight_sum == pytest.approx(0.875)
    assert bandit.stats["a"].reward_sum == pytest.approx(0.625)
    assert bandit.stats["b"].weight_sum == pytest.approx(1.0)


@pytest.mark.parametrize("policy", ["uniform", "exp3", "thompson"])
def test_weights_are_priors_that_shift_the_choice(policy):
    # Equal evidence on both arms: the weighted arm is chosen more often, in proportion
    # under the randomised policies.
    bandit = Bandit(("light", "heavy"), BanditConfig(policy), {"light": 1.0, "heavy": 3.0})
    for _ in range(10):
        bandit.update("light", 0.5, 0.5)
        bandit.update("heavy", 0.5, 0.5)
    rng = np.random.default_rng(0)
    picks = Counter(bandit.choose(rng) for _ in range(4000))
    assert picks["heavy"] > 2 * picks["light"]
    if policy == "uniform":
        assert bandit.probabilities() == pytest.approx({"light": 0.25, "heavy": 0.75})


def test_ucb1_weight_needs_more_evidence_against_the_heavy_arm():
    config = BanditConfig("ucb1")
    light_better = {"light": (12, 6.0), "heavy": (12, 4.5)}  # means 0.5 against 0.375
    for weights, expected in (({}, "light"), ({"heavy": 2.0}, "heavy")):
        bandit = Bandit(("light", "heavy"), config, weights)
        for arm, (n, total) in light_better.items():
            for i in range(n):
                bandit.update(arm, total / n)
        assert bandit.choose(np.random.default_rng(0)) == expected


def test_ucb1_spreads_a_batch_over_arms_with_pending_pulls():
    bandit = Bandit(ARMS, BanditConfig("ucb1"))
    for arm in ARMS:
        bandit.update(arm, 0.5)
    pending, batch = Counter(), []
    for _ in range(5):
        arm = bandit.choose(np.random.default_rng(0), pending)
        pending[arm] += 1
        batch.append(arm)
    assert len(set(batch)) == 5  # without pending, all five would be the same argmax


@pytest.mark.parametrize("policy", ["uniform", "ucb1", "thompson", "exp3"])
def test_unavailable_arms_are_never_chosen(policy):
    bandit = Bandit(ARMS, BanditConfig(policy))
    rng = np.random.default_rng(1)
    for _ in range(200):
        arm = bandit.choose(rng, Counter(), available=("a1", "a3"))
        assert arm in ("a1", "a3")
        bandit.update(arm, 1.0 if arm == "a1" else 0.0, 0.5)
    p = bandit.probabilities(available=("a3",))
    assert p["a3"] == pytest.approx(1.0) and sum(p.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bandit.choose(rng, Counter(), available=())


@pytest.mark.parametrize("policy", ["uniform", "ucb1", "thompson", "exp3"])
def test_one_seed_gives_one_sequence_and_a_readable_snapshot(policy):
    first = play(BanditConfig(policy), MEANS, 300, seed=5)
    second = play(BanditConfig(policy), MEANS, 300, seed=5)
    assert first == second
    bandit = Bandit(ARMS, BanditConfig(policy))
    bandit.update("a2", 1.0, 0.2)
    snap = bandit.snapshot()
    assert snap["policy"] == policy
    assert set(snap["arms"]) == set(ARMS)
    assert snap["arms"]["a2"]["pulls"] == 1 and snap["arms"]["a2"]["mean_reward"] == 1.0
    assert sum(a["probability"] for a in snap["arms"].values()) == pytest.approx(1.0)


def test_bad_configs_are_refused():
    for bad in (dict(policy="greedy"), dict(reward="loss"), dict(discount=0.0), dict(window=0),
                dict(discount=0.9, window=10), dict(gamma=0.0)):
        with pytest.raises(ValueError):
            BanditConfig(**{"policy": "ucb1", **bad})
    with pytest.raises(ValueError):
        Bandit(("a",), BanditConfig(), {"a": 0.0})


def test_arm_names_extend_to_operator_and_model_pairs():
    assert arm_name("m1") == "m1"
    assert arm_name("m1", "gpt-4o") == "m1@gpt-4o"
