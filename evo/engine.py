"""The engine loop: a window of candidates in flight, committed in id order.

At most ``window`` candidates are in flight. Candidate k is planned (evo.planning) from
the search state as it stands once candidate k - window is committed, at that moment,
with random generators seeded by the run's seed and k. Its work then runs in a slot of its
own: its reflection request if it has one, its LLM request (at most ``llm.concurrency``
requests at once per model, the lowest id first; the model is the one of the candidate's
arm, see evo.llm.models), the parse and the functional-hash probe. In id
order, the main thread decides whether each candidate is new, against every candidate
before it, committed or still in flight, and starts its evaluation; results are committed
strictly in id order.

Every decision depends on the candidates before it, never on when answers arrive: one
seed and one window give one run, whatever the latencies, the number of workers, and
however the run is interrupted and resumed. A resumed run plans its candidates in flight
again from the same states and makes the same requests, answered from the LLM cache.
"""
from __future__ import annotations

import ast
import heapq
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np

from evo.bandit import arm_model, arm_name
from evo.evaluation import Evaluation, Evaluator, Probe
from evo.hashing import syntactic_hash
from evo.llm.base import Backend, Request, Response
from evo.llm.retry import is_provider_failure
from evo.measures import MEASURES
from evo.parse import ParseError, parse_answer
from evo.planning import LongTerm, Plan, Planner
from evo.progress import Progress
from evo.search_state import SearchState
from evo.settings import Settings
from evo.store import CandidateRecord, Store
from problems.base import Dataset, Problem

SEED_OPERATOR = "seed"
# A probe that hits these limits ends its candidate: the full evaluation, on more and
# larger states, would only hit them again. Other probe failures go on to the evaluation,
# since the probe's synthetic states may be harsher than real instances.
PROBE_ENDS = ("timeout", "memory")
_POLL_S = 0.2  # how often the main thread looks for a stop while it waits


class _Stopped(Exception):
    """A request that was not sent because the run is stopping."""


@dataclass(frozen=True)
class Draft:
    """A candidate between its answer and the decision on its evaluation."""

    plan: Plan
    response: Response | None
    thought: str
    code: str
    syntax: str | None
    parse_error: str
    probe: Probe | None = None


@dataclass(frozen=True)
class Decision:
    """What the engine does with a draft: evaluate it, or take an earlier result."""

    draft: Draft
    evaluation: Future[Evaluation] | None = None
    repeat: bool = False  # a syntactic repeat of an earlier candidate
    twin: int | None = None  # the earlier candidate it behaves like on the probe states

    def ready(self) -> bool:
        return self.evaluation is None or self.evaluation.done()


