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


# What a run that failed before its store existed may have left in its folder: Hydra's
# config snapshot, the log, the writer's lock and its reserve (evo.host).
_UNSTARTED = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", ".hydra", "run.log", ".lock",
              ".reserve")


def remove_unstarted(run_dir: Path) -> None:
    """A run that failed before its store existed leaves nothing behind; a folder that
    held other files before keeps them."""
    if (run_dir / "run.sqlite").exists():
        return
    for name in (*_UNSTARTED, ""):
        path = run_dir / name
        try:
            path.rmdir() if path.is_dir() else path.unlink()
        except OSError:
            pass  # not there, not empty (the user's own files), or the filesystem refuses
