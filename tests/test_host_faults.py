"""Faults of the host (issue 18), each made for real on a filesystem mounted for the test.

The run folder's filesystem fills up (the store's commit, the LLM cache written in a
worker thread, the log), the sandbox's temporary folder fills up or turns read-only, the
run folder is read-only, or turns read-only in the middle of a run (an ext4 error). Each
time: one line on stderr, exit code 74, a run state that says what happened, nothing
committed lost, and `evo resume`, once the cause is gone, ends with the candidates, the
archive digest and the LLM requests of the run left alone.

Mounting needs root; where it is refused, the tests are skipped with the reason.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

from llm_server import Behaviour, ScriptedServer, answer, status
from tests.conftest import TOY, run_evo
from tests.test_resume import Background, committed, evo_traceback, meta_state, outcome
from tests.test_resume_llm import answer_for, cached_answers, toy_answer

EXIT_HOST = 74
OFFLINE_BUDGET = 40
OFFLINE = [*TOY, "seed=3", f"budget.evaluations={OFFLINE_BUDGET}"]
# Runs that talk to the scripted server: one request at a time and no reflection requests,
# so that the server's n-th request of a fresh run is candidate n + 1's.
SCRIPTED_BUDGET = 7
FAULT_AT = 4  # the request of candidate 5, the first of the second batch


def scripted(server: ScriptedServer) -> list[str]:
    return [*TOY, "seed=5", f"budget.evaluations={SCRIPTED_BUDGET}", "~operators.crossover", "~operators.elitist",
            "llm=local", f"llm.base_url={server.url}", "llm.model=openai/test", "llm.concurrency=1",
            "llm.max_retries=1", "llm.retry_backoff_s=0.1", "llm.timeout_s=60"]


# ---- filesystems made for the test --------------------------------------------------------
def mount(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("the host faults are made on filesystems mounted for the test, which needs root")
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is refused here: {result.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path):
    """``tmpfs(name, size)``: a folder of tmp_path with a tmpfs of that size mounted on it."""
    mounted: list[Path] = []

    def make(name: str, size: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
        mounted.append(folder)
        return folder

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount(folder: Path, options: str) -> None:
    """Remount with ``options``; a read-only remount waits while a file there is open for writing."""
    deadline = time.monotonic() + 10
    while True:
        result = subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], capture_output=True, text=True)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, f"mount -o remount,{options} {folder}: {result.stderr}"
        time.sleep(0.05)


def fill(folder: Path) -> Path:
    """Fill the filesystem under ``folder`` to its last byte, as another program would."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


# ---- what a faulted run must show ----------------------------------------------------------
def assert_one_line(job: Background, code: int, *expected: str) -> str:
    """Exit code 74, one `evo: error:` line holding ``expected``, no traceback."""
    text = job.text()
    assert code == EXIT_HOST, text
    errors = [line for line in text.splitlines() if line.startswith("evo: error:")]
    assert len(errors) == 1, text
    assert not evo_traceback(text) and "Traceback" not in text, text
    for part in expected:
        assert part in errors[0], errors[0]
    return errors[0]


# The runs left alone, and the ends of most faulted runs, are made in this process (the
# same code as `evo run` and `evo resume` but the command line), which saves each the
# seconds that a new process spends importing litellm.
def run_here(args: list[str], run_dir: Path) -> None:
    from evo.app import execute
    from evo.compose import compose_config

    with contextlib.redirect_stdout(io.StringIO()):
        assert execute(compose_config(args), run_dir) == 0


def resume_here(run_dir: Path) -> None:
    from evo.app import resume

    with contextlib.redirect_stdout(io.StringIO()):
        assert resume(run_dir, []) == 0


