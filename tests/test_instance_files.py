"""The user's own instance files (problem.train, problem.tests, problem.optima): TSPLIB files
of every supported distance type measured against their published optima, OR-Library and
JSON bin packing files, the scale the heuristic sees, and a one-line error for a bad file."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from problems.bin_packing import BinPacking
from problems.bin_packing import harness as bp_harness
from problems.bin_packing import load_set as bp_load_set
from problems.files import FormatError
from problems.tsp import TSP, harness, tour_length
from problems.tsp.sets import file_instance, load_set
from problems.tsp.tsplib import read_optima, read_tour, read_tsp
from tests.conftest import REPO, run_evo

TYPES = REPO / "tests" / "fixtures" / "tsplib-types"
OPTIMA = read_optima(TYPES / "optima.csv")
HEURISTICS = REPO / "tests" / "fixtures" / "heuristics" / "tsp"


def _heuristic(path: Path):
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # our own test fixtures
    return namespace["select_next_node"]


# ---- TSPLIB: distances against published optima ---------------------------------------
@pytest.mark.parametrize("name, kind", [("bayg29", "EXPLICIT"), ("fri26", "EXPLICIT"), ("gr48", "EXPLICIT"),
                                        ("ulysses22", "GEO"), ("gr202", "GEO")])
def test_opt_tours_measure_exactly_their_published_optimum(name, kind):
    inst = read_tsp(TYPES / f"{name}.tsp")
    assert inst.edge_weight_type == kind and inst.name == name
    tour = read_tour(TYPES / f"{name}.opt.tour", len(inst.matrix))
    assert tour_length(inst.matrix, tour) == OPTIMA[name]
    assert file_instance(TYPES / f"{name}.tsp", {}).reference == OPTIMA[name]  # the tour beside the file


def test_att_distance_worked_out_by_hand():
    """TSPLIB's ATT: r = sqrt((dx^2 + dy^2) / 10), t = nint(r), d = t + 1 if t < r else t."""
    m = read_tsp(TYPES / "att532.tsp").matrix
    # Nodes 1 (7810, 6053) and 2 (7798, 5709): dx 12, dy 344, (144 + 118336) / 10 = 11848,
    # r = 108.85 (108^2 = 11664 < 11848 < 11881 = 109^2, nearer 109), t = 109, not < r: 109.
    assert m[0, 1] == m[1, 0] == 109
    # Nodes 1 and 3 (7264, 5575): dx 546, dy 478, (298116 + 228484) / 10 = 52660, r = 229.48
    # (229^2 = 52441, 230^2 = 52900), t = 229 < r: 230, where plain rounding would say 229.
    assert m[0, 2] == 230
    assert m.shape == (532, 532) and (m == m.T).all() and (np.diag(m) == 0).all()


def test_ceil_2d_distance_worked_out_by_hand():
    m = read_tsp(TYPES / "dsj1000.tsp").matrix
    # Nodes 1 (981036, 508139) and 2 (534120, -42453): dx 446916, dy 550592, sum of squares
    # 502,885,461,520, between 709144^2 = 502,885,212,736 and 709144.5^2 = 502,885,921,880.25:
    # sqrt = 709144.2, whose ceiling is 709145 (EUC_2D's rounding would give 709144).
    assert m[0, 1] == 709145
    # Nodes 1 and 3 (577878, -43732): dx 403158, dy 551871, 467,097,973,605, between
    # 683445.5^2 = 467,097,751,470.25 and 683446^2 = 467,098,434,916: 683446 either way.
    assert m[0, 2] == 683446
    assert m.shape == (1000, 1000)


def _write_matrix(path: Path, matrix: np.ndarray, fmt: str) -> Path:
    n = len(matrix)
    rows = {"FULL_MATRIX": [matrix[i, :] for i in range(n)],
            "UPPER_ROW": [matrix[i, i + 1:] for i in range(n)],
            "UPPER_DIAG_ROW": [matrix[i, i:] for i in range(n)],
            "LOWER_ROW": [matrix[i, :i] for i in range(n)],
            "LOWER_DIAG_ROW": [matrix[i, :i + 1] for i in range(n)]}[fmt]
    body = "\n".join(" ".join(f"{x:g}" for x in row) for row in rows if len(row))
    path.write_text(f"NAME: {path.stem}\nTYPE: TSP\nDIMENSION: {n}\nEDGE_WEIGHT_TYPE: EXPLICIT\n"
                    f"EDGE_WEIGHT_FORMAT: {fmt}\nEDGE_WEIGHT_SECTION\n{body}\nEOF\n")
    return path


