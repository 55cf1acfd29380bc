"""Trusted harness for bench_sandbox.py beside it: FunSearch-style online bin packing.

n_items bins of capacity C are allocated up front; each item goes to the feasible bin
with the highest ``priority(item, remaining_capacities_of_feasible_bins)``.
Returns the decisions (bin index per item) for every instance.
"""
import numpy as np


def solve(fn, payload):
    cap = float(payload["capacity"])
    out = []
    for items in payload["instances"]:
        bins = np.full(len(items), cap)
        choice = np.empty(len(items), dtype=np.int32)
        for i, item in enumerate(items):
            valid = np.nonzero(bins - item >= 0)[0]
            pri = fn(item, bins[valid])
            j = valid[np.argmax(pri)]
            bins[j] -= item
            choice[i] = j
        out.append(choice)
    return out
