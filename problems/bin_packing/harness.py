"""Trusted harness for online bin packing (FunSearch's protocol). Runs inside the sandbox.

Imports only numpy and the standard library. It returns *decisions* only; the parent checks
and scores them (``BinPacking.verify``).

Protocol, exactly as FunSearch's ``online_binpack``: each instance allocates ``n_items`` bins
of the given capacity up front. For each item in order, ``priority(item, bins)`` receives the
remaining capacities of every bin that can take the item (remaining >= item), in bin order,
still-empty bins included; the item goes to the argmax of the returned priorities (numpy
``argmax``: ties go to the lowest index, and a NaN counts as the maximum, so the first NaN
wins — FunSearch feeds the raw array to ``np.argmax`` too, and we keep that behaviour rather
than inventing a rule). ``bins`` is a fresh array on every call, so a heuristic that changes
it in place harms nobody.

Sanitising: the return value goes through ``np.asarray``; it must be a 1-d array with one
entry per feasible bin and a bool/int/float dtype, or a single integer: the index of the
chosen bin (what a heuristic that takes the argmax itself returns; it decides exactly as
the protocol would). Anything else (a float or bool scalar, an index out of range, a wrong
length, strings, objects, complex numbers) raises ``ValueError`` with a message that names
the problem, so the sandbox reports status "error".

Speed (this loop is the inner loop of evolution): the heuristic must see every feasible bin,
including the thousands of empty ones, so each call costs O(n_items). The harness avoids
scanning the open bins with numpy on each step: it keeps the open bins in a list sorted by
remaining capacity, finds the feasible ones by bisection (usually a handful), and builds the
array as [feasible open bins in bin order] + [capacity] * (untouched bins). Bins whose
remaining capacity is below the instance's smallest item can never be chosen again and are
dropped from the list. The result is identical to the plain O(n) filter.
"""
from __future__ import annotations

from bisect import bisect_left

import numpy as np

_KINDS = frozenset("biuf")


def _bad_priorities(p, m: int) -> ValueError:
    try:
        arr = np.asarray(p)
    except Exception as exc:  # noqa: BLE001 - any failure to convert is the heuristic's
        return ValueError(f"priority returned {type(p).__name__}, not convertible to an array: {exc}")
    if arr.shape == ():
        # The commonest mistake of small models (an index, or a score of the whole packing):
        # the message says what to return instead, for the repair operator to read.
        return ValueError(f"priority returned a single number (dtype {arr.dtype}); it must return an array "
                          f"with one priority per bin in `bins` (shape ({m},)), e.g. -(bins - item)")
    if arr.shape != (m,):
        return ValueError(
            f"priority must return one priority per bin in `bins`: expected shape ({m},), "
            f"got shape {arr.shape} ({type(p).__name__})"
        )
    return ValueError(f"priority returned non-numeric values (dtype {arr.dtype}); expected bool, int or float")


def _priorities(p, m: int) -> np.ndarray:
    """Slow path of the sanitiser: convert, or raise a clear ValueError."""
    if type(p) is not np.ndarray:
        try:
            p = np.asarray(p)
        except Exception:  # noqa: BLE001
            raise _bad_priorities(p, m) from None
    if p.shape == () and p.dtype.kind in "iu":
        return _chosen(int(p), m)
    if p.shape != (m,) or p.dtype.kind not in _KINDS:
        raise _bad_priorities(p, m)
    return p


def _chosen(index: int, m: int) -> np.ndarray:
    """Priorities that pick bin ``index``: the answer of a heuristic that returns the chosen
    bin's index (``np.argmax(...)`` of its own scores) instead of the scores. It makes the
    same decision the protocol would, so it is taken as one; small models write it more
    often than not (26 of 52 answers of Qwen2.5-Coder 1.5B in one run)."""
    if not 0 <= index < m:
        raise ValueError(f"priority returned the bin index {index}, but `bins` has {m} entries "
                         f"(return one priority per bin, or an index from 0 to {m - 1})")
    chosen = np.zeros(m)
    chosen[index] = 1.0
    return chosen


