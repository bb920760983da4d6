"""The train.py job: from the composed `train` config to a finished run (data, module, loggers, callbacks, fit)."""

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

from stylefuse.data.datasets import open_dataset
from stylefuse.errors import ConfigError
from stylefuse.networks import copy_params_and_buffers, load_network_pkl
from stylefuse.networks.snapshot import is_training_checkpoint
from stylefuse.training.builders import (
    build_datamodule,
    build_module,
    configure_backends,
    world_size,
)
from stylefuse.training.ddp import make_strategy

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiates every `_target_` entry of a config group holding several objects (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if isinstance(entry, DictConfig) and "_target_" in entry]


def train(cfg: DictConfig, extra_callbacks: list[pl.Callback] | None = None) -> dict[str, Any]:
    """Trains as configured (plus `extra_callbacks`, e.g. from a notebook). Returns where the results are and the
    last values logged (`metrics`: name -> value)."""
    start = time.time()
    # G_ema is meant to stay in eval mode inside the training module; a resumed run starts a fresh shuffle of the
    # data (like the official loop's infinite sampler), which Lightning would warn about mid-epoch.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")
    # Statistics go to the loggers once per tick (training.ticks), not through Lightning's step-based logging.
    warnings.filterwarnings("ignore", message=r"The number of training batches .* is smaller than the logging interval")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    configure_backends(cfg.cudnn_benchmark, cfg.allow_tf32, cfg.num_threads)
    run_dir = Path(cfg.paths.output_dir)

    resume = str(cfg.resume) if cfg.resume else None
    ckpt_path = resume if resume is not None and is_training_checkpoint(resume) else None
    transfer = resume is not None and ckpt_path is None
    source = load_network_pkl(resume, cache_dir=cfg.paths.cache_dir) if transfer else None

    gpus = world_size(cfg.trainer)
    dataset, loader = open_dataset(OmegaConf.to_container(cfg.dataset, resolve=True), cfg.seed)
    module = build_module(cfg, dataset, gpus, transfer=transfer)
    datamodule = build_datamodule(dataset, loader, module.hparams.batch_size, cfg.seed)
    if source is not None:
        # Official --resume: G, D and G_ema copied by name; training restarts at kimg 0.
        for name in ("G", "D", "G_ema"):
            copy_params_and_buffers(source[name], getattr(module, name))
        log.info("Transfer learning from %s (EMA ramp-up off, ADA kimg %g)", resume, module.ada.kimg)

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
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    files = {}
    for callback in callbacks:
        files.update(getattr(callback, "last_files", {}))
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    result = {"kimg": module.kimg, "run_dir": str(run_dir), "minutes": (time.time() - start) / 60,
              "metrics": metrics, **files}
    if trainer.is_global_zero:
        figure = run_dir / "figure4.png"
        where = ", ".join(f"{name} {path}" for name, path in files.items())
        print(f"Training finished at {module.kimg:g} kimg in {result['minutes']:.1f} min. Run folder: {run_dir}"
              + (f" | {where}" if where else "") + (f" | figure {figure}" if figure.is_file() else ""))
    return result


def run(cfg: DictConfig) -> float | None:
    """The train.py job. Returns the last value of `optimized_metric` (for Hydra sweepers), or None."""
    name = cfg.optimized_metric
    if name is not None and name.startswith("metrics/") and not cfg.metrics:
        raise ConfigError(f"optimized_metric={name} needs the metric computed: add it to metrics=[...] (e.g. "
                          f"metrics=[fid50k_full])")
    metrics = train(cfg)["metrics"]
    if name is None:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name} was never logged (logged: {', '.join(sorted(metrics))}); name one "
                          f"of those, e.g. metrics/fid50k_full with metrics=[fid50k_full]")
    return metrics[name]
