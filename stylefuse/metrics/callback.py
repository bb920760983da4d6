"""Quality metrics of G_ema during training, every `every_kimg` and at the end (official: at every snapshot)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch

from stylefuse.metrics.features import Detectors
from stylefuse.metrics.options import MetricOptions
from stylefuse.metrics.registry import calc_metric, check_metrics, report_metric
from stylefuse.training.logging import log_scalars


class MetricsCallback(pl.Callback):
    """Computes `metrics` on `pl_module.G_ema` against `trainer.datamodule.dataset`.

    Runs at the end of the first training batch (kimg 0, like the official first tick), whenever the module's
    `kimg` crosses a multiple of `every_kimg`, and at the end of training. Every rank takes part (features are
    gathered across ranks); rank 0 appends `metric-<name>.jsonl` to `trainer.default_root_dir` and logs
    `metrics/<result>` against kimg. Results also go to `trainer.callback_metrics` so that `ModelCheckpoint` can
    monitor e.g. `metrics/fid50k_full`.
    """

    def __init__(
        self,
        metrics: list[str],                     # Official metric names, e.g. ['fid50k_full'].
        every_kimg: float,                      # Evaluation interval in thousands of real images shown.
        num_gen: int | None = None,             # Generated samples per metric; None = official (50k).
        max_real: int | None = None,            # Cap on real images; None = official.
        cache_dir: str | None = None,           # Real-data statistics cache root; None = no cache.
        device: str | None = None,              # None = the module's device (required under DDP).
        seed: int = 0,                          # Latents/labels seed: the same samples at every evaluation.
        batch_size: int = 64,                   # Images per rank per detector call.
        batch_gen: int = 4,                     # Images per generator call.
        num_workers: int = 0,                   # DataLoader workers for the real images.
        verbose: bool = True,                   # Progress bars on rank 0.
        detectors: Mapping[str, torch.nn.Module] | None = None,  # Replacements for the standard detectors (tests).
    ) -> None:
        check_metrics(list(metrics))
        assert every_kimg > 0
        self.metrics = list(metrics)
        self.every_kimg = every_kimg
        self.options = dict(num_gen=num_gen, max_real=max_real, cache_dir=cache_dir, seed=seed, batch_size=batch_size,
                            batch_gen=batch_gen, num_workers=num_workers, verbose=verbose)
        self.device = device
        self.detectors = Detectors(detectors)
        self.dataset_cache: dict[str, Any] = {}  # real sets rebuilt with other kwargs (e.g. unmirrored), kept
        self._last_tick = -1
        self._last_kimg: float | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        kimg = float(pl_module.kimg)
        tick = math.floor(kimg / self.every_kimg + 1e-6)  # tolerate float error at exact multiples
        if tick > self._last_tick:
            self._last_tick = tick
            self.evaluate(trainer, pl_module, kimg)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        kimg = float(pl_module.kimg)
        # Not when a stop signal ends training early (StyleGAN2Module.done is False then).
        if self._last_kimg != kimg and getattr(pl_module, "done", True):
            self.evaluate(trainer, pl_module, kimg)

    def state_dict(self) -> dict:
        # A resumed run evaluates at the next interval, not again at the one it resumed in.
        return {"last_kimg": self._last_kimg}

    def load_state_dict(self, state_dict: dict) -> None:
        self._last_kimg = state_dict["last_kimg"]
        if self._last_kimg is not None:
            self._last_tick = math.floor(self._last_kimg / self.every_kimg + 1e-6)

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, kimg: float) -> dict[str, float]:
        """Computes every metric now (all ranks); returns the results."""
        self._last_kimg = kimg
        if not self.metrics:
            return {}
        dataset = trainer.datamodule.dataset
        opts = MetricOptions(G=pl_module.G_ema, dataset_kwargs=dict(dataset.training_set_kwargs),
                             detectors=self.detectors, dataset=dataset, dataset_cache=self.dataset_cache,
                             device=torch.device(self.device) if self.device else pl_module.device,
                             num_gpus=trainer.world_size, rank=trainer.global_rank, **self.options)
        values = {}
        for metric in self.metrics:
            result = calc_metric(metric, opts)
            if trainer.is_global_zero:
                os.makedirs(trainer.default_root_dir, exist_ok=True)
                report_metric(result, trainer.default_root_dir, kimg=kimg)
            values.update({f"metrics/{key}": value for key, value in result["results"].items()})
        log_scalars(trainer, values, kimg)
        trainer.callback_metrics.update({key: torch.tensor(value) for key, value in values.items()})
        return values
