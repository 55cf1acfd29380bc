"""A scriptable OpenAI-compatible chat-completions server for tests and benchmarks.

A real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, a free port) that
answers ``POST /v1/chat/completions``. Each request takes the next behaviour from a
queue; when the queue is empty it answers with ``default`` (by default a valid bin
packing ``priority(item, bins)`` heuristic in the EoH format, different for every
request). It counts and keeps the requests it receives.

    with ScriptedServer() as server:          # or the ``llm_server`` pytest fixture
        server.script(status(429, retry_after=1), answer("..."))
        backend = LiteLLMBackend({"model": "openai/test", "base_url": server.url, ...})

Conftest use: ``from llm_server import llm_server`` (the ``tests`` folder is on
``sys.path`` under pytest's default import mode).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one request."""

    kind: str  # "answer" | "status" | "raw"
    text: str | None = ""  # answer content (None sends a null content)
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""  # for "status" and "raw"
    delay_s: float = 0.0
    prompt_tokens: int | None = None  # None: counted from the request
    completion_tokens: int | None = None  # None: counted from the answer
    finish_reason: str = "stop"


# --- behaviours -------------------------------------------------------------------------


def answer(text: str | None, *, delay_s: float = 0.0, prompt_tokens: int | None = None,
           completion_tokens: int | None = None, finish_reason: str = "stop") -> Behaviour:
    """A normal 200 answer with ``usage`` tokens."""
    return Behaviour("answer", text=text, delay_s=delay_s, prompt_tokens=prompt_tokens,
                     completion_tokens=completion_tokens, finish_reason=finish_reason)


def status(code: int, *, retry_after: float | str | None = None, message: str = "") -> Behaviour:
    """An HTTP error with an OpenAI-style error body (429 may carry ``Retry-After``)."""
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    kinds = {400: "invalid_request_error", 401: "invalid_api_key", 404: "model_not_found",
             429: "rate_limit_exceeded"}
    body = json.dumps({"error": {"message": message or f"scripted HTTP {code}",
                                 "type": kinds.get(code, "server_error"), "code": kinds.get(code)}})
    return Behaviour("status", status=code, headers=headers, body=body.encode())


def slow(delay_s: float, text: str | None = None) -> Behaviour:
    """An answer that arrives after ``delay_s`` (longer than the client's timeout)."""
    return answer(text if text is not None else heuristic_answer(0), delay_s=delay_s)


def malformed() -> Behaviour:
    """A 200 whose body is not JSON."""
    return Behaviour("raw", status=200, body=b'{"id": "chatcmpl-x", "choices": [{"mess',
                     headers=(("Content-Type", "application/json"),))


def empty() -> Behaviour:
    """A 200 answer whose message content is empty."""
    return answer("")


# --- answer texts -----------------------------------------------------------------------

_VARIANTS = (
    "-(bins - item)",
    "-(bins - item) / item",
    "-(bins - item) ** 2",
    "1.0 / (bins - item + 1e-9)",
    "-(bins - item) + 0.1 * (bins == np.max(bins))",
    "-np.log1p(bins - item)",
    "-(bins - item) * (1.0 + 0.01 * bins)",
    "-np.abs(bins - item - 0.05 * np.max(bins))",
)


def heuristic_code(n: int) -> str:
    """A valid bin packing heuristic; ``n`` picks a variant and a constant so that
    answers for different requests differ syntactically and usually behaviourally."""
    expr = _VARIANTS[n % len(_VARIANTS)]
    weight = 1.0 + 0.25 * (n // len(_VARIANTS))
    return (
        "import numpy as np\n\n\n"
        "def priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
        '    """Prefer bins that the item fills most tightly."""\n'
        f"    score = {expr}\n"
        f"    return {weight!r} * score\n"
    )


def heuristic_answer(n: int) -> str:
    """The EoH format: a braced thought, then one python block."""
    return (f"{{Variant {n}: score each feasible bin by how tightly the item fills it.}}\n\n"
            f"```python\n{heuristic_code(n)}```\n")


def think_answer(n: int = 0, *, closed: bool = True) -> str:
    thinking = "<think>\nThe user wants a priority function. Maybe def priority(x): pass? No.\n"
    return thinking + ("</think>\n" if closed else "") + heuristic_answer(n)


def truncated_answer() -> str:
    """Code cut off mid-function, as when ``max_tokens`` runs out."""
    return ("{Prefer tight bins.}\n```python\nimport numpy as np\n\n"
            "def priority(item: float, bins: np.ndarray) -> np.ndarray:\n"
            "    score = -(bins - item\n")


def huge_answer(size: int = 2 * 1024 * 1024) -> str:
    """About ``size`` characters: prose padding around a valid answer."""
    filler = "This sentence pads a very long answer without any code in it. "
    prose = filler * (size // len(filler) + 1)
    return prose[: size // 2] + "\n" + heuristic_answer(1) + "\n" + prose[: size // 2]


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: one token per 4 characters."""
    return (len(text) + 3) // 4


# --- the server -------------------------------------------------------------------------


class ScriptedServer:
    def __init__(self, default: Callable[[int], Behaviour] | None = None) -> None:
        self.default = default or (lambda n: answer(heuristic_answer(n)))
        self.requests: list[dict] = []  # request bodies (JSON), in arrival order
        self.headers: list[dict[str, str]] = []
        self._queue: list[Behaviour] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def script(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.headers.clear()

    def _next(self, body: dict, headers: dict[str, str]) -> Behaviour:
        with self._lock:
            n = len(self.requests)
            self.requests.append(body)
            self.headers.append(headers)
            if self._queue:
                return self._queue.pop(0)
        return self.default(n)

    def start(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, json.dumps({"object": "list", "data": []}).encode())
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "unknown path"}}')
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, b'{"error": {"message": "request is not JSON"}}')
                return
            behaviour = server._next(body, {k.lower(): v for k, v in self.headers.items()})
            if behaviour.delay_s and server._closing.wait(behaviour.delay_s):
                return
            try:
                if behaviour.kind == "answer":
                    self._send(200, _completion(body, behaviour))
                else:
                    self._send(behaviour.status, behaviour.body, behaviour.headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to do

        def _send(self, code: int, payload: bytes, headers=()) -> None:
            self.send_response(code)
            names = {k.lower() for k, _ in headers}
            if "content-type" not in names:
                self.send_header("Content-Type", "application/json")
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _completion(request: dict, behaviour: Behaviour) -> bytes:
    text = behaviour.text
    prompt = "".join(str(m.get("content") or "") for m in request.get("messages", []))
    prompt_tokens = behaviour.prompt_tokens if behaviour.prompt_tokens is not None else count_tokens(prompt)
    completion_tokens = (behaviour.completion_tokens if behaviour.completion_tokens is not None
                         else count_tokens(text or ""))
    return json.dumps({
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "scripted"),
        "choices": [{"index": 0, "finish_reason": behaviour.finish_reason,
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


@pytest.fixture
def llm_server():
    """A running ``ScriptedServer``; ``llm_server.url`` is the ``base_url`` to configure."""
    with ScriptedServer() as server:
        yield server