class Engine:
    def __init__(self, settings: Settings, problem: Problem, store: Store, evaluator: Evaluator,
                 backends: Mapping[str, Backend], progress: Progress):
        """``backends``: one per model of ``settings.models``, by name."""
        self.settings = settings
        self.problem = problem
        self.store = store
        self.evaluator = evaluator
        self.backends = dict(backends)
        self.progress = progress
        self.planner = Planner(settings, problem)
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
        reason = self.exhausted()
        if reason:
            return reason
        gates = _Gates(self.settings, self.stop_requested)
        slots = ThreadPoolExecutor(self.settings.window, "slot")
        evaluations = ThreadPoolExecutor(self.settings.workers, "eval")
        try:
            return _Flight(self, gates, slots, evaluations).run()
        except BaseException:
            # A failure (a full disk, say) ends the run: what is queued never starts, so no
            # request is paid for whose answer may not be kept. (The gates close below.)
            for pool in (slots, evaluations):
                pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            gates.close()
            for pool in (slots, evaluations):
                pool.shutdown(wait=True)

    def exhausted(self) -> str:
        budget = self.settings.budget
        if self.stop_requested.is_set():
            return "interrupted"
        if self.store.count() >= budget.evaluations:
            return f"budget.evaluations reached ({budget.evaluations})"
        if budget.llm_calls is not None or budget.cost_usd is not None:
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

    # ---- a candidate's record ------------------------------------------------------------
    def _finish(self, state: SearchState, decision: Decision) -> CandidateRecord:
        """Turn a decided draft into its record (its evaluation, if any, has finished)."""
        draft = decision.draft
        response, probe = draft.response, draft.probe
        fields = dict(
            id=draft.plan.cid, batch=draft.plan.after, operator=draft.plan.operator.name,
            parents=tuple(p.cid for p in draft.plan.parents), thought=draft.thought, code=draft.code,
            syntactic_hash=draft.syntax, model=response.model if response else "",
            model_name=arm_model(draft.plan.arm),
            prompt_tokens=response.prompt_tokens if response else 0,
            completion_tokens=response.completion_tokens if response else 0,
            cost_usd=response.cost_usd if response else 0.0,
            llm_s=response.latency_s if response else 0.0,
            functional_hash=probe.hash if probe else None,
            probe_s=probe.seconds if probe else 0.0,
        )
        if response is not None and not response.ok:
            return self._record(fields, status="llm_failed", error=response.error)
        if draft.parse_error:
            return self._record(fields, status="invalid", error=f"parse: {draft.parse_error}")
        if decision.repeat:  # its first occurrence is committed by now
            return self._equivalent(fields, state.records[state.by_syntax[draft.syntax]], "syntactic")
        if probe is not None and probe.status in PROBE_ENDS:
            return self._record(fields, status=probe.status, error=f"on the probe states: {probe.error}")
        if decision.evaluation is None:
            return self._equivalent(fields, state.records[decision.twin], "functional")
        result = decision.evaluation.result()
        if decision.twin is not None:
            original = state.records[decision.twin]
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
            prompt_tokens=0, completion_tokens=0, cost_usd=0.0, llm_s=0.0, probe_s=probe.seconds if probe else 0.0,
            eval_s=result.seconds, best_score=None, coverage=0.0, qd_score=0.0, created=time.time(),
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

    def _count_provider_failure(self, record: CandidateRecord) -> str:
        """Counted across candidates: a provider that refuses every request (a wrong key, a
        wrong URL) stops the run instead of burning its budget on errors. A per-prompt
        failure (an empty answer, a rejected request) does not count."""
        failing = record.status == "llm_failed" and is_provider_failure(record.error)
        self._provider_failures = self._provider_failures + 1 if failing else 0
        if self._provider_failures >= self.settings.max_consecutive_llm_failures:
            return f"llm: {self._provider_failures} requests in a row failed; last error: {record.error}"
        return ""

    def _rebuild(self, below: int) -> SearchState:
        return SearchState.from_store(self.store, self.settings, below=below)


