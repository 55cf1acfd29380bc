"""Mutation operators: a prompt template, an arity and a rule for choosing the parents.

The templates are text files in ``prompts/`` (``$name`` placeholders, so that code with
braces needs no escaping). An operator's intent is in its template; its arity and where
its parents come from are here:

- ``archive``: elites chosen by the run's selection rule (``archive.selection``, or the
  operator's own ``selection`` in config);
- ``ranked``: like ``archive``, then shown better first (ReEvo's crossover compares a
  better and a worse parent);
- ``best``: the best elite (ReEvo's elitist mutation);
- ``failed``: a recent candidate that failed, with its error (the repair operator);
- ``none``: no parent (EoH's initialisation, i1).

Reflections (ReEvo): ``crossover`` shows a short-term reflection comparing its two
parents, ``elitist`` the run's long-term reflection (see evo.reflection).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from importlib import resources
from string import Template

from evo.llm.base import Message


# Where a candidate's answer may end: its code block has closed and a blank line follows
# (prompts/format.txt asks for one block and nothing else). What a model writes after it,
# explanations and example calls, is not worth waiting for at a few tokens a second: in
# the 0.5B model's answers it was 16% of all output. A blank line, not just the closing
# fence, so that a bare opening fence after some prose does not end the answer early.
ANSWER_STOP = ("\n```\n\n",)
# Reflections are asked for in at most 30 words (about 45 tokens). The 0.5B model wrote 320
# tokens of them on average, 13 s each at its speed, most of it restating the task; a cap
# keeps the useful start and the time.
REFLECTION_MAX_TOKENS = 128


@dataclass(frozen=True)
class Operator:
    name: str
    arity: int  # parents shown in the prompt
    source: str  # none | archive | ranked | best | failed (see the module docstring)
    reflection: str = ""  # "" | "short" | "long"


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("i1", 0, "none"),
        Operator("e1", 2, "archive"),
        Operator("e2", 2, "archive"),
        Operator("m1", 1, "archive"),
        Operator("m2", 1, "archive"),
        Operator("m3", 1, "archive"),
        Operator("crossover", 2, "ranked", reflection="short"),
        Operator("elitist", 1, "best", reflection="long"),
        Operator("fix", 1, "failed"),
    )
}


@dataclass(frozen=True)
class OperatorChoice:
    """An enabled operator as configured: its prior weight for the bandit and, optionally,
    a selection rule of its own for its parents from the archive."""

    name: str
    weight: float = 1.0
    selection: str | None = None  # None: the run's archive.selection


@dataclass(frozen=True)
class Parent:
    """What a prompt shows of a parent."""

    cid: int
    thought: str
    code: str
    score: float | None
    error: str = ""


def template(name: str) -> Template:
    return Template(resources.files("prompts").joinpath(f"{name}.txt").read_text())


def render_parents(parents: list[Parent]) -> str:
    return "\n".join(
        template("parent").substitute(
            number=i + 1, thought=p.thought or "(no description)", code=without_docstrings(p.code).strip(),
            score="failed" if p.score is None else f"{p.score:.4f}",
        )
        for i, p in enumerate(parents)
    )


def without_docstrings(code: str) -> str:
    """The code without its functions' docstrings. The prompt shows each parent's thought
    beside its code; a docstring there too is what small models copy into their answer,
    where it then describes the parent instead of the child."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # a failed parent (for the repair operator) is shown as it was
    lines = code.splitlines(keepends=True)
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and len(node.body) > 1:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str) and first.lineno != node.body[1].lineno:
                spans.append((first.lineno - 1, first.end_lineno))
    for start, end in sorted(spans, reverse=True):
        del lines[start:end]
    return "".join(lines)


def render(operator: Operator, task: str, signature: str, score_name: str, parents: list[Parent],
           reflection: str = "") -> tuple[Message, ...]:
    """The chat messages that ask for one new candidate."""
    user = template(operator.name).safe_substitute(
        task=task.strip(),
        count=len(parents),
        parents=render_parents(parents),
        score_name=score_name,
        reflection=reflection.strip() or "(none yet)",
        error=parents[0].error if parents else "",
        format=template("format").safe_substitute(signature=signature, entry=_entry_name(signature)),
    )
    return _chat(user)


def render_reflection(kind: str, task: str, score_name: str, parents: list[Parent], evidence: str) -> tuple[Message, ...]:
    """The chat messages that ask an LLM for a reflection (ReEvo): ``kind`` is "short"
    (compare a better and a worse parent) or "long" (lessons of the run so far).
    ``evidence`` is the computed reflection (evo.reflection), given as facts to reason from."""
    user = template(f"reflect_{kind}").safe_substitute(
        task=task.strip(),
        parents=render_parents(parents),
        score_name=score_name,
        evidence=evidence.strip() or "(no evidence yet)",
    )
    return _chat(user)


def _entry_name(signature: str) -> str:
    match = re.search(r"def\s+(\w+)", signature)
    return match.group(1) if match else "the function"


def _chat(user: str) -> tuple[Message, ...]:
    return (Message("system", template("system").template.strip()), Message("user", user.strip()))
