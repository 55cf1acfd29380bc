"""The run store: one SQLite file per run, the single source of truth.

Every finished candidate is committed in one transaction together with the run's
statistics and the bandit's snapshot after it; that commit is the checkpoint. LLM answers
are written the moment they arrive, in their own transaction, so that a kill between
the answer and the candidate's commit never pays for the answer twice.

The archive, the bandit and the hash tables are not stored separately: they are a pure
function of the committed candidates, rebuilt by replaying them in order (see
``evo.search_state``). That keeps one writer path and nothing to drift.

There is no random generator state to store either, and that is by design: every random
choice about a candidate draws from a generator seeded by (run seed, candidate id), never
from a generator carried along the run. A resumed run therefore recreates exactly the
generators the uninterrupted run would have used, whatever was in flight when it stopped.
So the store holds the candidates, the LLM cache, the budget counters (``state``) and the
run's resolved config (``meta.config``, what ``evo resume`` continues with) - and a kill
at any moment (SIGKILL included) loses at most the work that was not yet committed.

One process writes a run: ``writer_lock`` holds an flock on ``RUN_DIR/.lock`` for the
writer's lifetime. Readers take no lock (WAL lets them read while the run writes). The
run's ``meta.state`` is ``running`` while a writer goes and ``finished``, ``interrupted``
or ``failed`` after it; a writer killed outright leaves ``running`` behind, which
``Store.run_state`` reports as ``killed`` because nobody holds the lock (so does a writer
whose folder turned read-only under it: nothing could be recorded there).

A write that the host refuses (a full or read-only filesystem, see ``evo.host``) raises
a ``HostError``; SQLite rolls the transaction back, so the store holds what it held.
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from evo.errors import HostError, UserError
from evo.host import write_fault

# 2: candidates and llm_cache have model_name (several LLMs in one run). A store of
# version 1 is read as it is (model_name "") and migrated when a writer opens it.
SCHEMA_VERSION = 2
STORE_NAME = "run.sqlite"
LOCK_NAME = ".lock"
_TABLES = ("meta", "candidates", "llm_cache", "state", "test_scores")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    batch INTEGER NOT NULL,
    operator TEXT NOT NULL,
    parents TEXT NOT NULL,
    thought TEXT NOT NULL,
    code TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL,
    score REAL,
    measures TEXT,
    cell INTEGER,
    archive_status INTEGER NOT NULL,
    reward REAL NOT NULL,
    syntactic_hash TEXT,
    functional_hash TEXT,
    equivalent_to INTEGER,
    dedup TEXT,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    llm_s REAL NOT NULL,
    probe_s REAL NOT NULL,
    eval_s REAL NOT NULL,
    best_score REAL,
    coverage REAL NOT NULL,
    qd_score REAL NOT NULL,
    created REAL NOT NULL,
    model_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS llm_cache (
    key TEXT PRIMARY KEY,
    sample INTEGER NOT NULL,
    model TEXT NOT NULL,
    request_json TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL,
    error TEXT NOT NULL,
    created REAL NOT NULL,
    model_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS test_scores (
    candidate_id INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    score REAL,
    error TEXT NOT NULL,
    PRIMARY KEY (candidate_id, dataset)
);
"""


@dataclass(frozen=True)
class CandidateRecord:
    """One row of ``candidates``: everything the run knows about one candidate."""

    id: int
    batch: int
    operator: str
    parents: tuple[int, ...]
    thought: str
    code: str
    status: str  # ok | equivalent | invalid | timeout | memory | crashed | forbidden | error | llm_failed
    error: str
    score: float | None
    measures: tuple[float, ...] | None
    cell: int | None
    archive_status: int  # 0 not added, 1 improved an elite, 2 new cell
    reward: float
    syntactic_hash: str | None
    functional_hash: str | None
    equivalent_to: int | None
    dedup: str | None  # "syntactic" | "functional" | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    llm_s: float
    probe_s: float
    eval_s: float
    best_score: float | None
    coverage: float
    qd_score: float
    created: float
    # The configured name of the model that answered (llm.models), "" for the single
    # unnamed model; ``model`` is the model id the provider answered with.
    model_name: str = ""

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["parents"] = json.dumps(list(self.parents))
        row["measures"] = None if self.measures is None else json.dumps(list(self.measures))
        return row

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "CandidateRecord":
        values = dict(row)
        values.setdefault("model_name", "")  # a store of schema 1, read as it is
        values["parents"] = tuple(json.loads(values["parents"]))
        if values["measures"] is not None:
            values["measures"] = tuple(json.loads(values["measures"]))
        return cls(**values)


_COLUMNS = [f.name for f in fields(CandidateRecord)]
_INSERT = f"INSERT INTO candidates ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"


