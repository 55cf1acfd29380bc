"""Which protection layers hold on this machine, found once as the server starts, and the
paths a job may read (Landlock's read-only roots).

The server unshares its namespaces itself; for the kernel layers a job installs (Landlock,
capabilities, seccomp) a throw-away child installs every one and reports which held. The
texts are what ``python -m sandbox`` prints; ``protect.py`` implements the layers.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

from . import protect


@dataclass(frozen=True)
class Layers:
    held: dict[str, bool]  # the kernel layers a job installs: landlock, capabilities, seccomp; and audit
    info: dict[str, str]  # every layer -> "on: ..." / "off: reason", in the order they are shown
    nproc: int | None  # RLIMIT_NPROC for jobs where nothing else stops a fork bomb


def unshare_namespaces() -> str:
    """Give the server (and so every job) private network and IPC namespaces; their text."""
    try:
        names = protect.unshare_namespaces()
    except protect.LayerUnavailable as e:
        return f"off: {e}"
    return "on: private " + ", ".join(names) + " namespaces (no network interfaces but a down loopback)"


def read_roots(modules: list[str]) -> list[str]:
    """What a job may read: the interpreter, site-packages, system libraries, and the
    folders of ``modules`` (the preloaded ones), of sandbox and of numpy."""
    roots = set()
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        roots.add(os.path.realpath(p))
    for p in sys.path:
        if p and os.path.exists(p) and ("site-packages" in p or "dist-packages" in p
                                        or p.endswith(".zip")):
            roots.add(os.path.realpath(p))
    for p in ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib",
              "/usr/share/zoneinfo", "/dev/urandom", "/dev/zero"):
        if os.path.exists(p):
            roots.add(p)
    for m in list(modules) + ["sandbox", "numpy"]:
        roots.update(module_dirs(m))
    return sorted(roots)


def module_dirs(name: str) -> list[str]:
    """The folder of an imported package, or the file of an imported module."""
    mod = sys.modules.get(name.split(".")[0])
    f = getattr(mod, "__file__", None)
    if not f:
        return []
    d = os.path.dirname(os.path.realpath(f))
    return [d] if os.path.basename(f) == "__init__.py" else [os.path.realpath(f)]


def probe(roots: list[str], namespaces: str) -> Layers:
    """Fork a throw-away child that installs every kernel layer and reports which held."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        rep = {}
        try:
            os.close(r)
            try:
                abi = protect.landlock_restrict(roots, ["/dev/null"])
                rep["landlock"] = [True, f"on: Landlock ABI {abi}: read-only Python/library paths, write only the job's temp dir"
                                   + ("; TCP bind/connect denied" if abi >= 4 else "")
                                   + ("; signals and abstract sockets scoped to the job" if abi >= 6 else "")]
            except Exception as e:  # noqa: BLE001
                rep["landlock"] = [False, f"off: {e}"]
            if os.getuid() == 0 or os.geteuid() == 0 or "user" in namespaces:
                try:
                    protect.drop_capabilities()
                    rep["capabilities"] = [True, "on: all capabilities dropped (bounding, effective, permitted)"]
                except Exception as e:  # noqa: BLE001
                    rep["capabilities"] = [False, f"off: {e}"]
            else:
                rep["capabilities"] = [False, "n/a: not root, no capabilities to drop"]
            try:
                n = protect.seccomp_filter(os.getpid())
                ok = True
                try:
                    p2 = os.fork()
                    if p2 == 0:
                        os._exit(0)
                    os.waitpid(p2, 0)
                    ok = False
                except PermissionError:
                    pass
                rep["seccomp"] = [ok, f"on: seccomp-BPF, {n} rules: no fork/exec/sockets/ptrace/mount/namespaces, no raising rlimits, no signals to other pids"
                                  if ok else "off: filter installed but fork still worked"]
            except Exception as e:  # noqa: BLE001
                rep["seccomp"] = [False, f"off: {e}"]
            os.write(w, json.dumps(rep).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    rep = json.loads(data or b"{}")
    held: dict[str, bool] = {}
    info = {"namespaces": namespaces}
    for k in ("landlock", "capabilities", "seccomp"):
        ok, text = rep.get(k, [False, "off: probe failed"])
        held[k] = bool(ok)
        info[k] = text
    held["audit"] = True
    info["audit"] = "on: Python audit hook (second layer): blocks fork/exec/subprocess/socket/ctypes/rlimit changes, file access outside allowed paths, sqlite outside the temp dir"
    is_root = os.geteuid() == 0
    info["rlimits"] = ("on: RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0 (hard=soft)"
                       + ("" if held["seccomp"] or is_root else ", RLIMIT_NPROC"))
    info["process"] = "on: own session/process group killed with SIGKILL, PDEATHSIG, no stdin, capped output, wall-clock timeout"
    info["environment"] = "on: minimal allow-listed environment (server started without the caller's variables), private temp dir removed afterwards"
    return Layers(held, info, None if held["seccomp"] or is_root else 64)
