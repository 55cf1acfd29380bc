"""What every text backend (a real LLM, the offline mutation model, a replay) looks like."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Request:
    """One ask for a new candidate.

    ``messages`` is what an LLM sees. The offline model reads the structured fields
    instead (``operator``, ``parents``), which carry the same information.
    ``sample`` is the candidate's index in the run: it seeds the offline model and
    is part of the cache key, so two identical prompts for different candidates are
    two different requests.
    """

    messages: tuple[Message, ...]
    operator: str
    parents: tuple[str, ...]  # parents' code, in the order the prompt shows them
    sample: int
    # The prompt's reflection in structured form (ReEvo's operators): scoring terms to
    # favour. The offline model reads it; an LLM reads the same reflection in ``messages``.
    hints: tuple[str, ...] = ()
    # Where the answer may end: text that, once generated, is not worth paying for. An LLM
    # stops there (the stop text itself is not returned); the offline model ignores it.
    stop: tuple[str, ...] = ()
    # A cap on the answer below llm.max_tokens, for answers asked to be short (reflections).
    max_tokens: int | None = None


@dataclass(frozen=True)
class Response:
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str = ""  # non-empty: the request failed after its retries, with this reason
    cached: bool = field(default=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.error


class Backend(Protocol):
    model: str

    def complete(self, request: Request) -> Response:
        """Return the backend's answer. Never raises for a failed request: sets ``error``."""
