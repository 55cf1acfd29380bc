"""Sandbox API, transport, statuses, concurrency, restarts and the kernel layers alone."""
from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from sandbox_helpers import FAST, HARNESS, job, sandbox_pids  # noqa: E402

from sandbox import Job, Limits, Outcome, Sandbox, codec  # noqa: E402


@pytest.fixture(scope="module")
def sb():
    with Sandbox(FAST, workers=2, preload=["numpy", HARNESS]) as box:
        yield box


BEST_FIT = "import numpy as np\ndef priority(item, bins):\n    return -(bins - item)\n"
ITEMS = list(np.random.default_rng(1).integers(5, 60, size=60))


def bp_job(code: str, items=ITEMS) -> Job:
    return Job(code=code, entry="priority", harness=HARNESS, call="solve",
               payload={"items": np.asarray(items), "capacity": 100.0})


def test_codec_roundtrip():
    v = {"a": [1, 2.5, None, "s", True], "b": np.arange(6, dtype=np.int32).reshape(2, 3),
         "c": (np.float64(2.0), np.bool_(True)), "__sbx_nd__": 3, "n": float("nan")}
    d = codec.decode(codec.encode(v))
    assert d["a"] == [1, 2.5, None, "s", True] and d["__sbx_nd__"] == 3
    assert d["b"].dtype == np.int32 and d["b"].shape == (2, 3) and (d["b"] == v["b"]).all()
    assert d["c"] == [2.0, True] and np.isnan(d["n"])
    with pytest.raises(codec.CodecError):
        codec.encode({"x": object()})
    bad = codec.encode(np.arange(4)).replace(b'"<i8"', b'"|O8"')
    with pytest.raises(codec.CodecError):
        codec.decode(bad)
    with pytest.raises(codec.CodecError):
        codec.decode(b"\x80\x04pickle")


def test_ok_and_numpy_payload(sb):
    out = sb.run(bp_job(BEST_FIT))
    assert isinstance(out, Outcome) and out.status == "ok" and out.error == ""
    assert out.result["choices"].dtype == np.int64 and len(out.result["choices"]) == len(ITEMS)
    assert out.wall_s > 0


def test_error_text_names_candidate_line(sb):
    code = "import numpy as np\n\ndef priority(item, bins):\n    return item / 0\n"
    out = sb.run(bp_job(code))
    assert out.status == "error" and out.result is None
    assert "line 4, in priority: return item / 0" in out.error, out.error
    assert "ZeroDivisionError: float division by zero" in out.error
    assert len(out.error) <= 400


def test_an_answer_the_harness_refuses_is_told_without_the_harness_frames(sb):
    """The candidate's code ran; the harness could not use what it returned. The error is
    the exception alone: the harness's source line is noise to whoever repairs the code."""
    out = sb.run(bp_job("def priority(item, bins):\n    return 'abc'\n"))
    assert out.status == "error" and out.error == "ValueError: could not convert string to float: 'abc'", out.error


def test_syntax_error_and_missing_entry(sb):
    out = sb.run(bp_job("def priority(item, bins)\n    return 1\n"))
    assert out.status == "error" and "SyntaxError" in out.error
    out = sb.run(bp_job("def other(item, bins):\n    return 1\n"))
    assert out.status == "error" and "priority" in out.error


def test_bad_harness(sb):
    out = sb.run(Job(code=BEST_FIT, entry="priority", harness="no.such.module", call="solve", payload={}))
    assert out.status == "error" and "no.such.module" in out.error
    out = sb.run(Job(code=BEST_FIT, entry="priority", harness=HARNESS, call="nope", payload={}))
    assert out.status == "error" and "nope" in out.error


def test_determinism(sb):
    code = ("import random\nimport numpy as np\n"
            "def f():\n    return [random.random(), float(np.random.rand()), hash('abc') % 1000]\n")
    a, b = sb.run(job(code)), sb.run(job(code))
    assert a.status == "ok" and a.result == b.result


