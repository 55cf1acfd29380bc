"""Evaluating a candidate: run it in the sandbox, then check and score its decisions here.

Untrusted code never reports its own score. The sandbox returns decisions only; the
problem verifies them and computes the score in this (trusted) process; and a sample of
the decisions is replayed through the candidate in a fresh sandbox process, which
catches code that reports decisions it would not make.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from evo.hashing import decision_hash
from problems.base import Dataset, Infeasible, Problem, Verdict
from sandbox import Job, Sandbox


@dataclass(frozen=True)
class Evaluation:
    status: str  # "ok", "invalid", or a sandbox failure: timeout, memory, crashed, forbidden, error
    error: str
    verdict: Verdict | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Probe:
    """The functional hash of a candidate: a hash of its choices on the probe states."""

    status: str
    error: str
    hash: str | None
    seconds: float


class Evaluator:
    def __init__(self, problem: Problem, sandbox: Sandbox, replay_steps: int, seed: int, probe_states: int = 0):
        self.problem = problem
        self.sandbox = sandbox
        self.replay_steps = replay_steps
        self.seed = seed
        self.probe_size = probe_states
        self._payloads: dict[str, Any] = {}
        self._probe_states: Any = None

    def probe(self, code: str) -> Probe:
        """Run the candidate on the problem's probe states and hash the decisions.

        Decisions, not raw values: a priority scaled, shifted or passed through a
        monotone function makes the same choices and so gets the same hash."""
        started = time.perf_counter()
        if self._probe_states is None:
            self._probe_states = self.problem.probe_states(self.probe_size)
        status, error, choices = self.decide(code, self._probe_states)
        if status != "ok":
            return Probe(status, error, None, time.perf_counter() - started)
        return Probe("ok", "", decision_hash(choices), time.perf_counter() - started)

    def evaluate(self, code: str, dataset: Dataset) -> Evaluation:
        started = time.perf_counter()
        outcome = self.sandbox.run(self._job(code, "solve", self._payload(dataset)))
        if outcome.status != "ok":
            return Evaluation(outcome.status, outcome.error, None, time.perf_counter() - started)
        try:
            verdict = self.problem.verify(dataset, outcome.result)
            self._check_replay(code, dataset, outcome.result)
        except Infeasible as exc:
            return Evaluation("invalid", str(exc), None, time.perf_counter() - started)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            # Decisions of the wrong shape or type: the problem could not even read them.
            return Evaluation("invalid", f"unreadable decisions: {exc}", None, time.perf_counter() - started)
        return Evaluation("ok", "", verdict, time.perf_counter() - started)

    def decide(self, code: str, states: Any) -> tuple[str, str, list[int] | None]:
        """Run the candidate on given states (probes); returns (status, error, choices)."""
        outcome = self.sandbox.run(self._job(code, "decide", states, express=True))
        if outcome.status != "ok":
            return outcome.status, outcome.error, None
        return "ok", "", [int(c) for c in outcome.result]

    def _check_replay(self, code: str, dataset: Dataset, decisions: Any) -> None:
        if self.replay_steps <= 0:
            return
        replay = self.problem.replay(dataset, decisions, self.replay_steps, self.seed)
        status, error, choices = self.decide(code, replay.states)
        if status != "ok":
            raise Infeasible(f"replay of sampled steps failed ({status}): {error}")
        for step, (got, expected) in enumerate(zip(choices, replay.expected)):
            if got != expected:
                raise Infeasible(
                    f"replayed step {step} chose {got} but the reported decisions imply {expected}"
                    " (nondeterministic, or the reported decisions are not the heuristic's own)"
                )
        if len(choices) != len(replay.expected):
            raise Infeasible(f"replay returned {len(choices)} choices for {len(replay.expected)} states")

    def _payload(self, dataset: Dataset) -> Any:
        if dataset.name not in self._payloads:
            self._payloads[dataset.name] = self.problem.solve_payload(dataset)
        return self._payloads[dataset.name]

    def _job(self, code: str, call: str, payload: Any, express: bool = False) -> Job:
        return Job(code=code, entry=self.problem.entry, harness=self.problem.harness, call=call, payload=payload,
                   express=express)
