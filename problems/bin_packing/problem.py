"""Online bin packing as in FunSearch: the trusted side (data, verification, scoring, replay).

The harness (``problems.bin_packing.harness``) packs inside the sandbox and returns, per
instance, the bin index chosen for each item. Here we check those decisions and score them:
excess % = (mean bins used - mean L1) / mean L1 x 100, means over the instances of a set,
L1 = ceil(sum(items) / capacity) per instance (FunSearch's metric).
"""
from __future__ import annotations

import json
import math
import re
from bisect import bisect_left, insort
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from problems.base import Dataset, Infeasible, Replay, Verdict
from problems.bin_packing import harness as _harness

DATA = Path(__file__).parent / "data"

# name -> (file, source label). OR1-OR4 are OR-Library binpack1-4 (Falkenauer's u120..u1000).
BUNDLED = {
    "or1": "binpack1.txt",
    "or2": "binpack2.txt",
    "or3": "binpack3.txt",
    "or4": "binpack4.txt",
    "weibull_5k": "funsearch_weibull_5k.json",  # FunSearch's training set
    "eoh_1k": "eoh_test_1k.json",
    "eoh_2k": "eoh_test_2k.json",
    "eoh_5k": "eoh_test_5k.json",
    "eoh_10k": "eoh_test_10k.json",
    "eoh_100k": "eoh_test_100k.json",
}
DEFAULT_TESTS = ("or1", "or2", "or3", "or4", "eoh_1k", "eoh_2k", "eoh_5k", "eoh_10k", "eoh_100k")
BEHAVIOUR_ITEMS = 5000
_GENERATED = re.compile(r"^weibull-(\d+)x(\d+)-seed(\d+)$")

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
Online one-dimensional bin packing. Items arrive one at a time and must be placed at once
into a bin of fixed capacity; decisions are never revisited. For each item, the function
`priority(item, bins)` receives the item's size (a float) and `bins`, a 1-d numpy array of
the remaining capacities of every bin that can still take the item (remaining >= item), in
bin order, including the still-empty bins (which have the full capacity). It must return a
1-d numpy array of the same length with one priority score per bin. The item is placed into
the bin with the highest priority (numpy argmax: ties go to the first bin). The goal is to
use as few bins as possible. The score is the excess % of bins used over the L1 lower bound
ceil(sum of sizes / capacity), averaged over a set of instances with sizes drawn from a
Weibull distribution (capacity 100); lower is better."""

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


class Instance(NamedTuple):
    name: str
    capacity: float
    items: np.ndarray  # float64 sizes, in arrival order


def l1_bound(inst: Instance) -> int:
    return math.ceil(float(np.sum(inst.items)) / inst.capacity - 1e-9)


def _dataset(name: str, instances: Sequence[Instance]) -> Dataset:
    instances = tuple(instances)
    mean_l1 = float(np.mean([l1_bound(i) for i in instances]))
    return Dataset(name=name, instances=instances, reference=mean_l1)


def read_or_library(path: Path) -> list[Instance]:
    """OR-Library binpack format: count; then per instance a name line, `capacity n best`,
    and n sizes."""
    tokens = path.read_text().split()
    count, pos, out = int(tokens[0]), 1, []
    for _ in range(count):
        name = tokens[pos]
        capacity, n = float(tokens[pos + 1]), int(tokens[pos + 2])
        items = np.array([float(x) for x in tokens[pos + 4:pos + 4 + n]])
        out.append(Instance(name, capacity, items))
        pos += 4 + n
    return out


def read_weibull_json(path: Path) -> list[Instance]:
    doc = json.loads(path.read_text())
    capacity = float(doc["capacity"])
    return [Instance(k, capacity, np.asarray(v, dtype=np.float64)) for k, v in doc["instances"].items()]


def weibull_items(n_items: int, rng: np.random.Generator) -> np.ndarray:
    """FunSearch/EoH's generator: Weibull(shape 3) x 45, clipped to [1, 100], rounded."""
    return np.round(np.clip(rng.weibull(3.0, n_items) * 45.0, 1, 100))


def weibull_set(n_instances: int, n_items: int, seed: int, capacity: float = 100.0) -> Dataset:
    """A new seeded Weibull set (named ``weibull-{n_instances}x{n_items}-seed{seed}``)."""
    rng = np.random.default_rng(seed)
    name = f"weibull-{n_instances}x{n_items}-seed{seed}"
    return _dataset(name, [Instance(f"{name}/{i}", float(capacity), weibull_items(n_items, rng))
                           for i in range(n_instances)])


