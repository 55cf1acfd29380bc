"""What a forked job child does: lock itself down, run the candidate, report, _exit.

Runs in the child right after ``os.fork()`` in the server; never returns. The result
goes to ``result_fd`` as a single frame written by trusted code after the harness call::

    b"SBXR" | u64 body_len | body        body = u32 hdr_len | hdr json | codec bytes

The server accepts exactly one frame filling the whole stream; anything else the
candidate may have written to that fd makes the job ``forbidden``.
"""
from __future__ import annotations

import builtins
import linecache
import os
import random
import resource
import signal
import sys
import traceback
from typing import Any

from . import frames

CANDIDATE_FILE = "<candidate>"
ERROR_CHARS = 400


class SandboxViolation(PermissionError):
    """Raised by the audit hook when candidate code attempts a forbidden operation."""


class NotOffered(ModuleNotFoundError):
    """An import of a module the sandbox does not offer to candidate code."""


class _OfferedOnly:
    """A meta path finder that refuses modules outside the standard library and the
    preloaded packages, with a message that says what is available. Without it, a package
    that happens to be installed (scipy, pulled in by pyribs) fails deep inside its import
    with an error that tells a model, and a user, nothing."""

    def __init__(self, allowed: frozenset[str], offered: str) -> None:
        self.allowed = allowed
        self.offered = offered

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        top = name.partition(".")[0]
        if top in self.allowed:
            return None  # the usual finders take it from here
        raise NotOffered(f"module {top!r} is not available in the sandbox: candidate code may import "
                         f"{self.offered} and Python's standard library", name=name)

    def invalidate_caches(self) -> None:
        pass


def offered_only(preloaded: tuple[str, ...], harness_name: str) -> _OfferedOnly:
    tops = {name.partition(".")[0] for name in preloaded}
    # Whatever the server's imports brought in (numpy's own dependencies) must keep loading.
    tops |= {name.partition(".")[0] for name in list(sys.modules)}
    third_party = sorted(t for t in {n.partition(".")[0] for n in preloaded}
                         if t not in sys.stdlib_module_names and t != harness_name.partition(".")[0])
    return _OfferedOnly(frozenset(tops) | sys.stdlib_module_names, ", ".join(third_party) or "nothing but")


def frame(status: str, error: str = "", blob: bytes = b"") -> bytes:
    return frames.pack(frames.RESULT, {"status": status, "error": error[-ERROR_CHARS:]}, blob)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def short_traceback(exc: BaseException) -> str:
    """The candidate's frames (with source lines) and the exception line, trimmed. Only
    the candidate's own frames: a line of the harness that checked its answer means nothing
    to whoever repairs the candidate (an LLM, through the repair operator)."""
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if f.filename == CANDIDATE_FILE]
    lines = []
    for f in frames[-2:]:
        lines.append(f'line {f.lineno}, in {f.name}: {(f.line or "").strip()}')
    exc_line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    lines.append(exc_line)
    text = "\n".join(lines)
    if len(text) > ERROR_CHARS:
        text = text[: ERROR_CHARS // 2] + " ... " + text[-ERROR_CHARS // 2 :]
    return text


def _make_audit_hook(state: dict, tmpdir: str, read_roots: tuple[str, ...]):
    """Second layer (Python-level): refuse process creation, sockets, ctypes, rlimits and
    file access outside the allowed roots. Only armed while candidate code runs."""
    pid = os.getpid()
    tmp_prefix = tmpdir.rstrip("/") + "/"
    blocked_prefixes = ("socket.", "ctypes.", "_ctypes.", "subprocess.", "pty.", "winreg.", "webbrowser.")
    blocked_events = {
        "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system",
        "os.startfile", "os.popen", "resource.setrlimit", "resource.prlimit", "os.setns",
        "os.unshare", "os.pidfd_open", "os.killpg", "sys.remote_exec", "os.chroot",
    }
    path_write_events = {
        "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
        "os.symlink", "os.link", "os.truncate", "shutil.rmtree", "os.utime", "os.chflags",
        "os.mkfifo", "os.mknod", "shutil.copyfile", "shutil.move",
    }
    blocked_imports = {"ctypes", "_ctypes", "cffi", "_posixsubprocess", "_socket", "socket"}
    O_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def inside(path: Any, roots: tuple[str, ...]) -> bool:
        if isinstance(path, int):
            return True
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str):
            path = os.fspath(path) if hasattr(path, "__fspath__") else str(path)
        p = os.path.normpath(os.path.join(tmpdir, path))
        return any(p == r.rstrip("/") or p.startswith(r.rstrip("/") + "/") for r in roots)

    write_roots = (tmpdir, "/dev/null")
    all_read = read_roots + write_roots

    def deny(event: str, detail: str = "") -> None:
        msg = f"forbidden: {event}{' ' + detail if detail else ''}"
        if not state["violation"]:
            state["violation"] = msg
        raise SandboxViolation(msg)

    def hook(event: str, args: tuple) -> None:
        if not state["armed"]:
            return
        if event in blocked_events or event.startswith(blocked_prefixes):
            deny(event)
        if event == "os.kill":
            if args and args[0] not in (0, pid):
                deny(event, f"pid {args[0]}")
        elif event == "import":
            name = args[0] if args else ""
            if isinstance(name, str) and name.split(".")[0] in blocked_imports:
                deny("import", name)
        elif event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & O_WRITE
            )
            if path is None:
                return
            if writing and not inside(path, write_roots):
                deny("open for writing", repr(path))
            if not writing and not inside(path, all_read):
                deny("open", repr(path))
        elif event in path_write_events:
            for a in args[:2]:
                if isinstance(a, (str, bytes, os.PathLike)) and not inside(a, write_roots):
                    deny(event, repr(a))
        elif event in ("os.listdir", "os.scandir", "os.chdir"):
            if args and args[0] is not None and not inside(args[0], all_read):
                deny(event, repr(args[0]))
        elif event == "sqlite3.connect":
            db = args[0] if args else ""
            if db not in (":memory:", b":memory:", "") and not inside(db, write_roots):
                deny(event, repr(db))

    return hook


