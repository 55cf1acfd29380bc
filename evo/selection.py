"""Parent selection: which elites of the archive an operator is shown (``archive.selection``,
or an operator's own ``selection``).

- uniform: every elite alike (MAP-Elites' own rule: diversity first);
- tournament: the best of ``tournament`` elites drawn at random, k times;
- curiosity: in proportion to how often an elite's children entered the archive
  (Laplace-smoothed, so an elite without children counts as one success in two).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from evo.archive import Elite

SELECTION_RULES = ("uniform", "tournament", "curiosity")


def select(elites: Sequence[Elite], k: int, rng: np.random.Generator, rule: str, tournament: int,
           curiosity: Callable[[int], float]) -> list[int]:
    """The ids of k distinct elites (fewer if there are fewer). ``elites`` are sorted best
    first; ``curiosity`` gives an elite's weight by its id."""
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
    if rule == "curiosity":
        weights = np.array([curiosity(e.cid) for e in elites])
        picks = rng.choice(len(elites), size=k, replace=False, p=weights / weights.sum())
        return [elites[int(i)].cid for i in picks]
    raise ValueError(f"unknown selection rule {rule!r}; choose from {', '.join(SELECTION_RULES)}")
