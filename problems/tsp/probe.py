"""The functional hash's probe for TSP: fixed states on which a heuristic's choices are its
behaviour signature (``harness.decide``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from problems.base import Dataset
from problems.tsp import harness as _harness
from problems.tsp.sets import euclidean_matrix


def probe_states(train: Dataset, n: int) -> tuple[tuple[np.ndarray, ...], tuple[dict[str, Any], ...]]:
    """Deterministic probe: half states along nearest neighbour's own tours on the first
    training instances, 30% perturbed (random current city and random unvisited subsets of
    all sizes), 20% rare cases (one or two cities left, equidistant cities, a symmetric
    instance full of ties).

    Every state asks the harness for the heuristic's whole ranking of the unvisited cities
    (``"rank": True``, see ``harness.decide``), not its pick alone: picks alone, even 200
    of them, merged heuristics whose tours differ (one pick in 200 to 1,000 differs, and
    an evaluation makes 3,136)."""
    rng = np.random.default_rng(20240601)
    insts = train.instances[:2]
    matrices = [i.seen for i in insts]
    states: list[dict[str, Any]] = []
    n_traj, n_rare = n // 2, n // 5
    # 1. Along nearest neighbour's tours.
    per = [n_traj // len(insts) + (1 if i < n_traj % len(insts) else 0) for i in range(len(insts))]
    for m, (matrix, count) in enumerate(zip(matrices, per)):
        t = _harness.tour(_nearest, matrix)
        cities = len(matrix)
        for s in sorted(set(np.linspace(1, cities - 1, count).round().astype(int).tolist())):
            visited = np.zeros(cities, dtype=bool)
            visited[t[:s]] = True
            states.append({"matrix": m, "current": int(t[s - 1]), "unvisited": np.flatnonzero(~visited)})
    # 2. Perturbed.
    n_pert = n - len(states) - n_rare
    for _ in range(n_pert):
        m = int(rng.integers(len(matrices)))
        cities = len(matrices[m])
        k = int(rng.integers(1, cities))  # unvisited count
        unvisited = np.sort(rng.choice(np.arange(1, cities), size=k, replace=False))
        others = np.setdiff1d(np.arange(cities), unvisited)
        states.append({"matrix": m, "current": int(rng.choice(others)), "unvisited": unvisited})
    # 3. Rare cases, on a plus-shaped instance full of exact ties, and the training ones.
    plus = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [2, 0], [0, 2], [-2, 0], [0, -2]], float)
    matrices.append(euclidean_matrix(plus))
    p = len(matrices) - 1
    rare = [
        {"matrix": p, "current": 0, "unvisited": np.arange(1, 9)},  # four equidistant nearest
        {"matrix": p, "current": 1, "unvisited": np.array([2, 4, 5])},  # tie 2/4 vs 5 nearest
        {"matrix": p, "current": 5, "unvisited": np.array([6, 8])},  # exact tie, both far
        {"matrix": p, "current": 3, "unvisited": np.array([7])},  # one city left
        {"matrix": 0, "current": 0, "unvisited": np.arange(1, len(matrices[0]))},  # first step
    ]
    while len(rare) < n_rare:
        m = int(rng.integers(len(matrices)))
        cities = len(matrices[m])
        k = int(rng.integers(2, 4))  # two or three cities left
        unvisited = np.sort(rng.choice(np.arange(1, cities), size=k, replace=False))
        others = np.setdiff1d(np.arange(cities), unvisited)
        rare.append({"matrix": m, "current": int(rng.choice(others)), "unvisited": unvisited})
    states.extend(rare[:n_rare])
    return tuple(matrices), tuple({**state, "rank": True} for state in states[:n])


def _nearest(current_node, destination_node, unvisited_nodes, distance_matrix):
    return unvisited_nodes[np.argmin(distance_matrix[current_node][unvisited_nodes])]
