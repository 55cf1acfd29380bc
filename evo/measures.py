"""Measures of a candidate for the behaviour grid.

A measure is a number computed from the candidate's code or from the problem's verdict.
Each has a fixed range in config, so that a cell means the same thing for the whole run.
"""
from __future__ import annotations

import ast
from typing import Callable

from problems.base import Verdict


def code_size(code: str, verdict: Verdict) -> float:
    """Number of AST nodes: how much machinery the heuristic uses."""
    return float(sum(1 for _ in ast.walk(ast.parse(code))))


def cyclomatic(code: str, verdict: Verdict) -> float:
    """1 + number of branch points (if, loops, boolean operators, comprehensions, excepts)."""
    branches = (ast.If, ast.IfExp, ast.For, ast.While, ast.BoolOp, ast.comprehension, ast.ExceptHandler)
    return 1.0 + sum(isinstance(node, branches) for node in ast.walk(ast.parse(code)))


def behaviour(code: str, verdict: Verdict) -> float:
    """The problem's own behaviour measure, in [0, 1] (see the problem's Verdict)."""
    return float(verdict.behaviour)


MEASURES: dict[str, Callable[[str, Verdict], float]] = {
    "code_size": code_size,
    "cyclomatic": cyclomatic,
    "behaviour": behaviour,
}
