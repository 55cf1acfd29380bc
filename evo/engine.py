"""The engine loop: ask the backend for candidates, evaluate them, tell the archive.

Candidates are made in batches. Every candidate of a batch is planned (operator, parents,
prompt) from the state left by the previous batch, with a random generator seeded by the
run's seed and the candidate's id; its answer and evaluation then run concurrently; and
results are committed strictly in id order. So one seed and one batch size give one run,
whatever the timing, and a run resumed in the middle of a batch plans that batch again
from the same state and makes the same requests (answered from the LLM cache).
"""
from __future__ import annotations

import ast
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from evo.evaluation import Evaluation, Evaluator, Probe
from evo.hashing import syntactic_hash
from evo.llm.base import Backend, Request, Response
from evo.llm.retry import is_provider_failure
from evo.measures import MEASURES
from evo.operators import ANSWER_STOP, OPERATORS, Operator, Parent, render, render_reflection
from evo.parse import ParseError, parse_answer
from evo.progress import Progress
from evo.reflection import compare
from evo.search_state import SearchState
from evo.settings import Settings
from evo.store import CandidateRecord, Store
from problems.base import Dataset, Problem

SEED_OPERATOR = "seed"


class _Stopped(Exception):
    """A candidate's draft that was not started because the run is stopping."""


@dataclass(frozen=True)
class Plan:
    """Everything decided about a candidate before its request is sent."""

    cid: int
    batch: int
    operator: str
    parents: tuple[int, ...]
    request: Request


@dataclass(frozen=True)
class Reflection:
    """What an operator's prompt shows as its reflection, and its terms for the offline model."""

    text: str = ""
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Draft:
    """A candidate between its answer and its commit."""

    plan: Plan
    response: Response | None
    thought: str
    code: str
    syntax: str | None
    parse_error: str
    probe: Probe | None = None


