"""Where the Hydra config tree lives, and the resolvers it uses. Imported by every entry point and by the tests."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from omegaconf import OmegaConf

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


OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)
