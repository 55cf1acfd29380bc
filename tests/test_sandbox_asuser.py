"""As root, run the sandbox suites again as an unprivileged user.

Root has the strongest kernel powers (RLIMIT_NPROC does not bind it, it owns every file),
so the suites above run as root first; a plain user exercises the other path (user
namespace instead of plain unshare, nothing to drop). The user is created with useradd
when missing. When the interpreter lives under a directory the user cannot enter (e.g.
/root/.pyenv with /root at mode 700), the run happens in a private mount namespace where
that directory is a read-only-for-others tmpfs holding just the interpreter subtree.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

USER = "evo-sandbox"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or os.environ.get("EVO_SANDBOX_ASUSER") == "1",
    reason="only as root (and not inside the re-run itself)",
)


def _ensure_user() -> None:
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                       check=True, capture_output=True)


def _blocked_ancestor(path: str) -> tuple[str, str] | None:
    """(dir the user cannot enter, its child on the way to path) or None."""
    parts = os.path.realpath(path).split("/")[1:]
    cur = ""
    for i, name in enumerate(parts[:-1]):
        cur += "/" + name
        if not os.stat(cur).st_mode & 0o001:
            return cur, cur + "/" + parts[i + 1]
    return None


def test_suites_as_plain_user():
    for tool in ("useradd", "setpriv", "unshare", "mount"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} missing")
    _ensure_user()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "EVO_SANDBOX_ASUSER": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LANG"):
        if k in os.environ:
            env[k] = os.environ[k]
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                  os.path.join(HERE, "test_sandbox_hostile.py"), os.path.join(HERE, "test_sandbox.py")]
    drop = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "env", "-i"] + [f"{k}={v}" for k, v in env.items()] + pytest_cmd
    script = "set -e\n"
    blocked = _blocked_ancestor(os.path.realpath(sys.executable))
    if blocked:
        top, keep = blocked
        script += (f'd=$(mktemp -d)\nmount --bind {shlex.quote(keep)} "$d"\n'
                   f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(top)}\n"
                   f"mkdir -p {shlex.quote(keep)}\n"
                   f'mount --move "$d" {shlex.quote(keep)}\nrmdir "$d"\n')
    script += "cd " + shlex.quote(ROOT) + "\nexec " + " ".join(shlex.quote(a) for a in drop) + "\n"
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail
    print(tail.strip().splitlines()[-1])
