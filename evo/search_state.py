"""Everything the search derives from the committed candidates.

The archive, the bandit, the hash tables and the statistics are a pure function of the
candidates in the store, applied in id order. The live run and a rebuild from the store
go through the same ``tell``, so a resumed run continues from exactly the state it left.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from evo.archive import Archive, MeasureAxis
from evo.bandit import Bandit
from evo.store import CandidateRecord

if TYPE_CHECKING:
    from evo.settings import Settings
    from evo.store import Store


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
    archive: Archive
    bandit: Bandit
    records: dict[int, CandidateRecord] = field(default_factory=dict)
    by_syntax: dict[str, int] = field(default_factory=dict)
    by_function: dict[str, int] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls, axes: tuple[MeasureAxis, ...], qd_reference: float, arms: tuple[str, ...],
              policy: str) -> "SearchState":
        return cls(Archive(axes, qd_reference), Bandit(arms, policy))

    @classmethod
    def from_store(cls, store: "Store", settings: "Settings", below: int | None = None) -> "SearchState":
        """The state after the committed candidates with id < ``below`` (all by default)."""
        state = cls.empty(settings.axes, settings.qd_reference, settings.operators, settings.bandit_policy)
        for record in store.candidates(below=below):
            state.tell(record)
        return state

    def digest(self) -> str:
        """The archive digest: equal archives, equal digests (see Archive.digest)."""
        return self.archive.digest(self.code_hashes())

    def tell(self, record: CandidateRecord) -> Told:
        """Apply one finished candidate; ``record``'s archive fields are ignored and recomputed."""
        status, cell = 0, None
        if record.status == "ok" and record.score is not None and record.measures is not None:
            status, cell = self.archive.add(record.id, record.score, record.measures)
        reward = 1.0 if status > 0 else 0.0
        if record.operator in self.bandit.stats:
            self.bandit.update(record.operator, reward)
        self.records[record.id] = record
        if record.syntactic_hash:
            self.by_syntax.setdefault(record.syntactic_hash, record.id)
        if record.functional_hash and record.equivalent_to is None:
            self.by_function.setdefault(record.functional_hash, record.id)
        if record.status not in ("ok", "equivalent", "llm_failed") and record.code:
            self.failed.append(record.id)
        best = self.archive.best()
        return Told(status, cell, reward, None if best is None else best.score,
                    self.archive.coverage, self.archive.qd_score)

    def elite_ids(self) -> list[int]:
        return [e.cid for e in self.archive.elites()]

    def select(self, k: int, rng: np.random.Generator, rule: str, tournament: int) -> list[int]:
        """k distinct elites (fewer if the archive holds fewer), by the selection rule."""
        elites = self.archive.elites()
        if not elites:
            return []
        k = min(k, len(elites))
        if rule == "uniform":
            picks = rng.choice(len(elites), size=k, replace=False)
            return [elites[int(i)].cid for i in picks]
        if rule == "tournament":
            pool = list(range(len(elites)))  # indices into elites, which are sorted best first
            chosen: list[int] = []
            for _ in range(k):
                entrants = rng.choice(len(pool), size=min(tournament, len(pool)), replace=False)
                chosen.append(pool.pop(int(min(entrants))))
            return [elites[i].cid for i in chosen]
        raise ValueError(f"unknown selection rule {rule!r}")

    def code_hashes(self) -> dict[int, str]:
        return {cid: r.syntactic_hash or "" for cid, r in self.records.items()}