@pytest.mark.parametrize("fmt", ["FULL_MATRIX", "UPPER_ROW", "UPPER_DIAG_ROW", "LOWER_ROW", "LOWER_DIAG_ROW"])
def test_every_explicit_format_reads_the_same_matrix(tmp_path, fmt):
    """fri26 (LOWER_DIAG_ROW in TSPLIB) written out in each format reads back the same, and
    its optimal tour still measures 937."""
    matrix = read_tsp(TYPES / "fri26.tsp").matrix
    inst = read_tsp(_write_matrix(tmp_path / "fri26.tsp", matrix, fmt))
    assert np.array_equal(inst.matrix, matrix)
    assert tour_length(inst.matrix, read_tour(TYPES / "fri26.opt.tour", 26)) == 937


def test_a_glob_is_one_set_scored_by_its_optima():
    ds = load_set(str(TYPES / "*.tsp"), str(TYPES / "optima.csv"))
    assert ds.name == str(TYPES / "*.tsp")
    assert [i.name for i in ds.instances] == ["att532", "bayg29", "dsj1000", "fri26", "gr202", "gr48", "ulysses22"]
    assert [i.reference for i in ds.instances] == [OPTIMA[i.name] for i in ds.instances]
    # Without the table, att532 and dsj1000 have no optimum: the set is scored by its mean length.
    assert load_set(str(TYPES / "*.tsp")).reference is None
    assert load_set(str(TYPES / "fri26.tsp")).reference == 937  # the .opt.tour beside it


# ---- TSP: the scale the heuristic sees --------------------------------------------------
def test_every_instance_is_seen_at_the_unit_squares_scale():
    berlin = file_instance(REPO / "problems/tsp/data/tsplib/berlin52.tsp", {})
    coords = read_tsp(REPO / "problems/tsp/data/tsplib/berlin52.tsp").coords
    side = float(np.max(coords.max(axis=0) - coords.min(axis=0)))
    assert np.array_equal(berlin.seen, berlin.matrix / side)  # EUC_2D: divided by its square's side
    assert berlin.seen.max() <= math.sqrt(2)
    att = file_instance(TYPES / "att532.tsp", {})
    assert 0.5 < att.seen.max() <= math.sqrt(2) + 0.01  # ATT's distance is Euclidean / sqrt(10)
    for name in ("fri26", "gr202"):  # no plane: the longest distance is a square's diagonal
        inst = file_instance(TYPES / f"{name}.tsp", {})
        assert inst.seen.max() == pytest.approx(math.sqrt(2))
    random_train = TSP().train_set().instances[0]
    assert random_train.seen is random_train.matrix  # already in the unit square


@pytest.mark.parametrize("name, fmt", [("fri26", "LOWER_DIAG_ROW"), ("gr48", "FULL_MATRIX"),
                                       ("berlin52", "UPPER_ROW")])
def test_the_same_heuristic_gives_the_same_tour_at_any_scale(tmp_path, name, fmt):
    """An instance and the same instance with every distance x 1000: the heuristics of the
    test corpus (scale-dependent ones among them: they add distances to constants or to
    squared distances) build the same tours, ties broken alike (integer distances tie
    often); the lengths are 1000 times longer."""
    source = TYPES / f"{name}.tsp" if name != "berlin52" else REPO / "problems/tsp/data/tsplib/berlin52.tsp"
    matrix = read_tsp(source).matrix
    small = file_instance(_write_matrix(tmp_path / f"{name}.tsp", matrix, fmt), {})
    (tmp_path / "big").mkdir()
    big = file_instance(_write_matrix(tmp_path / "big" / f"{name}.tsp", 1000 * matrix, fmt), {})
    assert np.array_equal(small.seen, big.seen)  # bit for bit
    for path in sorted(HEURISTICS.glob("*.py")):
        fn = _heuristic(path)
        a, b = harness.tour(fn, small.seen), harness.tour(fn, big.seen)
        assert a.tolist() == b.tolist(), path.name
        assert tour_length(big.matrix, b) == 1000 * tour_length(small.matrix, a)


def test_scale_dependent_heuristic_is_no_longer_fooled_by_tsplib_units():
    """`d + 0.3` is nearest neighbour with a flat penalty: on the unit square it weighs, at
    TSPLIB's thousands of units it would vanish. Seen at one scale, the tour is the one it
    builds on the instance shrunk into the unit square."""
    inst = file_instance(REPO / "problems/tsp/data/tsplib/kroA100.tsp", {})
    coords = read_tsp(REPO / "problems/tsp/data/tsplib/kroA100.tsp").coords
    side = float(np.max(coords.max(axis=0) - coords.min(axis=0)))
    fn = lambda c, d, u, m: u[np.argmin(m[c][u] ** 2 + 0.3 * m[d][u])]  # noqa: E731
    assert harness.tour(fn, inst.seen).tolist() == harness.tour(fn, inst.matrix / side).tolist()
    assert harness.tour(fn, inst.seen).tolist() != harness.tour(fn, inst.matrix).tolist()


