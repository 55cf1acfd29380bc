"""Run untrusted, LLM-written Python under kernel-enforced limits.

    from sandbox import Sandbox, Limits, Job, Outcome

    with Sandbox(Limits(wall_time_s=10), workers=2, preload=["numpy"]) as sb:
        out = sb.run(Job(code=src, entry="priority", harness="pkg.harness",
                         call="solve", payload={"items": arr}))

A ``Sandbox`` starts a lean server interpreter (``python -m sandbox.server``) with a
minimal environment; the server forks one locked-down child per job. See README.md.
This package imports nothing from the rest of the project.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from . import codec, frames

__all__ = ["Sandbox", "Limits", "Job", "Outcome", "SandboxError"]

STATUSES = ("ok", "timeout", "memory", "crashed", "forbidden", "error")


@dataclass(frozen=True)
class Limits:
    wall_time_s: float = 60.0  # wall-clock timeout of one job
    cpu_time_s: float = 60.0  # RLIMIT_CPU
    memory_mb: int = 2048  # address-space limit (RLIMIT_AS)
    output_bytes: int = 65536  # cap on bytes the job may write to stdout+stderr


@dataclass(frozen=True)
class Job:
    code: str  # candidate source (defines `entry`, maybe helpers and imports)
    entry: str  # function name the code must define, e.g. "priority"
    harness: str  # dotted module of TRUSTED harness code
    call: str  # result = harness.<call>(fn, payload)
    payload: Any  # JSON-able data; numpy arrays allowed anywhere inside
    # A short job (a probe, a replay check) that should not queue behind long ones: it starts
    # before queued ordinary jobs and may run in one slot beyond ``workers``.
    express: bool = False


@dataclass(frozen=True)
class Outcome:
    status: str  # "ok" | "timeout" | "memory" | "crashed" | "forbidden" | "error"
    result: Any  # decoded result when ok, else None
    error: str  # short text; "" when ok
    wall_s: float


class SandboxError(RuntimeError):
    """The sandbox cannot run jobs: its server cannot be started (or keeps dying), or the
    host cannot give a job what it needs (its temporary folder is full or cannot be
    written, no process is left). Raised by ``Sandbox()`` and by a job's ``result()``:
    never the job's own outcome."""


# Variables passed to the server; everything else (API keys, tokens, ...) stays behind.
_ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_MAX_RESTARTS = 5


