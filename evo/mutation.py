"""AST edits of a heuristic's code: the offline mutation model's hands.

The edits work on the *scoring expressions* of the entry function: the right-hand sides
of its assignments, or its return values when it assigns nothing. Subscripts are treated
as atoms (``distance_matrix[current_node][unvisited_nodes]`` is replaced whole, never
picked apart), which keeps most edits well-typed. An edit that still breaks the code is
fine: the candidate fails its evaluation like a bad LLM answer would.

Every edit draws from the generator it is given, so one seed gives one sequence of edits.
"""
from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

import numpy as np

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_UNARY = (
    "np.sqrt(np.abs({}))",
    "np.log1p(np.abs({}))",
    "np.exp(-np.abs({}))",
    "({}) ** 2",
    "-({})",
    "1.0 / (np.abs({}) + 1e-6)",
)


@dataclass(frozen=True)
class Edit:
    """The edited source and one sentence saying what changed."""

    code: str
    thought: str


class EditFailed(Exception):
    """The edit found nothing to work on in this code."""


class Mutator:
    """Edits driven by one generator. ``hints`` are terms a reflection favours: new leaves
    come from them half of the time, and ``crossover`` leaves them in place."""

    def __init__(self, entry: str, vocabulary: tuple[str, ...], rng: np.random.Generator,
                 hints: tuple[str, ...] = ()):
        self.entry = entry
        self.vocabulary = tuple(vocabulary)
        self.rng = rng
        self.hints = tuple(h for h in hints if _parses(h))

    # ---- the edits -----------------------------------------------------------------
    def perturb_constant(self, code: str) -> Edit:
        tree, sites = self._sites(code)
        # The parameters are the constants the other edits can reach too: not an index in a
        # subscript nor a keyword such as `axis=1` (as `1.1` it breaks the code, not tunes it).
        constants = [n for site in sites for n in _walk_atoms(site) if _is_number(n)]
        if not constants:
            # No parameter yet: give one to a part of the score. Never to a whole score:
            # a positive factor there changes no argmax, so the child would be a repeat.
            parts = [n for site in sites for n in _walk_atoms(site)
                     if isinstance(n, ast.expr) and n is not site and not _constant_only(n)]
            if not parts:
                raise EditFailed("no parameter to tune")
            part = parts[int(self.rng.integers(len(parts)))]
            factor = _fmt(float(np.exp(self.rng.normal(0.0, 1.0))))
            _replace(tree, part, _expr(f"{factor} * ({ast.unparse(part)})"))
            return Edit(ast.unparse(tree), f"Weighted the term `{_short(part)}` by {factor}.")
        node = constants[int(self.rng.integers(len(constants)))]
        old = node.value
        new = old * float(np.exp(self.rng.normal(0.0, 0.5))) if old else float(self.rng.normal(0.0, 1.0))
        if self.rng.random() < 0.2:
            new = -new
        node.value = float(_fmt(new))
        return Edit(ast.unparse(tree), f"Changed the constant {_fmt(old)} to {node.value}.")

    def swap_operator(self, code: str) -> Edit:
        tree, sites = self._sites(code)
        binops = [n for site in sites for n in _walk_atoms(site) if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS]
        if not binops:
            raise EditFailed("no arithmetic operator to swap")
        node = binops[int(self.rng.integers(len(binops)))]
        old = _BINOPS[type(node.op)]
        choices = [op for op in _BINOPS if op is not type(node.op)]
        node.op = choices[int(self.rng.integers(len(choices)))]()
        return Edit(ast.unparse(tree), f"Replaced the operator `{old}` with `{_BINOPS[type(node.op)]}` in `{_short(node)}`.")

    def replace_subexpression(self, code: str) -> Edit:
        tree, sites = self._sites(code)
        node = self._pick_node(sites)
        new = self._leaf() if self.rng.random() < 0.6 else self.random_expression(depth=2)
        _replace(tree, node, new)
        return Edit(ast.unparse(tree), f"Replaced `{_short(node)}` with `{_short(new)}`.")

    def wrap(self, code: str) -> Edit:
        tree, sites = self._sites(code)
        node = self._pick_node(sites)
        form = _UNARY[int(self.rng.integers(len(_UNARY)))]
        new = _expr(form.format(ast.unparse(node)))
        _replace(tree, node, new)
        return Edit(ast.unparse(tree), f"Passed `{_short(node)}` through `{form.format('x')}`.")

    def combine_with_term(self, code: str) -> Edit:
        tree, sites = self._sites(code)
        root = sites[int(self.rng.integers(len(sites)))]
        op = ("+", "-", "*")[int(self.rng.integers(3))]
        term = self.random_expression(depth=1)
        weight = _fmt(float(np.exp(self.rng.normal(-1.0, 1.0))))
        new = _expr(f"({ast.unparse(root)}) {op} {weight} * ({ast.unparse(term)})")
        _replace(tree, root, new)
        return Edit(ast.unparse(tree), f"Combined the score with the term `{weight} * {_short(term)}` by `{op}`.")

    def delete_term(self, code: str) -> Edit:
        tree, sites = self._sites(code)
        binops = [n for site in sites for n in _walk_atoms(site) if isinstance(n, ast.BinOp)]
        calls = [n for site in sites for n in _walk_atoms(site) if isinstance(n, ast.Call) and n.args]
        candidates = binops + calls
        if not candidates:
            raise EditFailed("nothing to simplify")
        node = candidates[int(self.rng.integers(len(candidates)))]
        if isinstance(node, ast.BinOp):
            keep = node.left if self.rng.random() < 0.5 else node.right
        else:
            keep = node.args[0]
        _replace(tree, node, keep)
        return Edit(ast.unparse(tree), f"Simplified `{_short(node)}` to `{_short(keep)}`.")

    def restructure(self, code: str) -> Edit:
        """A new scoring expression that keeps at most one piece of the old one."""
        tree, sites = self._sites(code)
        root = sites[-1]
        kept = self._pick_node([root])
        fresh = self.random_expression(depth=2)
        op = ("+", "-", "*", "/")[int(self.rng.integers(4))]
        new = _expr(f"({ast.unparse(fresh)}) {op} ({ast.unparse(kept)})")
        _replace(tree, root, new)
        return Edit(ast.unparse(tree), f"Rebuilt the score around `{_short(kept)}` with the new term `{_short(fresh)}`.")

    def fresh(self, code: str) -> Edit:
        """A new heuristic: the template's scoring expression replaced by a random one."""
        tree, sites = self._sites(code)
        new = self.random_expression(depth=3)
        _replace(tree, sites[-1], new)
        return Edit(ast.unparse(tree), f"Scores with the new expression `{_short(new)}`.")

    def crossover(self, code: str, donor: str) -> Edit:
        tree, sites = self._sites(code)
        _, donor_sites = self._sites(donor)
        gift = copy.deepcopy(self._pick_node(donor_sites))
        # The reflection's terms are why this parent is the better one: keep them whole.
        keep = {ast.dump(_expr(h)) for h in self.hints}
        nodes = [n for site in sites for n in _walk_atoms(site) if isinstance(n, ast.expr)
                 and not any(ast.dump(m) in keep for m in ast.walk(n))]
        node = nodes[int(self.rng.integers(len(nodes)))] if nodes else self._pick_node(sites)
        _replace(tree, node, gift)
        return Edit(ast.unparse(tree), f"Took `{_short(gift)}` from the second parent in place of `{_short(node)}`.")

    def blend(self, code: str, other: str) -> Edit:
        """The two parents' scores, weighted: what they share is kept, and both ideas count."""
        tree, sites = self._sites(code)
        _, other_sites = self._sites(other)
        mine, theirs = sites[-1], other_sites[-1]
        # The parents' scores may differ in scale by orders of magnitude: a weight drawn on
        # a log scale lets either one lead or both count, where a convex mix of like
        # weights mostly reproduces the larger one (a repeat the functional hash rejects).
        w = _fmt(float(np.exp(self.rng.normal(0.0, 2.0))))
        new = _expr(f"{ast.unparse(mine)} + {w} * ({ast.unparse(theirs)})")
        _replace(tree, mine, new)
        return Edit(ast.unparse(tree), f"Blended both parents' scores, the second weighted by {w}.")

    # ---- keeping answers lean and readable ------------------------------------------------
    def size(self, code: str) -> int:
        """Expression nodes in the scoring expressions."""
        _, sites = self._sites(code)
        return sum(1 for site in sites for n in ast.walk(site) if isinstance(n, ast.expr))

    def prune(self, edit: Edit, limit: int) -> Edit:
        """Simplify until the scoring expressions have at most ``limit`` nodes. Edits that
        add (blends, new terms, transplants) would otherwise grow the code without end
        (GP's bloat): each evaluation gets slower, and further edits mostly land in inert
        material."""
        code, pruned = edit.code, 0
        while self.size(code) > limit and pruned < 50:
            code = self.delete_term(code).code
            pruned += 1
        if not pruned:
            return edit
        return Edit(code, f"{edit.thought} Then pruned {pruned} terms to stay within {limit} nodes.")

    def document(self, edit: Edit) -> Edit:
        """The entry function's docstring says the edit's idea, not an ancestor's."""
        tree = ast.parse(edit.code)
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == self.entry]
        if not functions:
            return edit
        body = functions[-1].body
        doc = ast.Expr(ast.Constant(edit.thought))
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body[0] = doc
        else:
            body.insert(0, doc)
        return Edit(ast.unparse(tree), edit.thought)

    def guard(self, code: str) -> Edit:
        """Repair: make the scores finite, the commonest cause of failures."""
        tree, sites = self._sites(code)
        root = sites[-1]
        new = _expr(f"np.nan_to_num({ast.unparse(root)}, nan=0.0, posinf=1e9, neginf=-1e9)")
        _replace(tree, root, new)
        return Edit(ast.unparse(tree), "Replaced NaN and infinite scores by finite values.")

    # ---- building blocks -------------------------------------------------------------
    def random_expression(self, depth: int) -> ast.expr:
        if depth <= 0 or self.rng.random() < 0.25:
            return self._leaf()
        if self.rng.random() < 0.25:
            form = _UNARY[int(self.rng.integers(len(_UNARY)))]
            return _expr(form.format(ast.unparse(self.random_expression(depth - 1))))
        op = list(_BINOPS.values())[int(self.rng.integers(len(_BINOPS)))]
        left, right = self.random_expression(depth - 1), self.random_expression(depth - 1)
        return _expr(f"({ast.unparse(left)}) {op} ({ast.unparse(right)})")

    def _leaf(self) -> ast.expr:
        if self.hints and self.rng.random() < 0.5:
            return _expr(self.hints[int(self.rng.integers(len(self.hints)))])
        if self.rng.random() < 0.15:
            return ast.Constant(float(_fmt(float(np.exp(self.rng.normal(0.0, 1.5))))))
        return _expr(self.vocabulary[int(self.rng.integers(len(self.vocabulary)))])

    def _pick_node(self, sites: list[ast.expr]) -> ast.expr:
        nodes = [n for site in sites for n in _walk_atoms(site) if isinstance(n, ast.expr)]
        return nodes[int(self.rng.integers(len(nodes)))]

    def _sites(self, code: str) -> tuple[ast.Module, list[ast.expr]]:
        tree = ast.parse(code)
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == self.entry]
        if not functions:
            raise EditFailed(f"no function {self.entry}")
        body = list(ast.walk(functions[-1]))
        assigned = [n.value for n in body if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and n.value]
        returned = [n.value for n in body if isinstance(n, ast.Return) and n.value is not None]
        sites = assigned or returned
        if not sites:
            raise EditFailed("no expression to edit")
        return tree, sites