def test_workers_run_concurrently():
    code = "import time\ndef f():\n    time.sleep(0.6)\n    return 1\n"
    with Sandbox(FAST, workers=2) as box:
        t0 = time.monotonic()
        futs = [box.submit(job(code)) for _ in range(2)]
        assert [f.result().status for f in futs] == ["ok", "ok"]
        assert time.monotonic() - t0 < 1.1


def test_express_job_does_not_wait_behind_long_ones():
    """With one worker busy and another long job queued, an express job (a probe) starts at
    once in the extra slot, and the queued long job still waits for the worker."""
    slow = "import time\ndef f():\n    time.sleep(4)\n    return 'slow'\n"
    quick = "def f():\n    return 'quick'\n"
    with Sandbox(replace(FAST, wall_time_s=20.0), workers=1) as box:
        first, second = box.submit(job(slow)), box.submit(job(slow))
        time.sleep(0.5)  # the first is running, the second queued
        express = box.submit(replace(job(quick), express=True)).result()
        assert (express.status, express.result) == ("ok", "quick")
        assert not first.done() and not second.done(), "the express job waited for a long one"
        assert first.result().result == "slow"
        assert not second.done(), "the queued long job did not wait for the worker"
        assert second.result().result == "slow"


def test_large_payloads_and_results_from_many_threads():
    """Jobs and answers larger than a pipe's buffer, from several threads at once. A caller
    that held its lock while blocked writing a job, when the server was blocked writing an
    answer that the caller's reader could not take without that lock, hung for good (a
    1,000-evaluation run froze this way on 454-state probes). Run in a child process, so
    that a deadlock fails the test instead of hanging it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = f"""
import sys, concurrent.futures
from dataclasses import replace
import numpy as np
sys.path[:0] = [{root!r}, {os.path.dirname(__file__)!r}]
from sandbox import Sandbox
from sandbox_helpers import FAST, job
code = "def f(a):\\n    return a[::-1]\\n"
payloads = [np.arange(250_000, dtype=np.float64) + i for i in range(64)]  # 2 MB each
with Sandbox(FAST, workers=2) as box, concurrent.futures.ThreadPoolExecutor(16) as pool:
    outcomes = list(pool.map(lambda ip: box.run(replace(job(code, args=[ip[1]]), express=ip[0] % 3 == 0)),
                             enumerate(payloads)))
assert [o.status for o in outcomes] == ["ok"] * len(payloads), [o.error for o in outcomes]
assert all(np.array_equal(o.result, p[::-1]) for o, p in zip(outcomes, payloads))
print("all", len(outcomes), "ok")
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        out, _ = child.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail("64 jobs of 2 MB from 16 threads hung: caller and server deadlocked on their pipes")
    assert child.returncode == 0 and "all 64 ok" in out, out[-2000:]


