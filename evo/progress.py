"""A live progress line while a run goes: evaluations, best score, share valid, time."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from evo.store import CandidateRecord


class Progress:
    def __init__(self, budget: int, score_name: str, stream: TextIO | None = None, every_s: float = 5.0):
        self.budget = budget
        self.score_name = score_name
        self.stream = stream or sys.stderr  # looked up now: tests and sweeps swap sys.stderr
        self.live = self.stream.isatty()
        self.every_s = every_s  # when not a terminal: one line every few seconds, for logs
        self._last = 0.0
        self.best: float | None = None
        self.valid = 0
        self.seen = 0

    def update(self, record: CandidateRecord, done: int, elapsed_s: float) -> None:
        self.seen += 1
        self.valid += record.status in ("ok", "equivalent")
        if record.best_score is not None:
            self.best = record.best_score
        now = time.monotonic()
        if not self.live and now - self._last < self.every_s and done < self.budget:
            return
        self._last = now
        best = "-" if self.best is None else f"{self.best:.4f}"
        line = (f"[evo] {done}/{self.budget} evaluations | best {self.score_name} {best} | "
                f"valid {100.0 * self.valid / self.seen:.0f}% | {_clock(elapsed_s)}")
        if self.live:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live and self.seen:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"
