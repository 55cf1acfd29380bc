"""Renaming that no one can observe: ``import numpy as np`` written as ``import numpy``,
and the names that only the program itself sees numbered in the order a reader meets them
(``$0``, ``$1``...), so that the same program written with other names normalises equal."""
from __future__ import annotations

import ast

from evo.names import BUILTINS, Facts


# ---- import aliases -----------------------------------------------------------------------------
def canonical_imports(tree: ast.Module, facts: Facts) -> None:
    """``import numpy as np`` + ``np.x`` is ``import numpy`` + ``numpy.x``; top-level
    imports at the head of the module are sorted and deduplicated (importing a module
    twice, or in another order, is the same for the modules a heuristic can use)."""
    if facts.dynamic:
        return
    renames: dict[str, str] = {}
    for name, statements in facts.imported.items():
        # The same `import x as y` written twice is one binding.
        if len({ast.dump(s) for s in statements}) != 1 or name in facts.bound or name in facts.keywords \
                or name in facts.class_bound:
            continue
        statement = statements[0]
        if not all(isinstance(s, ast.Import) and s in tree.body and len(s.names) == 1 for s in statements):
            continue  # function-level imports, `from` imports and `import a, b` keep their form
        alias = statement.names[0]
        top = alias.name.split(".")[0]
        if alias.asname is None or "." in alias.name:
            continue  # `import a.b as c` binds a submodule; not worth the special case
        # Only if the module's own name means nothing else here.
        if top in facts.bound or top in facts.free_loads or (top in facts.imported and top != name) \
                or top in facts.keywords or top in BUILTINS:
            continue
        renames[name] = top
        for s in statements:
            s.names[0].asname = None
    if renames:
        Rename(renames).visit(tree)
    start = 0  # `from __future__` imports must stay first
    while start < len(tree.body) and isinstance(tree.body[start], ast.ImportFrom) \
            and tree.body[start].module == "__future__":
        start += 1
    head = start
    while head < len(tree.body) and isinstance(tree.body[head], (ast.Import, ast.ImportFrom)):
        head += 1
    block = tree.body[start:head]
    unique = {ast.dump(s): s for s in block}
    tree.body[start:head] = [unique[k] for k in sorted(unique)]


# ---- renaming -----------------------------------------------------------------------------------
def renamable(facts: Facts, tree: ast.Module, entry: str | None) -> set[str]:
    """Names whose spelling nobody can observe: bound in the code, not a builtin, not an
    import, not an attribute of a class, not a keyword anyone passes, not the entry point."""
    if facts.dynamic:
        return set()
    names = set(facts.bound)
    names -= BUILTINS
    names -= set(facts.imported)
    names -= facts.keywords
    names -= facts.class_bound
    names = {n for n in names if not (n.startswith("__") and n.endswith("__"))}
    top_defs = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    if entry is None:
        names -= top_defs
    else:
        names.discard(entry)
        names -= {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    if facts.star_kwargs:
        # f(**mapping) matches parameters by spelling: keep every parameter name.
        names -= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    return names


def first_appearance(tree: ast.AST, names: set[str]) -> list[str]:
    """The names in the order a reader meets them (a fixed traversal), so that the same
    program with other names gets the same numbering."""
    order: dict[str, None] = {}

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            _note(node.name)
        elif isinstance(node, ast.arg):
            _note(node.arg)
        elif isinstance(node, ast.Name):
            _note(node.id)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for n in node.names:
                _note(n)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            _note(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            _note(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            _note(node.rest)
        for child in ast.iter_child_nodes(node):
            visit(child)

    def _note(name: str) -> None:
        if name in names:
            order.setdefault(name, None)

    visit(tree)
    return list(order)


class Rename(ast.NodeTransformer):
    """A consistent, one-to-one renaming over the whole module. Scopes need no tracking:
    the same spelling gets the same new spelling everywhere, so every lookup finds what
    it found before."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def _new(self, name: str) -> str:
        return self.mapping.get(name, name)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._new(node.arg)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._new(node.name)
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]
    visit_ClassDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Global(self, node: ast.Global) -> ast.AST:
        node.names = [self._new(n) for n in node.names]
        return node

    visit_Nonlocal = visit_Global  # type: ignore[assignment]

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self._new(node.name)
        return self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> ast.AST:
        if node.name:
            node.name = self._new(node.name)
        return self.generic_visit(node)

    visit_MatchStar = visit_MatchAs  # type: ignore[assignment]

    def visit_MatchMapping(self, node: ast.MatchMapping) -> ast.AST:
        if node.rest:
            node.rest = self._new(node.rest)
        return self.generic_visit(node)