@lru_cache(maxsize=None)
def load_set(name: str) -> Dataset:
    """A bundled set by name (see BUNDLED), or a generated one: ``weibull-5x1000-seed0``."""
    m = _GENERATED.match(name)
    if m:
        return weibull_set(int(m[1]), int(m[2]), int(m[3]))
    if name not in BUNDLED:
        raise ValueError(f"unknown bin packing set {name!r}; known: {sorted(BUNDLED)} "
                         "or generated 'weibull-<instances>x<items>-seed<seed>'")
    path = DATA / BUNDLED[name]
    reader = read_weibull_json if path.suffix == ".json" else read_or_library
    return _dataset(name, reader(path))


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
      train: set name for training (default "weibull_5k", FunSearch's Weibull 5k set); any
        bundled name or a generated "weibull-<instances>x<items>-seed<seed>".
      tests: set names for testing (default OR1-OR4 and EoH's Weibull 1k..100k).
      train_instances: use only the first k training instances (default: all).
      probe_size: default number of probe states (default 454: the 198 states of the
        preference table at capacity 100, and 256 others).
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
                 train_instances: int | None = None, probe_size: int = 454):
        self.train_name = str(train)
        self.test_names = tuple(str(t) for t in tests)
        self.train_instances = train_instances
        self.probe_size = int(probe_size)
        for set_name in (self.train_name, *self.test_names):  # fail early on a typo
            if not _GENERATED.match(set_name) and set_name not in BUNDLED:
                load_set(set_name)

    # ---- data ----------------------------------------------------------------------
    def train_set(self) -> Dataset:
        ds = load_set(self.train_name)
        if self.train_instances is not None:
            ds = _dataset(f"{ds.name}[:{int(self.train_instances)}]", ds.instances[:int(self.train_instances)])
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
    def probe_states(self, n: int | None = None) -> list[dict[str, Any]]:
        return list(_probe_states(self.train_name, int(self.probe_size if n is None else n)))


PROBE_EMPTY_BINS = 64


def _trim(bins: np.ndarray, capacity: float) -> np.ndarray:
    """Keep the used bins of a state and at most PROBE_EMPTY_BINS of the trailing empty ones.
    A real state carries thousands of identical empty bins; the probe keeps their effect
    (max(bins) is the capacity, empty bins compete with used ones) at a payload of a few
    hundred bytes per state instead of ~30 kB."""
    used = np.flatnonzero(bins < capacity)
    end = (int(used[-1]) + 1) if len(used) else 0
    return bins[:end + PROBE_EMPTY_BINS]


def _cut_empty_runs(bins: np.ndarray, capacity: float) -> np.ndarray:
    """Keep every used bin and the first PROBE_EMPTY_BINS of each run of empty ones."""
    empty = bins >= capacity
    index = np.arange(len(bins))
    run_start = np.maximum.accumulate(np.where(empty, 0, index + 1))  # where the current run began
    return bins[~empty | (index - run_start < PROBE_EMPTY_BINS)]


@lru_cache(maxsize=8)
def _probe_states(train_name: str, n: int) -> tuple[dict[str, Any], ...]:
    """Deterministic probe. First a *preference table*: for item sizes spread over
    1..capacity-1, one state offering every whole remaining capacity the item fits (plus a
    few empty bins), once in ascending and once in descending order. Of the rest, half are
    states along Best Fit's own packing of the training instances (trimmed to at most
    PROBE_EMPTY_BINS empty bins), an eighth along a packing whose used bins sit at the end,
    a few perturbed copies of them, an eighth covering item sizes, the rest rare cases (an
    exact fit, only empty bins, ties, a single bin, tiny and huge items).

    Every state asks the harness for the heuristic's whole pick order over the offered bins
    (``"rank": True``), not its pick alone: two heuristics can agree on every pick of a
    probe and part ways on a real packing, whose states are far more numerous. Measured on
    the 479 distinct valid heuristics of a 500-candidate offline run, against their
    decisions on two full training instances: 256 picks merged 38 of them with a heuristic
    that packs differently; 256 pick orders, none.

    Why the table: on the integer item sizes and capacities of the bundled sets, a
    heuristic whose priority of a bin depends only on the item and that bin's room makes
    the same choice in every state as another whose table ranks agree, ties included (the
    two orders expose a tie: stable ranking puts tied bins in offer order). The trajectory
    states alone missed near-ties: 7 groups of the 438 distinct heuristics of a 500-candidate
    run (bench/bench_hashing.py) merged heuristics that differ by a small bonus such as
    ``0.147 * (bins == np.max(bins))``, which flips a pick only when an open bin's priority
    comes within 0.147 of an empty one's; with the table (198 states at capacity 100), none.
    The order costs one argsort per state."""
    ds = load_set(train_name)
    rng = np.random.default_rng(20240531)
    capacity = float(ds.instances[0].capacity)
    table = _preference_table(capacity, n // 2)
    n -= len(table)
    n_traj = n // 2
    n_rare = n // 5
    n_cover = n // 8
    n_scout = n // 8
    # 1. Best Fit trajectory states, evenly spread over the steps of the first instances.
    insts = ds.instances[: max(1, min(len(ds.instances), 2))]
    per = [n_traj // len(insts) + (1 if i < n_traj % len(insts) else 0) for i in range(len(insts))]
    traj: list[dict[str, Any]] = []
    for inst, count in zip(insts, per):
        traj += _states_along(inst, lambda item, bins: -(bins - item), count, lambda b: _trim(b, capacity))
    traj = traj[:n_traj]
    # 1b. The other layout real packings have: a heuristic that loves high indices opens the
    #     last bin first, so its used bins sit at the END of the array, after thousands of
    #     untouched ones (cut to PROBE_EMPTY_BINS per run of empty bins).
    traj += _states_along(ds.instances[0], _index_loving, n_scout, lambda b: _cut_empty_runs(b, capacity))[:n_scout]
    n_pert = n - len(traj) - n_rare - n_cover
    # 2. Perturbed: jitter the open bins, drop some empty ones, draw a new item.
    pert: list[dict[str, Any]] = []
    for i in range(n_pert):
        base = traj[int(rng.integers(len(traj)))]["bins"] if traj else np.full(10, capacity)
        bins = base.copy()
        open_ = bins < capacity
        bins[open_] = np.clip(bins[open_] + rng.integers(-5, 6, open_.sum()), 0, capacity)
        keep = (~open_) & (rng.random(len(bins)) < 0.3)
        bins = bins[open_ | keep]
        item = float(np.round(np.clip(rng.weibull(3.0) * 45.0, 1, capacity)))
        bins = bins[bins >= item]
        if len(bins) == 0:
            bins = np.full(1 + int(rng.integers(5)), capacity)
        pert.append({"item": item, "bins": bins})
    # 3. Item sizes across the whole range, each with used bins that can take it: a rule
    #    for big (or small) items shows only when some used bin has room for one, which
    #    Best Fit's own packing hardly ever leaves (Weibull items above 70 are 2%).
    cover: list[dict[str, Any]] = []
    for i in range(n_cover):
        item = float(1 + round((capacity - 1) * (i + 0.5) / max(n_cover, 1)))
        room = capacity - item
        used = item + np.minimum(rng.integers(0, int(room) + 1, size=int(rng.integers(1, 9))), max(room - 1.0, 0.0))
        if rng.random() < 0.5:
            used[0] = item  # an exact fit among them
        cover.append({"item": item, "bins": np.concatenate([used, np.full(PROBE_EMPTY_BINS, capacity)])})
    # 4. Rare cases.
    rare_makers = [
        lambda: (30.0, np.array([50.0, 30.0, 70.0, capacity, capacity])),  # exact fit
        lambda: (45.0, np.full(8, capacity)),  # only empty bins
        lambda: (20.0, np.array([40.0, 40.0, capacity, capacity])),  # tie between open bins
        lambda: (33.0, np.array([capacity])),  # single bin
        lambda: (1.0, np.array([1.0, 2.0, 5.0, 99.0, capacity])),  # tiny item
        lambda: (capacity, np.full(5, capacity)),  # item as large as a bin
        lambda: (25.0, np.array([25.0, 25.0, 60.0, capacity])),  # tied exact fits
        lambda: (10.0, np.array([95.0, 12.0, 50.0, 11.0, capacity, capacity, capacity])),
    ]
    rare = []
    for i in range(n_rare):
        if i < len(rare_makers):
            item, bins = rare_makers[i]()
        else:  # random small states with many ties (integer capacities in a narrow range)
            item = float(rng.integers(1, 60))
            bins = rng.integers(int(item), int(item) + 6, size=int(rng.integers(2, 12))).astype(float)
            bins = np.concatenate([bins, np.full(int(rng.integers(0, 4)), capacity)])
        rare.append({"item": float(item), "bins": np.asarray(bins, dtype=np.float64)})
    states = [{**state, "rank": True} for state in table + traj + pert + cover + rare]
    return tuple(states[:len(table) + n])


def _index_loving(item: float, bins: np.ndarray) -> np.ndarray:
    return 0.5 * (np.arange(len(bins)) - bins) - 0.5 * (bins - item)


def _states_along(inst: Instance, priority: Any, count: int, shrink: Any) -> list[dict[str, Any]]:
    """The states met at ``count`` steps spread evenly over a packing of ``inst`` by
    ``priority``, each state's bins passed through ``shrink``."""
    if count == 0:
        return []
    steps = set(np.linspace(0, len(inst.items) - 1, count).round().astype(int).tolist())
    states: list[dict[str, Any]] = []
    seen = 0

    def recording(item, bins):
        nonlocal seen
        if seen in steps:
            states.append({"item": float(item), "bins": shrink(np.array(bins))})
        seen += 1
        return priority(item, bins)

    _harness.pack(recording, inst.items, inst.capacity)
    return states


TABLE_EMPTY_BINS = 8


def _preference_table(capacity: float, at_most: int) -> list[dict[str, Any]]:
    """For up to at_most // 2 item sizes spread evenly over 1..capacity-1, two states
    offering every whole remaining capacity from the item up (in ascending, then descending
    order) followed by TABLE_EMPTY_BINS empty bins."""
    sizes = np.arange(1, int(capacity))
    if len(sizes) > at_most // 2:
        sizes = np.unique(np.linspace(1, int(capacity) - 1, at_most // 2).round().astype(int))
    empty = np.full(TABLE_EMPTY_BINS, capacity)
    states = []
    for size in sizes.tolist():
        rooms = np.arange(size, int(capacity), dtype=np.float64)
        for order in (rooms, rooms[::-1]):
            states.append({"item": float(size), "bins": np.concatenate([order, empty])})
    return states
