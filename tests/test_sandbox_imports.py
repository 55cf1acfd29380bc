"""Candidate code may import numpy (preloaded) and the standard library; any other module,
installed or not, fails with one line that names it and says what is available."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from sandbox_helpers import FAST, HARNESS, job  # noqa: E402

from sandbox import Sandbox  # noqa: E402


@pytest.fixture(scope="module")
def sb():
    with Sandbox(FAST, workers=1, preload=["numpy", HARNESS]) as box:
        yield box


@pytest.mark.parametrize("statement", [
    "import scipy.stats",                 # installed (pyribs pulls it in); failed deep inside before
    "from sklearn.cluster import KMeans",  # installed too
    "import pandas as pd",
    "import torch",                       # not installed at all
])
def test_a_module_not_offered_fails_in_one_line(sb, statement):
    outcome = sb.run(job(f"import numpy as np\n{statement}\ndef f():\n    return 1\n"))
    assert outcome.status == "error"
    top = statement.split()[1].split(".")[0]
    assert outcome.error == (f"line 2: module {top!r} is not available in the sandbox: candidate code may import "
                             "numpy and Python's standard library")


def test_an_import_inside_the_function_names_its_line(sb):
    outcome = sb.run(job("def f():\n    x = 1\n    import scipy\n    return x\n"))
    assert outcome.status == "error" and outcome.error.startswith("line 3: module 'scipy' is not available")


def test_numpy_submodules_and_the_standard_library_import(sb):
    code = """
    import heapq, math, statistics, collections, functools, itertools, bisect, random
    import numpy as np
    from numpy.linalg import norm
    import numpy.polynomial

    def f():
        from numpy.lib.stride_tricks import sliding_window_view
        return float(norm(np.ones(4))) + statistics.mean([1, 2, 3]) + len(sliding_window_view(np.arange(5), 2))
    """
    outcome = sb.run(job(code))
    assert outcome.status == "ok", outcome.error
    assert outcome.result == 2.0 + 2.0 + 4
