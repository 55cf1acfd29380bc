"""Constructive TSP as in EoH: the trusted side (the task, verification, scoring, replay).

Score on every set: the mean over instances of the gap % of the heuristic's tour to a
reference tour length. On TSPLIB the reference is the published optimum under TSPLIB's own
distance; on the seeded random sets it is a tour computed once with LKH (elkai, see
bench/make_tsp_reference.py), shipped in data/reference.json; on the user's own files, the
optimum they give (a CSV, or a ``.opt.tour`` beside the file). A set without one for every
instance is scored by its mean tour length instead. The training score is the same gap %
(on 64 x 50 random cities): unlike a mean length it is comparable across sets and sizes.
The mean tour length (comparable with ReEvo's table) is in ``Verdict.metrics["mean_length"]``.

The heuristic sees every instance at the training set's scale (``sets.py``): the distance
matrix divided by the side of the square that holds the cities. Tours are measured in the
instance's own metric.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from problems.base import Dataset, Infeasible, Replay, Verdict
from problems.tsp.probe import probe_states
from problems.tsp.sets import is_bundled, load_set
from problems.tsp.tours import check_tour, checked_tours, nearest_steps, tour_lengths
from problems.tsp.tsplib import read_optima

DEFAULT_TESTS = ("tsp20", "tsp50", "tsp100", "tsp200", "tsplib")

# Written as "score the unvisited nodes, take the best": the offline AST mutator edits the
# right-hand side of `scores = ...` (one of the VOCABULARY expressions, or a combination),
# and the return line stays valid whatever the scores become.
NEAREST_NEIGHBOUR = '''import numpy as np


def select_next_node(current_node: int, destination_node: int, unvisited_nodes: np.ndarray,
                     distance_matrix: np.ndarray) -> int:
    """Nearest neighbour: go to the closest unvisited city."""
    scores = distance_matrix[current_node][unvisited_nodes]
    return unvisited_nodes[np.argmin(scores)]
'''

DESCRIPTION = """\
Constructive heuristic for the travelling salesman problem. A tour starts at node 0 (the
destination_node) and must visit every city exactly once before returning to node 0. The
goal is the shortest closed tour.

The function `select_next_node(current_node, destination_node, unvisited_nodes,
distance_matrix)` is called once for every step of the tour. It receives the current city
(int), the destination node 0 (int), a 1-d numpy int array of the cities not yet visited
(in increasing order) and the full (n, n) numpy distance matrix (read-only). It must return
the next city to visit: one element of unvisited_nodes (a city number, not a position in
that array). Every instance is given at one scale, as if its cities lay in the unit square:
the matrix is the instance's distances divided by the side of the square that holds its
cities, so distances are between 0 and about 1.4 whatever the instance's own units.

