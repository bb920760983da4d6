"""Callbacks that use the training module's networks: snapshots (image grids, checkpoints, network files),
the kimg progress bar and the paper's Figure-4 plot. Intervals are in kimg, read from `pl_module.kimg`."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from tqdm.auto import tqdm

from stylefuse.networks import save_network_snapshot
from stylefuse.training.plot import plot_figure4
from stylefuse.utils.images import save_image_grid

log = logging.getLogger(__name__)


def official_grid_size(resolution: int) -> tuple[int, int]:
    """The official snapshot grid: about 7680x4320 pixels, 7..32 columns and 4..32 rows."""
    return int(np.clip(7680 // resolution, 7, 32)), int(np.clip(4320 // resolution, 4, 32))


class KimgSchedule:
    """Fires after the first iteration (kimg 0, like the official first tick), every `every_kimg`, and at the end."""

    def __init__(self, every_kimg: float):
        assert every_kimg > 0, "snapshot intervals must be positive"
        self.every_kimg = every_kimg
        self.last_index: int | None = None

    def due(self, kimg: float, done: bool) -> bool:
        index = math.floor(kimg / self.every_kimg + 1e-9)
        if self.last_index is None or index > self.last_index or done:
            self.last_index = index
            return True
        return False


class SnapshotCallback(pl.Callback):
    """Every `every_kimg`: a PNG grid of G_ema at fixed latents (also sent to the loggers), a resumable Lightning
    checkpoint (`checkpoints/snapshot-<kimg>.ckpt` and `checkpoints/last.ckpt`) and a network file
    (`network-snapshot-<kimg>.pt`: G, D, G_ema, augment p, training_set_kwargs) that every stylefuse tool loads."""

    def __init__(
        self,
        every_kimg: float,                          # Snapshot interval, thousands of images.
        grid_size: tuple[int, int] | None = None,   # (columns, rows) of the image grid, None = official size.
        grid_seed: int = 0,                         # Seed of the grid latents: the same images across snapshots.
        noise_mode: str = "const",                  # Synthesis noise for the grid.
        keep_checkpoints: bool = True,              # Keep every snapshot's .ckpt, or only last.ckpt.
    ):
        self.schedule = KimgSchedule(every_kimg)
        self.grid_size = tuple(grid_size) if grid_size is not None else None
        self.grid_seed = grid_seed
        self.noise_mode = noise_mode
        self.keep_checkpoints = keep_checkpoints
        self.last_files: dict[str, str] = {}

    def _grid_inputs(self, pl_module: pl.LightningModule) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        G = pl_module.G_ema
        gw, gh = self.grid_size or official_grid_size(G.img_resolution)
        rng = torch.Generator().manual_seed(self.grid_seed)
        z = torch.randn([gw * gh, G.z_dim], generator=rng)
        if G.c_dim > 0 and pl_module.label_bank.shape[0] > 0:
            idx = torch.randint(pl_module.label_bank.shape[0], [gw * gh], generator=rng)
            c = pl_module.label_bank.cpu()[idx]
        else:
            c = torch.zeros([gw * gh, G.c_dim])
        return z, c, (gw, gh)

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dataset = trainer.datamodule.dataset if trainer.datamodule is not None else None
        if dataset is None:
            return
        gw, gh = self.grid_size or official_grid_size(pl_module.G_ema.img_resolution)
        order = np.random.RandomState(self.grid_seed).permutation(len(dataset))
        reals = np.stack([dataset[int(order[i % len(order)])][0] for i in range(gw * gh)])
        save_image_grid(reals, Path(trainer.default_root_dir) / "reals.png", (gw, gh), drange=(0, 255))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.schedule.due(pl_module.kimg, pl_module.done):
            self.snapshot(trainer, pl_module)

    def snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run_dir = Path(trainer.default_root_dir)
        kimg_tag = f"{int(pl_module.cur_nimg) // 1000:06d}"
        ckpt_dir = run_dir / "checkpoints"
        pl_module.check_ddp_consistency()
        # Checkpointing is a collective: every rank calls it, Lightning writes from rank 0.
        if self.keep_checkpoints:
            trainer.save_checkpoint(ckpt_dir / f"snapshot-{kimg_tag}.ckpt", weights_only=False)
        trainer.save_checkpoint(ckpt_dir / "last.ckpt", weights_only=False)
        if trainer.is_global_zero:
            self._write_network_and_grid(trainer, pl_module, run_dir, kimg_tag)

    def _write_network_and_grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule, run_dir: Path,
                                kimg_tag: str) -> None:
        network_path = run_dir / f"network-snapshot-{kimg_tag}.pt"
        save_network_snapshot(network_path, pl_module.G, pl_module.D, pl_module.G_ema, pl_module.augment_p,
                              pl_module.hparams.training_set_kwargs, pl_module.kimg)
        z, c, grid = self._grid_inputs(pl_module)
        G = pl_module.G_ema
        with torch.no_grad():
            images = torch.cat([G(zb.to(pl_module.device), cb.to(pl_module.device), noise_mode=self.noise_mode).cpu()
                                for zb, cb in zip(z.split(pl_module.hparams.batch_gpu),
                                                  c.split(pl_module.hparams.batch_gpu))])
        grid_path = run_dir / f"fakes{kimg_tag}.png"
        canvas = save_image_grid(images, grid_path, grid)
        self.last_files = {"grid": str(grid_path), "network": str(network_path),
                           "checkpoint": str(run_dir / "checkpoints" / "last.ckpt")}
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("samples/G_ema", images=[canvas], step=trainer.global_step,
                                 caption=[f"kimg {pl_module.kimg:.1f}"])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples/G_ema", canvas, global_step=int(pl_module.kimg),
                                            dataformats="HWC")


class KimgProgressBar(ProgressBar):
    """A tqdm bar in kimg (the unit of training length), with the latest tick's losses."""

    def __init__(self, refresh_kimg: float = 0.0):
        super().__init__()
        self.refresh_kimg = refresh_kimg
        self._bar: tqdm | None = None
        self._enabled = True
        self._shown_kimg = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled and trainer.is_global_zero:
            total = pl_module.hparams.total_kimg
            self._bar = tqdm(total=total, initial=pl_module.kimg, unit="kimg", dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]")
            self._shown_kimg = pl_module.kimg

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self._bar is None or pl_module.kimg - self._shown_kimg < self.refresh_kimg:
            return
        kimg = min(pl_module.kimg, self._bar.total)
        self._bar.update(kimg - self._shown_kimg)
        self._shown_kimg = kimg
        values = trainer.callback_metrics  # the last tick's statistics (training.ticks.TickCallback)
        postfix = {key.split("/")[-1]: f"{float(values[key]):.3g}" for key in ("loss/G", "loss/D", "augment/p")
                   if key in values}
        self._bar.set_postfix(postfix, refresh=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Figure4Callback(pl.Callback):
    """Renders the paper's Figure-4 panels (losses, D outputs for real and fake, FID) from the run's local logs,
    every `every_kimg` and at the end of training."""

    def __init__(self, every_kimg: float):
        self.schedule = KimgSchedule(every_kimg)

    @rank_zero_only
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.schedule.due(pl_module.kimg, pl_module.done):
            path = plot_figure4(trainer.default_root_dir)
            if path is not None:
                log.debug("Figure 4 written to %s", os.fspath(path))