class _Flight:
    """One session of the loop: the window's plans, drafts and decisions, and the state.

    The main thread keeps three positions, each moving in id order: the state is the one
    after candidate ``cursor`` (the last committed); ``decide`` is the next candidate
    whose evaluation is to be decided; plans exist up to ``cursor + window``.
    """

    def __init__(self, engine: Engine, gates: "_Gates", slots: ThreadPoolExecutor, evaluations: ThreadPoolExecutor):
        self.engine = engine
        self.settings = engine.settings
        self.gates = gates
        self.slots = slots
        self.evaluations = evaluations
        self.window = self.settings.window
        self.last = self.settings.budget.evaluations - 1  # the last candidate's id
        self.first_new = engine.store.count()  # candidates below are committed already
        self.arms: dict[int, str] = {}  # the arm of each candidate in flight (or resumed), by id
        self.drafts: dict[int, Future[Draft]] = {}
        self.decided: dict[int, Decision] = {}
        # Candidates decided and not yet committed, by their syntactic and functional hashes
        # (the first of their kind); committed ones are in the state's tables.
        self.syntax_in_flight: dict[str, int] = {}
        self.function_in_flight: dict[str, int] = {}
        self.long_term: LongTerm | None = None
        self.long_terms = _Shared()
        self.halt = ""  # why no new work starts (a budget reached), once it is so
        self.failure: BaseException | None = None  # what ended a candidate's slot, if anything did

    def run(self) -> str:
        engine, window = self.engine, self.window
        # The earliest state that a candidate in flight, or the long-term reflection it
        # shows, was planned from: the run replays from there.
        self.cursor = window * (max(0, self.first_new - window) // window)
        self.state = engine._rebuild(below=self.cursor + 1)
        # Resumed: the committed candidates after that state are told again, not run again.
        resumed = [r for r in engine.store.candidates(below=self.first_new) if r.id > self.cursor]
        self.arms.update((r.id, arm_name(r.operator, r.model_name)) for r in resumed)
        self._after_commit()
        for record in resumed:
            self.state.tell(record)
            self.cursor = record.id
            self._after_commit()
        self.decide = self.first_new
        while self.cursor < self.last:
            if self.failure is not None:
                raise self.failure
            stopping = self.engine.stop_requested.is_set() or bool(self.halt)
            if stopping:
                self.gates.close()  # wakes the candidates waiting for a request slot: they stop
            else:
                self._decide_ready()
            following = self.decided.get(self.cursor + 1)
            if following is not None and following.ready():
                reason = self._commit(self.decided.pop(self.cursor + 1))
                if reason:
                    return reason
                continue
            if following is None and stopping:
                return self.halt or "interrupted"
            waiting = [f for f in (self.drafts.get(self.decide), following and following.evaluation) if f]
            wait(waiting, timeout=_POLL_S, return_when=FIRST_COMPLETED)
        return engine.exhausted()

    # ---- planning -----------------------------------------------------------------------
    def _after_commit(self) -> None:
        """The state is now the one after candidate ``cursor``: refresh the long-term
        reflection once per window, and plan the candidates that wait for this state."""
        cursor, window = self.cursor, self.window
        if cursor % window == 0:
            self.long_term = self.engine.planner.long_term(self.state, cursor)
            self.long_terms.forget_before(cursor - window)
        for cid in range(1, window + 1) if cursor == 0 else (cursor + window,):
            if self.first_new <= cid <= self.last and not self.halt and not self.engine.stop_requested.is_set():
                self._plan(cid)

    def _plan(self, cid: int) -> None:
        for old in [i for i in self.arms if i <= cid - self.window]:
            del self.arms[old]
        pending = Counter(self.arms.values())  # the window's earlier candidates, none committed yet
        plan = self.engine.planner.plan(self.state, cid, self.cursor, pending, self.long_term)
        self.arms[cid] = plan.arm
        self.drafts[cid] = self.slots.submit(self._fly, plan)

    # ---- a candidate's slot (a thread of its own) ---------------------------------------
    def _fly(self, plan: Plan) -> Draft:
        """The candidate's work up to the decision: its requests, parse, and probe."""
        try:
            return self._draft(plan)
        except _Stopped:
            raise
        except BaseException as exc:
            # Its answer could not be kept, or its probe not run (a full disk, say): the run
            # ends with this error, and the candidates waiting for a request slot send none.
            if self.failure is None:
                self.failure = exc
            self.gates.close()
            raise

    def _draft(self, plan: Plan) -> Draft:
        response = self._ask(plan)
        if not response.ok:
            return Draft(plan, response, "", "", None, response.error)
        try:
            problem = self.engine.problem
            parsed = parse_answer(response.text, problem.entry, len(problem.arg_names))
        except ParseError as exc:
            return Draft(plan, response, "", "", None, str(exc))
        syntax = syntactic_hash(parsed.code, self.engine.problem.entry)
        # A repeat of a candidate committed before the plan needs no process at all. (Only
        # those: whether a later one is committed yet depends on timing.)
        first = self.state.by_syntax.get(syntax)
        known = first is not None and first <= plan.after
        probe = None if known or not self.settings.probe_states else self.engine.evaluator.probe(parsed.code)
        return Draft(plan, response, parsed.thought, parsed.code, syntax, "", probe)

    def _ask(self, plan: Plan) -> Response:
        """The candidate's requests, to the model of its arm."""
        model = arm_model(plan.arm)
        backend = self.engine.backends[model]
        text = plan.reflection.text
        shared = None
        if plan.long_term is not None and plan.long_term.ask is not None and self.engine.planner.asks_llm[model]:
            shared = plan.long_term
        mine = False
        if shared is not None:
            answer, mine = self.long_terms.claim(shared.after, model)
            if not mine:  # another candidate asks; wait without holding a request slot
                text = _reflection(answer.result(), text)
        try:
            with self.gates.slot(model, plan.cid):
                if mine:
                    answer.set_result(backend.complete(shared.ask))
                    text = _reflection(answer.result(), text)
                if plan.ask is not None:
                    text = _reflection(backend.complete(plan.ask), text)
                return backend.complete(self.engine.planner.request(plan, text))
        except BaseException as exc:
            if mine and not answer.done():
                answer.set_exception(exc)  # those waiting for it stop too
            raise

    # ---- deciding -------------------------------------------------------------------------
    def _decide_ready(self) -> None:
        """Decide, in id order, the candidates whose drafts are ready."""
        while self.decide in self.drafts and self.drafts[self.decide].done():
            draft = self.drafts[self.decide]
            if isinstance(draft.exception(), _Stopped):
                return  # the run is stopping; the loop sees it next
            self.decided[self.decide] = self._decision(draft.result())  # a failed slot raises here
            del self.drafts[self.decide]
            self.decide += 1

    def _verify_twin(self, cid: int) -> bool:
        """Whether this functional hash hit is evaluated anyway, to catch collisions."""
        rng = np.random.default_rng([self.settings.seed, cid, 1])
        return bool(rng.random() < self.settings.verify_rate)

    def _decision(self, draft: Draft) -> Decision:
        """Whether the draft is evaluated. It is compared with every earlier candidate,
        committed (the state's tables) or in flight (decided here before it, in id order),
        so the decision never depends on timing."""
        state, cid = self.state, draft.plan.cid
        if not draft.syntax:
            return Decision(draft)
        if draft.syntax in state.by_syntax or draft.syntax in self.syntax_in_flight:
            return Decision(draft, repeat=True)
        self.syntax_in_flight[draft.syntax] = cid
        if draft.probe is not None and draft.probe.status in PROBE_ENDS:
            return Decision(draft)
        functional = draft.probe.hash if draft.probe else None
        twin = None
        if functional:
            twin = state.by_function.get(functional, self.function_in_flight.get(functional))
            if twin is None:
                self.function_in_flight[functional] = cid
            elif not self._verify_twin(cid):
                return Decision(draft, twin=twin)
        evaluation = self.evaluations.submit(self.engine.evaluator.evaluate, draft.code, self.engine.train)
        return Decision(draft, evaluation, twin=twin)

    # ---- committing -----------------------------------------------------------------------
    def _commit(self, decision: Decision) -> str:
        """Commit the next candidate and plan the one that waited for it; a reason to stop
        at once, or ""."""
        engine = self.engine
        record = engine._finish(self.state, decision)
        engine._commit(record, self.state)
        self.cursor = record.id
        for table, key in ((self.syntax_in_flight, record.syntactic_hash),
                           (self.function_in_flight, record.functional_hash)):
            if key is not None and table.get(key) == record.id:
                del table[key]  # the state's tables have it now
        failing = engine._count_provider_failure(record)
        if failing:
            return failing
        if not self.halt and self.cursor < self.last:
            # Spend and time budgets: nothing new starts; what has begun is finished.
            self.halt = engine.exhausted()
        self._after_commit()
        return ""


class _Gate:
    """At most ``slots`` LLM requests at once; a waiting candidate with a lower id goes
    first (results are committed in id order, so the oldest is the most awaited).
    Once closed, or once a stop is requested, no request starts: a slot is only ever
    given after that is checked (a waiter wakes when a slot frees or the gate closes)."""

    def __init__(self, slots: int, stop: threading.Event):
        self._free = slots
        self._stop = stop
        self._closed = False
        self._waiting: list[int] = []
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, cid: int) -> Iterator[None]:
        with self._cond:
            heapq.heappush(self._waiting, cid)
            try:
                while not self._shut() and (self._free == 0 or self._waiting[0] != cid):
                    self._cond.wait()
                if self._shut():
                    raise _Stopped
            finally:
                self._waiting.remove(cid)
                heapq.heapify(self._waiting)
                self._cond.notify_all()
            self._free -= 1
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()

    def _shut(self) -> bool:
        return self._closed or self._stop.is_set()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Gates:
    """A gate per model (``llm.concurrency`` of each): a request waits for its own
    model's slots only, so a slow model never holds back a fast one."""

    def __init__(self, settings: Settings, stop: threading.Event):
        self._gates = {m.name: _Gate(m.concurrency, stop) for m in settings.models}

    def slot(self, model: str, cid: int) -> AbstractContextManager[None]:
        return self._gates[model].slot(cid)

    def close(self) -> None:
        for gate in self._gates.values():
            gate.close()


class _Shared:
    """The shared long-term reflection answers, one per refresh and model: the first
    candidate that needs one asks its model for it, the others of that model wait for its
    answer. (Per model, so that which model answers never depends on timing.)"""

    def __init__(self) -> None:
        self._answers: dict[tuple[int, str], Future[Response]] = {}
        self._lock = threading.Lock()

    def claim(self, after: int, model: str) -> tuple[Future[Response], bool]:
        """The answer of ``model`` for the refresh after candidate ``after``, and whether
        the caller is the one to ask for it."""
        with self._lock:
            key = (after, model)
            if key in self._answers:
                return self._answers[key], False
            answer = self._answers[key] = Future()
            return answer, True

    def forget_before(self, after: int) -> None:
        with self._lock:
            for key in [k for k in self._answers if k[0] < after]:
                del self._answers[key]


def _reflection(answer: Response, computed: str) -> str:
    """An LLM's reflection; a failed or empty one leaves the computed reflection."""
    return answer.text.strip() if answer.ok and answer.text.strip() else computed


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
