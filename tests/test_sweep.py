"""Sweeps (issue #10): `evo run --multirun` through the submitit_local launcher, each job in
its own process and its own folder; the same sweep launched again skips the finished runs
and resumes an interrupted one, and extends them when the budget grew; a job whose folder
holds a run of another config is refused; the SLURM preset's sbatch script, and a SLURM
sweep (through a stand-in for SLURM's commands) whose preempted job is requeued and resumed.

Real `evo` processes on the toy problem with the offline backend and tiny budgets.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EVO, REPO, TOY, evo_env, run_evo

SWEEP = [*TOY, "--multirun", "seed=0,1", "hydra/launcher=submitit_local"]
# Named after the swept overrides alone: the budget and the problem are the same for all.
FOLDERS = ["seed=0", "seed=1"]


def store_facts(run_dir: Path) -> tuple[dict[str, str], int]:
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('state', 'stop_reason', 'seed')"))
        return meta, db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]


def fingerprint(run_dir: Path) -> tuple[int, str]:
    path = run_dir / "run.sqlite"
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("sweep") / "sweep"
    return folder, run_evo("run", *SWEEP, "budget.evaluations=6", f"hydra.sweep.dir={folder}")


def test_a_sweep_runs_each_job_in_a_process_and_a_folder_of_its_own(sweep):
    folder, result = sweep
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.parent.name for p in folder.glob("*/run.sqlite")) == FOLDERS
    for name, seed in zip(FOLDERS, ("0", "1")):
        meta, count = store_facts(folder / name)
        assert meta == {"state": "finished", "stop_reason": "budget.evaluations reached (6)", "seed": seed}
        assert count == 6
        assert f"{name}  started  budget.evaluations reached (6)" in result.stderr, result.stderr
    # The jobs ran through submitit: one log folder per job, each with the run's summary.
    logs = sorted(folder.glob(".submitit/*/*_log.out"))
    assert len(logs) == 2, logs
    assert all("evaluations:  6" in log.read_text() for log in logs)
    assert f"compare the runs: evo compare {folder}" in result.stderr


def test_compare_on_the_sweep_table_json_and_plot(sweep, capsys, tmp_path):
    from evo.cli import main

    folder, result = sweep
    assert result.returncode == 0, result.stderr
    bests = []
    for name in FOLDERS:
        with sqlite3.connect(f"file:{folder / name / 'run.sqlite'}?mode=ro", uri=True) as db:
            bests.append(db.execute("SELECT MIN(score) FROM candidates WHERE status = 'ok'").fetchone()[0])
    mean = sum(bests) / 2
    std = abs(bests[0] - bests[1]) / math.sqrt(2)  # the sample std of two values

    assert main(["compare", str(folder), "--json"]) == 0
    c = json.loads(capsys.readouterr().out)
    assert c["columns"] == [] and c["score_name"] == "regret" and c["test_sets"] == ["toy-test"]
    [group] = c["groups"]
    assert group["seeds"] == [0, 1] and group["states"] == {"finished": 2}
    assert group["best_score"]["mean"] == pytest.approx(mean) and group["best_score"]["n"] == 2
    assert group["best_score"]["std"] == pytest.approx(std)
    assert group["evaluations"] == {"mean": 6.0, "std": 0.0, "n": 2}
    assert [r["run_dir"] for r in c["runs"]] == [str(folder / name) for name in FOLDERS]
    assert all(r["elapsed_s"] > 0 and r["cost_usd"] == 0.0 for r in c["runs"])

    page = tmp_path / "compare.html"
    assert main(["compare", str(folder / FOLDERS[0]), str(folder), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "2 runs in 1 group; mean ± std over seeds" in out  # a run named twice counts once
    assert f"{mean:.4f} ± {std:.4f}" in out
    html = page.read_text()
    assert html.count("<polyline") == 2 and "seed=0" in html and "seed=1" in html
    assert "<script" not in html and "src=" not in html  # self-contained: nothing to fetch


def test_the_same_sweep_launched_again_skips_its_finished_runs(sweep):
    folder, first = sweep
    assert first.returncode == 0, first.stderr
    before = {name: fingerprint(folder / name) for name in FOLDERS}
    again = run_evo("run", *SWEEP, "budget.evaluations=6", f"hydra.sweep.dir={folder}")
    assert again.returncode == 0, again.stdout + again.stderr
    for name in FOLDERS:
        assert f"{name}  skipped  already finished" in again.stderr, again.stderr
        assert fingerprint(folder / name) == before[name]  # not even opened for writing
        assert store_facts(folder / name)[1] == 6
    assert sorted(p.parent.name for p in folder.glob("*/run.sqlite")) == FOLDERS


def test_a_sweep_launched_again_with_a_larger_budget_extends_its_runs(sweep, tmp_path):
    folder, result = sweep
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "sweep"
    for name in FOLDERS:
        shutil.copytree(folder / name, copy / name)
    # Hydra's basic launcher this time: the jobs run one after the other in the launching process.
    longer = run_evo("run", *TOY, "--multirun", "seed=0,1", "budget.evaluations=8", f"hydra.sweep.dir={copy}")
    assert longer.returncode == 0, longer.stdout + longer.stderr
    for name in FOLDERS:
        assert f"{name}  resumed  budget.evaluations reached (8)" in longer.stderr, longer.stderr
        meta, count = store_facts(copy / name)
        assert (meta["state"], count) == ("finished", 8)
    # Another constant than the runs had is another experiment: refused, the runs untouched.
    before = {name: fingerprint(copy / name) for name in FOLDERS}
    other = run_evo("run", *TOY, "--multirun", "seed=0,1", "budget.evaluations=8", "window=2",
                    f"hydra.sweep.dir={copy}")
    assert other.returncode == 2, other.stdout + other.stderr
    for name in FOLDERS:
        assert f"{name}  failed   {copy / name} holds a run with another config (window differ)" in other.stderr
        assert fingerprint(copy / name) == before[name]


def test_a_run_its_llm_provider_stopped_is_resumed_not_skipped(tmp_path):
    from evo.compose import compose_config
    from evo.sweep import decide

    run_dir = tmp_path / "run"
    dead = [*TOY, "seed=0", "budget.evaluations=5", "llm=local", "llm.base_url=http://127.0.0.1:9/v1",
            "llm.max_retries=0", "evaluation.max_consecutive_llm_failures=2"]
    stopped = run_evo("run", *dead, f"hydra.run.dir={run_dir}")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    meta, _ = store_facts(run_dir)
    assert meta["state"] == "finished" and meta["stop_reason"].startswith("llm: 2 requests in a row failed")
    assert decide(compose_config(dead), run_dir) == "resumed"


def test_an_interrupted_sweep_launched_again_resumes_its_run(tmp_path):
    folder = tmp_path / "sweep"
    args = [*TOY, "--multirun", "seed=5", "budget.evaluations=20", "hydra/launcher=submitit_local",
            f"hydra.sweep.dir={folder}"]
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        # A session of its own: the Ctrl-C below reaches every process of the sweep, as a
        # terminal's does.
        launcher = subprocess.Popen([*EVO, "run", *args], stdout=stdout, stderr=stderr, env=evo_env(), cwd=REPO,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
    run_dir = folder / "budget.evaluations=20,problem=toy,seed=5"
    deadline = time.monotonic() + 120
    while not _committed(run_dir):
        assert launcher.poll() is None and time.monotonic() < deadline, out.read_text() + err.read_text()
        time.sleep(0.05)
    os.killpg(launcher.pid, signal.SIGINT)
    code = launcher.wait(120)
    text = err.read_text()
    assert code == 130, out.read_text() + text
    assert "budget.evaluations=20,problem=toy,seed=5  started  interrupted" in text
    assert f"finish it: launch the same command again with hydra.sweep.dir={folder}" in text
    meta, count = store_facts(run_dir)
    assert meta["state"] == "interrupted" and 0 < count < 20, (meta, count)  # stopped gracefully

    again = run_evo("run", *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "budget.evaluations=20,problem=toy,seed=5  resumed  budget.evaluations reached (20)" in again.stderr
    meta, count = store_facts(run_dir)
    assert (meta["state"], count) == ("finished", 20)


def _committed(run_dir: Path) -> bool:
    try:
        return store_facts(run_dir)[1] > 0
    except sqlite3.Error:  # not there yet, or being created
        return False


def test_the_slurm_preset_writes_the_sbatch_script_and_a_refused_submission_is_one_line(tmp_path):
    """No cluster here: stand-ins for sbatch (which keeps the script and refuses it, as for
    a wrong partition) and srun (which submitit only looks for)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = tmp_path / "script.sh"
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\nfor a; do last="$a"; done\ncp "$last" {script}\n'
                                    'echo "sbatch: error: invalid partition specified: gpu-none" >&2\nexit 1\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    env = evo_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    folder = tmp_path / "sweep"
    result = subprocess.run(
        [*EVO, "run", *TOY, "--multirun", "seed=0,1,2", "hydra/launcher=submitit_slurm",
         "hydra.launcher.partition=gpu-none", "hydra.launcher.timeout_min=90", "hydra.launcher.cpus_per_task=3",
         "hydra.launcher.array_parallelism=2", f"hydra.sweep.dir={folder}"],
        capture_output=True, text=True, env=env, cwd=REPO, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        "evo: error: the launcher failed: sbatch: error: invalid partition specified: gpu-none"
        f" (jobs' logs: {folder / '.submitit'})")
    assert "Traceback" not in result.stderr
    lines = set(script.read_text().splitlines())
    for expected in ("#SBATCH --partition=gpu-none", "#SBATCH --time=90", "#SBATCH --cpus-per-task=3",
                     "#SBATCH --array=0-2%2", "#SBATCH --signal=USR2@120", "#SBATCH --job-name=evo"):
        assert expected in lines, script.read_text()

    if shutil.which("sbatch") or shutil.which("srun"):
        return  # a SLURM machine: the refusal below cannot happen there
    # Without SLURM's tools the preset is refused before anything is launched.
    no_slurm = run_evo("run", *TOY, "--multirun", "seed=0,1", "hydra/launcher=submitit_slurm",
                       f"hydra.sweep.dir={tmp_path / 'nothing'}")
    assert no_slurm.returncode == 2
    assert no_slurm.stderr.startswith("evo: error: hydra/launcher=submitit_slurm needs SLURM"), no_slurm.stderr
    assert not (tmp_path / "nothing").exists()


