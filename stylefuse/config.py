"""Where the Hydra config tree lives, for jobs started as `python -m stylefuse.<job>` and for tests."""

from __future__ import annotations

from pathlib import Path

# conf/ sits beside the package in the repository (the project is installed in editable mode).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