How heuristics are compared (the function does not compute this): by the length of their
tours (in each instance's own units) on random instances with cities uniform in the unit
square, reported as the gap % to near-optimal tours; lower is better."""

SIGNATURE = ("def select_next_node(current_node: int, destination_node: int, "
             "unvisited_nodes: np.ndarray, distance_matrix: np.ndarray) -> int:")

# For the offline mutation model: each expression is a *score array over unvisited_nodes*
# (one value per unvisited city; the seed takes the argmin), or a scalar that broadcasts.
# Each is an atom for the mutator (a subscript, or a method called on one with keyword
# arguments only): its parts have other shapes (the (k, k) matrix of distances among the
# unvisited cities, an axis number), and an edit that took one apart made a (k, k) score or
# an `axis=1.1`, which failed about one candidate in four.
VOCABULARY = (
    "distance_matrix[current_node][unvisited_nodes]",
    "distance_matrix[destination_node][unvisited_nodes]",
    "distance_matrix[unvisited_nodes][:, unvisited_nodes].mean(axis=1)",
    "(distance_matrix[unvisited_nodes][:, unvisited_nodes] + np.eye(len(unvisited_nodes)) * 1e9).min(axis=1)",
    "distance_matrix[unvisited_nodes][:, unvisited_nodes].std(axis=1)",
    "distance_matrix[unvisited_nodes][:, unvisited_nodes].max(axis=1)",
    "distance_matrix[current_node][unvisited_nodes].mean()",
    "distance_matrix[current_node][unvisited_nodes].min()",
    "distance_matrix.mean()",
    "distance_matrix[current_node][destination_node]",
    "unvisited_nodes.size / distance_matrix.shape[0]",
    "distance_matrix[destination_node][unvisited_nodes] * unvisited_nodes.size / distance_matrix.shape[0]",
)


class TSP:
    """EoH's constructive TSP.

    Keyword arguments (all optional, as in conf/problem/tsp.yaml):
      train: the training set (default "train" = random-64x50-seed0, 64 instances of 50
        cities): a bundled set's name, or a ``.tsp`` file or a glob of them.
      tests: the test sets, each named like ``train`` (default tsp20, tsp50, tsp100, tsp200:
        64 seeded random instances each, and "tsplib": 25 TSPLIB instances of 51 to 280
        cities).
      optima: a CSV file with columns name,optimum: the optima of the instances of the files
        named in train and tests, by file stem (a ``.opt.tour`` beside a file gives one too).
    """

    name = "tsp"
    entry = "select_next_node"
    arg_names = ("current_node", "destination_node", "unvisited_nodes", "distance_matrix")
    harness = "problems.tsp.harness"
    description = DESCRIPTION
    signature = SIGNATURE
    score_name = "gap %"
    seed_code = NEAREST_NEIGHBOUR
    baselines = {"nearest_neighbour": NEAREST_NEIGHBOUR}
    vocabulary = VOCABULARY

    def __init__(self, train: str = "train", tests: Sequence[str] = DEFAULT_TESTS, optima: str | None = None):
        self.train_name = str(train)
        self.test_names = tuple(str(t) for t in tests)
        self.optima = None if optima is None else str(optima)
        files = [entry for entry in (self.train_name, *self.test_names) if not is_bundled(entry)]
        if self.optima is not None:
            if not files:
                raise ValueError(f"optima {self.optima!r}: no set is a file, so no optimum is looked up "
                                 "(bundled sets have their own references)")
            read_optima(Path(self.optima))  # a malformed table fails now, not at the first test
        for entry in files:  # a missing or malformed file fails now, not at the first test
            load_set(entry, self.optima)

    def train_set(self) -> Dataset:
        return load_set(self.train_name, self.optima)

    def test_sets(self) -> dict[str, Dataset]:
        return {name: load_set(name, self.optima) for name in self.test_names}

    def solve_payload(self, dataset: Dataset) -> dict[str, Any]:
        return {"matrices": [i.seen for i in dataset.instances]}

    # ---- checking and scoring ------------------------------------------------------
    def verify(self, dataset: Dataset, decisions: Any) -> Verdict:
        """Each tour is [0, ..., 0] visiting every city once; score = mean gap % to the
        reference (or the mean length when a set has no reference), in the instance's own
        metric.

        Behaviour measure: the share of steps (with a real choice: two or more cities left)
        that go to a nearest unvisited city. Nearest neighbour is 1; heuristics that look
        ahead (to the destination, to clusters) lower it. It says how greedy the heuristic
        is, the main way constructive TSP heuristics differ."""
        instances = dataset.instances
        if not isinstance(decisions, (list, tuple)) or len(decisions) != len(instances):
            got = len(decisions) if isinstance(decisions, (list, tuple)) else type(decisions).__name__
            raise Infeasible(f"expected a list of {len(instances)} tours, got {got}")
        lengths = np.empty(len(instances))
        nearest = choices = 0
        for idx, tours in checked_tours(instances, decisions):
            # Chunks of 256 kB of matrices keep the temporaries (about three times that) under
            # a megabyte: larger ones went back to the OS after each verify and cost as many
            # page faults (750 a training set) as the vectorising saved.
            n = tours.shape[1] - 1
            chunk = max(1, (1 << 15) // max(1, n * n))
            for lo in range(0, len(idx), chunk):
                part = idx[lo:lo + chunk]
                matrices = np.stack([instances[i].matrix for i in part])
                lengths[part] = tour_lengths(matrices, tours[lo:lo + chunk])
                a, b = nearest_steps(matrices, tours[lo:lo + chunk])
                nearest += a
                choices += b
        lengths = lengths.tolist()
        gaps = [(length - inst.reference) / inst.reference * 100.0
                for inst, length in zip(instances, lengths) if inst.reference is not None]
        mean_length = float(np.mean(lengths))
        has_ref = len(gaps) == len(instances)
        score = float(np.mean(gaps)) if has_ref else mean_length
        metrics = {"mean_length": mean_length}
        if has_ref:
            metrics["mean_reference"] = float(np.mean([i.reference for i in instances]))
        return Verdict(score=score, per_instance=tuple(gaps) if has_ref else tuple(lengths),
                       behaviour=nearest / choices if choices else 1.0, metrics=metrics)

    def replay(self, dataset: Dataset, decisions: Any, n: int, seed: int) -> Replay:
        """n (instance, step) pairs drawn uniformly over all decision steps; the state is the
        current city and the unvisited cities before that step, on the matrix the heuristic
        saw; expected = the next city of the tour."""
        instances = dataset.instances
        sizes = [len(i.matrix) - 1 for i in instances]  # decisions per instance
        total = sum(sizes)
        rng = np.random.default_rng(seed)
        picks = np.sort(rng.choice(total, size=min(n, total), replace=False)) if total else []
        offsets = np.cumsum([0] + sizes)
        matrices, states, expected = [], [], []
        for idx, inst in enumerate(instances):
            steps = [int(p - offsets[idx]) + 1 for p in picks if offsets[idx] <= p < offsets[idx + 1]]
            if not steps:
                continue
            t = check_tour(inst, decisions[idx])
            matrices.append(inst.seen)
            for s in steps:
                visited = np.zeros(len(inst.matrix), dtype=bool)
                visited[t[:s]] = True
                states.append({"matrix": len(matrices) - 1, "current": int(t[s - 1]),
                               "unvisited": np.flatnonzero(~visited)})
                expected.append(int(t[s]))
        return Replay(states={"matrices": matrices, "states": states}, expected=tuple(expected))

    def probe_states(self, n: int) -> dict[str, Any]:
        matrices, states = probe_states(self.train_set(), int(n))
        return {"matrices": list(matrices), "states": list(states)}