def test_batch_with_hostile_third(sb):
    hostile = [
        "def f(x):\n    while True:\n        pass\n",
        "import os\ndef f(x):\n    while True:\n        os.fork()\n",
        "import numpy as np\ndef f(x):\n    return np.ones(10**10)\n",
        "import os\ndef f(x):\n    os._exit(1)\n",
        "import socket\ndef f(x):\n    socket.create_connection(('127.0.0.1', 9))\n",
        "import os\ndef f(x):\n    os.write(1, b'x' * 10**7)\n",
        "def f(x):\n    raise ValueError(x)\n",
    ]
    honest = [f"import numpy as np\ndef f(x):\n    return np.arange(x) * {k} + x\n" for k in range(14)]
    jobs = []
    for i in range(21):
        jobs.append(job(hostile[i // 3], [5]) if i % 3 == 2 else job(honest[len([j for j in jobs if j.code in honest]) % 14], [i + 3]))
    futs = [sb.submit(j) for j in jobs]
    outs = [f.result(timeout=60) for f in futs]
    for j, o in zip(jobs, outs):
        if j.code in hostile:
            assert o.status != "ok", (j.code, o)
        else:
            alone = sb.run(j)
            assert o.status == alone.status == "ok", (o, alone)
            assert np.array_equal(o.result, alone.result)


def test_server_death_fails_futures_and_restarts():
    with Sandbox(FAST, workers=1) as box:
        fut = box.submit(job("import time\ndef f():\n    time.sleep(2)\n"))
        time.sleep(0.3)
        os.kill(box._server.proc.pid, signal.SIGKILL)
        out = fut.result(timeout=10)
        assert out.status == "crashed" and "server" in out.error
        again = box.run(job("def f():\n    return 5\n"))
        assert (again.status, again.result) == ("ok", 5)


def test_killed_caller_leaves_no_server_and_no_folder():
    """SIGKILL the process that owns a Sandbox: it cannot clean up, so the server must (it
    sees end-of-file on its stdin), taking its job and its temporary folder with it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    owner = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        f"sys.path[:0] = [{root!r}, {os.path.dirname(__file__)!r}]\n"
        "from sandbox import Sandbox\nfrom sandbox_helpers import FAST, job\n"
        "box = Sandbox(FAST, workers=1)\n"
        "box.submit(job('import time\\ndef f():\\n    time.sleep(30)\\n'))\n"
        "print(box._server.base, box._server.proc.pid, flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    base, server_pid = owner.stdout.readline().split()
    assert os.path.isdir(base)
    time.sleep(0.5)  # the job is running
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while (os.path.exists(base) or _alive(int(server_pid))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(int(server_pid)), "the server outlived its caller"
    assert not os.path.exists(base), f"{base} was left behind"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_close_kills_everything():
    box = Sandbox(FAST, workers=2)
    base, server = box._server.base, box._server.proc.pid
    futs = [box.submit(job("def f():\n    while True:\n        pass\n")) for _ in range(2)]
    time.sleep(0.3)
    box.close()
    assert all(f.result(timeout=10).status == "crashed" for f in futs)
    time.sleep(0.1)
    assert not sandbox_pids(base)
    assert not os.path.exists(base)
    with pytest.raises(OSError):
        os.kill(server, 0)
    with pytest.raises(Exception):
        box.run(job("def f():\n    return 1\n"))


def test_threads_submit_safely(sb):
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(lambda i: sb.run(job("def f(x):\n    return x * 2\n", [i])), range(24)))
    assert [o.result for o in outs] == [2 * i for i in range(24)]


def test_layers_report(sb):
    layers = sb.layers
    for k in ("namespaces", "landlock", "capabilities", "seccomp", "audit", "rlimits"):
        assert k in layers
    if sys.platform == "linux" and os.uname().machine == "x86_64":
        assert layers["seccomp"].startswith("on"), layers["seccomp"]


# ---- the kernel layers on their own (no audit hook): fork a child, install, probe ----
def _in_child(fn) -> int:
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="seccomp table is x86_64 only")
def test_seccomp_alone_blocks_fork_exec_socket_rlimit():
    def probe():
        import resource
        import socket

        from sandbox import protect
        protect.seccomp_filter(os.getpid())
        bad = 0
        for i, action in enumerate((
            os.fork,
            lambda: os.execv("/bin/true", ["true"]),
            lambda: socket.socket(),
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)),
            lambda: os.kill(1, 0),
        )):
            try:
                r = action()
                if r == 0:
                    os._exit(0)
                bad |= 1 << i
            except (PermissionError, ValueError):  # resource.setrlimit turns EPERM into ValueError
                pass
        return bad
    assert _in_child(probe) == 0


def test_landlock_alone_blocks_files(tmp_path):
    from sandbox import protect
    try:
        protect.landlock_abi()
    except protect.LayerUnavailable:
        pytest.skip("no landlock")
    secret = tmp_path / "secret"
    secret.write_text("x")
    allowed = tmp_path / "ok"
    allowed.mkdir()

    def probe():
        protect.landlock_restrict([], [str(allowed)])
        (allowed / "w").write_text("fine")
        for action in (lambda: open(secret).read(), lambda: open(tmp_path / "new", "w"), lambda: os.remove(secret)):
            try:
                action()
                return 1
            except PermissionError:
                pass
        return 0
    assert _in_child(probe) == 0
    assert secret.read_text() == "x"