# ---- bin packing files ------------------------------------------------------------------
def test_an_or_library_file_is_the_bundled_set_it_holds():
    path = REPO / "problems/bin_packing/data/binpack1.txt"
    mine, bundled = bp_load_set(str(path)), bp_load_set("or1")
    assert mine.name == str(path) and mine.reference == bundled.reference == 49.05
    for a, b in zip(mine.instances, bundled.instances, strict=True):
        assert a.name == b.name and a.capacity == b.capacity == 150 and np.array_equal(a.items, b.items)


def test_a_json_file_in_the_bundled_layout(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"capacity": 10, "instances": {"a": [4, 4, 6, 6], "b": [9, 1, 3]}}))
    problem = BinPacking(train="weibull-1x50-seed0", tests=[str(path)])
    ds = problem.test_sets()[str(path)]
    assert [i.name for i in ds.instances] == ["a", "b"] and ds.reference == 2.0  # L1: ceil(20/10), ceil(13/10)
    first_fit = lambda item, bins: -np.arange(len(bins), dtype=float)  # noqa: E731
    verdict = problem.verify(ds, bp_harness.solve(first_fit, problem.solve_payload(ds)))
    # First Fit: a packs 4 + 4 | 6 | 6, three bins for L1 = 2 (50% excess); b packs 9 + 1 | 3.
    assert verdict.per_instance == (50.0, 0.0)


# ---- bad files: one line naming the file and the line ------------------------------------
GOOD_HEADER = "NAME: x\nTYPE: TSP\nDIMENSION: 3\nEDGE_WEIGHT_TYPE: EUC_2D\nNODE_COORD_SECTION\n"


@pytest.mark.parametrize("text, line, message", [
    (GOOD_HEADER + "1 0 0\n2 1 zz\n3 2 2\nEOF\n", 7, "expected a coordinate, got 'zz'"),
    (GOOD_HEADER + "1 0 0\n2 1\n3 2 2\nEOF\n", 7, "expected 'node x y' (3 numbers), got 2 values"),
    (GOOD_HEADER + "1 0 0\n4 1 1\n3 2 2\nEOF\n", 7, "expected a node number in 1..3 (DIMENSION), got 4"),
    (GOOD_HEADER + "1 0 0\n1 1 1\n3 2 2\nEOF\n", 7, "node 1 is listed twice"),
    (GOOD_HEADER + "1 0 0\n2 1 1\nEOF\n", 8, "expected 3 nodes in NODE_COORD_SECTION (DIMENSION), got 2"),
    ("NAME: x\nTYPE: TSP\nEDGE_WEIGHT_TYPE: EUC_2D\nNODE_COORD_SECTION\n1 0 0\n", 4,
     "expected a DIMENSION line before the first section"),
    ("NAME: x\nDIMENSION: 3\nEDGE_WEIGHT_TYPE: EUC_3D\nNODE_COORD_SECTION\n1 0 0 0\n", 3,
     "EDGE_WEIGHT_TYPE EUC_3D is not supported; expected one of EUC_2D, CEIL_2D, ATT, GEO, EXPLICIT"),
    ("NAME: x\nTYPE: ATSP\nDIMENSION: 2\nEDGE_WEIGHT_TYPE: EXPLICIT\nEDGE_WEIGHT_FORMAT: FULL_MATRIX\n"
     "EDGE_WEIGHT_SECTION\n0 1\n2 0\nEOF\n", 2, "TYPE ATSP is not supported; expected TSP (a symmetric "
     "travelling salesman instance)"),
    ("NAME: x\nDIMENSION: 2\nEDGE_WEIGHT_TYPE: EXPLICIT\nEDGE_WEIGHT_FORMAT: FULL_MATRIX\n"
     "EDGE_WEIGHT_SECTION\n0 1\n2 0\nEOF\n", 5, "expected a symmetric matrix; the weight of nodes 1 -> 2 "
     "differs from 2 -> 1"),
    ("NAME: x\nDIMENSION: 3\nEDGE_WEIGHT_TYPE: EXPLICIT\nEDGE_WEIGHT_FORMAT: UPPER_ROW\n"
     "EDGE_WEIGHT_SECTION\n1 2\n3 4\nEOF\n", 7, "expected 3 weights (UPPER_ROW, DIMENSION 3); this line goes "
     "past them"),
    ("NAME: x\nDIMENSION: 3\nEDGE_WEIGHT_TYPE: EXPLICIT\nEDGE_WEIGHT_FORMAT: UPPER_ROW\n"
     "EDGE_WEIGHT_SECTION\n1 2\nEOF\n", 6, "expected 3 weights (UPPER_ROW, DIMENSION 3), got 2"),
    ("NAME: x\nDIMENSION: 3\nEDGE_WEIGHT_TYPE: EXPLICIT\nEDGE_WEIGHT_FORMAT: UPPER_COL\n"
     "EDGE_WEIGHT_SECTION\n1 2 3\nEOF\n", 4, "expected EDGE_WEIGHT_FORMAT one of FULL_MATRIX, UPPER_ROW, "
     "LOWER_ROW, UPPER_DIAG_ROW, LOWER_DIAG_ROW, got UPPER_COL"),
    ("NAME: x\nDIMENSION: 3\nEDGE_WEIGHT_TYPE: EUC_2D\nFIXED_EDGES_SECTION\n1 2\n-1\nEOF\n", 4,
     "FIXED_EDGES_SECTION is not supported; expected NODE_COORD_SECTION or EDGE_WEIGHT_SECTION (a plain "
     "symmetric TSP)"),
    ("NAME: x\nDIMENSION: 3\nCOLOUR: blue\n", 3, "expected a TSPLIB keyword (NAME, TYPE, COMMENT, DIMENSION, "
     "EDGE_WEIGHT_TYPE, EDGE_WEIGHT_FORMAT, DISPLAY_DATA_TYPE, NODE_COORD_TYPE, CAPACITY) or a section, got "
     "'COLOUR: blue'"),
    ("NAME: x\nDIMENSION: three\nEDGE_WEIGHT_TYPE: EUC_2D\nNODE_COORD_SECTION\n1 0 0\n", 2,
     "expected DIMENSION: the number of nodes, an integer, got 'three'"),
])
def test_a_malformed_tsp_file_is_one_line_naming_the_line(tmp_path, text, line, message):
    path = tmp_path / "x.tsp"
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        read_tsp(path)
    assert str(err.value) == f"{path}:{line}: {message}"


