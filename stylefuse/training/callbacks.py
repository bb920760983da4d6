"""Callbacks that use the training module's networks: snapshots (image grids, checkpoints, network files) and
clean stops, the kimg progress bar, the paper's Figure-4 plot, and the log of spawned ranks. Intervals are in kimg,
read from `pl_module.kimg`."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint, ProgressBar
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from tqdm.auto import tqdm

from stylefuse.errors import SaveError
from stylefuse.networks import save_network_snapshot
from stylefuse.training.plot import plot_figure4
from stylefuse.training.preemption import StopSignals
from stylefuse.utils.files import atomic_write
from stylefuse.utils.images import save_image_grid

log = logging.getLogger(__name__)


def official_grid_size(resolution: int) -> tuple[int, int]:
    """The official snapshot grid: about 7680x4320 pixels, 7..32 columns and 4..32 rows."""
    return int(np.clip(7680 // resolution, 7, 32)), int(np.clip(4320 // resolution, 4, 32))


class KimgSchedule:
    """Fires after the first iteration (kimg 0, like the official first tick), every `every_kimg`, and at the end.
    Where it last fired is checkpointed, so a resumed run does not fire again for an interval already done (also
    when the interval changed meanwhile)."""

    def __init__(self, every_kimg: float):
        assert every_kimg > 0, "snapshot intervals must be positive"
        self.every_kimg = every_kimg
        self.last_kimg: float | None = None

    def index(self, kimg: float) -> int:
        return math.floor(kimg / self.every_kimg + 1e-9)

    def due(self, kimg: float, done: bool) -> bool:
        if self.last_kimg is None or self.index(kimg) > self.index(self.last_kimg) or done:
            self.last_kimg = kimg
            return True
        return False

    def state_dict(self) -> dict:
        return {"last_kimg": self.last_kimg}

    def load_state_dict(self, state: dict) -> None:
        self.last_kimg = state["last_kimg"]


def snapshot_tag(nimg: int) -> str:
    """The kimg of a snapshot in its file names, to the image (`000004.000`, `000000.256`): unique and sortable
    for any interval, the same in the network file, the checkpoint and the grid."""
    return f"{nimg // 1000:06d}.{nimg % 1000:03d}"


class SnapshotCallback(Checkpoint):
    """The run's outputs and its checkpoint writer.

    Every `every_kimg`: a PNG grid of G_ema at fixed latents (also sent to the loggers), a resumable Lightning
    checkpoint (`checkpoints/snapshot-<tag>.ckpt` and `checkpoints/last.ckpt`) and a network file
    (`network-snapshot-<tag>.pt`: G, D, G_ema, augment p, training_set_kwargs) that every stylefuse tool loads; the
    tag is `snapshot_tag(cur_nimg)`. On a stop signal (`stop_signals`, see training.preemption): `last.ckpt` at the
    end of the iteration, then the trainer stops.

    As a Lightning `Checkpoint` it runs after every other callback, so a checkpoint holds the state after all an
    iteration does (statistics, schedules). Files are written whole (stylefuse.utils.files); a failed write stops
    the run on every rank with a one-line `SaveError` naming the file, and the previous checkpoint stays.
    """

    def __init__(
        self,
        every_kimg: float,                          # Snapshot interval, thousands of images.
        grid_size: tuple[int, int] | None = None,   # (columns, rows) of the image grid, None = official size.
        grid_seed: int = 0,                         # Seed of the grid latents: the same images across snapshots.
        noise_mode: str = "const",                  # Synthesis noise for the grid.
        keep_checkpoints: bool = True,              # Keep every snapshot's .ckpt, or only last.ckpt.
        stop_signals: Sequence[str] = ("SIGTERM", "SIGUSR1", "SIGUSR2"),  # Checkpoint and stop on these.
        requeue_signals: Sequence[str] = ("SIGUSR1",),  # Then `scontrol requeue` a SLURM job on these.
    ):
        self.schedule = KimgSchedule(every_kimg)
        self.grid_size = tuple(grid_size) if grid_size is not None else None
        self.grid_seed = grid_seed
        self.noise_mode = noise_mode
        self.keep_checkpoints = keep_checkpoints
        self.stop = StopSignals(stop_signals, requeue_signals)

    @staticmethod
    def output_files(run_dir: str | os.PathLike, nimg: int) -> dict[str, str]:
        """The files of the snapshot at `nimg` that exist (also readable from another process than the trainer's)."""
        run_dir, tag = Path(run_dir), snapshot_tag(nimg)
        files = {"grid": run_dir / f"fakes{tag}.png", "network": run_dir / f"network-snapshot-{tag}.pt",
                 "checkpoint": run_dir / "checkpoints" / "last.ckpt"}
        return {name: str(path) for name, path in files.items() if path.is_file()}

    def state_dict(self) -> dict:
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.schedule.load_state_dict(state_dict["schedule"])

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.stop.remember_handlers()  # before the trainer installs its own

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.stop.install()  # replaces the trainer's SIGTERM handler until it restores the original ones

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.stop.hand_on(trainer.is_global_zero)

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
        stop = self.stop.requested(pl_module.device)
        if self.schedule.due(pl_module.kimg, pl_module.done):
            self.snapshot(trainer, pl_module)
        elif stop:
            self.save_checkpoint(trainer, Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt")
        if stop:
            log.info("checkpoint written at %g kimg; training stops here (continue it with resume=auto)",
                     pl_module.kimg)
            trainer.should_stop = True

    def snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run_dir = Path(trainer.default_root_dir)
        tag = snapshot_tag(int(pl_module.cur_nimg))
        last = run_dir / "checkpoints" / "last.ckpt"
        pl_module.check_ddp_consistency()
        if self.keep_checkpoints:
            kept = run_dir / "checkpoints" / f"snapshot-{tag}.ckpt"
            self.save_checkpoint(trainer, kept)
            # last.ckpt: the same file under a second name (a hard link when the filesystem has them).
            self._on_rank_zero(trainer, lambda: atomic_write(last, lambda tmp: link_or_copy(kept, tmp)))
        else:
            self.save_checkpoint(trainer, last)
        self._on_rank_zero(trainer, lambda: self._write_network_and_grid(trainer, pl_module, run_dir, tag))

    def save_checkpoint(self, trainer: pl.Trainer, path: Path) -> None:
        """A collective: every rank gathers its state, rank 0 writes; a failed write raises on every rank."""
        failure = None
        try:
            trainer.save_checkpoint(path, weights_only=False)
        except SaveError as err:
            trainer.strategy.barrier("checkpoint failed")  # the one that trainer.save_checkpoint did not reach
            failure = str(err)
        self._raise_on_every_rank(trainer, failure)

    def _on_rank_zero(self, trainer: pl.Trainer, write: Callable[[], None]) -> None:
        failure = None
        if trainer.is_global_zero:
            try:
                write()
            except SaveError as err:
                failure = str(err)
        self._raise_on_every_rank(trainer, failure)

    @staticmethod
    def _raise_on_every_rank(trainer: pl.Trainer, failure: str | None) -> None:
        failure = trainer.strategy.broadcast(failure, src=0)
        if failure is not None:
            raise SaveError(failure)

    def _write_network_and_grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule, run_dir: Path,
                                tag: str) -> None:
        network_path = run_dir / f"network-snapshot-{tag}.pt"
        save_network_snapshot(network_path, pl_module.G, pl_module.D, pl_module.G_ema, pl_module.augment_p,
                              pl_module.hparams.training_set_kwargs, pl_module.kimg)
        z, c, grid = self._grid_inputs(pl_module)
        G = pl_module.G_ema
        cuda = [pl_module.device] if pl_module.device.type == "cuda" else []
        # The grid's own random draws (noise_mode=random) must not move the training's random streams.
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            images = torch.cat([G(zb.to(pl_module.device), cb.to(pl_module.device), noise_mode=self.noise_mode).cpu()
                                for zb, cb in zip(z.split(pl_module.hparams.batch_gpu),
                                                  c.split(pl_module.hparams.batch_gpu))])
        canvas = save_image_grid(images, run_dir / f"fakes{tag}.png", grid)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("samples/G_ema", images=[canvas], step=trainer.global_step,
                                 caption=[f"kimg {pl_module.kimg:.3f}"])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples/G_ema", canvas, global_step=trainer.global_step,
                                            dataformats="HWC")


