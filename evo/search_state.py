"""Everything the search derives from the committed candidates.

The archive, the bandit, the hash tables, the parents' offspring statistics (for
curiosity selection) and the long-term reflection's memory are a pure function of the
candidates in the store, applied in id order. The live run and a rebuild from the store
go through the same ``tell``, so a resumed run continues from exactly the state it left.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from evo.archive import Archive, MeasureAxis, RecordedArchive
from evo.bandit import Bandit, BanditConfig, arm_name, arm_operator
from evo.operators import OPERATORS
from evo.reflection import Memory
from evo.selection import select
from evo.settings import Settings
from evo.store import CandidateRecord, Store

# Statuses whose code ran and failed: candidates the repair operator can work on.
REPAIRABLE = ("invalid", "timeout", "memory", "crashed", "forbidden", "error")
# Under bandit.reward_per = usd | second, the least a pull weighs, as a share of the run's
# mean cost per request: a free answer (a local model priced at 0) is strongly preferred
# per unit of cost, but ten of them that improve nothing weigh like one average failure,
# so a free model that never helps still loses its pulls.
MIN_COST_SHARE = 0.1


@dataclass(frozen=True)
class Told:
    """What telling the state about a candidate changed."""

    archive_status: int
    cell: int | None
    reward: float
    best_score: float | None
    coverage: float
    qd_score: float


@dataclass
class SearchState:
    archive: Archive | RecordedArchive
    bandit: Bandit
    _memory: Memory
    reward: str = "improvement"
    reward_per: str = "request"  # what a pull weighs: 1, or its cost in usd or seconds (see _cost)
    free_models: frozenset[str] = frozenset()  # models whose time is no cost (the offline model)
    records: dict[int, CandidateRecord] = field(default_factory=dict)
    by_syntax: dict[str, int] = field(default_factory=dict)
    by_function: dict[str, int] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)
    children: Counter = field(default_factory=Counter)  # parent id -> children evaluated
    successes: Counter = field(default_factory=Counter)  # parent id -> children that entered the archive
    # EXP3 weighs a reward by the chance its arm had when the candidate was planned: the
    # bandit's probabilities after each candidate that a plan in flight may have seen (a
    # record's ``batch`` is the last candidate committed when it was planned).
    _chances: dict[int, dict[str, float]] = field(default_factory=dict)
    # Observations for the long-term reflection, fed to its memory when it is read: only
    # planning reads it, and a read-only command need not pay for parsing every candidate.
    _unobserved: list[tuple[str, float, str, float]] = field(default_factory=list)
    _cost_sum: float = 0.0  # the costs of the bandit's pulls so far (bandit.reward_per), and their number
    _cost_count: int = 0

    @classmethod
    def empty(cls, axes: tuple[MeasureAxis, ...], qd_reference: float, arms: tuple[str, ...],
              bandit: BanditConfig | str = "ucb1", weights: dict[str, float] | None = None,
              recorded: bool = False, free_models: frozenset[str] = frozenset()) -> "SearchState":
        """``recorded``: take each candidate's archive verdict and reward as recorded at
        its commit instead of computing them (see ``as_recorded``)."""
        config = bandit if isinstance(bandit, BanditConfig) else BanditConfig(policy=bandit)
        archive = RecordedArchive(axes) if recorded else Archive(axes, qd_reference)
        return cls(archive, Bandit(arms, config, dict(weights or {})), Memory(), reward=config.reward,
                   reward_per=config.reward_per, free_models=free_models)

    @classmethod
    def for_settings(cls, settings: Settings, recorded: bool = False) -> "SearchState":
        free = frozenset(m.name for m in settings.models if not m.asks_llm)
        return cls.empty(settings.axes, settings.qd_reference, settings.arms, settings.bandit,
                         settings.arm_weights, recorded, free)

    @classmethod
    def from_store(cls, store: Store, settings: Settings, below: int | None = None) -> "SearchState":
        """The state after the committed candidates with id < ``below`` (all by default)."""
        state = cls.for_settings(settings)
        for record in store.candidates(below=below):
            state.tell(record)
        return state

    @classmethod
    def as_recorded(cls, store: "Store", settings: "Settings") -> "SearchState":
        """The state after every committed candidate, the archive as the run recorded it:
        what read-only commands show. Each record's cell, archive status and reward are
        what the engine computed at its commit, so this equals ``from_store`` (the tests
        check it) without pyribs, whose import alone takes about 3 s."""
        state = cls.for_settings(settings, recorded=True)
        for record in store.candidates():
            state.tell(record)
        return state

    def digest(self) -> str:
        """The archive digest: equal archives, equal digests (see Archive.digest)."""
        return self.archive.digest(self.code_hashes())

    def tell(self, record: CandidateRecord) -> Told:
        """Apply one finished candidate; ``record``'s archive fields are ignored and
        recomputed (unless the archive is a recorded one)."""
        status, cell, reward = self._offer(record)
        arm = arm_name(record.operator, record.model_name)
        if arm in self.bandit.stats:
            self.bandit.update(arm, reward, self._chance(record, arm), self._cost(record))
        self._learn_from(record, status)
        self.records[record.id] = record
        if record.syntactic_hash:
            self.by_syntax.setdefault(record.syntactic_hash, record.id)
        if record.functional_hash and record.equivalent_to is None:
            self.by_function.setdefault(record.functional_hash, record.id)
        if record.status not in ("ok", "equivalent", "llm_failed") and record.code:
            self.failed.append(record.id)
        self._remember_chances(record)
        best = self.archive.best()
        return Told(status, cell, reward, None if best is None else best.score,
                    self.archive.coverage, self.archive.qd_score)

    def _chance(self, record: CandidateRecord, arm: str) -> float:
        if self.bandit.policy != "exp3":
            return 1.0  # only EXP3's update reads it
        return self._chances[record.batch].get(arm, 1.0)

    def _cost(self, record: CandidateRecord) -> float:
        """What the candidate's pull weighs: 1 per request, or its cost (the answer's USD,
        or the seconds the model took) over the mean cost of the pulls so far, this one
        included, at least MIN_COST_SHARE. While nothing has cost anything, 1. The
        offline model's time counts as nothing: it is not an LLM's, and counting it would
        make the run depend on the machine. (Recorded costs come back from the cache on a
        resume, so a rebuilt state weighs every pull as the live run did.)"""
        if self.reward_per == "request":
            return 1.0
        cost = record.cost_usd if self.reward_per == "usd" else record.llm_s
        if record.model_name in self.free_models:
            cost = 0.0
        self._cost_sum += max(cost, 0.0)
        self._cost_count += 1
        mean = self._cost_sum / self._cost_count
        return 1.0 if mean <= 0 else max(cost / mean, MIN_COST_SHARE)

    def _remember_chances(self, record: CandidateRecord) -> None:
        """The probabilities after ``record``, for the candidates planned from here. Only
        for EXP3: a Monte Carlo estimate per candidate (Thompson) would cost more than the
        rest of a replay."""
        if self.bandit.policy != "exp3":
            return
        for seen in [k for k in self._chances if k < record.batch]:  # planned from earlier states: none left
            del self._chances[seen]
        available = self.available_arms()
        self._chances[record.id] = self.bandit.probabilities(available) if available else {}

    def _offer(self, record: CandidateRecord) -> tuple[int, int | None, float]:
        """Offer the candidate to the archive: its status there (0 not added, 1 improved,
        2 new cell), its cell, and the bandit's reward for it."""
        if isinstance(self.archive, RecordedArchive):
            if record.archive_status > 0:
                self.archive.enter(record.id, record.score, record.measures, record.cell, record.qd_score)
            return record.archive_status, record.cell, record.reward
        qd_before = self.archive.qd_score
        status, cell = 0, None
        if record.status == "ok" and record.score is not None and record.measures is not None:
            status, cell = self.archive.add(record.id, record.score, record.measures)
        return status, cell, self._reward(status, self.archive.qd_score - qd_before)

    def _reward(self, status: int, qd_gain: float) -> float:
        if self.reward == "qd_gain":
            # The QD gain as a share of what one elite with a perfect score adds: a new
            # cell is worth up to 1, a better elite the improvement of its score.
            return min(max(qd_gain / self.archive.qd_reference, 0.0), 1.0)
        return 1.0 if status > 0 else 0.0

    def _learn_from(self, record: CandidateRecord, status: int) -> None:
        """Offspring statistics for curiosity, and the long-term reflection's evidence."""
        if record.status == "llm_failed" or not record.parents:
            return  # no child was made: nothing to say about its parents
        for parent in set(record.parents):
            self.children[parent] += 1
            self.successes[parent] += status > 0
        first = self.records.get(record.parents[0])
        if (record.status == "ok" and record.score is not None and first is not None
                and first.status == "ok" and first.score is not None):
            self._unobserved.append((first.code, first.score, record.code, record.score))

    @property
    def memory(self) -> Memory:
        """The long-term reflection's evidence, up to the last candidate told."""
        for observation in self._unobserved:
            self._memory.observe(*observation)
        self._unobserved.clear()
        return self._memory

    # ---- what planning reads -----------------------------------------------------------
    def available_arms(self) -> tuple[str, ...]:
        """The arms whose operator can work now: a repair needs a failure, and an operator
        that shows k parents needs k elites (a lone seed cannot be crossed). When only
        operators of two parents are enabled, they work with one until there are two."""
        strict = self._available(lambda op: max(op.arity, 1))
        return strict or self._available(lambda op: 1)

    def _available(self, needs) -> tuple[str, ...]:
        out = []
        for arm in self.bandit.arms:
            op = OPERATORS[arm_operator(arm)]
            if op.source == "failed":
                ok = bool(self.failed)
            elif op.source == "none":
                ok = True
            else:
                ok = len(self.archive) >= needs(op)
            if ok:
                out.append(arm)
        return tuple(out)

    def elite_ids(self) -> list[int]:
        return [e.cid for e in self.archive.elites()]

    def select(self, k: int, rng: np.random.Generator, rule: str, tournament: int) -> list[int]:
        """k distinct elites (fewer if the archive holds fewer), by the selection rule (see evo.selection)."""
        return select(self.archive.elites(), k, rng, rule, tournament, self.curiosity)

    def curiosity(self, cid: int) -> float:
        return (self.successes[cid] + 1.0) / (self.children[cid] + 2.0)

    def code_hashes(self) -> dict[int, str]:
        return {cid: r.syntactic_hash or "" for cid, r in self.records.items()}
