"""The warm sandbox server: a lean interpreter that forks one locked-down child per job.

Started by ``Sandbox`` as ``python -m sandbox.server CONFIG_JSON`` with a minimal
environment. Single-threaded: a select loop over its stdin (job requests), a SIGCHLD
wake-up pipe and the children's result/output pipes. It never runs candidate code
itself and never decodes what a child sends back (it only checks the framing).

It reads ``frames.REQUEST`` frames and writes ``frames.ANSWER`` ones (``frames.py``); the
protection layers are found at start-up (``layers.py``) and installed by each job's child
(``child.py``).
"""
from __future__ import annotations

import errno
import fcntl
import importlib
import json
import os
import select
import shutil
import signal
import sys
import time
from typing import Any

from . import frames, layers

MAX_RESULT_BYTES = 256 << 20
# A job's temporary folder on a filesystem with less room than this is of no use to it.
MIN_FREE_BYTES = 1 << 20


def _nonblock(fd: int) -> None:
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


class Running:
    def __init__(self, jid, pid, tmpdir, result_r, out_r, deadline, cpu_limit):
        self.jid, self.pid, self.tmpdir = jid, pid, tmpdir
        self.result_r, self.out_r = result_r, out_r
        self.start = time.monotonic()
        self.deadline = deadline
        self.cpu_limit = cpu_limit
        self.result = bytearray()
        self.out_bytes = 0
        self.killed: str = ""
        self.exited = False
        self.wstatus = 0
        self.rusage = None


