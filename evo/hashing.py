"""Recognising a candidate that was seen before, without paying to evaluate it again.

Two levels, used by the engine in this order:

* **syntactic** (``syntactic_hash``): a hash of the code's normalised AST (``evo.normalise``).
  Formatting, comments, docstrings, annotations, the names of local variables and helpers,
  import aliases, ``else`` after a ``return`` and unreachable code do not count. An exact
  repeat is recognised without starting any process.
* **functional** (``decision_hash``): a hash of the *decisions* the candidate makes on the
  problem's probe states (``Evaluator.probe``). Decisions, not raw values, so a priority
  that is scaled, shifted or passed through a monotone function hashes the same.
"""
from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable

from evo.normalise import normalise

DIGEST_CHARS = 20


def syntactic_hash(code: str, entry: str | None = None) -> str:
    """Hash of the normalised AST of ``code`` (which must parse).

    ``entry`` is the function the harness calls by name. When given, every other
    top-level function may be renamed too (a helper's name is nobody else's business);
    without it all top-level function and class names keep their spelling."""
    tree = normalise(code, entry)
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:DIGEST_CHARS]


def decision_hash(choices: Iterable[int]) -> str:
    """The functional signature: a hash of the choices made on the probe states, in order."""
    return hashlib.sha256(",".join(str(int(c)) for c in choices).encode()).hexdigest()[:DIGEST_CHARS]