# ---- a stand-in for SLURM -------------------------------------------------------------------
# Just enough of sbatch, srun, scontrol and sacct for submitit: sbatch runs each task of the
# array here, in the background, with SLURM's environment; srun runs the command into its
# log files and notes its pid; `scontrol requeue` makes the task run again once it exits.
FAKE_SBATCH = """
import os, re, subprocess, sys
from pathlib import Path
script = Path(sys.argv[-1])
tasks = int(re.search(r"--array=0-(\\d+)", script.read_text()).group(1)) + 1
array = str(5000 + os.getpid() % 1000)
for i in range(tasks):
    subprocess.Popen([sys.executable, os.path.join(os.environ["FAKE_SLURM"], "task.py"), str(script), array, str(i)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
print("Submitted batch job " + array)
"""
FAKE_TASK = """
import os, re, subprocess, sys, time
from pathlib import Path
script, array, task = sys.argv[1:]
job = array + "_" + task
folder = re.search(r"_submit (\\S+)", Path(script).read_text()).group(1).replace("%j", job)
while not Path(folder, job + "_submitted.pkl").exists():  # submitit moves it in after sbatch answers
    time.sleep(0.05)
env = dict(os.environ, SLURM_JOB_ID=str(int(array) + 1 + int(task)), SLURM_ARRAY_JOB_ID=array,
           SLURM_ARRAY_TASK_ID=task, SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_NTASKS="1",
           SLURM_JOB_NUM_NODES="1", SLURM_JOB_NODELIST="localhost", FAKE_SLURM_JOB=job)
requeue = Path(os.environ["FAKE_SLURM"], "requeue_" + job)
while True:
    subprocess.run(["bash", script], env=env)
    if not requeue.exists():
        break
    requeue.unlink()
"""
FAKE_SRUN = """
import os, subprocess, sys
args = sys.argv[1:]
logs = {}
while args[0].startswith("--"):
    flag = args.pop(0)
    if flag in ("--output", "--error"):
        logs[flag] = args.pop(0)
job = os.environ["FAKE_SLURM_JOB"]
array, task = job.split("_")
paths = {k: v.replace("%A", array).replace("%a", task).replace("%t", "0") for k, v in logs.items()}
for path in paths.values():
    os.makedirs(os.path.dirname(path), exist_ok=True)
with open(paths["--output"], "a") as out, open(paths["--error"], "a") as err:
    child = subprocess.Popen(args, stdout=out, stderr=err)
    pid_file = os.path.join(os.environ["FAKE_SLURM"], "pid_" + job)
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(pid_file + ".tmp", pid_file)
    sys.exit(child.wait())
"""
FAKE_SCONTROL = """
import os, sys
assert sys.argv[1] == "requeue"
open(os.path.join(os.environ["FAKE_SLURM"], "requeue_" + sys.argv[2]), "w").close()
"""
FAKE_SACCT = """
print("JobID|State|NodeList")
"""


