"""Instance files a user names in place of a bundled set: which entries are files, what a
glob matches, and errors that name the file and the line.

A set entry (``problem.train``, each entry of ``problem.tests``) is a bundled set's name
or a path; a path may be a glob (``data/mine/*.tsp``), whose matches, sorted, form one set.
Relative paths are read from the folder evo runs in.
"""
from __future__ import annotations

import glob
from pathlib import Path


class FormatError(ValueError):
    """A malformed instance file. The message is one line: ``FILE:LINE: what was expected``."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


def expand(entry: str, what: str) -> list[Path]:
    """The files an entry names: itself, or a glob's matches in sorted order. ``what`` names
    the bundled sets, for the error when the entry is neither one of them nor a file."""
    if glob.has_magic(entry):
        matches = sorted(Path(p) for p in glob.glob(entry) if Path(p).is_file())
        if not matches:
            raise ValueError(f"{entry!r} matches no file")
        return matches
    path = Path(entry)
    if not path.is_file():
        raise ValueError(f"{entry!r} is neither {what} nor a file")
    return [path]


def numbered_lines(path: Path) -> list[tuple[int, str]]:
    """The file's lines with their 1-based numbers; an unreadable file is one line too."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise FormatError(path, None, "not a text file") from None
    except OSError as exc:
        raise FormatError(path, None, f"cannot be read: {exc.strerror or exc}") from None
    return list(enumerate(text.splitlines(), start=1))


def numbered_tokens(path: Path) -> list[tuple[int, str]]:
    """The file's whitespace-separated tokens, each with the number of its line."""
    return [(number, token) for number, line in numbered_lines(path) for token in line.split()]


def number(path: Path, line: int, token: str, what: str, integer: bool = False) -> float:
    """``token`` as a number (an integer if asked), else a FormatError saying what was expected."""
    try:
        value = int(token) if integer else float(token)
    except ValueError:
        raise FormatError(path, line, f"expected {what}, got {token!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise FormatError(path, line, f"expected {what} (a finite number), got {token!r}")
    return value