class Engine:
    def __init__(self, settings: Settings, problem: Problem, store: Store, evaluator: Evaluator,
                 backend: Backend, progress: Progress):
        self.settings = settings
        self.problem = problem
        self.store = store
        self.evaluator = evaluator
        self.backend = backend
        self.progress = progress
        self.train: Dataset = problem.train_set()
        self.stop_requested = threading.Event()
        self._provider_failures = 0
        self._started = time.monotonic()
        self._elapsed_before = float(store.get_state("elapsed_s") or 0.0)

    # ---- the loop -------------------------------------------------------------------
    def run(self) -> str:
        """Run until a budget is reached or a stop is requested; return why it stopped."""
        if self.store.count() == 0:
            self._commit(self._evaluate_seed(), self._rebuild(below=0))
        batch_size = self.settings.batch_size
        state: SearchState | None = None
        with ThreadPoolExecutor(self.settings.llm_concurrency, "llm") as llm_pool, \
                ThreadPoolExecutor(self.settings.workers, "eval") as eval_pool:
            while True:
                reason = self.exhausted()
                if reason:
                    return reason
                done = self.store.count()
                batch = (done - 1) // batch_size
                start = 1 + batch * batch_size
                end = min(start + batch_size, self.settings.budget.evaluations)
                if state is None:  # on (re)start: the state as the previous batch left it
                    state = self._rebuild(below=start)
                plans = self._plan(state, range(start, end), batch)
                try:
                    stopped = self._run_batch(state, plans, llm_pool, eval_pool)
                except BaseException:
                    # A failure (a full disk, say) ends the run: what is queued is never
                    # started, so no request is paid for whose answer may not be kept.
                    for pool in (llm_pool, eval_pool):
                        pool.shutdown(wait=False, cancel_futures=True)
                    raise
                if stopped:
                    return stopped

    def exhausted(self) -> str:
        budget = self.settings.budget
        if self.stop_requested.is_set():
            return "interrupted"
        if self.store.count() >= budget.evaluations:
            return f"budget.evaluations reached ({budget.evaluations})"
        totals = self.store.totals()
        if budget.llm_calls is not None and totals["n"] >= budget.llm_calls:
            return f"budget.llm_calls reached ({budget.llm_calls})"
        if budget.cost_usd is not None and totals["cost_usd"] >= budget.cost_usd:
            return f"budget.cost_usd reached (${totals['cost_usd']:.4f} of ${budget.cost_usd})"
        if budget.wall_time_s is not None and self.elapsed() >= budget.wall_time_s:
            return f"budget.wall_time_s reached ({budget.wall_time_s:g} s)"
        return ""

    def elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

    # ---- planning -------------------------------------------------------------------
    def _plan(self, state: SearchState, ids: range, batch: int) -> list[Plan]:
        pending: Counter = Counter()
        available = state.available_arms()
        chosen: list[tuple[int, Operator, list[Parent]]] = []
        for cid in ids:
            rng = np.random.default_rng([self.settings.seed, cid])
            arm = self._choose_operator(state, rng, pending, available)
            pending[arm] += 1
            operator = OPERATORS[arm.split("@")[0]]
            chosen.append((cid, operator, self._choose_parents(state, operator, rng)))
        reflections = self._reflect(state, chosen, ids.start)
        return [Plan(cid, batch, operator.name, tuple(p.cid for p in parents),
                     self._request(operator, parents, cid, reflections.get(cid, Reflection())))
                for cid, operator, parents in chosen]

    def _choose_operator(self, state: SearchState, rng: np.random.Generator, pending: Counter,
                         available: tuple[str, ...]) -> str:
        """The bandit's arm, among those whose operator can work now (a repair needs a
        failure; a crossover needs two elites)."""
        return state.bandit.choose(rng, pending, available)

    def _choose_parents(self, state: SearchState, operator: Operator, rng: np.random.Generator) -> list[Parent]:
        if operator.source == "none":
            return []
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
        return [self._parent(state.records[i]) for i in ids]

    @staticmethod
    def _parent(record: CandidateRecord) -> Parent:
        return Parent(record.id, record.thought, record.code, record.score, record.error)

    def _reflect(self, state: SearchState, chosen: list[tuple[int, Operator, list[Parent]]],
                 start: int) -> dict[int, Reflection]:
        """ReEvo's reflections for the batch's crossovers (short-term: the two parents
        compared) and elitist mutations (long-term: the run's lessons so far).

        Each is first computed from the code and the run (evo.reflection): a pure function
        of the committed candidates. The offline model acts on that. A real LLM is shown it
        as evidence and asked for its own reflection: an extra request, cached like any
        other, whose ``sample`` is negative so that it never collides with a candidate's
        (-2 cid - 1 for a crossover's, -2 start - 2 for the batch's long-term one).
        """
        computed: dict[int, Reflection] = {}
        asks: dict[int, Request] = {}
        lessons = None
        for cid, operator, parents in chosen:
            if operator.reflection == "short" and len(parents) == 2:
                better, worse = parents
                comparison = compare(better.code, worse.code)
                computed[cid] = Reflection(comparison.text(better.score, worse.score), comparison.better_only)
                if not self._offline:
                    asks[cid] = Request(
                        render_reflection("short", self.problem.description, self.problem.score_name, parents,
                                          computed[cid].text),
                        "reflect_short", tuple(p.code for p in parents), -2 * cid - 1)
            elif operator.reflection == "long":
                if lessons is None:
                    lessons = state.memory.lessons()
                computed[cid] = Reflection(lessons.text(), lessons.hints)
                if not self._offline and lessons.observed and -1 not in asks:
                    top = [self._parent(state.records[e.cid]) for e in state.archive.elites()[:3]]
                    asks[-1] = Request(
                        render_reflection("long", self.problem.description, self.problem.score_name, top,
                                          lessons.text()),
                        "reflect_long", tuple(p.code for p in top), -2 * start - 2)
        if not asks:
            return computed
        with ThreadPoolExecutor(min(len(asks), self.settings.llm_concurrency), "reflect") as pool:
            answers = dict(zip(asks, pool.map(self.backend.complete, asks.values())))
        for cid, operator, _ in chosen:
            key = cid if operator.reflection == "short" else -1
            answer = answers.get(key)
            # A failed reflection request leaves the computed reflection in the prompt.
            if answer is not None and answer.ok and answer.text.strip() and cid in computed:
                computed[cid] = Reflection(answer.text.strip(), computed[cid].hints)
        return computed

    @property
    def _offline(self) -> bool:
        return self.settings.llm.get("backend") == "offline"

    def _request(self, operator: Operator, parents: list[Parent], cid: int,
                 reflection: Reflection) -> Request:
        messages = render(operator, self.problem.description, self.problem.signature,
                          self.problem.score_name, parents, reflection.text)
        # An operator without parents still gives the offline model a skeleton to fill.
        codes = tuple(p.code for p in parents) or (self.problem.seed_code,)
        return Request(messages=messages, operator=operator.name, parents=codes, sample=cid,
                       hints=reflection.hints, stop=ANSWER_STOP)

    # ---- one batch ------------------------------------------------------------------
    def _run_batch(self, state: SearchState, plans: list[Plan], llm_pool: ThreadPoolExecutor,
                   eval_pool: ThreadPoolExecutor) -> str:
        committed = {plan.cid: self.store.candidate(plan.cid) for plan in plans}
        known = frozenset(state.by_syntax)
        drafts = {plan.cid: llm_pool.submit(self._draft, plan, known)
                  for plan in plans if committed[plan.cid] is None}
        # In id order, decide which drafts are new and start their evaluations; the
        # decision sees the batch's earlier candidates, so it never depends on timing.
        seen_syntax = {r.syntactic_hash for r in committed.values() if r and r.syntactic_hash}
        # Only first occurrences (no dedup): a collision has its hash too, but the batch's
        # later twins are compared with the first of their kind, resumed or not.
        seen_function = {r.functional_hash: r.id for r in committed.values()
                         if r and r.functional_hash and r.dedup is None}
        ready: dict[int, Draft] = {}
        twins: dict[int, int] = {}
        evaluations: dict[int, Future[Evaluation]] = {}
        for plan in plans:
            if plan.cid not in drafts:
                continue
            if self.stop_requested.is_set():
                break
            try:
                draft = ready[plan.cid] = drafts[plan.cid].result()
            except _Stopped:
                break
            if not draft.syntax or draft.syntax in state.by_syntax or draft.syntax in seen_syntax:
                continue
            seen_syntax.add(draft.syntax)
            functional = draft.probe.hash if draft.probe else None
            twin = state.by_function.get(functional, seen_function.get(functional)) if functional else None
            if twin is None:
                if functional:
                    seen_function[functional] = plan.cid
            else:
                twins[plan.cid] = twin
                if not self._verify_twin(plan.cid):
                    continue
            evaluations[plan.cid] = eval_pool.submit(self.evaluator.evaluate, draft.code, self.train)
        for plan in plans:
            if committed[plan.cid] is not None:
                state.tell(committed[plan.cid])
                continue
            if plan.cid not in ready:
                return "interrupted"
            record = self._finish(state, ready[plan.cid], evaluations.get(plan.cid), twins.get(plan.cid))
            self._commit(record, state)
            # Counted across batches: a provider that refuses every request (a wrong key, a
            # wrong URL) stops the run instead of burning its budget on errors. A per-prompt
            # failure (an empty answer, a rejected request) does not count.
            failing = record.status == "llm_failed" and is_provider_failure(record.error)
            self._provider_failures = self._provider_failures + 1 if failing else 0
            if self._provider_failures >= self.settings.max_consecutive_llm_failures:
                return (f"llm: {self._provider_failures} requests in a row failed; "
                        f"last error: {record.error}")
        return ""

    def _verify_twin(self, cid: int) -> bool:
        """Whether this functional hash hit is evaluated anyway, to catch collisions."""
        rng = np.random.default_rng([self.settings.seed, cid, 1])
        return bool(rng.random() < self.settings.verify_rate)

    def _draft(self, plan: Plan, known_syntax: frozenset[str]) -> Draft:
        if self.stop_requested.is_set():
            # Still queued when the stop came (the main thread may be waiting on a slow
            # answer meanwhile): its request is never sent. Nothing new after a stop.
            raise _Stopped
        try:
            response = self.backend.complete(plan.request)
        except BaseException:
            # The answer could not be kept (a full disk, say): the run ends, and the drafts
            # queued behind this one send no request.
            self.stop_requested.set()
            raise
        if not response.ok:
            return Draft(plan, response, "", "", None, response.error)
        try:
            parsed = parse_answer(response.text, self.problem.entry, len(self.problem.arg_names))
        except ParseError as exc:
            return Draft(plan, response, "", "", None, str(exc))
        syntax = syntactic_hash(parsed.code, self.problem.entry)
        # An exact repeat of a committed candidate needs no process at all.
        probe = None if syntax in known_syntax or not self.settings.probe_states else self.evaluator.probe(parsed.code)
        return Draft(plan, response, parsed.thought, parsed.code, syntax, "", probe)

    def _finish(self, state: SearchState, draft: Draft, evaluation: Future[Evaluation] | None,
                twin: int | None) -> CandidateRecord:
        """Turn a draft into its record, waiting for its evaluation if it has one."""
        response = draft.response
        fields = dict(
            id=draft.plan.cid, batch=draft.plan.batch, operator=draft.plan.operator,
            parents=draft.plan.parents, thought=draft.thought, code=draft.code,
            syntactic_hash=draft.syntax, model=response.model if response else "",
            prompt_tokens=response.prompt_tokens if response else 0,
            completion_tokens=response.completion_tokens if response else 0,
            cost_usd=response.cost_usd if response else 0.0,
            llm_s=response.latency_s if response else 0.0,
            functional_hash=draft.probe.hash if draft.probe else None,
            probe_s=draft.probe.seconds if draft.probe else 0.0,
        )
        if response is not None and not response.ok:
            return self._record(fields, status="llm_failed", error=response.error)
        if draft.parse_error:
            return self._record(fields, status="invalid", error=f"parse: {draft.parse_error}")
        if evaluation is None:
            if twin is None:
                twin, kind = state.by_syntax[draft.syntax], "syntactic"  # earlier in the batch too
            else:
                kind = "functional"
            return self._equivalent(fields, state.records[twin], kind)
        result = evaluation.result()
        if twin is not None:
            original = state.records[twin]
            if result.status == original.status and _same_score(result, original):
                return self._equivalent(fields, original, "verified", eval_s=result.seconds)
            fields["dedup"] = "collision"  # the hash merged different behaviours: keep this result
        if not result.ok:
            return self._record(fields, status=result.status, error=result.error, eval_s=result.seconds)
        measures = tuple(MEASURES[name](draft.code, result.verdict) for name in self.settings.measures)
        return self._record(fields, status="ok", error="", score=result.verdict.score,
                            measures=measures, eval_s=result.seconds)

    def _equivalent(self, fields: dict, original: CandidateRecord, kind: str, eval_s: float = 0.0) -> CandidateRecord:
        """A candidate that behaves like ``original`` takes its result. It is "equivalent"
        when the original was valid; otherwise it shares the original's failure."""
        root = original.equivalent_to if original.equivalent_to is not None else original.id
        status = "equivalent" if original.status in ("ok", "equivalent") else original.status
        return self._record(fields, status=status, error=original.error, score=original.score,
                            measures=original.measures, equivalent_to=root, dedup=kind, eval_s=eval_s)

    def _record(self, fields: dict, **outcome) -> CandidateRecord:
        values = dict(
            score=None, measures=None, cell=None, archive_status=0, reward=0.0, functional_hash=None,
            equivalent_to=None, dedup=None, probe_s=0.0, eval_s=0.0, best_score=None, coverage=0.0,
            qd_score=0.0, created=time.time(),
        )
        values.update(fields)
        values.update(outcome)
        return CandidateRecord(**values)

    # ---- the seed -------------------------------------------------------------------
    def _evaluate_seed(self) -> CandidateRecord:
        code = self.problem.seed_code
        result = self.evaluator.evaluate(code, self.train)
        if not result.ok:
            raise RuntimeError(f"the problem's seed heuristic failed: {result.status}: {result.error}")
        measures = tuple(MEASURES[name](code, result.verdict) for name in self.settings.measures)
        probe = self.evaluator.probe(code) if self.settings.probe_states else None
        return CandidateRecord(
            id=0, batch=-1, operator=SEED_OPERATOR, parents=(), thought=_docstring(code, self.problem.entry),
            code=code, status="ok", error="", score=result.verdict.score, measures=measures, cell=None,
            archive_status=0, reward=0.0, syntactic_hash=syntactic_hash(code, self.problem.entry),
            functional_hash=probe.hash if probe else None, equivalent_to=None, dedup=None, model="",
            prompt_tokens=0, completion_tokens=0, cost_usd=0.0, llm_s=0.0, probe_s=probe.seconds if probe else 0.0, eval_s=result.seconds, best_score=None, coverage=0.0, qd_score=0.0,
            created=time.time(),
        )

    # ---- committing -------------------------------------------------------------------
    def _commit(self, record: CandidateRecord, state: SearchState) -> None:
        told = state.tell(record)
        record = CandidateRecord(**{
            **record.__dict__, "archive_status": told.archive_status, "cell": told.cell, "reward": told.reward,
            "best_score": told.best_score, "coverage": told.coverage, "qd_score": told.qd_score,
        })
        state.records[record.id] = record
        self.store.commit_candidate(record, {"bandit": state.bandit.snapshot(), "elapsed_s": self.elapsed()})
        self.progress.update(record, self.store.count(), self.elapsed())

    def _rebuild(self, below: int) -> SearchState:
        return SearchState.from_store(self.store, self.settings, below=below)


def _same_score(result: Evaluation, original: CandidateRecord) -> bool:
    if not result.ok:
        return True  # the same failure status
    return original.score is not None and abs(result.verdict.score - original.score) <= 1e-9 * max(1.0, abs(original.score))


def _docstring(code: str, entry: str) -> str:
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            doc = ast.get_docstring(node) or ""
            return doc.strip().split("\n")[0]
    return ""
