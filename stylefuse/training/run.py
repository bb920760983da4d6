"""The train.py job: from the composed `train` config to a finished run (data, module, loggers, callbacks, fit).

How a run starts (new, from another network, or continuing a checkpoint) is stylefuse.training.resume; checkpoints
are written whole by `SafeCheckpointIO`; a stop signal ends the run cleanly after a checkpoint
(stylefuse.training.preemption).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from lightning_fabric.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import WandbLogger
from torch.multiprocessing import ProcessRaisedException

from stylefuse import errors
from stylefuse.data.datasets import open_dataset
from stylefuse.errors import ConfigError, StylefuseError
from stylefuse.networks import copy_params_and_buffers, load_network_pkl
from stylefuse.networks.checkpoint_io import SafeCheckpointIO
from stylefuse.networks.snapshot import read_checkpoint
from stylefuse.training.builders import build_datamodule, configure_backends, module_kwargs, world_size
from stylefuse.training.callbacks import SnapshotCallback, SpawnedRankLog
from stylefuse.training.ddp import make_strategy
from stylefuse.training.module import StyleGAN2Module
from stylefuse.training.plot import read_jsonl
from stylefuse.training.preemption import forward_signals_to_children
from stylefuse.training.resume import (
    checkpoint_nimg,
    plan_start,
    restored_module_kwargs,
    trim_logs,
)

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiates every `_target_` entry of a config group holding several objects (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if isinstance(entry, DictConfig) and "_target_" in entry]


def continue_loggers(cfg: DictConfig, run_dir: Path, checkpoint: dict | None) -> None:
    """Logger settings for one history per run folder: the W&B run id is chosen once and kept in the folder's
    config.yaml (a continued run resumes it); TensorBoard drops the events a killed attempt wrote after the
    checkpoint."""
    saved_config = run_dir / "config.yaml"
    previous = OmegaConf.load(saved_config) if checkpoint is not None and saved_config.is_file() else None
    for name, entry in (cfg.get("logger") or {}).items():
        target = str(entry.get("_target_", "")) if isinstance(entry, DictConfig) else ""
        with open_dict(entry):
            if target.endswith("WandbLogger") and entry.get("id") is None:
                old_id = OmegaConf.select(previous, f"logger.{name}.id") if previous is not None else None
                entry.id = old_id or secrets.token_hex(4)
                entry.resume = "allow"
            elif target.endswith("TensorBoardLogger") and checkpoint is not None:
                entry.purge_step = int(checkpoint["global_step"])


def last_logged_values(run_dir: Path) -> dict[str, float]:
    """The last tick's statistics and the last metric results of a run folder (what a finished run returns)."""
    stats = read_jsonl(run_dir / "stats.jsonl") if (run_dir / "stats.jsonl").is_file() else []
    values = {k: v for k, v in (stats[-1] if stats else {}).items() if k not in ("kimg", "timestamp")}
    for path in sorted(run_dir.glob("metric-*.jsonl")):
        rows = read_jsonl(path)
        if rows:
            values.update({f"metrics/{k}": v for k, v in rows[-1].get("results", {}).items()})
    return values


def rank_error(err: ProcessRaisedException) -> StylefuseError | None:
    """The user error that a spawned rank raised, from the traceback text it sent back (its last line)."""
    match = re.search(r"^stylefuse\.errors\.(\w+): (.*)$", str(err), re.MULTILINE)
    error_class = getattr(errors, match.group(1), None) if match else None
    if isinstance(error_class, type) and issubclass(error_class, StylefuseError):
        return error_class(match.group(2))
    return None


