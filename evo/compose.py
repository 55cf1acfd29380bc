"""The run's config composed by Hydra outside a Hydra app, with Hydra's errors as one line.

`evo run` checks the whole config before Hydra makes a run folder, a sweep pins its folder
before it launches, and `evo evaluate` and `evo doctor` read a config without any run.
"""
from __future__ import annotations

import os
import secrets

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
