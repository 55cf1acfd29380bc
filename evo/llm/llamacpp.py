"""``llm=llamacpp``: a local model served by llama.cpp, started and stopped by evo.

evo starts ``python -m llama_cpp.server`` on a free 127.0.0.1 port with the configured GGUF
file, waits until it answers, and sends every request through litellm exactly as
``llm=local`` does (``LiteLLMBackend``). The server never outlives evo: ``close`` kills it
when the run ends (normally, on Ctrl-C or SIGTERM, or on a crash), and the kernel kills it
if evo itself is SIGKILLed (evo/llm/die_with_parent.py). It is killed, not asked to stop:
llama_cpp.server ignores SIGTERM in the middle of a generation, and holds nothing worth
saving. Its log goes to ``llm-server.log`` in the run folder (``llm-server-NAME.log`` for the
model named NAME in ``llm.models``: each model of a run has its own server).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Mapping

from evo.errors import UserError
from evo.llm.base import Request, Response
from evo.llm.litellm_backend import LiteLLMBackend, plain
from evo.llm.local_models import resolve_gguf

log = logging.getLogger("evo.llm")

KEYS = frozenset({"backend", "model", "threads", "context_tokens", "startup_timeout_s", "temperature", "top_p",
                  "max_tokens", "timeout_s", "max_retries", "retry_backoff_s", "concurrency"})
LOG_NAME = "llm-server.log"


@dataclass(frozen=True)
class ServerSpec:
    gguf: Path
    alias: str  # the model name the server answers to
    threads: int
    context_tokens: int


class ManagedServer:
    """One llama_cpp.server process on 127.0.0.1, owned by this process."""

    def __init__(self, spec: ServerSpec, log_path: Path, startup_timeout_s: float) -> None:
        self.spec = spec
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.port = 0
        started = time.monotonic()
        # A port found free can be taken before the server binds it: try a few.
        for _ in range(3):
            self.port = _free_port()
            self.process = self._launch()
            if self._wait_ready(startup_timeout_s):
                break
        else:
            self.stop()
            raise UserError(f"the llama.cpp server did not start: {_last_line(log_path)} (log: {log_path})")
        self.startup_s = time.monotonic() - started
        log.info("llama.cpp server for %s on port %d, ready in %.1f s", spec.alias, self.port, self.startup_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _launch(self) -> subprocess.Popen:
        s = self.spec
        command = [
            sys.executable, "-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", str(self.port),
            "--model", str(s.gguf), "--model_alias", s.alias, "--n_ctx", str(s.context_tokens),
            # Prompt processing on as many threads as generation: a thread that waits for a
            # busy core stalls all of llama.cpp's others (0.45 tokens/s measured with 2 threads
            # beside a sandbox evaluation, against 3.3 with 1).
            "--n_threads", str(s.threads), "--n_threads_batch", str(s.threads),
            "--use_mlock", "False",  # locking a gigabyte of RAM is not ours to ask for
        ]
        guard = Path(__file__).with_name("die_with_parent.py")
        env = {**os.environ, "OMP_NUM_THREADS": str(s.threads), "OPENBLAS_NUM_THREADS": "1"}
        with open(self.log_path, "ab") as out:
            # Its own session: a Ctrl-C at the terminal reaches evo only, which then finishes
            # the answers in flight before it stops the server.
            return subprocess.Popen([sys.executable, str(guard), str(os.getpid()), *command],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)

    def _wait_ready(self, timeout_s: float) -> bool:
        """True once the server answers; False if it exited (a taken port, say)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise UserError(f"the llama.cpp server did not answer within {timeout_s:g} s (log: {self.log_path})")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"


def installed_model(cfg: Mapping[str, Any]) -> tuple[str, Path]:
    """The served name and GGUF file of the configured model; a UserError that says to run
    `make llm` when the model or the server is not installed. Starts nothing."""
    alias, gguf = resolve_gguf(str(cfg.get("model") or ""))
    if find_spec("llama_cpp") is None or find_spec("uvicorn") is None:
        raise UserError("llama-cpp-python with its server is not installed in this environment: run `make llm`")
    return alias, gguf


class LlamaCppBackend:
    """The ``Backend`` for ``llm=llamacpp``; ``close()`` stops its server."""

    def __init__(self, cfg: Mapping[str, Any] | Any, log_dir: Path, name: str = "") -> None:
        c = plain(cfg)
        unknown = sorted(set(c) - KEYS)
        if unknown:
            raise UserError(f"llm: unknown key(s) {', '.join(unknown)} for llamacpp; known: {', '.join(sorted(KEYS))}")
        alias, gguf = installed_model(c)
        threads = int(c.get("threads", 1))
        if threads < 1:
            raise UserError(f"llm.threads must be at least 1 (got {threads})")
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        spec = ServerSpec(gguf, alias, threads, int(c.get("context_tokens", 4096)))
        log_name = f"llm-server-{name}.log" if name else LOG_NAME
        self.server = ManagedServer(spec, Path(log_dir) / log_name, float(c.get("startup_timeout_s", 120)))
        client_cfg = {k: c[k] for k in ("temperature", "top_p", "max_tokens", "timeout_s", "max_retries", "retry_backoff_s",
                                        "concurrency") if k in c}
        try:
            self.client = LiteLLMBackend({**client_cfg, "backend": "litellm", "model": f"openai/{alias}",
                                          "base_url": self.server.url, "cost_per_token": {"input": 0, "output": 0}})
        except BaseException:
            self.server.stop()
            raise
        self.model = self.client.model

    def complete(self, request: Request) -> Response:
        return self.client.complete(request)

    def close(self) -> None:
        self.server.stop()
