"""A program's syntax tree, normalised so that programs that differ in form only compare equal.

Formatting, comments, docstrings, annotations, the names of local variables and helpers,
import aliases, ``else`` after a ``return`` and unreachable code do not count (the
syntactic hash of ``evo.hashing`` is a hash of this tree).

One rule above all: two programs that normalise equal behave identically on every input.
Every rewrite below preserves semantics, and where a rewrite could be wrong for some odd
program (shadowed builtins, ``locals()``, keyword calls, annotations evaluated at
definition time...) the difference is kept. A missed merge costs one probe; a false merge
would hand a candidate another candidate's score.
"""
from __future__ import annotations

import ast
import importlib
from typing import Any

from evo.names import Facts, binds, own_bindings, spellings
from evo.renaming import Rename, canonical_imports, first_appearance, renamable

# Builtin types that may appear in an annotation: evaluating them cannot fail.
_ANNOTATION_TYPES = frozenset({"int", "float", "bool", "complex", "str", "bytes", "list", "dict", "tuple",
                               "set", "frozenset", "object", "type", "slice", "range"})
_GENERIC_BUILTINS = frozenset({"list", "dict", "tuple", "set", "frozenset", "type"})
# Modules whose attributes an annotation may name. They are imported in this (trusted)
# process anyway; we only look names up on them, never evaluate candidate code.
_ANNOTATION_MODULES = frozenset({"numpy", "typing", "math", "collections.abc"})
_TERMINAL = (ast.Return, ast.Raise, ast.Continue, ast.Break)
_SCOPE_CHANGERS = (ast.Global, ast.Nonlocal, ast.Yield, ast.YieldFrom, ast.Await)


def normalise(code: str, entry: str | None = None) -> ast.Module:
    """The normalised tree behind ``syntactic_hash``. ``ast.unparse`` of it is readable
    (renamed variables appear as ``$0``, ``$1``...; they can never clash with a real name)."""
    tree = ast.parse(code)
    facts = Facts(tree)
    tree = _Simplify(facts).visit(tree)
    if entry is not None and not facts.dynamic:
        _drop_unused_definitions(tree, entry)
    canonical_imports(tree, facts)
    facts = Facts(tree)  # bindings after the rewrites above
    renames = renamable(facts, tree, entry)
    if renames:
        tree = Rename({name: f"${i}" for i, name in enumerate(first_appearance(tree, renames))}).visit(tree)
    return tree


def _removable(dead: list[ast.stmt], function: ast.AST | None) -> bool:
    """Whether statements that can never run may be dropped. Never running, they still
    count for scoping: an assignment makes a name local to the whole function, a
    ``yield`` makes it a generator. So they go only if they change neither: no
    ``yield``/``await``/``global``/``nonlocal``, and every name they bind is spelled
    nowhere else in the function."""
    if any(isinstance(n, _SCOPE_CHANGERS) for root in dead for n in ast.walk(root)):
        return False
    bound = binds(dead)
    if not bound:
        return True
    if function is None:
        return False  # module or class level: a binding there is visible from outside
    inside = {id(n) for root in dead for n in ast.walk(root)}
    # The function node itself is left out: its own name lives in the outer scope.
    elsewhere = {name for child in ast.iter_child_nodes(function) for n in ast.walk(child)
                 if id(n) not in inside for name in spellings(n)}
    # A name the function binds anyway stays local without the dead binding.
    return not (bound & elsewhere - own_bindings(function, inside))


# ---- semantics-preserving simplifications -----------------------------------------------------
class _Simplify(ast.NodeTransformer):
    """Drops what cannot change behaviour: docstrings and other constant expression
    statements, ``pass`` in a non-empty block, annotations that evaluate without fail,
    ``else`` after a block that always leaves, unreachable statements, ``if False:``."""

    def __init__(self, facts: Facts):
        self.facts = facts
        self.scopes: list[tuple[str, ast.AST | None]] = [("module", None)]

    def generic_visit(self, node: ast.AST) -> ast.AST:
        kind = "function" if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) \
            else "class" if isinstance(node, ast.ClassDef) else None
        if kind:
            self.scopes.append((kind, node))
        super().generic_visit(node)
        self._clean_blocks(node)
        if kind:
            self.scopes.pop()
        return node

    def _clean_blocks(self, node: ast.AST) -> None:
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and (not block or isinstance(block[0], ast.stmt)):
                cleaned = self._block(block)
                # A body may not be empty; `else:`/`finally:` blocks may.
                setattr(node, field, cleaned or ([ast.Pass()] if field == "body" and not isinstance(node, ast.Module)
                                                 else []))

    def _block(self, block: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        pending = list(block)
        while pending:
            stmt = pending.pop(0)
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring, a stray string or number: evaluates to nothing
            if isinstance(stmt, ast.Pass):
                continue  # put back below if the block ends up empty
            if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Constant):
                taken, dropped = (stmt.body, stmt.orelse) if stmt.test.value else (stmt.orelse, stmt.body)
                if _removable(dropped, self._function()):
                    pending[:0] = [s for s in taken if not isinstance(s, ast.Pass)]
                    continue
            if isinstance(stmt, ast.If) and stmt.orelse and _leaves(stmt.body):
                # `if c: return a` / `else: rest` is `if c: return a` / `rest`.
                pending[:0] = stmt.orelse
                stmt.orelse = []
            out.append(stmt)
            if isinstance(stmt, _TERMINAL) or (isinstance(stmt, ast.If) and _leaves(stmt.body) and _leaves(stmt.orelse)):
                if _removable(pending, self._function()):
                    break  # the rest of the block can never run
        return out

    def _function(self) -> ast.AST | None:
        kind, node = self.scopes[-1]
        return node if kind == "function" else None

    def visit_arg(self, node: ast.arg) -> ast.AST:
        if node.annotation is not None and self._harmless(node.annotation):
            node.annotation = None
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if node.returns is not None and self._harmless(node.returns):
            node.returns = None
        node.type_comment = None
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        self.generic_visit(node)
        # Inside a function a variable's annotation is never evaluated; at module level it
        # is. In a class body it may declare a field (dataclasses): kept as written.
        scope = self.scopes[-1][0]
        if node.value is not None and isinstance(node.target, ast.Name) and node.simple \
                and (scope == "function" or (scope == "module" and self._harmless(node.annotation))):
            return ast.Assign(targets=[node.target], value=node.value)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        node.kind = None  # the u"" prefix
        return node

    def _harmless(self, annotation: ast.expr) -> bool:
        """Whether evaluating this annotation (as Python does when the ``def`` runs) can
        never fail, so dropping it changes nothing. ``np.ndarray`` without an import of
        numpy raises NameError at definition time: that one is kept."""
        if self.facts.future_annotations:
            return True  # annotations are never evaluated
        return _harmless_annotation(annotation, self.facts)