def pack(fn, items: np.ndarray, capacity: float) -> np.ndarray:
    """Pack one instance online; return the bin index chosen for each item (int64 array)."""
    items_list = np.asarray(items, dtype=np.float64).tolist()
    n = len(items_list)
    cap = float(capacity)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if max(items_list) > cap:
        i = int(np.argmax(items_list))
        raise ValueError(f"item {i} (size {items_list[i]:g}) is larger than the bin capacity {cap:g}")
    dead_below = min(items_list)  # a bin with less room than the smallest item is closed for good
    rem = [cap] * n  # remaining capacity per bin
    rem_np = np.full(n, cap)  # the same, for the vectorised path when many open bins fit
    # The touched bins that can still take an item, as two parallel lists sorted by remaining
    # capacity (ties in no particular order): keys = remaining, ids = bin.
    keys: list[float] = []
    ids: list[int] = []
    t = 0  # bins t.. n-1 were never touched (all at capacity)
    out = [0] * n
    # The array handed to the heuristic is a read-only view buf[start:end] of one buffer of
    # 2n entries: the k feasible open bins are written just before index n (start = n - k),
    # and buf[n:] holds the capacity for good, so the n - t untouched bins cost no writes at
    # all (end = 2n - t). If the heuristic writes to its argument (legal in FunSearch, which
    # passes a fresh array), the write raises "read-only"; we then redo that call, and every
    # later call of the instance, with a fresh writable copy (same values).
    buf = np.full(2 * n, cap)
    view = buf.view()
    view.flags.writeable = False
    end = 2 * n
    writable = False
    nd = np.ndarray
    f8 = np.dtype(np.float64)
    flatnonzero = np.flatnonzero
    rem_at = rem.__getitem__
    for i, item in enumerate(items_list):
        # k = how many open bins can take the item: the top of `keys`. Checking the last one
        # or two first saves the bisection in most steps.
        if not keys or keys[-1] < item:
            k = 0
            start = n
        elif len(keys) == 1 or keys[-2] < item:
            k = 1
            start = n - 1
            buf[start] = keys[-1]
        else:
            pos = bisect_left(keys, item)
            k = len(keys) - pos
            start = n - k
            if k <= _FEW:
                feasible = ids[pos:]
                feasible.sort()  # bin order
                buf[start:n] = list(map(rem_at, feasible))
            else:
                feasible = flatnonzero(rem_np[:t] >= item)
                buf[start:n] = rem_np[feasible]
        if writable:
            p = fn(item, buf[start:end].copy())
        else:
            try:
                p = fn(item, view[start:end])
            except ValueError as exc:
                if "read-only" not in str(exc):
                    raise
                writable = True
                p = fn(item, buf[start:end].copy())
        m = end - start
        if type(p) is not nd or p.dtype is not f8 or p.shape != (m,):
            p = _priorities(p, m)
        j = int(p.argmax())
        if j < k:
            if k == 1:
                old = keys.pop()
                b = ids.pop()
            else:
                b = int(feasible[j])
                old = rem[b]
                q = ids.index(b, bisect_left(keys, old, pos))
                del keys[q], ids[q]
        else:
            b = t + j - k
            old = cap
            if b > t:  # untouched bins we skipped over stay empty, now "opened"
                q = bisect_left(keys, cap)
                keys[q:q] = [cap] * (b - t)
                ids[q:q] = range(t, b)
            t = b + 1
            end = 2 * n - t
        new = old - item
        rem[b] = new
        rem_np[b] = new
        if new >= dead_below:
            q = bisect_left(keys, new)
            keys.insert(q, new)
            ids.insert(q, b)
        out[i] = b
    return np.array(out, dtype=np.int64)


_FEW = 48  # above this many feasible open bins, a numpy scan beats sorting them in Python


def solve(fn, payload) -> list[np.ndarray]:
    """Run ``fn`` (a ``priority`` function) over every instance of the payload.

    payload: ``{"capacities": [c, ...], "items": [array of sizes, ...]}``.
    Returns one int64 array per instance: the bin index of each item.
    """
    return [pack(fn, items, cap) for cap, items in zip(payload["capacities"], payload["items"])]


def decide(fn, states) -> list[int]:
    """For each state ``{"item": float, "bins": array}``, the index into ``bins`` that ``fn``'s
    priorities pick (argmax, as in ``solve``).

    A state with ``"rank": True`` (the functional-hash probe's) asks for more than the pick:
    every index of ``bins`` in the order repeated picks would take them, the priorities
    staying as they are (the pick, the pick once that bin is gone, and so on), from one
    call. Like the pick, the order does not change when the priorities are scaled, shifted
    or passed through an increasing function; unlike it, it tells how the heuristic ranks
    every bin, so two heuristics that agree on a state's pick by chance still differ."""
    choices: list[int] = []
    for state in states:
        bins = np.array(state["bins"], dtype=np.float64)  # a fresh copy: fn may write to it
        p = _priorities(fn(float(state["item"]), bins), len(bins))
        if state.get("rank"):
            choices.extend(_pick_order(p).tolist())
        else:
            choices.append(int(p.argmax()))
    return choices


def _pick_order(p: np.ndarray) -> np.ndarray:
    """Indices in the order repeated argmax would pick them: numpy's argmax takes the first
    NaN, else the highest value, ties to the lowest index. A stable ascending sort of the
    reversed array, reversed back, gives exactly that (NaNs sort last), for every dtype."""
    n = len(p)
    return n - 1 - np.argsort(p[::-1], kind="stable")[::-1]
