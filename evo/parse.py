"""Pull the thought and the code out of a backend's answer (the EoH format).

The format asked for is a one-sentence thought in braces, then one Python code block.
Real answers wander from it: prose around the code, ``<think>`` blocks, missing fences,
several blocks, helpers and imports. What cannot be read is rejected with a reason that
the ``fix`` operator and ``evo show`` display.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass


class ParseError(ValueError):
    """The answer holds no usable code; the message says why, in one line."""


@dataclass(frozen=True)
class Parsed:
    thought: str
    code: str


_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|$)", re.DOTALL)
_BRACED = re.compile(r"\{([^{}]{3,})\}", re.DOTALL)
_CODE_START = re.compile(r"^(import |from |def |@|class )", re.MULTILINE)


def parse_answer(text: str, entry: str, n_args: int) -> Parsed:
    """Return the thought and a module's source that defines ``entry`` with ``n_args``
    positional parameters. Raise ParseError otherwise."""
    text = _THINK.sub("", text or "").strip()
    if not text:
        raise ParseError("empty answer")
    code, prose = _extract_code(text, entry)
    _check_entry(code, entry, n_args)
    return Parsed(thought=_extract_thought(prose), code=code.strip() + "\n")


def _extract_code(text: str, entry: str) -> tuple[str, str]:
    """The code, and the prose that is left for the thought."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    python = [body for lang, body in blocks if lang in ("", "python", "py", "python3")]
    defining = [body for body in python if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", body, re.M)]
    if defining:
        # The last block that defines the entry is the answer's final word; imports and
        # helpers from the other blocks are kept only when they still parse together.
        chosen = defining[-1]
        helpers = [b for b in python if b is not chosen and _parses(b) and _only_defs(b)]
        merged = "\n\n".join(helpers + [chosen])
        code = merged if _parses(merged) else chosen
        return code, _FENCE.sub("", text)
    start = _CODE_START.search(text)
    if not start:
        raise ParseError(f"no Python code found (expected a function `{entry}`)")
    return _longest_parsable_prefix(text[start.start():]), text[: start.start()]


def _longest_parsable_prefix(source: str) -> str:
    lines = source.rstrip().splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if _parses(candidate):
            return candidate
    return source  # let _check_entry report the syntax error


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def _only_defs(source: str) -> bool:
    body = ast.parse(source).body
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef)) for n in body)


def _check_entry(code: str, entry: str, n_args: int) -> None:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ParseError(f"syntax error at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise ParseError(f"unreadable code: {exc}") from None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry]
    if not functions:
        raise ParseError(f"the code does not define `{entry}`")
    args = functions[-1].args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    if not required <= n_args <= positional and not args.vararg:
        raise ParseError(f"`{entry}` takes {positional} positional arguments, the problem passes {n_args}")


def _extract_thought(prose: str) -> str:
    braced = _BRACED.search(prose)
    if braced:
        return " ".join(braced.group(1).split())
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(prose.split())) if s.strip()]
    return sentences[0] if sentences else ""
