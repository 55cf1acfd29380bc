"""The run's config composed by Hydra outside a Hydra app, with Hydra's errors as one line.

`evo run` checks the whole config before Hydra makes a run folder, a sweep pins its folder
before it launches, and `evo evaluate` and `evo doctor` read a config without any run.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from evo.errors import UserError


def register_resolvers() -> None:
    """``${evo_unique:}``, part of the default run and sweep folders' names."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("evo_unique"):
        # Two runs started in the same second must not share a folder.
        token = f"{os.getpid():x}{secrets.token_hex(2)}"
        OmegaConf.register_new_resolver("evo_unique", lambda: token)


def compose_config(overrides: list[str], return_hydra_config: bool = False):
    """The composed config for these overrides, with Hydra's errors as one line."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    try:
        with initialize_config_module(config_module="conf", version_base="1.3"):
            return compose(config_name="config", overrides=overrides, return_hydra_config=return_hydra_config)
    except MissingConfigException as exc:
        group = (exc.missing_cfg_file or "").split("/")[0]
        options = ", ".join(exc.options or [])
        if group and options:
            value = (exc.missing_cfg_file or "").split("/", 1)[-1]
            raise UserError(f"unknown {group} {value!r}; available: {options}") from None
        raise UserError(str(exc).splitlines()[0]) from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(" ".join(str(exc).split("\n")[:2]).strip()) from None


def resolved_folder(cfg, key: str, what: str) -> Path:
    """An output folder of a config composed with its ``hydra`` node (``hydra.run.dir``,
    ``hydra.sweep.dir``), resolved now, to be pinned: its default name holds the time and
    a random token, which Hydra would otherwise resolve again later."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    saved = HydraConfig.instance().cfg
    try:
        HydraConfig.instance().set_config(cfg)  # for a ${hydra:...} in the folder's name
        folder = Path(str(OmegaConf.select(cfg, key))).absolute()
    except OmegaConfBaseException as exc:
        raise UserError(f"{key} cannot be resolved: {str(exc).splitlines()[0]}") from None
    finally:
        HydraConfig.instance().cfg = saved
    if "'" in str(folder):
        raise UserError(f"the {what} {folder} must not contain a quote")
    return folder


@contextmanager
def hydra_errors_raised() -> Iterator[None]:
    """Hydra prints an error raised in a job (or its launcher) as a traceback and exits,
    unless HYDRA_FULL_ERROR is set; set, it raises the error, for evo to say in one line."""
    saved = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved
