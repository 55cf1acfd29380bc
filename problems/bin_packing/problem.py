"""Online bin packing as in FunSearch: the trusted side (the task, verification, scoring,
replay).

The harness (``problems.bin_packing.harness``) packs inside the sandbox and returns, per
instance, the bin index chosen for each item. Here we check those decisions and score them:
excess % = (mean bins used - mean L1) / mean L1 x 100, means over the instances of a set,
L1 = ceil(sum(items) / capacity) per instance (FunSearch's metric). The sets are in
``sets.py``, the functional hash's probe in ``probe.py``.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any, Sequence

import numpy as np

from problems.base import Dataset, Infeasible, Replay, Verdict
from problems.bin_packing.probe import probe_states
from problems.bin_packing.sets import Instance, dataset, is_bundled, l1_bound, load_set

DEFAULT_TESTS = ("or1", "or2", "or3", "or4", "eoh_1k", "eoh_2k", "eoh_5k", "eoh_10k", "eoh_100k")
BEHAVIOUR_ITEMS = 5000

FIRST_FIT = '''import numpy as np


def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """First Fit: the lowest-indexed bin that fits (argmax ties go to the lowest index)."""
    return -np.arange(len(bins), dtype=float)
'''

# Written as one expression in the return, so the offline AST mutator can grow it.
BEST_FIT = '''import numpy as np


def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Best Fit: the bin that the item leaves with the least room."""
    return -(bins - item)
'''

DESCRIPTION = """\
Online one-dimensional bin packing. Items arrive one at a time and each must be placed at
once into a bin of fixed capacity (100); decisions are never revisited. The goal is to use
as few bins as possible.

The function `priority(item, bins)` is called once for every item. It receives the item's
size (a float) and `bins`, a 1-d numpy array of the remaining capacities of every bin that
can still take the item (remaining >= item), in bin order, including the still-empty bins
(which have the full capacity). It must return a 1-d numpy array of the same length as
`bins` with one priority score per bin: not an index, not a single number. The item is
placed into the bin with the highest priority (numpy argmax: ties go to the first bin).

How heuristics are compared (the function does not compute this): by the number of bins
they use on instances whose item sizes follow a Weibull distribution, reported as the
excess % over a lower bound; lower is better."""

SIGNATURE = "def priority(item: float, bins: np.ndarray) -> np.ndarray:"

# Expressions over the arguments for the offline mutation model. Each is an array with one
# entry per feasible bin (or a scalar that broadcasts). The calibration before the project
# found that `bins - np.max(bins)`, `bins / item` and `(bins - item) / item` matter a lot.
VOCABULARY = (
    "bins",
    "item",
    "bins - item",
    "-(bins - item)",
    "bins - np.max(bins)",
    "bins / item",
    "item / bins",
    "(bins - item) / item",
    "(bins - item) / bins",
    "(bins == np.max(bins))",
    "(bins - item == 0)",
    "np.max(bins)",
    "np.min(bins)",
    "np.mean(bins)",
    "np.log(bins)",
    "np.log(bins - item + 1)",
    "np.exp(-(bins - item))",
    "(bins - item) ** 2",
    "np.sqrt(bins - item)",
    "np.arange(len(bins))",
)


def _tight_fits(inst: Instance, dec: Any) -> tuple[int, int]:
    """(items that went to the tightest feasible used bin, items that had a used bin to go to).
    Call only on checked decisions."""
    cap = float(inst.capacity)
    items = inst.items.tolist()
    if not items:
        return 0, 0
    dead_below = min(items)
    rem = [cap] * len(items)
    touched = [False] * len(items)
    # The rooms of the used bins that can still fit something, sorted, one entry per bin.
    # Only the rooms matter (a tie is a tie whichever bin holds it), and bare floats bisect
    # about twice as fast as (room, bin) tuples: 4.6 -> 2.5 ms on a Weibull 5k instance.
    # Not vectorised: which rooms are open at an item depends on every earlier placement.
    opened: list[float] = []
    tight = choices = 0
    for item, b in zip(items, np.asarray(dec).tolist()):
        r = rem[b]
        pos = bisect_left(opened, item)
        if pos < len(opened):
            choices += 1
            if touched[b] and r == opened[pos]:
                tight += 1
        if touched[b]:
            if r >= dead_below:
                del opened[bisect_left(opened, r)]
        else:
            touched[b] = True
        r -= item
        rem[b] = r
        if r >= dead_below:
            insort(opened, r)
    return tight, choices


class BinPacking:
    """FunSearch's online bin packing problem.

    Keyword arguments (all optional, as in conf/problem/bin_packing.yaml):
      train: the training set (default "weibull_5k", FunSearch's Weibull 5k set): a bundled
        set's name, a generated "weibull-<instances>x<items>-seed<seed>", or a file in
        OR-Library's format or the bundled JSON layout, or a glob of such files.
      tests: the test sets, each named like ``train`` (default OR1-OR4 and EoH's Weibull
        1k..100k).
      train_instances: use only the first k training instances (default: all).
    """

    name = "bin_packing"
    entry = "priority"
    arg_names = ("item", "bins")
    harness = "problems.bin_packing.harness"
    description = DESCRIPTION
    signature = SIGNATURE
    score_name = "excess %"
    seed_code = BEST_FIT
    baselines = {"first_fit": FIRST_FIT, "best_fit": BEST_FIT}
    vocabulary = VOCABULARY

    def __init__(self, train: str = "weibull_5k", tests: Sequence[str] = DEFAULT_TESTS,
                 train_instances: int | None = None):
        self.train_name = str(train)
        self.test_names = tuple(str(t) for t in tests)
        self.train_instances = train_instances
        for entry in (self.train_name, *self.test_names):  # a missing or malformed file fails now
            if not is_bundled(entry):
                load_set(entry)

    # ---- data ----------------------------------------------------------------------
    def train_set(self) -> Dataset:
        ds = load_set(self.train_name)
        if self.train_instances is not None:
            ds = dataset(f"{ds.name}[:{int(self.train_instances)}]", ds.instances[:int(self.train_instances)])
        return ds

    def test_sets(self) -> dict[str, Dataset]:
        return {name: load_set(name) for name in self.test_names}

    def solve_payload(self, dataset: Dataset) -> dict[str, Any]:
        return {"capacities": [float(i.capacity) for i in dataset.instances],
                "items": [i.items for i in dataset.instances]}

    # ---- checking and scoring ------------------------------------------------------
    def verify(self, dataset: Dataset, decisions: Any) -> Verdict:
        """Every item in exactly one bin (one bin index per item), no bin over capacity.

        Behaviour measure, the *tight-fit share*: among the items that had a choice of an
        already-used bin (at least one touched bin could take them), the share that went to
        the tightest such bin (least room left; ties count). Best Fit is 1 by definition,
        First Fit about 0.86 on Weibull 5k, a heuristic that avoids leaving tiny gaps about
        0.88, Worst Fit 0, a random one about 0.06. It measures how greedy a heuristic is
        about topping up, which is the main way packing heuristics differ from each other;
        aggregate fills (e.g. mean fill of the chosen bin) turned out nearly identical for
        First and Best Fit, so they could not tell heuristics apart. It is computed on the
        first instances of the set, until BEHAVIOUR_ITEMS items are covered (the whole of the
        first Weibull 5k instance), to keep verify cheap next to the evaluation.
        """
        instances = dataset.instances
        if not isinstance(decisions, (list, tuple)) or len(decisions) != len(instances):
            got = len(decisions) if isinstance(decisions, (list, tuple)) else type(decisions).__name__
            raise Infeasible(f"expected a list of {len(instances)} decision arrays, got {got}")
        bins_used, l1s, tight, choices, seen = [], [], 0, 0, 0
        for inst, dec in zip(instances, decisions):
            used = self._check(inst, dec)
            bins_used.append(used)
            l1s.append(l1_bound(inst))
            if seen < BEHAVIOUR_ITEMS:  # a Python loop: measured on the first instances only
                t, c = _tight_fits(inst, dec)
                tight += t
                choices += c
                seen += len(inst.items)
        mean_used, mean_l1 = float(np.mean(bins_used)), float(np.mean(l1s))
        score = (mean_used - mean_l1) / mean_l1 * 100.0
        per_instance = tuple((u - l) / l * 100.0 for u, l in zip(bins_used, l1s))
        behaviour = tight / choices if choices else 1.0
        return Verdict(score=score, per_instance=per_instance, behaviour=min(1.0, max(0.0, behaviour)),
                       metrics={"mean_bins": mean_used, "mean_l1": mean_l1})

    @staticmethod
    def _check(inst: Instance, dec: Any) -> int:
        """Checks one instance's decisions; returns the number of bins used."""
        items = inst.items
        n = len(items)
        try:
            dec = np.asarray(dec)
        except Exception as exc:  # noqa: BLE001
            raise Infeasible(f"{inst.name}: decisions are not an array: {exc}") from None
        if dec.shape != (n,):
            raise Infeasible(f"{inst.name}: expected one bin index for each of {n} items, got shape {dec.shape}")
        if n == 0:
            return 0
        if dec.dtype.kind not in "iu":
            raise Infeasible(f"{inst.name}: bin indices must be integers, got dtype {dec.dtype}")
        dec = dec.astype(np.int64)
        bad = np.flatnonzero((dec < 0) | (dec >= n))
        if len(bad):
            i = int(bad[0])
            raise Infeasible(f"{inst.name}: item {i} placed in bin {int(dec[i])}, outside bins 0..{n - 1}")
        # Load of each bin just before each item: cumulative sums within each bin, in item order.
        order = np.argsort(dec, kind="stable")
        sizes = items[order]
        bins_sorted = dec[order]
        cum = np.cumsum(sizes)
        starts = np.flatnonzero(np.r_[True, bins_sorted[1:] != bins_sorted[:-1]])
        group_base = np.repeat(cum[starts] - sizes[starts], np.diff(np.r_[starts, n]))
        after = cum - group_base  # load of the bin once this item is in
        before = after - sizes
        over = after > inst.capacity + 1e-9
        if over.any():
            first = int(order[over].min())  # the earliest item (in arrival order) that overflows
            k = int(np.flatnonzero(order == first)[0])
            left = inst.capacity - before[k]
            raise Infeasible(f"{inst.name}: item {first} (size {items[first]:g}) placed in bin "
                             f"{int(dec[first])} with {left:g} left")
        return len(starts)

    def replay(self, dataset: Dataset, decisions: Any, n: int, seed: int) -> Replay:
        """n (instance, step) pairs drawn uniformly; each state is the item and the feasible
        remaining capacities as the heuristic saw them; expected = the chosen bin's index in
        that array."""
        instances = dataset.instances
        sizes = [len(i.items) for i in instances]
        total = sum(sizes)
        rng = np.random.default_rng(seed)
        picks = np.sort(rng.choice(total, size=min(n, total), replace=False)) if total else []
        offsets = np.cumsum([0] + sizes)
        states, expected = [], []
        for idx, inst in enumerate(instances):
            steps = [int(p - offsets[idx]) for p in picks if offsets[idx] <= p < offsets[idx + 1]]
            if not steps:
                continue
            dec = np.asarray(decisions[idx], dtype=np.int64)
            items = inst.items.tolist()
            rem = [float(inst.capacity)] * len(items)
            want = iter(steps)
            nxt = next(want)
            for i, (item, b) in enumerate(zip(items, dec.tolist())):
                if i == nxt:
                    arr = np.array(rem)
                    feasible = np.flatnonzero(arr >= item)
                    where = np.flatnonzero(feasible == b)
                    if not len(where):
                        raise Infeasible(f"{inst.name}: item {i} (size {item:g}) placed in bin {b} "
                                         f"with {rem[b]:g} left")
                    states.append({"item": item, "bins": arr[feasible]})
                    expected.append(int(where[0]))
                    nxt = next(want, None)
                    if nxt is None:
                        break
                rem[b] -= item
        return Replay(states=states, expected=tuple(expected))

    # ---- functional hash probe -----------------------------------------------------
    def probe_states(self, n: int) -> list[dict[str, Any]]:
        # On the named training set whole, even when train_instances cuts it.
        return list(probe_states(load_set(self.train_name), int(n)))