def fake_slurm(folder: Path) -> dict[str, str]:
    folder.mkdir()
    for name, text in {"sbatch": FAKE_SBATCH, "srun": FAKE_SRUN, "scontrol": FAKE_SCONTROL,
                       "sacct": FAKE_SACCT, "task.py": FAKE_TASK}.items():
        (folder / name).write_text(f"#!{sys.executable}\n{text.lstrip()}")
        (folder / name).chmod(0o755)
    env = evo_env()
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    env["FAKE_SLURM"] = str(folder)
    return env


def test_a_slurm_sweep_whose_job_is_preempted_is_requeued_and_resumes_its_run(tmp_path):
    env = fake_slurm(tmp_path / "slurm")
    folder = tmp_path / "sweep"
    args = [*EVO, "run", *TOY, "--multirun", "seed=0,1", "budget.evaluations=16", "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=cpu", f"hydra.sweep.dir={folder}"]
    with open(tmp_path / "err", "w") as err:
        launcher = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO,
                                    stdin=subprocess.DEVNULL)
    pids = list((tmp_path / "slurm").glob("pid_*_0"))
    deadline = time.monotonic() + 120
    while not (pids and _committed(folder / "seed=0")):
        assert launcher.poll() is None and time.monotonic() < deadline, (tmp_path / "err").read_text()
        time.sleep(0.05)
        pids = list((tmp_path / "slurm").glob("pid_*_0"))
    # SLURM's warning before a time limit or a preemption: submitit requeues the job.
    os.kill(int(pids[0].read_text()), signal.SIGUSR2)
    assert launcher.wait(180) == 0, (tmp_path / "err").read_text()
    text = (tmp_path / "err").read_text()
    assert "seed=0  resumed  budget.evaluations reached (16)" in text, text
    assert "seed=1  started  budget.evaluations reached (16)" in text, text
    for name in FOLDERS:
        meta, count = store_facts(folder / name)
        assert (meta["state"], count) == ("finished", 16)
    assert "resuming run" in (folder / "seed=0" / "run.log").read_text()
    assert not list((tmp_path / "slurm").glob("requeue_*"))  # the requeued task ran again
