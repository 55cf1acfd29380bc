"""ReEvo's reflections, computed from code and from the run's own record.

ReEvo asks an LLM to *reflect*: a short-term reflection compares a better and a worse
parent before a crossover; a long-term reflection accumulates lessons over the run and
guides the elitist mutation. Here each reflection has a computed form that needs no LLM,
and that is what the offline mutation model reads (it is not an LLM and does not pretend
to write one's prose):

- ``compare(better, worse)``: the scoring terms (expression subtrees of the code) that only the better parent has, and those that only the worse one has.
- ``Memory``: over the whole run, for every term, how often introducing it into a parent
  gave a better child, and how often removing it did. Its lessons are the terms whose
  introduction paid most and those that never paid.

Both are pure functions of committed candidates (``Memory`` is fed by ``SearchState.tell``
in id order), so a rebuilt run has the same reflections as the live one. With a real LLM
the engine shows these computed reflections to the model and asks it for its own
reflection text (extra LLM calls "reflect_short" / "reflect_long"), see evo.engine.
"""
from __future__ import annotations

import ast
import copy
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

# Subtrees smaller than this are single names or constants (every heuristic has them);
# larger ones are whole formulas, too specific to recur. Counted in AST expression nodes.
_MIN_NODES, _MAX_NODES = 2, 12
# A term needs this many introductions before a lesson is drawn from it.
_MIN_EVIDENCE = 3


@dataclass(frozen=True)
class Comparison:
    """What the better parent has that the worse lacks, and the reverse."""

    better_only: tuple[str, ...]
    worse_only: tuple[str, ...]

    def text(self, better_score: float | None, worse_score: float | None) -> str:
        if not self.better_only and not self.worse_only:
            return "The two heuristics use the same terms; they differ only in constants or in how the terms are combined."
        lines = []
        if self.better_only:
            lines.append("Only the better heuristic uses: " + "; ".join(f"`{t}`" for t in self.better_only) + ".")
        if self.worse_only:
            lines.append("Only the worse heuristic uses: " + "; ".join(f"`{t}`" for t in self.worse_only) + ".")
        if better_score is not None and worse_score is not None:
            lines.append(f"Scores: {better_score:.4f} against {worse_score:.4f}. Keep what the better one has; "
                         "take from the worse one only what does not conflict with it.")
        return "\n".join(lines)


@dataclass(frozen=True)
class Lessons:
    """The long-term reflection: terms whose introduction paid, and terms that never did."""

    promising: tuple[tuple[str, int, int], ...]  # (term, improved, introduced)
    futile: tuple[tuple[str, int], ...]  # (term, introduced, never improving)
    helpful_removals: tuple[tuple[str, int, int], ...]  # (term, improved, removed)
    observed: int  # parent -> child pairs seen

    @property
    def hints(self) -> tuple[str, ...]:
        """Terms to try, best first (what the offline model reads)."""
        return tuple(t for t, _, _ in self.promising)

    @property
    def avoid(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.futile) + tuple(t for t, _, _ in self.helpful_removals)

    def text(self) -> str:
        if not self.observed:
            return ""
        lines = [f"From {self.observed} modifications made so far in this run:"]
        if self.promising:
            lines.append("- Introducing these terms most often gave a better heuristic: "
                         + "; ".join(f"`{t}` ({i} of {n} times)" for t, i, n in self.promising) + ".")
        if self.helpful_removals:
            lines.append("- Removing these terms often helped: "
                         + "; ".join(f"`{t}` ({i} of {n} times)" for t, i, n in self.helpful_removals) + ".")
        if self.futile:
            lines.append("- Introducing these never helped: "
                         + "; ".join(f"`{t}` ({n} tries)" for t, n in self.futile) + ".")
        if len(lines) == 1:
            lines.append("- No term has yet shown a clear effect.")
        return "\n".join(lines)


def compare(better: str, worse: str, limit: int = 5) -> Comparison:
    """Terms are compared with their constants left out (``0.5 * np.log(bins)`` and
    ``0.7 * np.log(bins)`` are one term), and shown as the parent writes them."""
    mine, theirs = _terms(better), _terms(worse)
    return Comparison(_minimal(mine, set(mine) - set(theirs), limit), _minimal(theirs, set(theirs) - set(mine), limit))


