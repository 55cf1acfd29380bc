"""Bin packing instance sets: the bundled ones, generated Weibull ones and the user's files.

Files come in two formats: OR-Library's (the format of ``data/binpack1.txt``: a count, then
per instance a name, ``capacity n_items best_known`` and n_items sizes) and the JSON layout
of the bundled Weibull sets (``{"capacity": C, "instances": {name: [sizes, ...]}}``). A
``.json`` file is read as JSON, any other as OR-Library's. A malformed file raises
``FormatError``: one line naming the file, the line and what was expected there.
"""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from problems.base import Dataset
from problems.files import FormatError, expand, number, numbered_tokens

DATA = Path(__file__).parent / "data"

# name -> file. OR1-OR4 are OR-Library binpack1-4 (Falkenauer's u120..u1000).
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
_GENERATED = re.compile(r"^weibull-(\d+)x(\d+)-seed(\d+)$")
KNOWN = ", ".join(BUNDLED) + ", weibull-<instances>x<items>-seed<seed>"


class Instance(NamedTuple):
    name: str
    capacity: float
    items: np.ndarray  # float64 sizes, in arrival order


def l1_bound(inst: Instance) -> int:
    return math.ceil(float(np.sum(inst.items)) / inst.capacity - 1e-9)


def dataset(name: str, instances: Sequence[Instance]) -> Dataset:
    instances = tuple(instances)
    mean_l1 = float(np.mean([l1_bound(i) for i in instances]))
    return Dataset(name=name, instances=instances, reference=mean_l1)


def read_or_library(path: Path) -> list[Instance]:
    """OR-Library's binpack format: a count; then per instance a name, ``capacity n best``
    (the best known number of bins, not used here) and n sizes."""
    path = Path(path)
    tokens = numbered_tokens(path)
    if not tokens:
        raise FormatError(path, None, "expected the number of instances, got an empty file")
    reader = _Tokens(path, tokens)
    count = reader.integer("the number of instances", minimum=1)
    out = []
    for _ in range(count):
        name = reader.next(f"the name of instance {len(out) + 1} of {count}")
        capacity = reader.number(f"{name}: the bin capacity (capacity n_items best_known)", positive=True)
        n = reader.integer(f"{name}: the number of items (capacity n_items best_known)", minimum=1)
        reader.number(f"{name}: the best known number of bins (capacity n_items best_known)")
        items = [reader.number(f"{name}: item {i + 1} of {n}, a size", positive=True, at_most=capacity)
                 for i in range(n)]
        out.append(Instance(name, capacity, np.asarray(items, dtype=np.float64)))
    if reader.pos < len(tokens):
        line, token = tokens[reader.pos]
        raise FormatError(path, line, f"expected the end of the file after {count} instances, got {token!r}")
    return out


class _Tokens:
    """A file's tokens, read one at a time, each error naming the line it is on."""

    def __init__(self, path: Path, tokens: list[tuple[int, str]]):
        self.path, self.tokens, self.pos = path, tokens, 0
        self.line = tokens[0][0]

    def next(self, what: str) -> str:
        if self.pos == len(self.tokens):
            raise FormatError(self.path, self.line, f"expected {what}, but the file ends")
        self.line, token = self.tokens[self.pos]
        self.pos += 1
        return token

    def number(self, what: str, positive: bool = False, at_most: float = math.inf) -> float:
        token = self.next(what)
        value = number(self.path, self.line, token, what)
        if positive and not value > 0:
            raise FormatError(self.path, self.line, f"expected {what} > 0, got {token}")
        if value > at_most:
            raise FormatError(self.path, self.line, f"expected {what} <= the capacity {at_most:g}, got {token}")
        return value

    def integer(self, what: str, minimum: int) -> int:
        token = self.next(what)
        value = int(number(self.path, self.line, token, f"{what} (an integer)", integer=True))
        if value < minimum:
            raise FormatError(self.path, self.line, f"expected {what} >= {minimum}, got {value}")
        return value


def read_weibull_json(path: Path) -> list[Instance]:
    """The bundled Weibull sets' layout: ``{"capacity": C, "instances": {name: [sizes]}}``."""
    path = Path(path)
    try:
        text = path.read_text()
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(path, exc.lineno, f"expected JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, None, f"cannot be read: {exc}") from None
    layout = 'a JSON object {"capacity": C, "instances": {name: [sizes, ...]}}'
    if not isinstance(doc, dict) or "capacity" not in doc or not isinstance(doc.get("instances"), dict):
        raise FormatError(path, 1, f"expected {layout}")
    capacity = doc["capacity"]
    if isinstance(capacity, bool) or not isinstance(capacity, (int, float)) or not capacity > 0:
        raise FormatError(path, _line_of(text, '"capacity"'), f"expected a capacity > 0, got {capacity!r}")
    if not doc["instances"]:
        raise FormatError(path, _line_of(text, '"instances"'), "expected at least one instance")
    out = []
    for name, items in doc["instances"].items():
        line = _line_of(text, json.dumps(name))
        if not isinstance(items, list) or not items or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= capacity for x in items):
            raise FormatError(path, line, f"instance {name}: expected a list of item sizes in (0, {capacity:g}] "
                                          "(the capacity)")
        out.append(Instance(str(name), float(capacity), np.asarray(items, dtype=np.float64)))
    return out


def _line_of(text: str, needle: str) -> int:
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def read_file(path: Path) -> list[Instance]:
    return read_weibull_json(path) if Path(path).suffix == ".json" else read_or_library(path)


def weibull_items(n_items: int, rng: np.random.Generator) -> np.ndarray:
    """FunSearch/EoH's generator: Weibull(shape 3) x 45, clipped to [1, 100], rounded."""
    return np.round(np.clip(rng.weibull(3.0, n_items) * 45.0, 1, 100))


def weibull_set(n_instances: int, n_items: int, seed: int, capacity: float = 100.0) -> Dataset:
    """A new seeded Weibull set (named ``weibull-{n_instances}x{n_items}-seed{seed}``)."""
    rng = np.random.default_rng(seed)
    name = f"weibull-{n_instances}x{n_items}-seed{seed}"
    return dataset(name, [Instance(f"{name}/{i}", float(capacity), weibull_items(n_items, rng))
                          for i in range(n_instances)])


def is_bundled(entry: str) -> bool:
    return entry in BUNDLED or bool(_GENERATED.match(entry))


@lru_cache(maxsize=None)
def load_set(entry: str) -> Dataset:
    """A bundled set by name (see BUNDLED), a generated one (``weibull-5x1000-seed0``), or the
    user's files: a path or a glob, whose files' instances form one set named after it."""
    m = _GENERATED.match(entry)
    if m:
        return weibull_set(int(m[1]), int(m[2]), int(m[3]))
    if entry in BUNDLED:
        return dataset(entry, read_file(DATA / BUNDLED[entry]))
    paths = expand(entry, f"a bundled bin packing set ({KNOWN})")
    return dataset(entry, [inst for path in paths for inst in read_file(path)])
