"""TSPLIB files: ``.tsp`` instances, ``.opt.tour`` tours and tables of optima.

Symmetric instances of the edge weight types EUC_2D, CEIL_2D, ATT, GEO and EXPLICIT
(FULL_MATRIX, UPPER_ROW, LOWER_ROW, UPPER_DIAG_ROW, LOWER_DIAG_ROW), each with TSPLIB's own
distance function (Reinelt, "TSPLIB 95", section 2; GEO as the TSPLIB FAQ corrects it:
degrees truncated, not rounded). Every distance is an integer, kept as a float64 matrix.
A malformed file raises ``FormatError``: one line naming the file, the line and what was
expected there.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from problems.files import FormatError, number, numbered_lines

COORDINATE_TYPES = ("EUC_2D", "CEIL_2D", "ATT", "GEO")
MATRIX_FORMATS = ("FULL_MATRIX", "UPPER_ROW", "LOWER_ROW", "UPPER_DIAG_ROW", "LOWER_DIAG_ROW")
HEADER_KEYS = ("NAME", "TYPE", "COMMENT", "DIMENSION", "EDGE_WEIGHT_TYPE", "EDGE_WEIGHT_FORMAT",
               "DISPLAY_DATA_TYPE", "NODE_COORD_TYPE", "CAPACITY")
GEO_RADIUS = 6378.388  # km, TSPLIB's idealised sphere
GEO_PI = 3.141592  # TSPLIB's own value of pi for GEO, not math.pi


@dataclass(frozen=True)
class TsplibInstance:
    name: str  # the file's stem: the name optima are looked up by
    edge_weight_type: str
    coords: np.ndarray | None  # (n, 2) as in the file; None for EXPLICIT
    matrix: np.ndarray  # (n, n) float64 of TSPLIB's integer distances


def distances(edge_weight_type: str, coords: np.ndarray) -> np.ndarray:
    """TSPLIB's distance function of a coordinate type, for every pair of nodes."""
    x, y = coords[:, 0], coords[:, 1]
    if edge_weight_type == "GEO":
        return _geo(x, y)
    dx, dy = x[:, None] - x[None, :], y[:, None] - y[None, :]
    if edge_weight_type == "ATT":
        r = np.sqrt((dx * dx + dy * dy) / 10.0)  # pseudo-Euclidean
        t = np.floor(r + 0.5)
        return np.where(t < r, t + 1.0, t)
    d = np.sqrt(dx * dx + dy * dy)
    if edge_weight_type == "CEIL_2D":
        return np.ceil(d)
    if edge_weight_type == "EUC_2D":
        return np.floor(d + 0.5)  # nint
    raise ValueError(f"no distance function for {edge_weight_type!r}")


def _geo(lat_field: np.ndarray, lon_field: np.ndarray) -> np.ndarray:
    """GEO: fields are DDD.MM (degrees and minutes); distances in km on TSPLIB's sphere."""

    def radians(field: np.ndarray) -> np.ndarray:
        degrees = np.trunc(field)
        return GEO_PI * (degrees + 5.0 * (field - degrees) / 3.0) / 180.0

    lat, lon = radians(lat_field), radians(lon_field)
    q1 = np.cos(lon[:, None] - lon[None, :])
    q2 = np.cos(lat[:, None] - lat[None, :])
    q3 = np.cos(lat[:, None] + lat[None, :])
    inner = np.clip(0.5 * ((1.0 + q1) * q2 - (1.0 - q1) * q3), -1.0, 1.0)
    d = np.floor(GEO_RADIUS * np.arccos(inner) + 1.0)
    np.fill_diagonal(d, 0.0)  # TSPLIB's formula gives 1 for a node to itself; no tour uses it
    return d


def read_tsp(path: Path) -> TsplibInstance:
    """One ``.tsp`` file; raises FormatError naming the line of the first problem."""
    path = Path(path)
    reader = _TspReader(path)
    reader.read()
    return reader.instance()