def inspect_here(run_dir: Path, capsys) -> dict:
    from evo.cli import main

    capsys.readouterr()
    assert main(["inspect", str(run_dir), "--json", "--no-test"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def offline_reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("offline-reference") / "run"
    run_here(OFFLINE, run_dir)
    return outcome(run_dir)


@pytest.fixture(scope="module")
def scripted_reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("scripted-reference") / "run"
    with ScriptedServer(default=lambda n: answer_for(server.requests[n])) as server:
        run_here(scripted(server), run_dir)
        assert server.count == SCRIPTED_BUDGET - 1
    return outcome(run_dir)


def faulting_server(run_dir: Path, fault: Callable[[], Behaviour | None]) -> ScriptedServer:
    """A server that answers by the request's content, and at request FAULT_AT first waits
    until the run has committed every candidate before it, then makes the fault (whose
    behaviour, if any, answers that request)."""

    def behaviour(n: int) -> Behaviour:
        if n == FAULT_AT:
            deadline = time.monotonic() + 60
            while committed(run_dir) < FAULT_AT + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            made = fault()
            if made is not None:
                return made
        return answer_for(server.requests[n])

    server = ScriptedServer(default=behaviour)
    return server.start()


# ---- the run folder's filesystem fills up ----------------------------------------------------
def test_a_run_that_fills_its_filesystem_stops_with_one_line_and_resumes(tmpfs, tmp_path, capsys, offline_reference):
    """The issue's report: a run on a small filesystem fills it (whichever write comes
    first: the store, the LLM cache). Resumed while still full, it stops the same way;
    on a larger filesystem it ends as the run left alone."""
    disk = tmpfs("disk", "512k")
    run_dir = disk / "run"
    job = Background(tmp_path, "full", "run", *OFFLINE, f"hydra.run.dir={run_dir}")
    line = assert_one_line(job, job.wait(), f"the run folder {run_dir} is on a full filesystem",
                           f"free some space, then resume with: evo resume {run_dir}")
    kept = committed(run_dir)
    assert 0 < kept < OFFLINE_BUDGET and f"({kept} committed candidates kept)" in line
    state, reason = meta_state(run_dir)
    assert state == "failed" and reason.startswith(f"host: the run folder {run_dir} is on a full filesystem")
    shown = inspect_here(run_dir, capsys)
    assert shown["state"] == "failed" and shown["stop_reason"] == reason

    again = Background(tmp_path, "still-full", "resume", str(run_dir))
    assert_one_line(again, again.wait(), "is on a full filesystem")
    assert meta_state(run_dir)[0] == "failed" and committed(run_dir) >= kept

    remount(disk, "size=16m")
    roomy = Background(tmp_path, "roomy", "resume", str(run_dir))
    assert roomy.wait() == 0, roomy.text()
    assert outcome(run_dir) == offline_reference


def test_a_run_started_on_a_full_filesystem_leaves_no_folder(tmpfs):
    disk = tmpfs("disk", "256k")
    filler = fill(disk)
    result = run_evo("run", *OFFLINE, f"hydra.run.dir={disk / 'run'}")
    assert result.returncode == EXIT_HOST, result.stderr
    assert result.stderr.strip() == (f"evo: error: the run folder {disk / 'run'} is on a full filesystem"
                                     " (No space left on device); free some space")
    assert sorted(p.name for p in disk.iterdir()) == [filler.name]  # Hydra's snapshot removed too


def test_the_llm_cache_write_failing_in_a_worker_thread(tmpfs, tmp_path, scripted_reference):
    """The disk fills while candidate 5's request is answered: the answer cannot be kept
    (it is asked for again on resume), everything committed before it stays."""
    disk = tmpfs("disk", "4m")
    run_dir = disk / "run"
    filler: list[Path] = []
    server = faulting_server(run_dir, lambda: filler.append(fill(disk)))
    try:
        job = Background(tmp_path, "cache", "run", *scripted(server), f"hydra.run.dir={run_dir}")
        assert_one_line(job, job.wait(), f"the run folder {run_dir} is on a full filesystem (database or disk is full)")
        assert committed(run_dir) == FAULT_AT + 1 and cached_answers(run_dir) == FAULT_AT
        assert meta_state(run_dir)[0] == "failed"
        filler[0].unlink()
        resume_here(run_dir)
        assert server.count == SCRIPTED_BUDGET - 1 + 1  # the answer that could not be kept
    finally:
        server.close()
    assert outcome(run_dir) == scripted_reference


def test_the_log_write_failing_in_a_worker_thread(tmpfs, tmp_path, scripted_reference):
    """The disk fills, and candidate 5's request meets a server error: the retry's log
    line is the first write that needs room (the log ends on a page's last byte)."""
    disk = tmpfs("disk", "4m")
    run_dir = disk / "run"
    filler: list[Path] = []

    def fault() -> Behaviour:
        log = run_dir / "run.log"
        with open(log, "a") as out:  # this test's own words in the run's log, to a page's end
            out.write("#" * (-(log.stat().st_size + 1) % 4096) + "\n")
        filler.append(fill(disk))
        return status(503)

    server = faulting_server(run_dir, fault)
    try:
        job = Background(tmp_path, "log", "run", *scripted(server), f"hydra.run.dir={run_dir}")
        assert_one_line(job, job.wait(), f"the run folder {run_dir} is on a full filesystem (No space left on device)")
        assert committed(run_dir) == FAULT_AT + 1 and meta_state(run_dir)[0] == "failed"
        assert "stopped: host: the run folder" in (run_dir / "run.log").read_text()  # said once there was room
        filler[0].unlink()
        resume_here(run_dir)
        assert server.count == SCRIPTED_BUDGET - 1 + 1  # the request the server refused, sent again
    finally:
        server.close()
    assert outcome(run_dir) == scripted_reference


def test_the_commit_of_a_candidate_failing(tmpfs, tmp_path):
    """The disk fills while the last candidate is evaluated (slowly): its answer is in the
    cache, its commit fails. The resume evaluates it again without a request."""
    slow = toy_answer("    if not SLEPT:\n        SLEPT.append(1)\n        time.sleep(0.5)\n"
                      "    return -np.abs(options - 0.3)\n").replace("import numpy as np", "import time\n\n"
                                                                           "import numpy as np\n\nSLEPT = []")
    last = SCRIPTED_BUDGET - 2  # the last candidate's request

    def slow_last() -> ScriptedServer:
        server = ScriptedServer(default=lambda n: answer(slow) if n == last else answer_for(server.requests[n]))
        return server

    reference = tmp_path / "reference"
    with slow_last() as server:
        run_here(scripted(server), reference)

    disk = tmpfs("disk", "4m")
    run_dir = disk / "run"
    with slow_last() as server:
        job = Background(tmp_path, "commit", "run", *scripted(server), f"hydra.run.dir={run_dir}")
        deadline = time.monotonic() + 120
        while ((committed(run_dir) < SCRIPTED_BUDGET - 1 or cached_answers(run_dir) < SCRIPTED_BUDGET - 1)
               and job.process.poll() is None):
            assert time.monotonic() < deadline, job.text()
            time.sleep(0.005)
        filler = fill(disk)  # the last candidate's evaluation sleeps on
        assert_one_line(job, job.wait(), f"the run folder {run_dir} is on a full filesystem (database or disk is full)")
        assert committed(run_dir) == SCRIPTED_BUDGET - 1 and cached_answers(run_dir) == SCRIPTED_BUDGET - 1
        assert meta_state(run_dir)[0] == "failed"
        filler.unlink()
        resume_here(run_dir)
        assert server.count == SCRIPTED_BUDGET - 1  # nothing asked twice
    assert outcome(run_dir) == outcome(reference)


# ---- the sandbox's temporary folder ----------------------------------------------------------
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_the_sandbox_temporary_folder_full_or_read_only(fault, tmpfs, tmp_path, monkeypatch, offline_reference):
    """The sandbox's temporary folder (TMPDIR) fills up or turns read-only once the run has
    committed a few candidates: the host's fault, never a candidate's failure."""
    temp = tmpfs("temp", "4m")
    run_dir = tmp_path / "run"
    job = Background(tmp_path, "temp", "run", *OFFLINE, f"hydra.run.dir={run_dir}", env={"TMPDIR": str(temp)})
    deadline = time.monotonic() + 120
    while committed(run_dir) < 3:
        assert job.process.poll() is None and time.monotonic() < deadline, job.text()
        time.sleep(0.005)
    # Frozen meanwhile: a run of the toy problem is fast enough to finish while a remount
    # waits its turn, and the fault is meant to come in the middle of it.
    job.process.send_signal(signal.SIGSTOP)
    try:
        filler = fill(temp) if fault == "full" else remount(temp, "ro")
    finally:
        job.process.send_signal(signal.SIGCONT)
    cause = "is full" if fault == "full" else "cannot be written (Read-only file system)"
    assert_one_line(job, job.wait(), f"the sandbox cannot run jobs: its temporary folder {temp}/evo-sandbox-",
                    cause, "set TMPDIR to another folder", f"then resume with: evo resume {run_dir}")
    assert 3 <= committed(run_dir) < OFFLINE_BUDGET
    state, reason = meta_state(run_dir)
    assert state == "failed" and reason.startswith("host: the sandbox cannot run jobs") and cause in reason
    if fault == "full":
        filler.unlink()
    else:
        remount(temp, "rw")
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # what TMPDIR says to a new process
    resume_here(run_dir)
    assert outcome(run_dir) == offline_reference


# ---- the run folder read-only ----------------------------------------------------------------
def test_a_read_only_run_folder_is_refused_and_still_read(tmpfs, capsys, offline_reference):
    disk = tmpfs("disk", "8m")
    run_dir = disk / "run"
    run_here([*OFFLINE, "budget.evaluations=10"], run_dir)
    remount(disk, "ro")
    refused = run_evo("resume", str(run_dir), f"budget.evaluations=+{OFFLINE_BUDGET - 10}")
    assert refused.returncode == EXIT_HOST
    assert refused.stderr == (f"evo: error: the run folder {run_dir} is read-only (Read-only file system);"
                              " make it writable\n")
    fresh = run_evo("run", *OFFLINE, f"hydra.run.dir={disk / 'other'}")
    assert fresh.returncode == EXIT_HOST and "is read-only" in fresh.stderr and not (disk / "other").exists()
    shown = inspect_here(run_dir, capsys)
    assert shown["state"] == "finished" and shown["budget"]["evaluations"]["used"] == 10
    remount(disk, "rw")
    from evo.app import resume

    with contextlib.redirect_stdout(io.StringIO()):
        assert resume(run_dir, [f"budget.evaluations=+{OFFLINE_BUDGET - 10}"]) == 0
    assert outcome(run_dir) == offline_reference


def test_a_run_folder_turning_read_only_mid_run(tmp_path, capsys, scripted_reference):
    """An ext4 error remounts the run folder's filesystem read-only while candidate 5's
    request is answered. Nothing committed is lost (every commit is synced to the disk);
    the state cannot be written there, so the run reads as killed. After a filesystem
    check the run resumes."""
    if not (shutil.which("mkfs.ext4") and shutil.which("e2fsck")):
        pytest.skip("mkfs.ext4 and e2fsck are needed to make an ext4 filesystem fail")
    image, disk = tmp_path / "ext4.img", tmp_path / "disk"
    disk.mkdir()
    with open(image, "wb") as out:
        out.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True, capture_output=True)
    mount("-o", "loop,errors=remount-ro", str(image), str(disk))
    try:
        device = Path(subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(disk)], capture_output=True,
                                     text=True, check=True).stdout.strip()).name
        trigger = Path("/sys/fs/ext4") / device / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"{trigger} is missing: this kernel cannot be asked for an ext4 error")
        run_dir = disk / "run"

        def fail_the_disk() -> None:
            trigger.write_text("evo test: a failing disk\n")

        server = faulting_server(run_dir, fail_the_disk)
        try:
            job = Background(tmp_path, "ext4", "run", *scripted(server), f"hydra.run.dir={run_dir}")
            assert_one_line(job, job.wait(), f"the run folder {run_dir} is read-only", "make it writable")
            subprocess.run(["umount", str(disk)], check=True, capture_output=True)
            subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True)
            mount("-o", "loop,errors=remount-ro", str(image), str(disk))
            assert committed(run_dir) == FAULT_AT + 1  # every commit reached the disk
            assert inspect_here(run_dir, capsys)["state"] == "killed"
            resume_here(run_dir)
        finally:
            server.close()
        assert outcome(run_dir) == scripted_reference
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# ---- a folder that held files before -------------------------------------------------------
def test_a_run_that_fails_to_start_keeps_the_folders_own_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = run_evo("run", *TOY, "+problem.instance.instances=-1", f"hydra.run.dir={folder}")
    assert result.returncode == 2 and "cannot be loaded" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
