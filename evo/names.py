"""Which names a program binds, reads and spells, and in which scope: what every rewrite
of ``evo.normalise`` must respect to leave the program's behaviour as it was."""
from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable

# Names through which code can reach variables by their spelling. If any is used, local
# names keep their spelling (renaming them could change what the lookup finds).
_DYNAMIC = frozenset({"locals", "globals", "vars", "eval", "exec", "compile", "dir", "__import__",
                     "getattr", "setattr", "delattr", "hasattr"})
_INTROSPECTION_MODULES = frozenset({"inspect", "sys", "builtins", "importlib"})
BUILTINS = frozenset(dir(builtins))


class Facts:
    """What the rewrites must know about the whole module: which names are bound where,
    which spellings matter to someone outside (keywords, class attributes, dynamic lookups)."""

    def __init__(self, tree: ast.Module):
        self.bound: set[str] = set()  # names bound anywhere (any scope)
        self.imported: dict[str, list[ast.Import | ast.ImportFrom]] = {}  # name -> statements binding it
        self.keywords: set[str] = set()  # names used as keyword arguments in calls
        self.class_bound: set[str] = set()  # names bound directly in a class body (attributes)
        self.free_loads: set[str] = set()  # every name read
        self.star_kwargs = False  # some call passes **mapping: parameter names are spelled in data
        self.star_import = False  # `from m import *` binds names we cannot see
        self.future_annotations = False
        self.top_level = tree.body
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (self.bound.add if isinstance(node.ctx, (ast.Store, ast.Del)) else self.free_loads.add)(node.id)
            elif isinstance(node, ast.arg):
                self.bound.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.bound.add(node.name)
                if isinstance(node, ast.ClassDef):
                    self.class_bound.update(_direct_bindings(node.body))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                    self.future_annotations |= any(a.name == "annotations" for a in node.names)
                for alias in node.names:
                    if alias.name == "*":
                        self.star_import = True
                        continue
                    name = alias.asname or alias.name.split(".")[0]
                    self.imported.setdefault(name, []).append(node)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                self.bound.update(node.names)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self.bound.add(node.name)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                self.bound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self.bound.add(node.rest)
            elif isinstance(node, ast.keyword):
                if node.arg is None:
                    self.star_kwargs = True
                else:
                    self.keywords.add(node.arg)
        modules = {a.name.split(".")[0] for stmts in self.imported.values() for s in stmts
                   for a in s.names if isinstance(s, ast.Import)}
        modules |= {s.module.split(".")[0] for stmts in self.imported.values() for s in stmts
                    if isinstance(s, ast.ImportFrom) and s.module}
        self.dynamic = bool(self.free_loads & _DYNAMIC) or bool(modules & _INTROSPECTION_MODULES) \
            or self.star_import


def _direct_bindings(body: list[ast.stmt]) -> set[str]:
    """Names a class body binds in its own namespace (not inside its methods)."""
    names: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue  # their bodies are other scopes
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names


def spellings(node: ast.AST) -> Iterable[str]:
    """Every name this node spells (read, bound, declared): what scoping depends on."""
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.arg):
        yield node.arg
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        yield from ((a.asname or a.name.split(".")[0]) for a in node.names)
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
        yield from node.names
    elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
        yield node.name
    elif isinstance(node, ast.MatchMapping) and node.rest:
        yield node.rest


def binds(nodes: Iterable[ast.AST]) -> set[str]:
    names: set[str] = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, (ast.Store, ast.Del)):
                    names.add(node.id)
            elif not isinstance(node, ast.arg):  # a lambda's parameters bind in the lambda only
                names.update(spellings(node))
    return names


def own_bindings(function: ast.AST, skip: set[int]) -> set[str]:
    """Names bound in the function's own scope (not in nested functions, classes or
    comprehensions), outside the nodes in ``skip``."""
    names: set[str] = set()
    args = function.args  # type: ignore[attr-defined]
    names.update(a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                 *filter(None, (args.vararg, args.kwarg))))
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp,
              ast.DictComp, ast.GeneratorExp)
    stack: list[ast.AST] = list(getattr(function, "body", []))
    while stack:
        node = stack.pop()
        if id(node) in skip:
            continue
        if isinstance(node, nested):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            continue
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                names.add(node.id)
        elif not isinstance(node, (ast.Global, ast.Nonlocal, ast.arg)):
            names.update(spellings(node))
        stack.extend(ast.iter_child_nodes(node))
    return names
