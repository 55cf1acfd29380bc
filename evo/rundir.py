"""Small facts about run folders, cheap to import (the CLI checks input before heavy imports)."""
from __future__ import annotations

from pathlib import Path

# What may change when a run continues: its budgets and the sandbox's limits, and the
# number of evaluation workers (results are committed in id order, so it does not change
# the run). Anything else would make the rest of the run a different experiment.
RESUMABLE_PREFIXES = ("budget.", "sandbox.")
RESUMABLE_KEYS = ("workers",)


def may_change_on_resume(key: str) -> bool:
    return key.startswith(RESUMABLE_PREFIXES) or key in RESUMABLE_KEYS


def remove_unstarted(run_dir: Path) -> None:
    """A run that failed before its store existed leaves nothing behind."""
    if (run_dir / "run.sqlite").exists():
        return
    for path in sorted(run_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    run_dir.rmdir()