class Memory:
    """Accumulates, parent -> child, which terms went with improvement."""

    def __init__(self) -> None:
        # Counted per term with its constants left out, so that evidence on
        # `np.log(bins - item + 1)` and `np.log(bins - item + 2)` adds up.
        self.example: dict[str, str] = {}  # term -> its latest concrete form, for hints
        self.introduced: Counter = Counter()
        self.introduced_better: Counter = Counter()
        self.removed: Counter = Counter()
        self.removed_better: Counter = Counter()
        self.observed = 0

    def observe(self, parent_code: str, parent_score: float, child_code: str, child_score: float) -> None:
        before, after = _terms(parent_code), _terms(child_code)
        better = child_score < parent_score
        self.observed += 1
        self.example.update(after)
        for term in after.keys() - before.keys():
            self.introduced[term] += 1
            self.introduced_better[term] += better
        for term in before.keys() - after.keys():
            self.removed[term] += 1
            self.removed_better[term] += better

    def lessons(self, limit: int = 5) -> Lessons:
        def rate(hits: int, n: int) -> float:
            return (hits + 1) / (n + 2)  # Laplace: a term seen twice does not beat one seen twenty times

        promising = sorted(
            ((t, self.introduced_better[t], n) for t, n in self.introduced.items()
             if n >= _MIN_EVIDENCE and self.introduced_better[t] > 0),
            key=lambda x: (-rate(x[1], x[2]), -x[2], x[0]),
        )[:limit]
        futile = sorted(
            ((t, n) for t, n in self.introduced.items() if n >= 2 * _MIN_EVIDENCE and not self.introduced_better[t]),
            key=lambda x: (-x[1], x[0]),
        )[:limit]
        removals = sorted(
            ((t, self.removed_better[t], n) for t, n in self.removed.items()
             if n >= _MIN_EVIDENCE and rate(self.removed_better[t], n) > 0.5),
            key=lambda x: (-rate(x[1], x[2]), -x[2], x[0]),
        )[:limit]
        show = self.example.get
        return Lessons(tuple((show(t, t), i, n) for t, i, n in promising), tuple((show(t, t), n) for t, n in futile),
                       tuple((show(t, t), i, n) for t, i, n in removals), self.observed)


def terms(code: str) -> frozenset[str]:
    """The expression subtrees of the code (helpers included: an LLM's heuristic may score
    in a helper function), as normalised source text."""
    return frozenset(_terms(code).values())


@lru_cache(maxsize=4096)
def _terms(code: str) -> dict[str, str]:
    """The code's terms: their form with every number written ``C`` -> their source."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {}
    found = {}
    # Neither a callee nor a part of one (`np.log`; the matrix in `matrix[rows].max(axis=1)`)
    # nor a part of a subscript is a term: `distance_matrix[current_node][unvisited_nodes]`
    # is an ingredient, its part `distance_matrix[current_node]` (another shape) is not.
    skip = {id(n) for s in ast.walk(tree) for part in _atom_parts(s) for n in ast.walk(part)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr) or isinstance(node, ast.Constant) or id(node) in skip:
            continue
        size = sum(1 for n in ast.walk(node) if isinstance(n, ast.expr))
        if _MIN_NODES <= size <= _MAX_NODES and not _constant_only(node):
            found.setdefault(_abstract(node), ast.unparse(node))
    return found


def _atom_parts(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Call):
        return [node.func]
    if isinstance(node, ast.Subscript):
        return [node.value, node.slice]
    return []


class _Numbers(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Name("C") if type(node.value) in (int, float) else node


def _abstract(node: ast.expr) -> str:
    return ast.unparse(_Numbers().visit(copy.deepcopy(node)))


def _constant_only(node: ast.AST) -> bool:
    return not any(isinstance(n, ast.Name) for n in ast.walk(node))


def _minimal(source: dict[str, str], distinctive: set[str], limit: int) -> tuple[str, ...]:
    """The smallest distinctive terms, without the bigger ones built on them: the
    ingredient one parent has and the other lacks (`np.log(bins)`), not every formula
    that happens to contain it."""
    chosen: list[str] = []
    for term in sorted(distinctive, key=lambda t: (len(t), t)):
        if not any(smaller in term for smaller in chosen):
            chosen.append(term)
        if len(chosen) == limit:
            break
    return tuple(source[t] for t in chosen)
