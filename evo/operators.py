"""Mutation operators: a prompt template, an arity and where the parents come from.

The templates are text files in ``prompts/`` (``$name`` placeholders, so that code with
braces needs no escaping). An operator's intent is in its template; its arity and its
source of parents are here.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from string import Template

from evo.llm.base import Message


@dataclass(frozen=True)
class Operator:
    name: str
    arity: int  # parents shown in the prompt
    source: str  # "elites": chosen by the archive's selection rule; "failed": a recent failure


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("i1", 0, "elites"),
        Operator("e1", 2, "elites"),
        Operator("e2", 2, "elites"),
        Operator("m1", 1, "elites"),
        Operator("m2", 1, "elites"),
        Operator("m3", 1, "elites"),
        Operator("crossover", 2, "elites"),
        Operator("elitist", 1, "elites"),
        Operator("fix", 1, "failed"),
    )
}


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


def render(operator: Operator, task: str, signature: str, score_name: str, parents: list[Parent],
           reflection: str = "") -> tuple[Message, ...]:
    """The chat messages that ask for one new candidate."""
    shown = "\n".join(
        template("parent").substitute(
            number=i + 1, thought=p.thought or "(no description)", code=p.code.strip(),
            score="failed" if p.score is None else f"{p.score:.4f}",
        )
        for i, p in enumerate(parents)
    )
    user = template(operator.name).safe_substitute(
        task=task.strip(),
        count=len(parents),
        parents=shown,
        score_name=score_name,
        reflection=reflection or "(none yet)",
        error=parents[0].error if parents else "",
        format=template("format").safe_substitute(signature=signature),
    )
    return (Message("system", template("system").template.strip()), Message("user", user.strip()))
