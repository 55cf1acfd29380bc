"""Checking tours and measuring them, a whole set at once: the trusted side of ``verify``.

A set of same-sized tours is checked and measured with a handful of numpy calls on
(instances, cities) arrays; instance by instance this was ~30 small calls per tour (2 ms a
training set, as much as the harness's own bookkeeping).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from problems.base import Infeasible
from problems.tsp.sets import Instance


def check_tour(inst: Instance, tour: Any) -> np.ndarray:
    n = len(inst.matrix)
    try:
        t = np.asarray(tour)
    except Exception as exc:  # noqa: BLE001
        raise Infeasible(f"{inst.name}: tour is not an array: {exc}") from None
    if t.shape != (n + 1,):
        raise Infeasible(f"{inst.name}: expected a tour of {n + 1} nodes (0, ..., 0), got shape {t.shape}")
    if t.dtype.kind not in "iu":
        raise Infeasible(f"{inst.name}: tour nodes must be integers, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if t[0] != 0 or t[-1] != 0:
        raise Infeasible(f"{inst.name}: tour must start and end at the depot 0, got {t[0]} ... {t[-1]}")
    body = t[:-1]
    bad = np.flatnonzero((body < 0) | (body >= n))
    if len(bad):
        raise Infeasible(f"{inst.name}: position {int(bad[0])} holds node {int(body[bad[0]])}, not in 0..{n - 1}")
    counts = np.bincount(body, minlength=n)
    if (counts != 1).any():
        twice = np.flatnonzero(counts > 1)
        if len(twice):
            node = int(twice[0])
            where = np.flatnonzero(body == node)[:2].tolist()
            raise Infeasible(f"{inst.name}: tour visits node {node} twice (positions {where[0]} and {where[1]})")
        raise Infeasible(f"{inst.name}: tour never visits node {int(np.flatnonzero(counts == 0)[0])}")
    return t


def checked_tours(instances: Sequence[Instance], decisions: Sequence[Any]) -> list[tuple[list[int], np.ndarray]]:
    """The tours grouped by city count: (instance indices, their tours as a (k, n + 1) int64
    array). Raises Infeasible naming the set's first violation, as ``check_tour`` does."""
    groups: dict[int, list[int]] = {}
    for i, inst in enumerate(instances):
        groups.setdefault(len(inst.matrix), []).append(i)
    out = []
    for n, idx in groups.items():
        tours = _stacked_if_valid(n, [decisions[i] for i in idx])
        if tours is None:
            break
        out.append((idx, tours))
    else:
        return out
    # A malformed tour somewhere, or valid tours that are not int arrays of the right shape
    # yet (lists, say): tour by tour in set order, which names the first violation.
    checked = [check_tour(inst, tour) for inst, tour in zip(instances, decisions)]
    return [(idx, np.stack([checked[i] for i in idx])) for idx in groups.values()]


def _stacked_if_valid(n: int, tours: list[Any]) -> np.ndarray | None:
    """(k, n + 1) int64 if every tour is an int array [0, permutation of 0..n-1 ..., 0];
    else None (then ``check_tour`` says what is wrong)."""
    if not all(isinstance(t, np.ndarray) and t.shape == (n + 1,) and t.dtype.kind in "iu" for t in tours):
        return None
    t = np.stack(tours, dtype=np.int64, casting="unsafe")  # wraps as check_tour's astype does
    if (t[:, 0] != 0).any() or (t[:, n] != 0).any():
        return None
    if n and (np.sort(t[:, :n], axis=1) != np.arange(n)).any():
        return None
    return t


def tour_lengths(matrices: np.ndarray, tours: np.ndarray) -> np.ndarray:
    """Lengths of checked tours (k, n + 1) on matrices (k, n, n); each summed as
    ``tour_length`` sums it (a contiguous row of n edges), so bit for bit the same."""
    k, n = matrices.shape[:2]
    rows = tours[:, :-1] * n + (np.arange(k) * (n * n))[:, None]
    return matrices.ravel().take(rows + tours[:, 1:]).sum(axis=1)


@lru_cache(maxsize=64)
def _step_pairs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For steps 1..n-2 of a tour of n cities (two or more cities left): the tour positions
    (from, to) of every move the step could make, step after step, and where each step's
    run starts. Step s moves from position s - 1 to one of positions s..n-1, and its run
    starts with s itself, the move the tour made."""
    steps = np.arange(1, n - 1)
    counts = n - steps
    starts = np.zeros(len(steps), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    to = np.arange(int(counts.sum())) - np.repeat(starts - steps, counts)
    return np.repeat(steps - 1, counts), to, starts


def nearest_steps(matrices: np.ndarray, tours: np.ndarray) -> tuple[int, int]:
    """(steps that went to a nearest unvisited city, steps with two or more cities left),
    summed over checked tours (k, n + 1) on matrices (k, n, n). A step counts as nearest if
    its distance is within a relative 1e-12 of the least (so exact ties count)."""
    k, n = matrices.shape[:2]
    if n < 3:
        return 0, 0
    frm, to, starts = _step_pairs(n)
    t = tours[:, :n]
    # In tour order the unvisited cities of step s are exactly positions s..n-1, so each
    # step's candidates are one run of (from, to) pairs: n^2 / 2 distances per tour, no mask.
    pairs = (t * n + (np.arange(k) * (n * n))[:, None]).take(frm, axis=1)
    pairs += t.take(to, axis=1)
    dist = matrices.ravel().take(pairs)
    best = np.minimum.reduceat(dist, starts, axis=1)
    chosen = dist[:, starts]
    nearest = int(np.count_nonzero(chosen <= best + 1e-12 * np.maximum(1.0, best)))
    return nearest, k * len(starts)