def _leaves(block: list[ast.stmt]) -> bool:
    """Whether control never falls off the end of this block."""
    if not block:
        return False
    last = block[-1]
    if isinstance(last, _TERMINAL):
        return True
    return isinstance(last, ast.If) and _leaves(last.body) and _leaves(last.orelse)


def _harmless_annotation(node: ast.expr, facts: Facts) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, str)
    if isinstance(node, ast.Name):
        if node.id in _ANNOTATION_TYPES and node.id not in facts.bound and node.id not in facts.imported:
            return True
        return _resolves(node, facts)
    if isinstance(node, ast.Attribute):
        return _resolves(node, facts)
    if isinstance(node, ast.Subscript):
        # list[float], dict[str, int]: builtin generics take any arguments. Other types may
        # refuse a subscript when the `def` runs (np.float64[float] raises TypeError, and
        # typing's generics check their arity): those annotations are kept.
        base_ok = isinstance(node.value, ast.Name) and node.value.id in _GENERIC_BUILTINS \
            and node.value.id not in facts.bound and node.value.id not in facts.imported
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return base_ok and all(_harmless_annotation(p, facts) for p in parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # float | None
        sides = (node.left, node.right)
        return all(_harmless_annotation(s, facts) and not (isinstance(s, ast.Constant) and isinstance(s.value, str))
                   for s in sides)
    return False


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _annotation_object(node: ast.expr, facts: Facts) -> Any:
    """The object an annotation names, found by looking names up on a few trusted modules
    (never by evaluating the candidate's code); None if it cannot be told for sure."""
    path = _dotted(node)
    if not path or path[0] in facts.bound or len(facts.imported.get(path[0], ())) != 1:
        return None
    statement = facts.imported[path[0]][0]
    # The import must have run before the annotation is evaluated: a module-level import
    # written above it (a function-level import, or one below the `def`, is not enough).
    if statement not in facts.top_level or statement.lineno >= node.lineno:
        return None
    alias = next(a for a in statement.names if (a.asname or a.name.split(".")[0]) == path[0])
    if isinstance(statement, ast.Import):
        module_path = alias.name if alias.asname else alias.name.split(".")[0]
        if module_path not in _ANNOTATION_MODULES:
            return None
        obj: Any = importlib.import_module(module_path)
    else:
        if statement.level or statement.module not in _ANNOTATION_MODULES:
            return None
        module = importlib.import_module(statement.module)
        if not hasattr(module, alias.name):
            return None
        obj = getattr(module, alias.name)
    for attr in path[1:]:
        if not hasattr(obj, attr):
            return None
        obj = getattr(obj, attr)
    return obj


def _resolves(node: ast.expr, facts: Facts) -> bool:
    return _annotation_object(node, facts) is not None


def _drop_unused_definitions(tree: ast.Module, entry: str) -> None:
    """A top-level helper or constant that nothing refers to is dead code: the harness
    looks up the entry alone. It goes if defining it cannot fail or do anything else
    (no decorators, constant defaults, no annotation left to evaluate)."""
    while True:
        spelled: dict[str, int] = {}
        for node in ast.walk(tree):
            for name in spellings(node):
                spelled[name] = spelled.get(name, 0) + 1
        keep = []
        for stmt in tree.body:
            name = _inert_definition(stmt)
            if name is not None and name != entry and spelled.get(name) == 1:
                continue
            keep.append(stmt)
        if len(keep) == len(tree.body):
            return
        tree.body = keep


def _inert_definition(stmt: ast.stmt) -> str | None:
    """The name a statement defines if running it binds that name and does nothing else."""
    if isinstance(stmt, ast.FunctionDef):
        args = stmt.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, (args.vararg, args.kwarg))]
        if stmt.decorator_list or stmt.returns is not None or any(a.annotation is not None for a in every):
            return None
        if not all(d is None or isinstance(d, ast.Constant) for d in (*args.defaults, *args.kw_defaults)):
            return None
        return stmt.name
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
            and isinstance(stmt.value, ast.Constant):
        return stmt.targets[0].id
    return None
