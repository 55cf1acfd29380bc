"""Recognising a candidate that was seen before, without paying to evaluate it again.

Two levels, used by the engine in this order:

* **syntactic** (``syntactic_hash``): a hash of the code's normalised AST. Formatting,
  comments, docstrings, annotations, the names of local variables and helpers, import
  aliases, ``else`` after a ``return`` and unreachable code do not count. An exact repeat
  is recognised without starting any process.
* **functional** (``decision_hash``): a hash of the *decisions* the candidate makes on the
  problem's probe states (``Evaluator.probe``). Decisions, not raw values, so a priority
  that is scaled, shifted or passed through a monotone function hashes the same.

The syntactic level has one rule above all: two programs that normalise equal behave
identically on every input. Every rewrite below preserves semantics, and where a rewrite
could be wrong for some odd program (shadowed builtins, ``locals()``, keyword calls,
annotations evaluated at definition time...) the difference is kept. A missed merge
costs one probe; a false merge would hand a candidate another candidate's score.
"""
from __future__ import annotations

import ast
import builtins
import hashlib
import importlib
from collections.abc import Iterable, Sequence
from typing import Any

DIGEST_CHARS = 20

# Names through which code can reach variables by their spelling. If any is used, local
# names keep their spelling (renaming them could change what the lookup finds).
_DYNAMIC = frozenset({"locals", "globals", "vars", "eval", "exec", "compile", "dir", "__import__",
                      "getattr", "setattr", "delattr", "hasattr"})
_INTROSPECTION_MODULES = frozenset({"inspect", "sys", "builtins", "importlib"})
_BUILTINS = frozenset(dir(builtins))
# Builtin types that may appear in an annotation: evaluating them cannot fail.
_ANNOTATION_TYPES = frozenset({"int", "float", "bool", "complex", "str", "bytes", "list", "dict", "tuple",
                               "set", "frozenset", "object", "type", "slice", "range"})
_GENERIC_BUILTINS = frozenset({"list", "dict", "tuple", "set", "frozenset", "type"})
# Modules whose attributes an annotation may name. They are imported in this (trusted)
# process anyway; we only look names up on them, never evaluate candidate code.
_ANNOTATION_MODULES = frozenset({"numpy", "typing", "math", "collections.abc"})
_TERMINAL = (ast.Return, ast.Raise, ast.Continue, ast.Break)


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


def normalise(code: str, entry: str | None = None) -> ast.Module:
    """The normalised tree behind ``syntactic_hash``. ``ast.unparse`` of it is readable
    (renamed variables appear as ``$0``, ``$1``...; they can never clash with a real name)."""
    tree = ast.parse(code)
    facts = _Facts(tree)
    tree = _Simplify(facts).visit(tree)
    if entry is not None and not facts.dynamic:
        _drop_unused_definitions(tree, entry)
    _canonical_imports(tree, facts)
    facts = _Facts(tree)  # bindings after the rewrites above
    renames = _renamable(facts, tree, entry)
    if renames:
        tree = _Rename({name: f"${i}" for i, name in enumerate(_first_appearance(tree, renames))}).visit(tree)
    return tree


# ---- facts about a module -----------------------------------------------------------------
class _Facts:
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


_SCOPE_CHANGERS = (ast.Global, ast.Nonlocal, ast.Yield, ast.YieldFrom, ast.Await)


def _spellings(node: ast.AST) -> Iterable[str]:
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


def _binds(nodes: Iterable[ast.AST]) -> set[str]:
    names: set[str] = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, (ast.Store, ast.Del)):
                    names.add(node.id)
            elif not isinstance(node, ast.arg):  # a lambda's parameters bind in the lambda only
                names.update(_spellings(node))
    return names


def _removable(dead: list[ast.stmt], function: ast.AST | None) -> bool:
    """Whether statements that can never run may be dropped. Never running, they still
    count for scoping: an assignment makes a name local to the whole function, a
    ``yield`` makes it a generator. So they go only if they change neither: no
    ``yield``/``await``/``global``/``nonlocal``, and every name they bind is spelled
    nowhere else in the function."""
    if any(isinstance(n, _SCOPE_CHANGERS) for root in dead for n in ast.walk(root)):
        return False
    bound = _binds(dead)
    if not bound:
        return True
    if function is None:
        return False  # module or class level: a binding there is visible from outside
    inside = {id(n) for root in dead for n in ast.walk(root)}
    # The function node itself is left out: its own name lives in the outer scope.
    elsewhere = {name for child in ast.iter_child_nodes(function) for n in ast.walk(child)
                 if id(n) not in inside for name in _spellings(n)}
    # A name the function binds anyway stays local without the dead binding.
    return not (bound & elsewhere - _own_bindings(function, inside))


def _own_bindings(function: ast.AST, skip: set[int]) -> set[str]:
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
            names.update(_spellings(node))
        stack.extend(ast.iter_child_nodes(node))
    return names


# ---- semantics-preserving simplifications -----------------------------------------------------
class _Simplify(ast.NodeTransformer):
    """Drops what cannot change behaviour: docstrings and other constant expression
    statements, ``pass`` in a non-empty block, annotations that evaluate without fail,
    ``else`` after a block that always leaves, unreachable statements, ``if False:``."""

    def __init__(self, facts: _Facts):
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


def _harmless_annotation(node: ast.expr, facts: _Facts) -> bool:
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


def _annotation_object(node: ast.expr, facts: _Facts) -> Any:
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


def _resolves(node: ast.expr, facts: _Facts) -> bool:
    return _annotation_object(node, facts) is not None


def _drop_unused_definitions(tree: ast.Module, entry: str) -> None:
    """A top-level helper or constant that nothing refers to is dead code: the harness
    looks up the entry alone. It goes if defining it cannot fail or do anything else
    (no decorators, constant defaults, no annotation left to evaluate)."""
    while True:
        spelled: dict[str, int] = {}
        for node in ast.walk(tree):
            for name in _spellings(node):
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


# ---- import aliases -----------------------------------------------------------------------------
def _canonical_imports(tree: ast.Module, facts: _Facts) -> None:
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
                or top in facts.keywords or top in _BUILTINS:
            continue
        renames[name] = top
        for s in statements:
            s.names[0].asname = None
    if renames:
        _Rename(renames).visit(tree)
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
def _renamable(facts: _Facts, tree: ast.Module, entry: str | None) -> set[str]:
    """Names whose spelling nobody can observe: bound in the code, not a builtin, not an
    import, not an attribute of a class, not a keyword anyone passes, not the entry point."""
    if facts.dynamic:
        return set()
    names = set(facts.bound)
    names -= _BUILTINS
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


def _first_appearance(tree: ast.AST, names: set[str]) -> list[str]:
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


class _Rename(ast.NodeTransformer):
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


__all__: Sequence[str] = ("syntactic_hash", "decision_hash", "normalise")