class _TspReader:
    """Header lines (``KEY : value``) and sections, in the order the file has them."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = numbered_lines(path)
        self.pos = 0
        self.header: dict[str, tuple[str, int]] = {}
        self.coords: np.ndarray | None = None
        self.weights: list[float] | None = None
        self.section_line = 0

    def fail(self, line: int | None, message: str) -> FormatError:
        return FormatError(self.path, line, message)

    def read(self) -> None:
        while self.pos < len(self.lines):
            line_no, text = self.lines[self.pos]
            self.pos += 1
            text = text.strip()
            if not text:
                continue
            if text == "EOF":
                break
            key, _, value = text.partition(":")
            key = key.strip().upper()
            if key == "NODE_COORD_SECTION":
                self._node_coords(line_no)
            elif key == "EDGE_WEIGHT_SECTION":
                self._edge_weights(line_no)
            elif key == "DISPLAY_DATA_SECTION":
                self._skip_lines(self.dimension(line_no))
            elif key.endswith("_SECTION"):
                raise self.fail(line_no, f"{key} is not supported; expected NODE_COORD_SECTION or "
                                         "EDGE_WEIGHT_SECTION (a plain symmetric TSP)")
            elif key in HEADER_KEYS:
                self.header[key] = (value.strip(), line_no)
            else:
                raise self.fail(line_no, f"expected a TSPLIB keyword ({', '.join(HEADER_KEYS)}) or a section, "
                                         f"got {text[:40]!r}")

    def value(self, key: str) -> str | None:
        return self.header[key][0] if key in self.header else None

    def dimension(self, line_no: int) -> int:
        if "DIMENSION" not in self.header:
            raise self.fail(line_no, "expected a DIMENSION line before the first section")
        value, at = self.header["DIMENSION"]
        n = int(number(self.path, at, value, "DIMENSION: the number of nodes, an integer", integer=True))
        if n < 2:
            raise self.fail(at, f"expected DIMENSION of at least 2 nodes, got {n}")
        return n

    def edge_weight_type(self, line_no: int) -> str:
        kind = (self.value("EDGE_WEIGHT_TYPE") or "").upper()
        at = self.header.get("EDGE_WEIGHT_TYPE", ("", line_no))[1]
        if not kind:
            raise self.fail(line_no, "expected an EDGE_WEIGHT_TYPE line before the first section")
        if kind not in (*COORDINATE_TYPES, "EXPLICIT"):
            raise self.fail(at, f"EDGE_WEIGHT_TYPE {kind} is not supported; expected one of "
                                f"{', '.join((*COORDINATE_TYPES, 'EXPLICIT'))}")
        return kind

    def _data_lines(self):
        """The following non-blank lines, up to a keyword line or EOF (left unread)."""
        while self.pos < len(self.lines):
            line_no, text = self.lines[self.pos]
            stripped = text.strip()
            if stripped and (stripped == "EOF" or stripped[0].isalpha()):
                return
            self.pos += 1
            if stripped:
                yield line_no, stripped.split()

    def _node_coords(self, line_no: int) -> None:
        n = self.dimension(line_no)
        kind = self.edge_weight_type(line_no)
        if kind == "EXPLICIT":
            raise self.fail(line_no, "NODE_COORD_SECTION in an EXPLICIT instance; expected EDGE_WEIGHT_SECTION")
        coords = np.full((n, 2), np.nan)
        count = 0
        for at, tokens in self._data_lines():
            if len(tokens) != 3:
                raise self.fail(at, f"expected 'node x y' (3 numbers), got {len(tokens)} values")
            node = int(number(self.path, at, tokens[0], "a node number", integer=True))
            if not 1 <= node <= n:
                raise self.fail(at, f"expected a node number in 1..{n} (DIMENSION), got {node}")
            if not np.isnan(coords[node - 1, 0]):
                raise self.fail(at, f"node {node} is listed twice")
            coords[node - 1] = [number(self.path, at, t, "a coordinate") for t in tokens[1:]]
            count += 1
            if count == n:
                break
        if count < n:
            end = self.lines[self.pos][0] if self.pos < len(self.lines) else self.lines[-1][0]
            raise self.fail(end, f"expected {n} nodes in NODE_COORD_SECTION (DIMENSION), got {count}")
        self.coords = coords
        self.section_line = line_no

    def _edge_weights(self, line_no: int) -> None:
        n = self.dimension(line_no)
        if self.edge_weight_type(line_no) != "EXPLICIT":
            raise self.fail(line_no, "EDGE_WEIGHT_SECTION needs EDGE_WEIGHT_TYPE: EXPLICIT")
        fmt = (self.value("EDGE_WEIGHT_FORMAT") or "").upper()
        if fmt not in MATRIX_FORMATS:
            at = self.header.get("EDGE_WEIGHT_FORMAT", ("", line_no))[1]
            raise self.fail(at, f"expected EDGE_WEIGHT_FORMAT one of {', '.join(MATRIX_FORMATS)}, "
                                f"got {fmt or 'none'}")
        want = _weight_count(fmt, n)
        weights: list[float] = []
        last = line_no
        for at, tokens in self._data_lines():
            last = at
            if len(weights) + len(tokens) > want:
                raise self.fail(at, f"expected {want} weights ({fmt}, DIMENSION {n}); this line goes past them")
            weights.extend(number(self.path, at, t, "a distance") for t in tokens)
            if len(weights) == want:
                break
        if len(weights) < want:
            raise self.fail(last, f"expected {want} weights ({fmt}, DIMENSION {n}), got {len(weights)}")
        if min(weights) < 0:
            raise self.fail(line_no, "expected distances >= 0 in EDGE_WEIGHT_SECTION, found a negative one")
        self.weights = weights
        self.section_line = line_no

    def _skip_lines(self, n: int) -> None:
        for count, _ in enumerate(self._data_lines(), start=1):
            if count == n:
                return

    def instance(self) -> TsplibInstance:
        last = self.lines[-1][0] if self.lines else None
        kind_type = (self.value("TYPE") or "TSP").upper()
        if kind_type != "TSP":
            raise self.fail(self.header["TYPE"][1], f"TYPE {kind_type} is not supported; expected TSP "
                                                    "(a symmetric travelling salesman instance)")
        n = self.dimension(last)
        kind = self.edge_weight_type(last)
        if kind == "EXPLICIT":
            if self.weights is None:
                raise self.fail(last, "expected an EDGE_WEIGHT_SECTION (EDGE_WEIGHT_TYPE: EXPLICIT)")
            matrix = _full_matrix(self.value("EDGE_WEIGHT_FORMAT").upper(), n, self.weights)
            if not np.array_equal(matrix, matrix.T):
                i, j = (int(v) for v in np.argwhere(matrix != matrix.T)[0])
                raise self.fail(self.section_line, f"expected a symmetric matrix; the weight of nodes "
                                                   f"{i + 1} -> {j + 1} differs from {j + 1} -> {i + 1}")
            return TsplibInstance(self.path.stem, kind, None, matrix)
        if self.coords is None:
            raise self.fail(last, f"expected a NODE_COORD_SECTION (EDGE_WEIGHT_TYPE: {kind})")
        return TsplibInstance(self.path.stem, kind, self.coords, distances(kind, self.coords))


def _weight_count(fmt: str, n: int) -> int:
    return {"FULL_MATRIX": n * n, "UPPER_ROW": n * (n - 1) // 2, "LOWER_ROW": n * (n - 1) // 2,
            "UPPER_DIAG_ROW": n * (n + 1) // 2, "LOWER_DIAG_ROW": n * (n + 1) // 2}[fmt]


def _full_matrix(fmt: str, n: int, weights: list[float]) -> np.ndarray:
    values = np.asarray(weights, dtype=np.float64)
    if fmt == "FULL_MATRIX":
        return values.reshape(n, n)
    # Row by row, each format lists one triangle; numpy's triangle indices are in that order.
    rows, cols = {"UPPER_ROW": np.triu_indices(n, 1), "UPPER_DIAG_ROW": np.triu_indices(n),
                  "LOWER_ROW": np.tril_indices(n, -1), "LOWER_DIAG_ROW": np.tril_indices(n)}[fmt]
    matrix = np.zeros((n, n))
    matrix[rows, cols] = values
    matrix[cols, rows] = values
    return matrix


def read_tour(path: Path, n: int) -> np.ndarray:
    """A ``.opt.tour`` file's tour as 0-based nodes, a permutation of ``n`` nodes."""
    path = Path(path)
    lines = numbered_lines(path)
    start = next((i for i, (_, text) in enumerate(lines) if text.strip().upper().startswith("TOUR_SECTION")), None)
    if start is None:
        raise FormatError(path, lines[-1][0] if lines else None, "expected a TOUR_SECTION line")
    nodes: list[int] = []
    seen = np.zeros(n, dtype=bool)
    for line_no, text in lines[start + 1:]:
        for token in text.split():
            if token in ("-1", "EOF"):
                break
            node = int(number(path, line_no, token, "a node number", integer=True))
            if not 1 <= node <= n:
                raise FormatError(path, line_no, f"expected a node number in 1..{n}, got {node}")
            if seen[node - 1]:
                raise FormatError(path, line_no, f"node {node} is visited twice")
            seen[node - 1] = True
            nodes.append(node - 1)
        else:
            continue
        break
    if len(nodes) != n:
        raise FormatError(path, lines[-1][0], f"expected a tour of all {n} nodes of the instance, got {len(nodes)}")
    return np.array(nodes, dtype=np.int64)


def read_optima(path: Path) -> dict[str, float]:
    """A CSV with columns ``name,optimum`` (TSPLIB's bundled table says ``optimal``)."""
    path = Path(path)
    lines = numbered_lines(path)
    rows = list(csv.reader(text for _, text in lines))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    column = next((c for c in ("optimum", "optimal") if c in header), None)
    if "name" not in header or column is None:
        raise FormatError(path, 1, f"expected a header with columns name,optimum, got {','.join(header) or 'nothing'}")
    name_at, value_at = header.index("name"), header.index(column)
    optima: dict[str, float] = {}
    for (line_no, _), row in zip(lines[1:], rows[1:]):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(name_at, value_at):
            raise FormatError(path, line_no, f"expected {len(header)} columns, got {len(row)}")
        value = number(path, line_no, row[value_at].strip(), "the optimum, a tour length")
        if not value > 0 or not math.isfinite(value):
            raise FormatError(path, line_no, f"expected an optimum > 0, got {row[value_at].strip()}")
        optima[row[name_at].strip()] = value
    return optima