def link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(source, dest)


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
            self._bar = tqdm(total=total, initial=min(pl_module.kimg, total), unit="kimg", dynamic_ncols=True,
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

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)  # the error message then starts on a line of its own


class Figure4Callback(pl.Callback):
    """Renders the paper's Figure-4 panels (losses, D outputs for real and fake, FID) from the run's local logs,
    every `every_kimg` and at the end of training."""

    def __init__(self, every_kimg: float):
        self.schedule = KimgSchedule(every_kimg)

    def state_dict(self) -> dict:
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.schedule.load_state_dict(state_dict["schedule"])

    @rank_zero_only
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.schedule.due(pl_module.kimg, pl_module.done):
            path = plot_figure4(trainer.default_root_dir)
            if path is not None:
                log.debug("Figure 4 written to %s", os.fspath(path))


class SpawnedRankLog(pl.Callback):
    """The log of rank 0 when the ranks are spawned processes (trainer=ddp_cpu): they start without the launching
    process's logging (Hydra's console and <run>/train.log), so rank 0 sets up the same handlers; tick lines and
    messages then appear as in a one-process run."""

    def __init__(self, level: int, fmt: str | None, datefmt: str | None, files: list[str], streams: list[str]):
        self.level, self.fmt, self.datefmt, self.files, self.streams = level, fmt, datefmt, files, streams

    @classmethod
    def of_this_process(cls) -> SpawnedRankLog:
        root = logging.getLogger()
        formatters = [handler.formatter for handler in root.handlers if handler.formatter is not None]
        files = [h.baseFilename for h in root.handlers if isinstance(h, logging.FileHandler)]
        streams = ["stdout" if h.stream is sys.stdout else "stderr" for h in root.handlers
                   if type(h) is logging.StreamHandler]
        return cls(root.level, formatters[0]._fmt if formatters else None,
                   formatters[0].datefmt if formatters else None, files, streams)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        root = logging.getLogger()
        if root.handlers or trainer.global_rank != 0:  # the launching process itself, or a rank that stays quiet
            return
        handlers = [logging.FileHandler(path) for path in self.files]
        handlers += [logging.StreamHandler(getattr(sys, name)) for name in self.streams]
        for handler in handlers:
            handler.setFormatter(logging.Formatter(self.fmt, self.datefmt))
            root.addHandler(handler)
        root.setLevel(self.level)
