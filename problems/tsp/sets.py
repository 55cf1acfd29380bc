"""TSP instance sets: the bundled ones (seeded random, TSPLIB) and the user's own files.

Every instance carries two matrices. ``matrix`` is its own metric (TSPLIB's integer
distances, or Euclidean on the random sets): tours are measured in it. ``seen`` is what the
heuristic is given: the same matrix divided by the side of the square that holds the
cities, so every instance looks as if its cities were in the unit square, as the random
training instances' are. A heuristic that mixes terms of different units (a distance and a
distance squared, a distance and a constant) then behaves on TSPLIB's thousands of units
as it did on the training set, and the same instance at any scale gets the same tour.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from problems.base import Dataset
from problems.files import expand
from problems.tsp.tsplib import TsplibInstance, read_optima, read_tour, read_tsp

DATA = Path(__file__).parent / "data"
TSPLIB = DATA / "tsplib"
REFERENCE = DATA / "reference.json"

_RANDOM = re.compile(r"^random-(\d+)x(\d+)-seed(\d+)$")
ALIASES = {
    "train": "random-64x50-seed0",
    "tsp20": "random-64x20-seed20",
    "tsp50": "random-64x50-seed50",
    "tsp100": "random-64x100-seed100",
    "tsp200": "random-64x200-seed200",
}
KNOWN = "tsplib, " + ", ".join(ALIASES) + ", random-<instances>x<cities>-seed<seed>"


class Instance(NamedTuple):
    name: str
    matrix: np.ndarray  # (n, n) float64: the instance's own metric; tours are measured in it
    seen: np.ndarray  # matrix / the side of its square: what the heuristic is given
    reference: float | None  # optimum (TSPLIB, user files) or reference tour length (random sets)


def euclidean_matrix(coords: np.ndarray) -> np.ndarray:
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt((diff ** 2).sum(-1))


def tour_length(matrix: np.ndarray, tour: Sequence[int]) -> float:
    """Length of a closed tour given as [0, ..., 0] or as a permutation (closed implicitly)."""
    t = np.asarray(tour, dtype=np.int64)
    if len(t) and t[0] != t[-1]:
        t = np.r_[t, t[0]]
    return float(matrix[t[:-1], t[1:]].sum())


def seen_matrix(inst: TsplibInstance) -> np.ndarray:
    """The matrix divided by the side of the square that holds the cities, in its metric's
    units.

    Planar types: the side is the larger extent of the coordinates (ATT's metric is the
    Euclidean one divided by sqrt(10), so its side is too). GEO and EXPLICIT instances have
    no plane to measure: their longest distance is taken as a square's diagonal. Computed as
    ``(matrix / length) * constant``, never ``matrix / (length / constant)``: a division of
    two numbers is correctly rounded, so an instance with every distance (or coordinate)
    times 1000 is seen bit for bit alike, and so is every sum the heuristic makes of it. A
    degenerate instance (all cities at one point) is seen as it is."""
    if inst.coords is not None and inst.edge_weight_type in ("EUC_2D", "CEIL_2D", "ATT"):
        length = float(np.max(inst.coords.max(axis=0) - inst.coords.min(axis=0)))
        constant = math.sqrt(10.0) if inst.edge_weight_type == "ATT" else 1.0
    else:
        length, constant = float(inst.matrix.max()), math.sqrt(2.0)
    if not length > 0:
        return inst.matrix
    return inst.matrix / length * constant if constant != 1.0 else inst.matrix / length


def random_coords(n_instances: int, n_cities: int, seed: int) -> np.ndarray:
    """Seeded uniform cities in the unit square, shape (n_instances, n_cities, 2)."""
    return np.random.default_rng(seed).random((n_instances, n_cities, 2))


def coords_digest(coords: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(coords, dtype="<f8").tobytes()).hexdigest()[:16]


@lru_cache(maxsize=1)
def _references() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}


def random_set(n_instances: int, n_cities: int, seed: int) -> Dataset:
    """A seeded random uniform set; with reference lengths when data/reference.json has them
    (checked against a digest of the coordinates, so a change of generator cannot pair
    instances with the wrong references). Its cities are in the unit square already: the
    heuristic sees the Euclidean matrix itself."""
    name = f"random-{n_instances}x{n_cities}-seed{seed}"
    coords = random_coords(n_instances, n_cities, seed)
    ref = _references().get(name)
    lengths: list[float | None] = [None] * n_instances
    if ref is not None:
        if ref["coords_sha256"] != coords_digest(coords):
            raise ValueError(f"{name}: generated coordinates differ from those of data/reference.json "
                             "(numpy's generator changed?); rerun bench/make_tsp_reference.py")
        lengths = [float(x) for x in ref["lengths"]]
    instances = []
    for i, c in enumerate(coords):
        matrix = euclidean_matrix(c)
        instances.append(Instance(f"{name}/{i}", matrix, matrix, lengths[i]))
    return Dataset(name=name, instances=tuple(instances),
                   reference=float(np.mean(lengths)) if ref is not None else None)


def file_instance(path: Path, optima: dict[str, float]) -> Instance:
    """A ``.tsp`` file; its optimum from ``optima`` by the file's stem, else measured on the
    ``<stem>.opt.tour`` beside it, else unknown."""
    inst = read_tsp(path)
    reference = optima.get(inst.name)
    tour_file = Path(path).with_name(f"{inst.name}.opt.tour")
    if reference is None and tour_file.is_file():
        reference = tour_length(inst.matrix, read_tour(tour_file, len(inst.matrix)))
    return Instance(inst.name, inst.matrix, seen_matrix(inst), reference)


def _dataset(name: str, instances: Sequence[Instance]) -> Dataset:
    """A set's reference is the mean optimum when every instance has one (then it is scored
    by the gap %), else None (then by the mean tour length)."""
    refs = [i.reference for i in instances]
    known = all(r is not None for r in refs)
    return Dataset(name=name, instances=tuple(instances), reference=float(np.mean(refs)) if known else None)


def tsplib_set() -> Dataset:
    """The 25 bundled TSPLIB instances of data/tsplib/optima.csv, with their optima."""
    optima = read_optima(TSPLIB / "optima.csv")
    return _dataset("tsplib", [file_instance(TSPLIB / f"{name}.tsp", optima) for name in optima])


def file_set(entry: str, optima_file: str | None) -> Dataset:
    """The ``.tsp`` files an entry names (a path or a glob), as one set named after it."""
    paths = expand(entry, f"a bundled TSP set ({KNOWN})")
    optima = read_optima(Path(optima_file)) if optima_file else {}
    return _dataset(entry, [file_instance(path, optima) for path in paths])


def is_bundled(entry: str) -> bool:
    return entry == "tsplib" or bool(_RANDOM.match(ALIASES.get(entry, entry)))


@lru_cache(maxsize=None)
def load_set(entry: str, optima_file: str | None = None) -> Dataset:
    """A bundled set ("tsplib", an alias of ALIASES, "random-<k>x<n>-seed<s>") or the
    user's files (a path or a glob, with optima from ``optima_file``: a CSV name,optimum)."""
    if entry == "tsplib":
        return tsplib_set()
    m = _RANDOM.match(ALIASES.get(entry, entry))
    if m:
        return random_set(int(m[1]), int(m[2]), int(m[3]))
    return file_set(entry, optima_file)