def train(cfg: DictConfig, extra_callbacks: list[pl.Callback] | None = None) -> dict[str, Any]:
    """Trains as configured (plus `extra_callbacks`, e.g. from a notebook). Returns where the results are and the
    last values logged (`metrics`: name -> value)."""
    start_time = time.time()
    # G_ema is meant to stay in eval mode inside the training module.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    configure_backends(cfg.cudnn_benchmark, cfg.allow_tf32, cfg.num_threads)
    run_dir = Path(cfg.paths.output_dir)

    start = plan_start(str(cfg.resume) if cfg.resume else None, run_dir)
    gpus = world_size(cfg.trainer)
    dataset, loader = open_dataset(OmegaConf.to_container(cfg.dataset, resolve=True), cfg.seed)
    kwargs = module_kwargs(cfg, dataset, gpus, transfer=start.transfer is not None)
    checkpoint = read_checkpoint(start.checkpoint) if start.checkpoint is not None else None
    resumed_nimg = None
    if checkpoint is not None:
        kwargs = restored_module_kwargs(checkpoint["hyper_parameters"], kwargs, str(start.checkpoint))
        resumed_nimg = checkpoint_nimg(checkpoint)
        if resumed_nimg >= kwargs["total_kimg"] * 1000:
            folder = start.checkpoint.parent.parent if start.checkpoint.parent.name == "checkpoints" else run_dir
            print(f"Nothing to train: {start.checkpoint} is at {resumed_nimg / 1000:g} kimg, total_kimg="
                  f"{kwargs['total_kimg']:g}; raise total_kimg to train on. Run folder: {folder}")
            return {"kimg": resumed_nimg / 1000, "run_dir": str(folder), "minutes": 0.0,
                    "metrics": last_logged_values(folder), **SnapshotCallback.output_files(folder, resumed_nimg)}
    module = StyleGAN2Module(**kwargs)
    datamodule = build_datamodule(dataset, loader, module.hparams.batch_size, cfg.seed)
    if start.transfer is not None:
        # Official --resume: G, D and G_ema copied by name; training restarts at kimg 0.
        source = load_network_pkl(start.transfer, cache_dir=cfg.paths.cache_dir)
        for name in ("G", "D", "G_ema"):
            copy_params_and_buffers(source[name], getattr(module, name))
        log.info("Transfer learning from %s (EMA ramp-up off, ADA kimg %g)", start.transfer, module.ada.kimg)

    continue_loggers(cfg, run_dir, checkpoint)
    loggers = instantiate_group(cfg.get("logger"))
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.define_metric("*", step_metric="progress/kimg")
    callbacks = instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or [])
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    spawned = gpus > 1 and trainer_cfg.get("strategy") == "ddp_spawn"
    if spawned:
        callbacks.append(SpawnedRankLog.of_this_process())
    trainer_cfg["strategy"] = make_strategy(trainer_cfg.get("strategy", "auto"), gpus)
    # Our checkpoint writer; and Lightning's SLURM auto-requeue off (it saves mid-iteration, not resumable exactly).
    plugins = [SafeCheckpointIO()] + ([SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else [])
    trainer: pl.Trainer = instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, plugins=plugins,
                                      _convert_="partial")

    if trainer.is_global_zero:
        trim_logs(run_dir, resumed_nimg)
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    snapshots = [callback for callback in callbacks if isinstance(callback, SnapshotCallback)]
    stop_signals = snapshots[0].stop.signals if snapshots and spawned else []
    try:
        with forward_signals_to_children(stop_signals) if stop_signals else contextlib.nullcontext():
            trainer.fit(module, datamodule=datamodule, ckpt_path=start.checkpoint)
    except ProcessRaisedException as err:
        user_error = rank_error(err)
        if user_error is None:
            raise
        raise user_error from None

    nimg = int(module.cur_nimg)
    files = SnapshotCallback.output_files(run_dir, nimg) if snapshots else {}
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    result = {"kimg": nimg / 1000, "run_dir": str(run_dir), "minutes": (time.time() - start_time) / 60,
              "metrics": metrics, **files}
    if trainer.is_global_zero:
        figure = run_dir / "figure4.png"
        where = ", ".join(f"{name} {path}" for name, path in files.items())
        outcome = "finished" if module.done else "stopped early by a signal"
        resume = "" if module.done else " (continue it with resume=auto and the same run folder)"
        print(f"Training {outcome} at {nimg / 1000:g} kimg in {result['minutes']:.1f} min. Run folder: {run_dir}"
              f"{resume}" + (f" | {where}" if where else "") + (f" | figure {figure}" if figure.is_file() else ""))
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
