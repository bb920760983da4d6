"""From the composed `train` config to a finished run: data, module, loggers, callbacks, trainer, fit."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger

from stylefuse.networks import copy_params_and_buffers, load_network_pkl
from stylefuse.networks.snapshot import is_training_checkpoint
from stylefuse.training.builders import build_module, configure_backends, instantiate_group, world_size
from stylefuse.training.ddp import make_strategy
from stylefuse.training.module import StyleGAN2Module

log = logging.getLogger(__name__)


def _transfer_weights(module: StyleGAN2Module, source: str) -> None:
    """Official --resume: copy G, D and G_ema by name; training restarts at kimg 0 without EMA ramp-up and with
    ADA adjusting p five times faster (ada_kimg 100)."""
    networks = load_network_pkl(source)
    for name in ("G", "D", "G_ema"):
        copy_params_and_buffers(networks[name], getattr(module, name))
    module.hparams.ema_rampup = None
    module.ada.kimg = 100
    log.info("Transfer learning from %s (EMA ramp-up off and ada_kimg 100, as officially)", source)

def train(cfg: DictConfig, extra_callbacks: list[pl.Callback] | None = None) -> dict[str, Any]:
    """Trains as configured (plus `extra_callbacks`, e.g. from a notebook); returns where the results are."""
    start = time.time()
    # G_ema is meant to stay in eval mode inside the training module; and a resumed run starts a fresh shuffle of
    # the data (like the official loop's infinite sampler), which Lightning would warn about mid-epoch.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    configure_backends(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    gpus = world_size(cfg.trainer)
    # The global batch is known once the model preset is resolved (`auto` depends on the resolution).
    datamodule = instantiate(cfg.dataset, batch_size=0, seed=cfg.seed)
    dataset = datamodule.dataset  # reads the data's facts; raises a one-line DatasetError if it is unusable
    module = build_module(cfg, dataset, gpus)
    datamodule.batch_size = module.hparams.batch_size

    ckpt_path = None
    if cfg.resume:
        resume = str(cfg.resume)
        if is_training_checkpoint(resume):
            ckpt_path = resume
        else:
            _transfer_weights(module, resume)

    loggers = instantiate_group(cfg.get("logger"))
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.define_metric("*", step_metric="progress/kimg")
    callbacks = instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or [])
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_cfg["strategy"] = make_strategy(trainer_cfg.get("strategy", "auto"), gpus)
    trainer: pl.Trainer = instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False,
                                      _convert_="partial")

    if trainer.is_global_zero:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    files = {}
    for callback in callbacks:
        files.update(getattr(callback, "last_files", {}))
    result = {"kimg": module.kimg, "run_dir": str(run_dir), "minutes": (time.time() - start) / 60, **files}
    if trainer.is_global_zero:
        figure = run_dir / "figure4.png"
        where = ", ".join(f"{name} {path}" for name, path in files.items())
        print(f"Training finished at {module.kimg:.1f} kimg in {result['minutes']:.1f} min. Run folder: {run_dir}"
              + (f" | {where}" if where else "") + (f" | figure {figure}" if figure.is_file() else ""))
    return result


def run(cfg: DictConfig) -> float:
    """The train.py job; returns the kimg reached (the value a sweeper sees)."""
    return train(cfg)["kimg"]