class Store:
    """Access to one run's ``run.sqlite``. Open with ``Store.create``, ``Store.open``
    (the single writer) or ``Store.open_readonly`` (any number of readers, also while
    the run is going)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, writable: bool):
        self.path = path
        self._db = connection
        self._db.row_factory = sqlite3.Row
        self.writable = writable
        # One connection is shared by the engine's threads; the lock keeps each
        # transaction whole (sqlite3's own serialisation is per statement).
        self._lock = threading.RLock()

    # ---- opening -------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, meta: dict[str, str]) -> "Store":
        path = Path(run_dir) / STORE_NAME
        if path.exists():
            raise UserError(f"{run_dir} already holds a run; use `evo resume {run_dir}`")
        store = cls(path, _connect(path), writable=True)
        try:
            store._tune_writer()
            # Tables and meta in one transaction (executescript would commit each statement):
            # a kill during creation leaves an empty file, never a store without its version.
            with store._transaction() as db:
                db.execute("BEGIN")  # sqlite3 opens no transaction for DDL by itself
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("created", repr(time.time())), *meta.items()],
                )
        except HostError:
            # No room to create it: a store that never held a run is not left behind.
            store.close()
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
            raise
        return store

    @classmethod
    def open(cls, run_dir: Path) -> "Store":
        """The writer's store. It is checked whole (``PRAGMA quick_check``) first: a run
        store damaged by a copy cut short must be refused before anything is replayed
        or appended to it; the check reads each page once, a fraction of a second."""
        path = _existing_store(run_dir)
        store = cls(path, _connect(path), writable=True)
        try:
            store._check_schema()
            store._check_integrity()
            store._tune_writer()
            store._migrate()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open_readonly(cls, run_dir: Path) -> "Store":
        path = _existing_store(run_dir)
        # A URI, so that "?" or "#" in a folder's name cannot be read as URI syntax. On a
        # read-only filesystem SQLite cannot make the WAL's index file that readers share;
        # nothing can write there either, so the store is read as immutable.
        immutable = "&immutable=1" if os.statvfs(path).f_flag & os.ST_RDONLY else ""
        store = cls(path, _connect(path, uri=path.resolve().as_uri() + "?mode=ro" + immutable), writable=False)
        try:
            store._check_schema()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self._db.close()

    def _check_schema(self) -> None:
        try:
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = self.meta().get("schema_version") if "meta" in tables else None
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_CORRUPT":
                raise UserError(_damaged(self.path, str(exc))) from None
            raise UserError(f"{self.path} is not an evo run store ({exc})") from None
        if version is None:
            raise UserError(f"{self.path} is not an evo run store (no schema version)")
        if not version.isdigit():
            raise UserError(f"{self.path} is not an evo run store (schema version {version!r})")
        if int(version) > SCHEMA_VERSION:
            raise UserError(
                f"{self.path} was written by a newer evo (store schema {version}, this evo reads"
                f" {SCHEMA_VERSION}); upgrade evo to continue or read this run"
            )
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            raise UserError(f"{self.path} is not a complete evo run store (no table {', '.join(missing)})")

    def _migrate(self) -> None:
        """Bring a store of an older schema to this one, in one transaction."""
        if int(self.meta()["schema_version"]) >= SCHEMA_VERSION:
            return
        with self._transaction() as db:
            db.execute("BEGIN")
            for table in ("candidates", "llm_cache"):
                if "model_name" not in _columns(db, table):
                    db.execute(f"ALTER TABLE {table} ADD COLUMN model_name TEXT NOT NULL DEFAULT ''")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _check_integrity(self) -> None:
        try:
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            raise UserError(_damaged(self.path, problems[0]))

    def config_yaml(self) -> str | None:
        """The run's resolved config as YAML: what ``evo resume`` continues with."""
        return self.meta().get("config")

    def run_state(self) -> str:
        """running | finished | interrupted | failed, or killed: the store says running
        but no process holds the writer's lock (SIGKILL, power loss, a second Ctrl-C)."""
        state = self.meta().get("state", "running")
        if state == "running" and not writer_active(self.path.parent):
            return "killed"
        return state

    # ---- meta and key-value state --------------------------------------------------
    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def set_run_state(self, state: str, stop_reason: str) -> None:
        """The run's state and why it stopped, together (see ``run_state``)."""
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [("state", state), ("stop_reason", stop_reason)])

    def get_state(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    # ---- candidates ------------------------------------------------------------------
    def commit_candidate(self, record: CandidateRecord, state: dict[str, Any]) -> None:
        """The checkpoint: the candidate and the derived state after it, atomically."""
        with self._transaction() as db:
            db.execute(_INSERT, record.to_row())
            db.executemany(
                "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in state.items()],
            )

    def candidates(self, below: int | None = None) -> Iterator[CandidateRecord]:
        query = "SELECT * FROM candidates"
        args: tuple = ()
        if below is not None:
            query += " WHERE id < ?"
            args = (below,)
        for row in self._db.execute(query + " ORDER BY id", args):
            yield CandidateRecord.from_row(row)

    def candidate(self, cid: int) -> CandidateRecord | None:
        row = self._db.execute("SELECT * FROM candidates WHERE id = ?", (cid,)).fetchone()
        return None if row is None else CandidateRecord.from_row(row)

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]

    def totals(self) -> dict[str, float]:
        row = self._db.execute(
            "SELECT COUNT(*) AS n, COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"
            " COALESCE(SUM(completion_tokens), 0) AS completion_tokens,"
            " COALESCE(SUM(cost_usd), 0) AS cost_usd FROM llm_cache"
        ).fetchone()
        return dict(row)

    # ---- LLM cache ------------------------------------------------------------------
    def cached_response(self, key: str) -> sqlite3.Row | None:
        return self._db.execute("SELECT * FROM llm_cache WHERE key = ?", (key,)).fetchone()

    def cache_response(self, key: str, sample: int, request_json: str, response: Any, model_name: str = "") -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key, sample, response.model, request_json, response.text, response.prompt_tokens,
                    response.completion_tokens, response.cost_usd, response.latency_s, response.error, time.time(),
                    model_name,
                ),
            )

    def usage_by_model(self) -> dict[str, dict[str, float]]:
        """What the LLM cache holds per model (every answer paid for, reflections
        included): {name: {requests, prompt_tokens, completion_tokens, cost_usd, seconds}},
        keyed by the configured name, or by the provider's model id for an unnamed model."""
        name = "model_name" if "model_name" in _columns(self._db, "llm_cache") else "''"
        rows = self._db.execute(
            f"SELECT CASE WHEN {name} = '' THEN model ELSE {name} END AS label, COUNT(*) AS requests,"
            " SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,"
            " SUM(cost_usd) AS cost_usd, SUM(latency_s) AS seconds FROM llm_cache GROUP BY label ORDER BY label")
        return {r["label"]: {k: r[k] for k in ("requests", "prompt_tokens", "completion_tokens", "cost_usd", "seconds")}
                for r in rows}

    # ---- test-set scores, computed on demand ------------------------------------------
    def test_scores(self, cid: int) -> dict[str, tuple[float | None, str]]:
        rows = self._db.execute("SELECT dataset, score, error FROM test_scores WHERE candidate_id = ?", (cid,))
        return {r["dataset"]: (r["score"], r["error"]) for r in rows}

    def save_test_score(self, cid: int, dataset: str, score: float | None, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO test_scores VALUES (?, ?, ?, ?)", (cid, dataset, score, error)
            )

    # ---- writing ----------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, whole or not at all; a write the host refuses is a HostError."""
        try:
            with self._lock, self._db:
                yield self._db
        except sqlite3.Error as exc:
            fault = write_fault(exc, self.path.parent)
            if fault is None:
                raise
            raise fault from None

    def _tune_writer(self) -> None:
        # WAL lets readers (inspect, report) work while the run writes. synchronous=FULL
        # syncs every commit to the disk: a commit survives a kill, a power cut and a
        # filesystem that turns read-only after an error (NORMAL loses the commits not yet
        # written back then). It costs about 6 ms per candidate here, 0.15% of an evaluation.
        with self._transaction() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _connect(path: Path, uri: str | None = None) -> sqlite3.Connection:
    try:
        return sqlite3.connect(uri or path, timeout=30, check_same_thread=False, isolation_level="DEFERRED",
                               uri=uri is not None)
    except sqlite3.DatabaseError as exc:  # e.g. a folder where the file should be
        raise UserError(f"{path} cannot be opened as a run store ({exc})") from None


