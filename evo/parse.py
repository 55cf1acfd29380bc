"""Pull the thought and the code out of a backend's answer (the EoH format).

The format asked for is a one-sentence thought in braces, then one Python code block.
Real answers wander from it: prose around the code, ``<think>`` blocks (closed, never
opened, or cut off), missing fences, several blocks, helpers and imports in other
blocks, example calls, answers cut off by the token limit. What cannot be read is
rejected with a one-line reason that the ``fix`` operator and ``evo show`` display.

Everything here is linear in the answer's length (a 2 MB answer parses in milliseconds):
regular expressions run once over the text and ``ast.parse`` only sees code blocks.
"""
from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass


class ParseError(ValueError):
    """The answer holds no usable code; the message says why, in one line."""


@dataclass(frozen=True)
class Parsed:
    thought: str
    code: str


MAX_THOUGHT = 400  # characters kept of the thought
MAX_CODE = 200_000  # characters of code we are willing to parse
MAX_BLOCKS = 100  # python code blocks in one answer

_TAGS = r"(?:think|thinking|reasoning)"
_THINK = re.compile(rf"<{_TAGS}>.*?(?:</{_TAGS}>|\Z)", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(rf"<{_TAGS}>", re.IGNORECASE)
_THINK_CLOSE = re.compile(rf"</{_TAGS}>", re.IGNORECASE)
_FENCE_MARK = re.compile(r"`{3,}|~{3,}")
_LANG = re.compile(r"[ \t]*([\w+.-]*)")
_PYTHON_TAGS = ("", "python", "py", "python3", "py3", "ipython", "numpy")
_BRACED = re.compile(r"\{([^{}]{3,2000})\}")
_LABELLED = re.compile(r"^[ \t>*_#-]*(?:idea|thought)[ \t*_]*:[ \t*_]*(\S.{2,2000})$", re.IGNORECASE | re.MULTILINE)
# A line that can open or continue top-level code outside a fence.
_TOP_CODE = re.compile(r"(?:def |async def |class |@|import \w|from [\w.]+ import |#|[A-Za-z_]\w*\s*(?::[^=]+)?=[^=])")


def parse_answer(text: str, entry: str, n_args: int) -> Parsed:
    """Return the thought and a module's source that defines ``entry`` with ``n_args``
    positional parameters. Raise ParseError otherwise."""
    text = _strip_thinking((text or "").replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        raise ParseError("empty answer")
    code, prose = _extract_code(text, entry)
    tree = _check_entry(code, entry, n_args)
    thought = _extract_thought(prose, _docstring(tree, entry))
    return Parsed(thought=thought, code=_with_numpy_import(_tidy(code, tree, entry)))


def _with_numpy_import(code: str) -> str:
    """The code with ``import numpy as np`` first if it uses ``np`` without binding it.
    The import is what the signature's ``np.ndarray`` presumes, and small models leave it
    out; without it the candidate could only fail with a NameError."""
    tree = ast.parse(code)
    imported = {(a.asname or a.name) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    if "np" in _free_names(tree) and "np" not in imported | _bound_names(tree.body):
        return "import numpy as np\n\n" + code
    return code


# --- thinking ---------------------------------------------------------------------------

def _strip_thinking(text: str) -> str:
    lowered = text.lower()
    if "think" not in lowered and "reasoning" not in lowered:
        return text.strip()  # (a fast path: the tag regexes ignore case, which is slow)
    close = list(_THINK_CLOSE.finditer(text))
    opened = _THINK_OPEN.search(text)
    if close and (opened is None or opened.start() > close[0].start()):
        # The opening tag was in the prompt template (some served reasoning models).
        text = text[close[0].end():]
    if _THINK_OPEN.search(text):
        stripped = _THINK.sub("", text)
        if not stripped.strip():
            raise ParseError("the answer ends inside a <think> block (reasoning cut off by max_tokens?)")
        text = stripped
    return text.strip()


# --- finding the code -------------------------------------------------------------------

@dataclass(frozen=True)
class _Block:
    body: str
    closed: bool


def _extract_code(text: str, entry: str) -> tuple[str, str]:
    """The code, and the prose that is left for the thought."""
    blocks: list[_Block] = []
    prose_parts: list[str] = []
    at = 0
    for start, end, lang, body, closed in _fences(text):
        prose_parts.append(text[at:start])
        at = end
        if lang.lower() in _PYTHON_TAGS:
            if len(blocks) >= MAX_BLOCKS:
                raise ParseError(f"more than {MAX_BLOCKS} code blocks; expected one")
            if len(body) > MAX_CODE:
                raise ParseError(f"the code is {len(body)} characters long, more than {MAX_CODE}")
            blocks.append(_Block(textwrap.dedent(body), closed))
    prose = "\n".join(prose_parts + [text[at:]])
    defines = re.compile(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(entry)}[ \t]*\(", re.M)
    defining = [b for b in blocks if defines.search(b.body)]
    if defining:
        # The last block that defines the entry is the answer's final word.
        chosen = defining[-1]
        others = [b.body for b in blocks if b is not chosen]
        return _with_helpers(_block_code(chosen, entry, defines), others, entry), prose
    loose = _unfenced(prose, entry, defines)
    if loose is not None:
        code, before = loose
        return code, before
    if blocks:
        # Blocks, none defining the entry: report on the last one.
        return _checked_syntax(blocks[-1]), prose
    raise ParseError(f"no Python code found (expected a function `{entry}`)")


def _fences(text: str):
    """(start, end, language, body, closed) of each fenced block, in order. A scan with
    ``str.find`` rather than one regular expression: linear, and fast on megabytes."""
    pos = 0
    while True:
        m = _next_mark(text, pos)
        if m is None:
            return
        mark = m.group()
        newline = text.find("\n", m.end())
        if newline < 0:
            return  # an opening mark needs a line after it
        info = text[m.end():newline]
        if "`" in info:
            # ```inline``` code: only the line's last run of marks may open a block.
            last = info.rfind("```")
            pos = m.end() + last if last > 0 else newline + 1
            continue
        close = text.find(mark[:3], newline + 1)
        while close >= 0 and text.startswith(mark[0], close + 3) and len(mark) == 3:
            close = text.find(mark[:3], close + 4)  # a longer run of marks does not close it
        if close < 0:
            yield m.start(), len(text), _LANG.match(info).group(1), text[newline + 1:], False
            return
        yield m.start(), close + 3, _LANG.match(info).group(1), text[newline + 1:close], True
        pos = close + 3
        while pos < len(text) and text[pos] == mark[0]:
            pos += 1


def _next_mark(text: str, pos: int) -> re.Match | None:
    # str.find is a fast literal scan; a regex alternation would test every position.
    starts = [i for i in (text.find("```", pos), text.find("~~~", pos)) if i >= 0]
    return _FENCE_MARK.match(text, min(starts)) if starts else None


def _checked_syntax(block: _Block) -> str:
    if len(block.body) > MAX_CODE:
        raise ParseError(f"the code is {len(block.body)} characters long, more than {MAX_CODE}")
    try:
        ast.parse(block.body)
    except SyntaxError as exc:
        where = f"line {exc.lineno}: {exc.msg}"
        if not block.closed:
            raise ParseError(f"the code is truncated: its block never closes ({where})") from None
        raise ParseError(f"syntax error at {where}") from None
    except ValueError as exc:
        raise ParseError(f"unreadable code: {exc}") from None
    return block.body


def _block_code(block: _Block, entry: str, defines: re.Pattern) -> str:
    """The block's code. Small models put prose inside the fence (the format's placeholder
    copied as its first line, a numbered description): when the whole block does not
    parse, the function and the code lines around it may."""
    try:
        return _checked_syntax(block)
    except ParseError as whole:
        try:
            rescued = _unfenced(block.body, entry, defines)
        except ParseError:
            rescued = None
        if rescued is None:
            raise whole from None
        return rescued[0]


def _unfenced(prose: str, entry: str, defines: re.Pattern) -> tuple[str, str] | None:
    """Code written without a fence: the lines around the last ``def entry(``."""
    matches = list(defines.finditer(prose))
    if not matches:
        return None
    lines = prose.splitlines()
    start_line = prose.count("\n", 0, matches[-1].start())
    first = start_line
    while first > 0 and _is_code_line(lines[first - 1]):
        first -= 1
    last, size = start_line + 1, 0
    while last < len(lines) and _is_code_line(lines[last]):
        size += len(lines[last]) + 1
        if size > MAX_CODE:
            raise ParseError(f"the code is more than {MAX_CODE} characters long")
        last += 1
    while first < start_line and not lines[first].strip():
        first += 1
    code = textwrap.dedent("\n".join(lines[first:last]))
    block = _Block(code, closed=last < len(lines))
    return _checked_syntax(block), "\n".join(lines[:first])


def _is_code_line(line: str) -> bool:
    return not line.strip() or line[0] in " \t)]}" or bool(_TOP_CODE.match(line))


# --- helpers from other blocks ----------------------------------------------------------

def _with_helpers(code: str, others: list[str], entry: str) -> str:
    """Add the imports and definitions from the answer's other blocks that the code uses
    and does not define itself (transitively), in the order the answer gave them."""
    tree = ast.parse(code)
    bound = _bound_names(tree.body)
    wanted = _free_names(tree) - bound
    pool: list[tuple[ast.stmt, str]] = []
    for body in others:
        try:
            other = ast.parse(body)
        except (SyntaxError, ValueError):
            continue
        for stmt in other.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign)):
                pool.append((stmt, body))
    chosen: list[int] = []
    changed = True
    while changed:
        changed = False
        for i, (stmt, _) in enumerate(pool):
            names = _bound_names([stmt])
            if i in chosen or entry in names or not names & wanted:
                continue
            chosen.append(i)
            bound |= names
            wanted = (wanted | _free_names(stmt)) - bound
            changed = True
    if not chosen:
        return code
    parts = [ast.get_source_segment(pool[i][1], pool[i][0]) or "" for i in sorted(chosen)]
    return "\n\n".join([p for p in parts if p] + [code])


def _bound_names(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            for target in getattr(stmt, "targets", None) or [stmt.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _free_names(node: ast.AST) -> set[str]:
    """Names read by ``node`` that its functions do not bind themselves (parameters and
    local assignments); an approximation that is right for heuristics' flat code."""
    loads, local = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            loads.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = n.args
            local.update(x.arg for x in a.posonlyargs + a.args + a.kwonlyargs)
            local.update(x.arg for x in (a.vararg, a.kwarg) if x is not None)
            if not isinstance(n, ast.Lambda):
                local.update(m.id for s in n.body for m in ast.walk(s)
                             if isinstance(m, ast.Name) and isinstance(m.ctx, ast.Store))
        elif isinstance(n, ast.comprehension):
            local.update(m.id for m in ast.walk(n.target) if isinstance(m, ast.Name))
    return loads - local


# --- checking and tidying ---------------------------------------------------------------

def _check_entry(code: str, entry: str, n_args: int) -> ast.Module:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ParseError(f"syntax error at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise ParseError(f"unreadable code: {exc}") from None
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    functions = [n for n in defs if n.name == entry]
    if not functions:
        nested = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry
                     for n in ast.walk(tree))
        if nested:
            raise ParseError(f"`{entry}` is not defined at the top level of the code")
        names = ", ".join(f"`{n.name}`" for n in defs[:5])
        found = f" (it defines {names})" if names else ""
        raise ParseError(f"the code does not define `{entry}`{found}")
    function = functions[-1]
    if isinstance(function, ast.AsyncFunctionDef):
        raise ParseError(f"`{entry}` is async; it must be a plain function")
    args = function.args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    if not (required <= n_args <= positional or (args.vararg and required <= n_args)):
        raise ParseError(f"`{entry}` takes {positional} positional arguments, the problem passes {n_args}")
    missing = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    if missing:
        raise ParseError(f"`{entry}` has keyword-only parameters without defaults: {', '.join(missing)}")
    return tree


def _tidy(code: str, tree: ast.Module, entry: str) -> str:
    """Drop what would run on import and is no part of the heuristic: example calls and
    ``if __name__ == "__main__":`` blocks."""
    lines = code.splitlines()
    drop: list[tuple[int, int]] = []
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    used = set().union(*(_free_names(f) for f in functions))
    entry_at = max(i for i, n in enumerate(tree.body) if isinstance(n, ast.FunctionDef) and n.name == entry)
    for i, stmt in enumerate(tree.body):
        example = isinstance(stmt, ast.Expr) and not (
            isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str))
        # e.g. ``bins = np.array([...])`` set up for an example call after the function
        example = example or (i > entry_at and isinstance(stmt, (ast.Assign, ast.AnnAssign))
                              and not _bound_names([stmt]) & used)
        main_guard = (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare)
                      and isinstance(stmt.test.left, ast.Name) and stmt.test.left.id == "__name__")
        if example or main_guard:
            drop.append((stmt.lineno - 1, stmt.end_lineno or stmt.lineno))
    for start, end in reversed(drop):
        del lines[start:end]
    tidy = "\n".join(lines).strip() + "\n"
    return tidy if drop and _defines(tidy, entry) else code.strip() + "\n"


def _defines(code: str, entry: str) -> bool:
    try:
        return any(isinstance(n, ast.FunctionDef) and n.name == entry for n in ast.parse(code).body)
    except SyntaxError:
        return False


def _extract_thought(prose: str, docstring: str) -> str:
    """The idea, from the first of: an ``Idea:`` line, a braced sentence (EoH's format), the
    function's docstring (the format asked for), the first sentence of the prose."""
    labelled = _LABELLED.search(prose)
    braced = _BRACED.search(prose)
    if labelled:
        thought = labelled.group(1).strip().strip("{}").strip()
    elif braced:
        thought = braced.group(1)
    elif docstring:
        thought = docstring
    else:
        thought = prose[:20_000]
    thought = _first_sentence(" ".join(thought.split()))
    return thought if len(thought) <= MAX_THOUGHT else thought[: MAX_THOUGHT - 1].rstrip() + "…"


def _docstring(tree: ast.Module, entry: str) -> str:
    """The entry function's docstring, unless it is the format's placeholder copied."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            doc = (ast.get_docstring(node) or "").strip()
            return "" if doc.startswith("<") and doc.endswith(">") else doc
    return ""


def _first_sentence(text: str) -> str:
    # A thought is one sentence; small models go on to echo the task text after it.
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text) if s.strip()]
    return sentences[0] if sentences else ""