def test_a_malformed_tour_or_optima_table(tmp_path):
    tour = tmp_path / "t.opt.tour"
    tour.write_text("NAME: t\nTYPE: TOUR\nTOUR_SECTION\n1\n2\n2\n-1\nEOF\n")
    with pytest.raises(FormatError, match=rf"^{tour}:6: node 2 is visited twice$"):
        read_tour(tour, 3)
    tour.write_text("NAME: t\nTYPE: TOUR\nTOUR_SECTION\n1\n2\n-1\nEOF\n")
    with pytest.raises(FormatError, match=rf"^{tour}:7: expected a tour of all 3 nodes of the instance, got 2$"):
        read_tour(tour, 3)
    table = tmp_path / "optima.csv"
    table.write_text("instance,length\nx,1\n")
    with pytest.raises(FormatError, match=rf"^{table}:1: expected a header with columns name,optimum, got "
                                          "instance,length$"):
        read_optima(table)
    table.write_text("name,optimum\nx,12\ny,twelve\n")
    with pytest.raises(FormatError, match=rf"^{table}:3: expected the optimum, a tour length, got 'twelve'$"):
        read_optima(table)


@pytest.mark.parametrize("text, line, message", [
    ("2\n a \n 10 2 1\n 5\n 5\n", 5, "expected the name of instance 2 of 2, but the file ends"),
    ("1\n a \n 10 2 1\n 5\n 11\n", 5, "expected a: item 2 of 2, a size <= the capacity 10, got 11"),
    ("1\n a \n 10 two 1\n 5\n 5\n", 3, "expected a: the number of items (capacity n_items best_known) "
                                       "(an integer), got 'two'"),
    ("1\n a \n 0 2 1\n 5\n 5\n", 3, "expected a: the bin capacity (capacity n_items best_known) > 0, got 0"),
    ("1\n a \n 10 2 1\n 5\n 5\n 7\n", 6, "expected the end of the file after 1 instances, got '7'"),
    ("one\n", 1, "expected the number of instances (an integer), got 'one'"),
])
def test_a_malformed_or_library_file_is_one_line_naming_the_line(tmp_path, text, line, message):
    path = tmp_path / "mine.txt"
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        bp_load_set(str(path))
    assert str(err.value) == f"{path}:{line}: {message}"


