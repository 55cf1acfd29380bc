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
entry per feasible bin and a bool/int/float dtype. Anything else (a scalar, a wrong length,
strings, objects, complex numbers) raises ``ValueError`` with a message that names the
problem, so the sandbox reports status "error".

Speed (this loop is the inner loop of evolution): the heuristic must see every feasible bin,
including the thousands of empty ones, so each call costs O(n_items). The harness avoids
scanning the open bins with numpy on each step: it keeps the open bins in a list sorted by
remaining capacity, finds the feasible ones by bisection (usually a handful), and builds the
array as [feasible open bins in bin order] + [capacity] * (untouched bins). Bins whose
remaining capacity is below the instance's smallest item can never be chosen again and are
dropped from the list. The result is identical to the plain O(n) filter.
"""
from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np

_KINDS = frozenset("biuf")


def _bad_priorities(p, m: int) -> ValueError:
    try:
        arr = np.asarray(p)
    except Exception as exc:  # noqa: BLE001 - any failure to convert is the heuristic's
        return ValueError(f"priority returned {type(p).__name__}, not convertible to an array: {exc}")
    if arr.shape != (m,):
        return ValueError(
            f"priority must return one priority per feasible bin: expected shape ({m},), "
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
    if p.shape != (m,) or p.dtype.kind not in _KINDS:
        raise _bad_priorities(p, m)
    return p


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
    rem_np = np.full(n, cap)  # remaining capacity per bin, for the vectorised path when many open bins fit
    opened: list[tuple[float, int]] = []  # (remaining, bin) of touched, still useful bins, sorted
    t = 0  # bins t.. n-1 were never touched (all at capacity)
    out = [0] * n
    # The array handed to the heuristic is a read-only view of one buffer. Invariant between
    # calls: buf[k_prev:] == cap, so each step rewrites only the few head entries instead of
    # thousands. If the heuristic writes to its argument (legal in FunSearch, which passes a
    # fresh copy), the write raises "read-only"; we then redo that call and the rest of the
    # instance with a writable buffer rewritten in full each step (same values as a fresh copy).
    buf = np.full(n, cap)
    view = buf.view()
    view.flags.writeable = False
    writable = False
    k_prev = 0
    nd = np.ndarray
    kinds = _KINDS
    flatnonzero = np.flatnonzero
    for i, item in enumerate(items_list):
        pos = bisect_left(opened, (item, -1))
        k = len(opened) - pos
        m = k + n - t
        if k == 0:
            pairs = None
        elif k == 1:  # the most common case by far for good heuristics
            pairs = opened[pos:]
            buf[0] = pairs[0][0]
        elif k <= _FEW:
            pairs = sorted(opened[pos:], key=_second)
            buf[:k] = [r for r, _ in pairs]
        else:
            ids = flatnonzero(rem_np[:t] >= item)
            buf[:k] = rem_np[ids]
            pairs = None
        if writable:
            buf[k:m] = cap
            p = fn(item, buf[:m])
        else:
            if k_prev > k:
                buf[k:k_prev] = cap
            try:
                p = fn(item, view[:m])
            except ValueError as exc:
                if "read-only" not in str(exc):
                    raise
                writable = True
                buf[k:m] = cap
                p = fn(item, buf[:m])
        k_prev = k
        if type(p) is not nd or p.shape != (m,) or p.dtype.kind not in kinds:
            p = _priorities(p, m)
        j = p.argmax()
        if j < k:
            if pairs is not None:
                pair = pairs[j]
                old, b = pair
            else:
                b = int(ids[j])
                old = float(rem_np[b])
                pair = (old, b)
            del opened[bisect_left(opened, pair)]
        else:
            b = int(t + j - k)
            old = cap
            for e in range(t, b):  # untouched bins we skipped over stay empty, now "opened"
                insort(opened, (cap, e))
            t = b + 1
        new = old - item
        rem_np[b] = new
        if new >= dead_below:
            insort(opened, (new, b))
        out[i] = b
    return np.array(out, dtype=np.int64)


_FEW = 48  # above this many feasible open bins, a numpy scan beats sorting them in Python


def _second(pair):
    return pair[1]


def solve(fn, payload) -> list[np.ndarray]:
    """Run ``fn`` (a ``priority`` function) over every instance of the payload.

    payload: ``{"capacities": [c, ...], "items": [array of sizes, ...]}``.
    Returns one int64 array per instance: the bin index of each item.
    """
    return [pack(fn, items, cap) for cap, items in zip(payload["capacities"], payload["items"])]


def decide(fn, states) -> list[int]:
    """For each state ``{"item": float, "bins": array}``, the index into ``bins`` that ``fn``'s
    priorities pick (argmax, as in ``solve``)."""
    choices = []
    for state in states:
        bins = np.array(state["bins"], dtype=np.float64)  # a fresh copy: fn may write to it
        p = _priorities(fn(float(state["item"]), bins), len(bins))
        choices.append(int(p.argmax()))
    return choices
