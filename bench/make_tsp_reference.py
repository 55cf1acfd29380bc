"""Compute the reference tours of the seeded random TSP sets, once; writes
problems/tsp/data/reference.json.

Needs the dev extra elkai (LKH; pinned in pyproject's dev extra, never a runtime dependency):
    .venv/bin/python bench/make_tsp_reference.py [--runs 10]

elkai works on integer distances, so the unit-square coordinates are scaled by 1e6 and the
Euclidean distances rounded; the tour it returns is then measured with the project's own
float tour-length code. Each set records the generator seed, a digest of the coordinates (so a
changed generator is detected), the solver and its version, and the tours themselves.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from problems.tsp.sets import (ALIASES, REFERENCE, _RANDOM, coords_digest,  # noqa: E402
                               euclidean_matrix, random_coords, tour_length)

SCALE = 1e6


def solve(coords: np.ndarray, runs: int) -> list[int]:
    import elkai

    ints = np.rint(euclidean_matrix(coords * SCALE)).astype(np.int64)
    tour = elkai.DistanceMatrix(ints.tolist()).solve_tsp(runs=runs)
    tour = [int(x) for x in tour]
    if tour[-1] != tour[0]:
        tour.append(tour[0])
    start = tour.index(0)  # rotate to start at the depot (the tour is closed)
    body = tour[:-1]
    body = body[start:] + body[:start]
    return body + [0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="elkai runs per instance")
    parser.add_argument("--sets", nargs="*", default=list(ALIASES), help="aliases or random-KxN-seedS")
    args = parser.parse_args()
    out = {}
    for name in args.sets:
        spec = ALIASES.get(name, name)
        m = _RANDOM.match(spec)
        k, n, seed = int(m[1]), int(m[2]), int(m[3])
        coords = random_coords(k, n, seed)
        t0 = time.perf_counter()
        tours, lengths = [], []
        for c in coords:
            tour = solve(c, args.runs)
            assert sorted(tour[:-1]) == list(range(n)), "elkai returned a non-permutation"
            tours.append(tour)
            lengths.append(tour_length(euclidean_matrix(c), tour))
        out[spec] = {
            "seed": seed, "instances": k, "cities": n,
            "generator": "numpy.random.default_rng(seed).random((instances, cities, 2))",
            "coords_sha256": coords_digest(coords),
            "solver": f"elkai {version('elkai')} (LKH), runs={args.runs}, coordinates x{SCALE:g}, rounded",
            "mean_length": float(np.mean(lengths)),
            "lengths": lengths,
            "tours": tours,
        }
        print(f"{spec:<24} mean reference length {np.mean(lengths):.4f}  ({time.perf_counter() - t0:.1f} s)",
              flush=True)
    merged = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}  # keep other sets
    merged.update(out)
    REFERENCE.write_text(json.dumps(dict(sorted(merged.items())), indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