@contextmanager
def writer_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's single-writer lock (an flock on ``RUN_DIR/.lock``) for the block.

    The kernel drops an flock when its process dies, however it dies, so a killed
    writer never leaves a stale lock behind."""
    run_dir = Path(run_dir)
    try:
        handle = open(run_dir / LOCK_NAME, "a")
    except OSError as exc:
        raise write_fault(exc, run_dir) from None
    # A reader asking ``writer_active`` holds a shared lock for a moment; that must not
    # turn a writer away, so a refused lock is retried for half a second.
    deadline = time.monotonic() + 0.5
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.02)
                continue
        handle.close()
        raise UserError(f"{run_dir} is being written by another evo process; wait for it or stop it first"
                        " (read-only commands such as `evo inspect` work meanwhile)") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def writer_active(run_dir: Path) -> bool:
    """Whether some process holds the run's writer lock right now."""
    try:
        handle = open(Path(run_dir) / LOCK_NAME, "rb")
    except OSError:
        return False  # no lock file: no writer ever ran here, or it cannot be read
    with handle:
        try:
            # A shared lock is refused only while an exclusive one (the writer's) is held.
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _damaged(path: Path, problem: str) -> str:
    return (f"{path} is damaged (truncated or corrupt: {problem.splitlines()[0]}); it cannot be used."
            " A copy cut short? Copy the run folder again, with its run.sqlite-wal file if there is one")


def _existing_store(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no such run folder: {run_dir}")
    path = run_dir / STORE_NAME
    if not path.is_file():
        raise UserError(f"{run_dir} is not an evo run folder (no {STORE_NAME})")
    return path
