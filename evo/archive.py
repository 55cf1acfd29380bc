"""The MAP-Elites archive: a pyribs GridArchive of candidate ids.

The archive knows nothing of where candidates come from. It stores, per cell, the id of
the best candidate so far; scores are "lower is better" in evo and negated for pyribs,
which maximises. Cell ranges are fixed by config and never rescaled during a run.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MeasureAxis:
    name: str
    bins: int
    low: float
    high: float


@dataclass(frozen=True)
class Elite:
    cid: int
    score: float
    measures: tuple[float, ...]
    cell: int


class Archive:
    def __init__(self, axes: tuple[MeasureAxis, ...], qd_reference: float):
        self.axes = axes
        self.qd_reference = qd_reference
        # pyribs pulls in scikit-learn and numba (seconds of imports): only a run pays for them,
        # not a command that merely checks its config.
        from ribs.archives import GridArchive

        self._grid = GridArchive(
            solution_dim=1,
            dims=[a.bins for a in axes],
            ranges=[(a.low, a.high) for a in axes],
            extra_fields={"cid": ((), np.int64)},
        )
        self._cells = int(np.prod([a.bins for a in axes]))

    def add(self, cid: int, score: float, measures: tuple[float, ...]) -> tuple[int, int]:
        """Offer one candidate. Returns (status, cell): 0 not added, 1 improved, 2 new cell."""
        clipped = [min(max(m, a.low), a.high) for m, a in zip(measures, self.axes)]
        result = self._grid.add(
            np.array([[cid]], dtype=float),
            np.array([-score]),
            np.array([clipped]),
            cid=np.array([cid], dtype=np.int64),
        )
        cell = int(self._grid.index_of(np.array([clipped]))[0])
        return int(result["status"][0]), cell

    def elites(self) -> list[Elite]:
        data = self._grid.data()
        rows = zip(data["cid"], data["objective"], data["measures"], data["index"])
        return sorted(
            (Elite(int(c), float(-o), tuple(float(x) for x in m), int(i)) for c, o, m, i in rows),
            key=lambda e: (e.score, e.cid),
        )

    def __len__(self) -> int:
        return len(self._grid)

    def best(self) -> Elite | None:
        elites = self.elites()
        return elites[0] if elites else None

    @property
    def coverage(self) -> float:
        return len(self._grid) / self._cells

    @property
    def qd_score(self) -> float:
        """The sum over elites of what each is worth: ``qd_reference - score``, and nothing
        (not a negative amount) for an elite worse than the reference. The reference is the
        score at which a heuristic is worth nothing, fixed per problem so QD scores compare.
        Clipped, the QD score never decreases: a new cell adds a worth >= 0, and an elite is
        only ever replaced by a better one. (pyribs' own offset does not clip: an elite worse
        than the reference subtracted, so filling a cell could lower the QD score.)"""
        if not len(self._grid):
            return 0.0
        scores = -self._grid.data("objective")
        return float(np.maximum(self.qd_reference - scores, 0.0).sum())

    def cell_coordinates(self, cell: int) -> tuple[int, ...]:
        return _coordinates(self.axes, cell)

    def digest(self, code_hash: dict[int, str]) -> str:
        return _digest(self.elites(), code_hash)


class RecordedArchive:
    """The archive as a run recorded it, without pyribs (whose import alone takes about 3 s).

    Every committed candidate carries the cell it fell in and whether it entered the
    archive there (``archive_status``, from ``Archive.add`` at its commit), so a cell's
    elite is the last candidate that entered it. Read-only commands rebuild the archive
    this way; the engine, which must decide, uses ``Archive``."""

    def __init__(self, axes: tuple[MeasureAxis, ...]):
        self.axes = axes
        self._by_cell: dict[int, Elite] = {}
        self._cells = int(np.prod([a.bins for a in axes]))
        self._best: Elite | None = None
        self.qd_score = 0.0

    def enter(self, cid: int, score: float, measures: tuple[float, ...], cell: int, qd_score: float) -> None:
        """Candidate ``cid`` entered ``cell``; ``qd_score`` is the archive's after it, as recorded."""
        if not 0 <= cell < self._cells:
            raise ValueError(f"candidate {cid} entered cell {cell}, outside the archive's {self._cells} cells")
        clipped = tuple(min(max(m, a.low), a.high) for m, a in zip(measures, self.axes))
        elite = self._by_cell[cell] = Elite(cid, score, clipped, cell)
        # An elite is only ever replaced by a better one: the best so far is the best.
        if self._best is None or (score, cid) < (self._best.score, self._best.cid):
            self._best = elite
        self.qd_score = qd_score

    def elites(self) -> list[Elite]:
        return sorted(self._by_cell.values(), key=lambda e: (e.score, e.cid))

    def __len__(self) -> int:
        return len(self._by_cell)

    def best(self) -> Elite | None:
        return self._best

    @property
    def coverage(self) -> float:
        return len(self._by_cell) / self._cells

    def cell_coordinates(self, cell: int) -> tuple[int, ...]:
        return _coordinates(self.axes, cell)

    def digest(self, code_hash: dict[int, str]) -> str:
        return _digest(self.elites(), code_hash)


def _coordinates(axes: tuple[MeasureAxis, ...], cell: int) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(cell, [a.bins for a in axes]))


def _digest(elites: list[Elite], code_hash: dict[int, str]) -> str:
    """A hash over the sorted elites (cell, code hash, score): equal archives, equal digests."""
    h = hashlib.sha256()
    for e in sorted(elites, key=lambda e: e.cell):
        h.update(f"{e.cell}:{code_hash[e.cid]}:{e.score:.12g};".encode())
    return h.hexdigest()[:16]
