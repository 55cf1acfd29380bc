"""What the read-only commands (inspect, elites, show, export, report) share: opening a run
without disturbing its writer, rebuilding its archive as the run recorded it, the
run's state, lineage, and plain-JSON output.

Readers never take the writer's lock and never write through the reader connection; a
live run keeps going while any number of these commands read it (SQLite WAL).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from evo.app import snapshot_config
from evo.errors import UserError
from evo.search_state import SearchState
from evo.settings import Settings, read_settings
from evo.store import CandidateRecord, Store

# Statuses of a candidate whose code could not be scored, by where it failed.
SANDBOX_FAILURES = ("timeout", "memory", "crashed", "forbidden", "error")
# Test-score rows of a problem's baselines live in ``test_scores`` under this candidate id,
# with the dataset key ``baseline:<name>:<set>``; real candidates have ids >= 0.
BASELINE_ID = -1


def baseline_key(name: str, dataset: str) -> str:
    return f"baseline:{name}:{dataset}"


@dataclass(frozen=True)
class Run:
    """One run folder, read at one moment: its records and the search state they give."""

    run_dir: Path
    store: Store
    meta: dict[str, str]
    cfg: DictConfig
    settings: Settings
    state: SearchState
    run_state: str  # running | finished | interrupted | failed | killed

    @property
    def records(self) -> list[CandidateRecord]:
        return [self.state.records[cid] for cid in sorted(self.state.records)]

    def record(self, cid: int) -> CandidateRecord:
        record = self.state.records.get(cid)
        if record is None:
            last = max(self.state.records, default=-1)
            raise UserError(f"no candidate #{cid} in {self.run_dir} (ids are 0..{last})")
        return record

    def best(self) -> CandidateRecord | None:
        elite = self.state.archive.best()
        return None if elite is None else self.state.records[elite.cid]

    def cell_coordinates(self, cell: int | None) -> list[int] | None:
        return None if cell is None else list(self.state.archive.cell_coordinates(cell))

    def measures(self, record: CandidateRecord) -> dict[str, float] | None:
        if record.measures is None:
            return None
        return dict(zip(self.settings.measures, record.measures))

    def problem_group(self) -> str | None:
        """The problem's config name (``problem=NAME``), from Hydra's snapshot if it has one."""
        path = self.run_dir / ".hydra" / "hydra.yaml"
        if not path.is_file():
            return None
        choice = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices.problem", default=None)
        return None if choice is None else str(choice)

    def problem_overrides(self) -> list[str]:
        """The run's command-line overrides that shape its problem: what `evo evaluate`
        needs to score a heuristic on the same training set."""
        path = self.run_dir / ".hydra" / "overrides.yaml"
        if not path.is_file():
            return []
        keep = []
        for override in OmegaConf.to_container(OmegaConf.load(path)) or []:
            key = str(override).split("=", 1)[0].lstrip("+~")
            if key == "problem" or key.startswith("problem.") or key == "hydra.searchpath":
                keep.append(str(override))
        return keep


@contextmanager
def open_run(run_dir: Path) -> Iterator[Run]:
    """Open a run folder read-only and rebuild its search state from the store."""
    run_dir = Path(run_dir)
    # Read the state before the candidates: a run seen "finished" has committed them all.
    store = Store.open_readonly(run_dir)
    try:
        state_name = store.run_state()
        meta = store.meta()
        cfg = snapshot_config(run_dir)
        settings = read_settings(cfg)
        # One SELECT over the candidates: a consistent snapshot even while the run writes.
        # The archive as each candidate's commit recorded it: no pyribs (seconds of imports).
        try:
            state = SearchState.as_recorded(store, settings)
        except (ValueError, KeyError, TypeError) as exc:
            # A store this evo cannot replay (written by an incompatible version, say).
            raise UserError(f"the archive of {run_dir} cannot be rebuilt: {exc}") from None
        yield Run(run_dir, store, meta, cfg, settings, state, state_name)
    finally:
        store.close()


def lineage(records: dict[int, CandidateRecord], cid: int) -> list[CandidateRecord]:
    """The candidate and its ancestors through first parents, back to the seed."""
    chain = [records[cid]]
    seen = {cid}
    while chain[-1].parents:
        parent = chain[-1].parents[0]
        if parent in seen or parent not in records:
            break  # a parent outside the store would be a corrupt run; stop rather than loop
        seen.add(parent)
        chain.append(records[parent])
    return chain


def parser(command: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser whose errors become one-line UserErrors (exit 2)."""
    result = argparse.ArgumentParser(prog=f"evo {command}", description=description)

    def error(message: str) -> None:
        raise UserError(f"evo {command}: {message}")

    result.error = error  # type: ignore[method-assign]
    return result


def finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity; such a score is reported as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def write_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def fmt_score(value: float | None, width: int = 0) -> str:
    text = "—" if value is None else f"{value:.4f}"
    return text.rjust(width)