class Server:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.limits = cfg["limits"]
        self.workers = max(1, int(cfg["workers"]))
        self.base = cfg["base_dir"]
        self.seed = int(cfg.get("seed", 0))
        self.out_fd = os.dup(1)
        os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
        self.in_fd = 0
        _nonblock(self.in_fd)
        self.inbuf = bytearray()
        self.queue: list[tuple[dict, bytes]] = []
        self.running: dict[int, Running] = {}
        self.wake_r, self.wake_w = os.pipe()
        _nonblock(self.wake_r)
        _nonblock(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *a: None)
        signal.set_wakeup_fd(self.wake_w)
        self.layers: dict[str, Any] = {}
        self.layer_info: dict[str, str] = {}
        self.read_roots: list[str] = []
        self.harness_cache: dict[str, Any] = {}
        self.eof = False

    # ----------------------------------------------------------------- start-up
    def setup(self) -> None:
        namespaces = layers.unshare_namespaces()
        import numpy  # noqa: F401  (warm import for every child)

        from . import child, codec  # noqa: F401

        preload_errors = []
        for name in self.cfg.get("preload", []):
            try:
                importlib.import_module(name)
            except Exception as e:  # noqa: BLE001
                preload_errors.append(f"{name}: {type(e).__name__}: {e}")
        self.preload_errors = preload_errors
        # RLIMIT_AS is the whole address space; a forked child starts with the server's
        # (numpy and BLAS mappings), so never set it below that plus a small margin.
        vm = 0
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmSize:"):
                        vm = int(line.split()[1]) * 1024
        except OSError:
            pass
        want = int(self.limits["memory_mb"]) << 20
        self.limits["memory_bytes"] = max(want, vm + (128 << 20))
        self.read_roots = layers.read_roots(self.cfg.get("preload", []))
        found = layers.probe(self.read_roots, namespaces)
        self.layers, self.layer_info = found.held, found.info
        if found.nproc is not None:
            self.limits["nproc"] = found.nproc

    # ----------------------------------------------------------------- main loop
    def serve(self) -> None:
        ready = {"type": "ready", "layers": self.layer_info, "preload_errors": self.preload_errors,
                 "pid": os.getpid()}
        _write_all(self.out_fd, frames.pack(frames.ANSWER, ready))
        while not (self.eof and not self.running):
            if self.eof:
                self.queue.clear()
                for r in self.running.values():
                    self._kill(r, "shutdown")
            self._start_queued()
            rfds = [self.wake_r] + ([] if self.eof else [self.in_fd])
            for r in self.running.values():
                rfds += [fd for fd in (r.result_r, r.out_r) if fd >= 0]
            now = time.monotonic()
            timeout = None
            if self.running:
                timeout = max(0.0, min(r.deadline for r in self.running.values()) - now)
                timeout = min(timeout, 0.5)
            try:
                readable, _, _ = select.select(rfds, [], [], timeout)
            except InterruptedError:
                readable = []
            for fd in readable:
                if fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                elif fd == self.in_fd:
                    self._read_requests()
                else:
                    self._read_child_fd(fd)
            self._check_children()

    def _read_requests(self) -> None:
        while True:
            try:
                chunk = os.read(self.in_fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                self.eof = True
                break
            self.inbuf += chunk
        while len(self.inbuf) >= frames.HEAD_BYTES:
            magic, blen, hlen = frames.unpack_head(bytes(self.inbuf[: frames.HEAD_BYTES]))
            if magic != frames.REQUEST:
                raise SystemExit("sandbox server: protocol error")
            end = 12 + blen
            if len(self.inbuf) < end:
                break
            hdr = json.loads(bytes(self.inbuf[frames.HEAD_BYTES : frames.HEAD_BYTES + hlen]))
            blob = bytes(self.inbuf[frames.HEAD_BYTES + hlen : end])
            del self.inbuf[:end]
            self.queue.append((hdr, blob))

    def _answer(self, jid, status, error="", wall=0.0, blob=b"") -> None:
        _write_all(self.out_fd, frames.pack(frames.ANSWER, {"id": jid, "status": status, "error": error,
                                                            "wall_s": wall}, blob))

    def _start_queued(self) -> None:
        while not self.eof:
            index = self._next_startable()
            if index is None:
                return
            hdr, blob = self.queue.pop(index)
            try:
                self._check_room()
                self._fork_job(hdr, blob)
            except OSError as e:
                self._answer(hdr["id"], frames.UNAVAILABLE, self._host_fault(e))
            except Exception as e:  # noqa: BLE001
                self._answer(hdr["id"], "error", f"sandbox could not start the job: {type(e).__name__}: {e}"[:400])

    def _check_room(self) -> None:
        """Refuse to start a job whose temporary folder would be on a full filesystem."""
        st = os.statvfs(self.base)
        if st.f_files and not st.f_favail:
            raise OSError(errno.ENOSPC, "no inode left")
        if st.f_bavail * st.f_frsize < MIN_FREE_BYTES:
            raise OSError(errno.ENOSPC, f"{st.f_bavail * st.f_frsize} bytes free")

    def _host_fault(self, e: OSError) -> str:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return (f"its temporary folder {self.base} is full ({e.strerror}); free some space there"
                    " or set TMPDIR to another folder")
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT):
            return (f"its temporary folder {self.base} cannot be written ({e.strerror}); make it writable"
                    " or set TMPDIR to another folder")
        return f"a job cannot be started: {e.strerror}"

    def _next_startable(self) -> int | None:
        """Queue index of the job to start now, if any. Express jobs (short ones: a probe, a
        replay check) go first and may take one slot beyond ``workers``, so they never wait
        for a long job to end; the others start in order while a worker is free."""
        if len(self.running) <= self.workers:
            for i, (hdr, _) in enumerate(self.queue):
                if hdr.get("express"):
                    return i
        if self.queue and len(self.running) < self.workers:
            return 0
        return None

    def _fork_job(self, hdr: dict, blob: bytes) -> None:
        from . import child, codec

        jid = hdr["id"]
        name = hdr["harness"]
        try:
            harness = self.harness_cache.get(name) or importlib.import_module(name)
        except Exception as e:  # noqa: BLE001
            self._answer(jid, "error", f"cannot import harness {name}: {type(e).__name__}: {e}"[:400])
            return
        if name not in self.harness_cache:
            self.harness_cache[name] = harness
            for d in layers.module_dirs(name):
                if d not in self.read_roots:
                    self.read_roots.append(d)
        if not callable(getattr(harness, hdr["call"], None)):
            self._answer(jid, "error", f"harness {name} has no function {hdr['call']!r}")
            return
        payload = codec.decode(blob)
        tmpdir = os.path.join(self.base, f"job-{jid}")
        os.mkdir(tmpdir, 0o700)
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        lim = self.limits
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            child.run_job(code=hdr["code"], entry=hdr["entry"], harness=harness, call=hdr["call"],
                          payload=payload, tmpdir=tmpdir, result_fd=res_w, out_fd=out_w,
                          limits=lim, read_roots=tuple(self.read_roots), seed=self.seed,
                          layers=self.layers, preloaded=tuple(self.cfg.get("preload", [])))
            os._exit(71)  # not reached
        os.close(res_w)
        os.close(out_w)
        _nonblock(res_r)
        _nonblock(out_r)
        r = Running(jid, pid, tmpdir, res_r, out_r, start + float(lim["wall_time_s"]),
                    float(lim["cpu_time_s"]))
        r.start = start
        self.running[pid] = r

    def _read_child_fd(self, fd: int) -> None:
        for r in self.running.values():
            if fd in (r.result_r, r.out_r):
                self._drain(r, fd)
                return

    def _drain(self, r: Running, fd: int) -> bool:
        """Read what is there; True at EOF (fd closed)."""
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                return False
            if not chunk:
                os.close(fd)
                if fd == r.result_r:
                    r.result_r = -1
                else:
                    r.out_r = -1
                return True
            if fd == r.result_r:
                r.result += chunk
                if len(r.result) > MAX_RESULT_BYTES and not r.killed:
                    self._kill(r, "result")
            else:
                r.out_bytes += len(chunk)
                if r.out_bytes > int(self.limits["output_bytes"]) and not r.killed:
                    self._kill(r, "output")

    def _kill(self, r: Running, why: str) -> None:
        if not r.killed:
            r.killed = why
        for target in (lambda: os.killpg(r.pid, signal.SIGKILL), lambda: os.kill(r.pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass

    def _check_children(self) -> None:
        now = time.monotonic()
        for r in list(self.running.values()):
            if not r.exited and now >= r.deadline and not r.killed:
                self._kill(r, "timeout")
            if not r.exited:
                try:
                    info = os.waitid(os.P_PID, r.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    info = None
                if info is None:
                    continue
                # the child is a zombie: its pid (= process group id) cannot be reused yet
                try:
                    os.killpg(r.pid, signal.SIGKILL)
                except OSError:
                    pass
                _, r.wstatus, r.rusage = os.wait4(r.pid, 0)
                r.exited = True
            for fd in (r.result_r, r.out_r):
                if fd >= 0:
                    self._drain(r, fd)
            for fd in (r.result_r, r.out_r):  # a writer that escaped the group: give up on it
                if fd >= 0:
                    os.close(fd)
            r.result_r = r.out_r = -1
            self._finish(r)

    def _finish(self, r: Running) -> None:
        del self.running[r.pid]
        wall = time.monotonic() - r.start
        shutil.rmtree(r.tmpdir, ignore_errors=True)
        status, error, blob = self._classify(r)
        self._answer(r.jid, status, error, round(wall, 6), blob)

    def _classify(self, r: Running) -> tuple[str, str, bytes]:
        lim = self.limits
        cpu = (r.rusage.ru_utime + r.rusage.ru_stime) if r.rusage else 0.0
        if r.killed == "timeout":
            return "timeout", f"wall-clock limit of {lim['wall_time_s']} s exceeded", b""
        if r.killed == "output":
            return "forbidden", f"output limit of {lim['output_bytes']} bytes (stdout+stderr) exceeded", b""
        if r.killed == "result":
            return "error", f"result larger than {MAX_RESULT_BYTES} bytes", b""
        if r.killed == "shutdown":
            return "crashed", "sandbox closed while the job ran", b""
        sig = os.WTERMSIG(r.wstatus) if os.WIFSIGNALED(r.wstatus) else 0
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= int(-(-r.cpu_limit // 1))):
            return "timeout", f"CPU-time limit of {lim['cpu_time_s']} s exceeded", b""
        parsed = frames.parse_result(bytes(r.result))
        if parsed is not None and not sig:
            return parsed
        if r.result and parsed is None:
            return "forbidden", "result channel tampered with (malformed or extra bytes)", b""
        if sig == signal.SIGSYS:
            return "forbidden", "killed by seccomp (SIGSYS)", b""
        if sig:
            name = signal.Signals(sig).name
            extra = " (possibly out of memory)" if sig == signal.SIGKILL else ""
            return "crashed", f"killed by signal {name}{extra}", b""
        return "crashed", f"exited with code {os.WEXITSTATUS(r.wstatus)} without a result", b""


def main() -> None:
    cfg = json.loads(sys.argv[1])
    sys.path[:] = cfg["sys_path"]
    srv = Server(cfg)
    srv.setup()
    try:
        srv.serve()
    except BrokenPipeError:
        pass  # the caller is gone (killed, or a second Ctrl-C): clean up below and exit quietly
    finally:
        for r in list(srv.running.values()):
            srv._kill(r, "shutdown")
            try:
                os.waitpid(r.pid, 0)
            except OSError:
                pass
        # With the jobs' folders inside it. The caller removes it too, unless it was killed
        # outright; then only we can.
        shutil.rmtree(cfg["base_dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
