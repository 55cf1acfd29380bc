"""Faults of the host under a run folder: its filesystem full, read-only or failing.

A write that fails because of the machine is neither bad input nor a candidate's doing,
so it is told apart from both: ``write_fault`` turns it into a ``HostError`` that names
the folder and the cause in one line. The run then stops with what it committed, and
resumes once the cause is gone.

A run whose filesystem is full must still record why it stopped. So its writer holds a
little space in reserve (``Reserve``: the file ``RUN_DIR/.reserve``) and gives it back at
the first fault, which leaves room for the run's last words: its state and a log line.
"""
from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from types import TracebackType

from evo.errors import HostError

RESERVE_NAME = ".reserve"
# A few pages: the run's state is one small transaction in the store's WAL, plus a log line.
RESERVE_BYTES = 64 << 10

_CAUSES = {
    errno.ENOSPC: ("is on a full filesystem", "free some space"),
    errno.EDQUOT: ("is over its disk quota", "free some space"),
    errno.EROFS: ("is read-only", "make it writable"),
    errno.EACCES: ("cannot be written (permission denied)", "make it writable"),
    errno.EPERM: ("cannot be written (permission denied)", "make it writable"),
}
# SQLite's error codes that mean the file could not be written, and the cause they give
# when the folder itself does not tell (a filesystem that is read-only or full).
_SQLITE_CAUSES = {"SQLITE_FULL": errno.ENOSPC, "SQLITE_READONLY": errno.EACCES, "SQLITE_IOERR": errno.EIO,
                  "SQLITE_CANTOPEN": errno.EIO}


def write_fault(exc: BaseException, folder: Path, what: str = "the run folder") -> HostError | None:
    """The ``HostError`` for ``exc``, raised while writing in ``folder``; None when the
    error is not the host's (an SQLite error of the query itself, say)."""
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "")
        code = next((c for prefix, c in _SQLITE_CAUSES.items() if name.startswith(prefix)), None)
        if code is None:
            return None
        code = _folder_cause(folder) or code
        detail = str(exc)
    elif isinstance(exc, OSError):
        code = exc.errno if exc.errno in _CAUSES else (_folder_cause(folder) or exc.errno)
        detail = exc.strerror or str(exc)
    else:
        return None
    cause, remedy = _CAUSES.get(code, ("cannot be written", "check its disk"))
    return HostError(f"{what} {folder} {cause} ({detail}); {remedy}")


def _folder_cause(folder: Path) -> int | None:
    """Why ``folder`` cannot be written, as the host tells it: its filesystem says it is
    read-only or full, or writing a byte there fails (a filesystem that turned read-only
    after an error may still say it is writable)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if st.f_bavail == 0 or (st.f_files and st.f_favail == 0):
        return errno.ENOSPC
    probe = Path(folder) / f".evo-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"?")
        finally:
            os.close(fd)
            probe.unlink()
    except OSError as exc:
        return exc.errno
    return None


class Reserve:
    """``RESERVE_BYTES`` held in the run folder while a writer runs (``with Reserve(run_dir)``),
    and given back by ``release`` at the first fault. Taking it fails, with a ``HostError``,
    when the folder has no room for it: a run that could not even say why it stopped is not
    started or resumed."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / RESERVE_NAME

    def __enter__(self) -> "Reserve":
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)  # blocks really allocated, not a sparse file
            finally:
                os.close(fd)
        except OSError as exc:
            self.release()
            raise write_fault(exc, self.path.parent) from None
        return self

    def release(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass  # never made, or the folder turned read-only: nothing to give back

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