# The edits an offline operator's mix can name (Mutator methods).
EDITS = ("perturb_constant", "swap_operator", "replace_subexpression", "wrap", "combine_with_term",
         "delete_term", "restructure", "fresh", "crossover", "blend", "guard")


def _walk_atoms(node: ast.AST):
    """ast.walk that does not descend into subscripts, the callee of a call or its keyword
    arguments: ``x[i]``, ``a.mean(axis=1)`` and ``(a + b).min(axis=1)`` are atoms, which
    edits replace whole but never pick apart (their parts may have another shape)."""
    yield node
    if isinstance(node, (ast.Subscript, ast.Constant, ast.Name, ast.Attribute)):
        return
    for name, child in ast.iter_fields(node):
        if isinstance(node, ast.Call) and name in ("func", "keywords"):
            continue
        children = child if isinstance(child, list) else [child]
        for c in children:
            if isinstance(c, ast.AST) and not isinstance(c, (ast.operator, ast.unaryop, ast.expr_context)):
                yield from _walk_atoms(c)


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, child in ast.iter_fields(parent):
            if child is old:
                setattr(parent, name, new)
                return
            if isinstance(child, list):
                for i, c in enumerate(child):
                    if c is old:
                        child[i] = new
                        return
    raise EditFailed("node not found")


def _expr(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


def _parses(source: str) -> bool:
    try:
        _expr(source)
    except SyntaxError:
        return False
    return True


def _constant_only(node: ast.AST) -> bool:
    return not any(isinstance(n, ast.Name) for n in ast.walk(node))


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _short(node: ast.AST, limit: int = 60) -> str:
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."