def _server_env(base: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_ALLOW if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env.update({
        "HOME": base, "TMPDIR": base, "PYTHONPATH": pkg_parent, "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1",
    })
    return env


class _Server:
    """One running server process and the thread reading its answers."""

    def __init__(self, owner: "Sandbox"):
        self.owner = owner
        try:
            self.base = tempfile.mkdtemp(prefix="evo-sandbox-")
        except OSError as e:
            raise SandboxError(f"its temporary folder {tempfile.gettempdir()} cannot be written ({e.strerror});"
                               " free some space there, make it writable or set TMPDIR to another folder") from None
        os.chmod(self.base, 0o711)
        cfg = {
            "limits": asdict(owner.limits), "workers": owner.workers,
            "preload": list(owner.preload), "base_dir": self.base,
            "sys_path": [p for p in sys.path if p and os.path.isdir(p) or p.endswith(".zip")],
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.server", json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            env=_server_env(self.base), cwd=self.base, start_new_session=True, close_fds=True,
        )
        self.pending: dict[int, concurrent.futures.Future] = {}
        self.lock = threading.Lock()  # guards pending and dead
        self.write_lock = threading.Lock()  # one job at a time on the server's stdin
        self.dead = False
        self.ready = threading.Event()
        self.info: dict = {}
        self.reader = threading.Thread(target=self._read_loop, name="sandbox-reader", daemon=True)
        self.reader.start()
        if not self.ready.wait(60) or self.dead:
            self.kill()
            raise SandboxError("sandbox server did not start (see its stderr above)")

    def _read_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.proc.stdout.read(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _read_loop(self) -> None:
        try:
            while True:
                head = self._read_exact(frames.HEAD_BYTES)
                if head is None or head[:4] != frames.ANSWER:
                    break
                _, blen, hlen = frames.unpack_head(head)
                body = self._read_exact(blen - 4)
                if body is None:
                    break
                hdr = json.loads(body[:hlen])
                blob = body[hlen:]
                if hdr.get("type") == "ready":
                    self.info = hdr
                    self.ready.set()
                    continue
                with self.lock:
                    fut = self.pending.pop(hdr["id"], None)
                if fut is not None and hdr["status"] == frames.UNAVAILABLE:  # the host's fault, not the job's
                    fut.set_exception(SandboxError(hdr.get("error", "")))
                elif fut is not None:
                    fut.set_result(self._outcome(hdr, blob))
        except Exception:  # noqa: BLE001 - any protocol failure means the server is unusable
            pass
        finally:
            with self.lock:
                self.dead = True
                pending, self.pending = self.pending, {}
            self.ready.set()
            for fut in pending.values():
                fut.set_result(Outcome("crashed", None, "sandbox server died while the job ran", 0.0))

    @staticmethod
    def _outcome(hdr: dict, blob: bytes) -> Outcome:
        status, error, wall = hdr["status"], hdr.get("error", ""), float(hdr.get("wall_s", 0.0))
        if status != "ok":
            return Outcome(status if status in STATUSES else "crashed", None, error or status, wall)
        try:
            return Outcome("ok", codec.decode(blob), "", wall)
        except codec.CodecError as e:
            return Outcome("error", None, f"malformed result: {e}", wall)

    def submit(self, jid: int, job: Job, fut: concurrent.futures.Future) -> bool:
        hdr = {"id": jid, "code": job.code, "entry": job.entry, "harness": job.harness, "call": job.call,
               "express": job.express}
        try:
            blob = codec.encode(job.payload)
        except codec.CodecError as e:
            fut.set_result(Outcome("error", None, f"payload cannot be transported: {e}", 0.0))
            return True
        msg = frames.pack(frames.REQUEST, hdr, blob)
        with self.lock:
            if self.dead:
                return False
            self.pending[jid] = fut
        # Written outside ``self.lock``: a job larger than the pipe blocks here until the
        # server reads it, and the server may first have to finish writing an answer, which
        # the reader thread can only take once it gets ``self.lock``.
        with self.write_lock:
            try:
                self.proc.stdin.write(msg)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                with self.lock:
                    self.dead = True
                    ours = self.pending.pop(jid, None) is not None
                # Not ours any more: the reader saw the server die and already failed it.
                return not ours
        return True

    def close(self, timeout: float = 5.0) -> None:
        try:
            self.proc.stdin.close()  # EOF: the server kills its children and exits
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except OSError:
                pass
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.wait()
        self.reader.join(5)
        shutil.rmtree(self.base, ignore_errors=True)


class Sandbox:
    """Runs ``Job``s in locked-down child processes of a warm server. Thread-safe."""

    def __init__(self, limits: Limits, workers: int = 1, preload: Sequence[str] = ()):
        self.limits = limits
        self.workers = max(1, int(workers))
        self.preload = tuple(preload)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self._restarts = 0
        self._server = _Server(self)
        self._finalizer = weakref.finalize(self, _Server.close, self._server)
        atexit.register(self._finalizer)

    @property
    def layers(self) -> dict[str, str]:
        """Protection layers of the running server: name -> "on: ..." / "off: reason"."""
        return dict(self._server.info.get("layers", {}))

    @property
    def preload_errors(self) -> list[str]:
        return list(self._server.info.get("preload_errors", []))

    def _current(self) -> _Server:
        with self._lock:
            if self._closed:
                raise SandboxError("sandbox is closed")
            if self._server.dead:
                self._restarts += 1
                if self._restarts > _MAX_RESTARTS:
                    raise SandboxError(f"sandbox server died {self._restarts} times; giving up")
                old = self._server
                old.kill()
                self._server = _Server(self)
                self._finalizer.detach()
                self._finalizer = weakref.finalize(self, _Server.close, self._server)
            return self._server

    def submit(self, job: Job) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        fut.set_running_or_notify_cancel()
        for _ in range(2):
            if self._current().submit(next(self._ids), job, fut):
                return fut
        fut.set_result(Outcome("crashed", None, "sandbox server unavailable", 0.0))
        return fut

    def run(self, job: Job) -> Outcome:
        return self.submit(job).result()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