@pytest.mark.parametrize("text, line, message", [
    ('{"capacity": 100,\n "instances": {"a": [1, 2,]}}', 2, "expected JSON: Expecting value"),
    ('{"instances": {"a": [1, 2]}}', 1, 'expected a JSON object {"capacity": C, "instances": {name: [sizes, ...]}}'),
    ('{"capacity": 100,\n "instances": {\n  "a": [1, 2],\n  "b": [3, "x"]}}', 4,
     "instance b: expected a list of item sizes in (0, 100] (the capacity)"),
])
def test_a_malformed_json_file_is_one_line_naming_the_line(tmp_path, text, line, message):
    path = tmp_path / "mine.json"
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        bp_load_set(str(path))
    assert str(err.value) == f"{path}:{line}: {message}"


def test_the_command_line_says_one_line_and_exits_2(tmp_path):
    bad = tmp_path / "bad.tsp"
    bad.write_text(GOOD_HEADER + "1 0 0\n2 1 zz\n3 2 2\nEOF\n")
    nearest = str(HEURISTICS / "nearest.py")
    for args in (["evaluate", nearest, "problem=tsp", f"problem.tests=[{bad}]"],
                 ["run", "problem=tsp", f"problem.train={bad}", f"hydra.run.dir={tmp_path / 'run'}"],
                 ["evaluate", nearest, "problem=tsp", f"problem.tests=['{tmp_path}/*.nothing']"],
                 ["evaluate", nearest, "problem=tsp", f"problem.optima={tmp_path / 'optima.csv'}"]):
        result = run_evo(*args)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
    result = run_evo("evaluate", nearest, "problem=tsp", f"problem.tests=[{bad}]")
    assert result.stderr.strip() == f"evo: error: problem 'problems.tsp.TSP' cannot be loaded: {bad}:7: expected a coordinate, got 'zz'"


def test_evaluate_on_your_own_files(tmp_path):
    """Both problems, a path and a quoted glob, optima from a table: through the command line."""
    result = run_evo("evaluate", str(HEURISTICS / "nearest.py"), "problem=tsp", "problem.train=random-4x20-seed1",
                     f"problem.tests=[{TYPES / 'fri26.tsp'},'{TYPES}/gr*.tsp']", "--json", check=True)
    report = json.loads(result.stdout)
    assert set(report["test"]) == {str(TYPES / "fri26.tsp"), f"{TYPES}/gr*.tsp"}
    fri26 = report["test"][str(TYPES / "fri26.tsp")]
    assert fri26["instances"] == 1 and fri26["reference"] == 937 and fri26["score"] > 0  # a gap %
    assert report["test"][f"{TYPES}/gr*.tsp"]["instances"] == 2
    binpack = REPO / "problems/bin_packing/data/binpack1.txt"
    result = run_evo("evaluate", str(REPO / "tests/fixtures/heuristics/bin_packing/best_fit.py"), "problem=bin_packing",
                     f"problem.train={binpack}", "problem.tests=[or1]", "--json", check=True)
    report = json.loads(result.stdout)
    assert round(report["train"][str(binpack)]["score"], 2) == 5.81 == round(report["test"]["or1"]["score"], 2)


def test_a_run_on_your_own_files(tmp_path):
    """`evo run` trains on a TSPLIB file (an EXPLICIT one, scored by the gap to the optimum
    its .opt.tour gives) and `evo inspect` scores the best on the test files."""
    run_dir = tmp_path / "run"
    run_evo("run", "problem=tsp", f"problem.train={TYPES / 'gr48.tsp'}", f"problem.tests=['{TYPES}/[bu]*.tsp']",
            "budget.evaluations=12", "workers=1", f"hydra.run.dir={run_dir}", check=True)
    report = json.loads(run_evo("inspect", str(run_dir), "--json", check=True).stdout)
    rows = {row["name"]: row for row in report["scores"]["sets"]}
    assert rows[str(TYPES / "gr48.tsp")]["reference"] == 5046
    test = rows[f"{TYPES}/[bu]*.tsp"]
    assert test["instances"] == 2 and test["reference"] == (1610 + 7013) / 2  # bayg29, ulysses22
    assert test["best"]["score"] > 0 and test["baselines"]["nearest_neighbour"]["score"] > 0  # gaps %
    train = rows[str(TYPES / "gr48.tsp")]
    assert 0 < train["best"]["score"] <= train["baselines"]["nearest_neighbour"]["score"]  # the seed is NN