def run_job(
    *,
    code: str,
    entry: str,
    harness: Any,
    call: str,
    payload: Any,
    tmpdir: str,
    result_fd: int,
    out_fd: int,
    limits: dict,
    read_roots: tuple[str, ...],
    seed: int,
    layers: dict,
    preloaded: tuple[str, ...] = (),
) -> None:
    """Never returns: ends with os._exit."""
    status_code = 0
    try:
        _child_main(code, entry, harness, call, payload, tmpdir, result_fd, out_fd, limits,
                    read_roots, seed, layers, preloaded)
    except BaseException:  # trusted-side failure: report what we can
        try:
            _write_all(result_fd, frame("crashed", "sandbox child setup failed: "
                                        + traceback.format_exc()[-300:]))
        except BaseException:
            status_code = 70
    os._exit(status_code)


def _child_main(code, entry, harness, call, payload, tmpdir, result_fd, out_fd, limits,
                read_roots, seed, layers, preloaded) -> None:
    from . import codec, protect

    os.setsid()
    try:
        protect.prctl(protect.PR_SET_PDEATHSIG, signal.SIGKILL)
    except protect.LayerUnavailable:
        pass
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    # fds: 0 = /dev/null, 1 and 2 = capped output pipe, result_fd kept, everything else closed
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    keep = 3
    if result_fd != keep:
        os.dup2(result_fd, keep)
        result_fd = keep
    os.closerange(keep + 1, 1 << 16)
    os.set_inheritable(result_fd, False)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)

    os.environ.clear()
    os.environ.update({
        "PATH": "/usr/bin:/bin", "HOME": tmpdir, "TMPDIR": tmpdir, "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    })
    os.chdir(tmpdir)
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass

    # rlimits (kernel); hard == soft so they cannot be raised even without seccomp
    mem = int(limits["memory_bytes"])
    cpu = max(1, int(-(-float(limits["cpu_time_s"]) // 1)))
    for res, val in (
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NOFILE, (256, 256)),
        (resource.RLIMIT_FSIZE, (64 << 20, 64 << 20)),
    ):
        try:
            resource.setrlimit(res, val)
        except (ValueError, OSError):
            pass
    if limits.get("nproc") is not None:
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
        except (ValueError, OSError):
            pass

    if layers.get("landlock"):
        protect.landlock_restrict(list(read_roots), [tmpdir, "/dev/null"])
    if layers.get("capabilities"):
        protect.drop_capabilities()
    if layers.get("seccomp"):
        protect.seccomp_filter(os.getpid())

    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed)

    state = {"armed": False, "violation": ""}
    if layers.get("audit"):
        sys.addaudithook(_make_audit_hook(state, tmpdir, read_roots))
    # sever the trusted ctypes handles; a None entry makes any re-import fail
    protect._libc = None
    pkg = sys.modules.get("sandbox")
    if pkg is not None and hasattr(pkg, "protect"):
        delattr(pkg, "protect")
    for mod in ("ctypes", "_ctypes", "ctypes.util", "sandbox.protect", "_posixsubprocess"):
        sys.modules[mod] = None
    del protect

    sys.meta_path.insert(0, offered_only(preloaded, getattr(harness, "__name__", "")))
    linecache.cache[CANDIDATE_FILE] = (len(code), None, code.splitlines(True), CANDIDATE_FILE)
    func = getattr(harness, call)
    status, error, blob = "ok", "", b""
    state["armed"] = True
    try:
        namespace = {"__name__": "candidate", "__builtins__": builtins}
        exec(compile(code, CANDIDATE_FILE, "exec"), namespace)
        fn = namespace.get(entry)
        if not callable(fn):
            raise NameError(f"the code defines no function named {entry!r}")
        result = func(fn, payload)
    except MemoryError as e:
        state["armed"] = False
        status, error = "memory", "MemoryError: " + (str(e) or "out of memory")[:200]
    except (SystemExit, KeyboardInterrupt, GeneratorExit) as e:
        state["armed"] = False
        status, error = "crashed", f"candidate raised {type(e).__name__}({str(e)[:80]})"
    except RecursionError as e:
        state["armed"] = False
        status, error = "error", short_traceback(e)
    except NotOffered as e:
        state["armed"] = False
        where = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == CANDIDATE_FILE]
        status, error = "error", (f"line {where[-1]}: " if where else "") + str(e)
    except BaseException as e:
        state["armed"] = False
        blocked_import = isinstance(e, ImportError) and str(getattr(e, "name", "") or "").split(".")[0] in (
            "ctypes", "_ctypes", "_posixsubprocess", "sandbox")
        if isinstance(e, PermissionError) or state["violation"] or blocked_import:
            status = "forbidden"
            error = state["violation"] or short_traceback(e)
        else:
            status, error = "error", short_traceback(e)
    else:
        state["armed"] = False
        if state["violation"]:
            status, error = "forbidden", state["violation"] + " (caught by the candidate)"
        else:
            try:
                blob = codec.encode(result)
            except BaseException as e:  # noqa: BLE001 - report any encoding failure
                status, error = "error", f"result cannot be transported: {e}"[:ERROR_CHARS]
    _write_all(result_fd, frame(status, error, blob))
    os._exit(0)
