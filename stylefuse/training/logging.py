"""Scalar logging against kimg, the x-axis StyleGAN users read (Lightning's global_step counts optimizer steps)."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only


@rank_zero_only
def log_scalars(trainer: pl.Trainer, values: dict[str, float], kimg: float) -> None:
    """Sends `values` plus `progress/kimg` to every logger of `trainer` (rank 0 only)."""
    row = {name: float(value) for name, value in values.items()}
    row["progress/kimg"] = float(kimg)
    for logger in trainer.loggers:
        logger.log_metrics(row, step=trainer.global_step)
