"""Recognising a candidate that was seen before, without paying to evaluate it again.

The syntactic level normalises the code's AST: formatting, comments, docstrings and the
names of local variables do not count.
"""
from __future__ import annotations

import ast
import builtins
import hashlib


class _Normaliser(ast.NodeTransformer):
    """Renames locals and arguments to v0, v1, ... in order of first appearance, and
    drops docstrings. Globals (np, math, builtins, helper functions) keep their names."""

    def __init__(self, keep: set[str]):
        self.keep = keep
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        if name in self.keep:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        node.returns = None
        self.generic_visit(node)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._rename(node.arg)
        node.annotation = None
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._rename(node.id)
        return node


def syntactic_hash(code: str) -> str:
    tree = ast.parse(code)
    module_names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module_names.update((a.asname or a.name).split(".")[0] for a in node.names)
    normal = _Normaliser(module_names | set(dir(builtins))).visit(tree)
    return hashlib.sha256(ast.dump(normal, annotate_fields=False).encode()).hexdigest()[:20]
