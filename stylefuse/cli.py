"""The command-line jobs, one convention for all of them.

A job is a function `run(cfg: DictConfig)` of the package: the edge where a composed config becomes the plain
arguments of library code. `hydra_job(config_name, run)` turns it into the Hydra main over `conf/<config_name>.yaml`
used by `train.py`, `project.py`, `fuse.py` and the `python -m stylefuse.<job>` modules: a user error (any
`StylefuseError`) is printed as one line and exits with status 2, and the job's return value goes to Hydra (the
number a sweeper optimizes).
"""

from __future__ import annotations

import functools
import netrc
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from stylefuse.errors import StylefuseError

# conf/ sits beside the package in the repository (the project is installed in editable mode).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def wandb_offline() -> bool:
    """W&B runs online only when the user is logged in (API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def register_resolvers() -> None:
    """The resolvers the config tree uses (`${wandb_offline:}`); called before any config is composed."""
    OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)


def compose_config(config_name: str | None, overrides: Sequence[str] = (),
                   return_hydra_config: bool = False) -> DictConfig:
    """`conf/<config_name>.yaml` (None = the groups only) composed with command-line style overrides, outside a
    Hydra main: the benchmarks and tests build their configs with it."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turns a `StylefuseError` raised by `fn` into `error: <message>` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StylefuseError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def hydra_job(config_name: str, run: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """The command-line main of a job: composes `conf/<config_name>.yaml` with the command line and calls `run`."""

    def main() -> Any:
        register_resolvers()
        return hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(user_errors(run))()

    return main
