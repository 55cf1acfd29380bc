"""A tiny trusted harness for the sandbox's own tests and `python -m sandbox`.

``solve(fn, payload)`` calls ``fn(item, bins)`` for each item on the remaining
capacities and returns the raw priorities and the chosen bin per item (decisions);
``call(fn, payload)`` returns ``fn(*payload["args"])`` untouched (transport tests).
"""
import numpy as np


def solve(fn, payload):
    items = np.asarray(payload["items"], dtype=float)
    caps = np.full(len(items), float(payload.get("capacity", 100.0)))
    choices = np.empty(len(items), dtype=np.int64)
    for i, item in enumerate(items):
        feasible = np.nonzero(caps >= item)[0]
        pri = np.asarray(fn(float(item), caps[feasible]), dtype=float)
        j = int(feasible[int(np.argmax(pri))])
        caps[j] -= item
        choices[i] = j
    return {"choices": choices, "n_bins": int(np.count_nonzero(caps < payload.get("capacity", 100.0)))}


def call(fn, payload):
    return fn(*payload.get("args", []))
