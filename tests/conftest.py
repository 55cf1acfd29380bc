"""Shared helpers: run the real `evo` command line in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EVO = [sys.executable, "-m", "evo.cli"]
# The toy problem of tests/fixtures, added through the public interface alone.
TOY = ["hydra.searchpath=[file://" + str(REPO / "tests" / "fixtures" / "conf") + "]", "problem=toy"]


def evo_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_evo(*args: str, timeout: float = 300, check: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*EVO, *args], capture_output=True, text=True, timeout=timeout, env=evo_env(),
                            cwd=cwd or REPO, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"evo {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
