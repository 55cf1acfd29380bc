"""Planning a candidate: everything decided before its request is sent.

A plan is a pure function of the search state it is made from and of a random generator
seeded by the run's seed and the candidate's id: the bandit's arm, the parents, and the
reflection its prompt shows (ReEvo). The engine decides *when* a candidate is planned
(evo.engine); nothing here knows about time, threads or the LLM.

Reflections. A crossover shows a short-term reflection, its two parents compared; an
elitist mutation shows the long-term reflection, the run's lessons so far. Both are first
computed from the code and the run (evo.reflection), which is all the offline model acts
on. A real LLM is shown the computed reflection as evidence and asked for its own: an
extra request, cached like any other, whose ``sample`` is negative so that it never
collides with a candidate's. A crossover's request is its own (sample -2 id - 1). The
long-term reflection is refreshed once per window, from the state after candidates 0,
window, 2 window ...; the elitist mutations that see the same refresh share its one
request (sample -2 r - 2, r the last candidate the refresh saw).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from evo.bandit import arm_model, arm_operator
from evo.llm.base import Request
from evo.operators import ANSWER_STOP, OPERATORS, REFLECTION_MAX_TOKENS, Operator, Parent, render, render_reflection
from evo.reflection import compare
from evo.search_state import SearchState
from evo.settings import Settings
from evo.store import CandidateRecord
from problems.base import Problem


@dataclass(frozen=True)
class Reflection:
    """What an operator's prompt shows as its reflection, and its terms for the offline model."""

    text: str = ""
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class LongTerm:
    """The long-term reflection as computed from the state after candidate ``after``, and
    the request that asks an LLM for its own (None offline, or while there is no evidence)."""

    after: int
    reflection: Reflection
    ask: Request | None


@dataclass(frozen=True)
class Plan:
    """Everything decided about a candidate before its request is sent."""

    cid: int
    after: int  # the last candidate committed when this one was planned
    arm: str
    operator: Operator
    parents: tuple[Parent, ...]
    reflection: Reflection  # as computed; an LLM's own reflection replaces its text
    ask: Request | None  # the candidate's own reflection request (a crossover's)
    long_term: LongTerm | None  # the shared reflection an elitist mutation shows


class Planner:
    def __init__(self, settings: Settings, problem: Problem):
        self.settings = settings
        self.problem = problem
        # Per model: False for the offline model, which reads computed reflections only.
        self.asks_llm = {m.name: m.asks_llm for m in settings.models}

    def plan(self, state: SearchState, cid: int, after: int, pending: Counter, long_term: LongTerm) -> Plan:
        """Candidate ``cid``, planned from ``state`` (the state after candidate ``after``);
        ``pending``: the arms of the candidates in flight, not yet rewarded."""
        rng = np.random.default_rng([self.settings.seed, cid])
        arm = state.bandit.choose(rng, pending, state.available_arms())
        operator = OPERATORS[arm_operator(arm)]
        parents = self._parents(state, operator, rng)
        reflection, ask, shared = Reflection(), None, None
        if operator.reflection == "short" and len(parents) == 2:
            better, worse = parents
            comparison = compare(better.code, worse.code)
            reflection = Reflection(comparison.text(better.score, worse.score), comparison.better_only)
            if self.asks_llm[arm_model(arm)]:
                ask = Request(render_reflection("short", self.problem.description, self.problem.score_name,
                                                list(parents), reflection.text),
                              "reflect_short", tuple(p.code for p in parents), -2 * cid - 1,
                              max_tokens=REFLECTION_MAX_TOKENS)
        elif operator.reflection == "long":
            reflection, shared = long_term.reflection, long_term
        return Plan(cid, after, arm, operator, parents, reflection, ask, shared)

    def long_term(self, state: SearchState, after: int) -> LongTerm:
        """The long-term reflection from ``state``, the state after candidate ``after``.
        Its request, if any, goes to the model of each elitist mutation that shows it
        (one request per model and refresh, see evo.engine)."""
        lessons = state.memory.lessons()
        reflection = Reflection(lessons.text(), lessons.hints)
        if not any(self.asks_llm.values()) or not lessons.observed:
            return LongTerm(after, reflection, None)
        top = [parent(state.records[e.cid]) for e in state.archive.elites()[:3]]
        ask = Request(render_reflection("long", self.problem.description, self.problem.score_name, top,
                                        reflection.text),
                      "reflect_long", tuple(p.code for p in top), -2 * after - 2,
                      max_tokens=REFLECTION_MAX_TOKENS)
        return LongTerm(after, reflection, ask)

    def request(self, plan: Plan, reflection_text: str) -> Request:
        """The candidate's own request, showing ``reflection_text`` (an LLM's reflection
        or the computed one)."""
        messages = render(plan.operator, self.problem.description, self.problem.signature,
                          self.problem.score_name, list(plan.parents), reflection_text)
        # An operator without parents still gives the offline model a skeleton to fill.
        codes = tuple(p.code for p in plan.parents) or (self.problem.seed_code,)
        return Request(messages=messages, operator=plan.operator.name, parents=codes, sample=plan.cid,
                       hints=plan.reflection.hints, stop=ANSWER_STOP)

    def _parents(self, state: SearchState, operator: Operator, rng: np.random.Generator) -> tuple[Parent, ...]:
        if operator.source == "none":
            return ()
        if operator.source == "failed":
            # One of the five most recent failures: recent code is closest to today's elites.
            ids = [state.failed[-1 - int(rng.integers(min(5, len(state.failed))))]]
        elif operator.source == "best":
            best = state.archive.best()
            ids = [] if best is None else [best.cid]
        else:
            rule = self.settings.operator_choice(operator.name).selection or self.settings.selection
            ids = state.select(operator.arity, rng, rule, self.settings.tournament_size)
            if operator.source == "ranked":  # better first, as ReEvo's comparison reads them
                ids.sort(key=lambda i: (state.records[i].score, i))
        return tuple(parent(state.records[i]) for i in ids)


def parent(record: CandidateRecord) -> Parent:
    return Parent(record.id, record.thought, record.code, record.score, record.error)
