"""Builders: from the composed `train` config to the training module and its parts (the one home of every check)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stylefuse.errors import ConfigError
from stylefuse.training.module import StyleGAN2Module

log = logging.getLogger(__name__)


def resolve_model_spec(model: DictConfig | dict, resolution: int, gpus: int) -> dict[str, Any]:
    """The official cfg_specs entry for this run (spec 1.1-1.2): `auto` computes its values from the resolution
    and the GPU count; values set in the config (not null) always win."""
    spec = OmegaConf.to_container(model, resolve=True) if isinstance(model, DictConfig) else dict(model)
    if spec.get("name") == "auto":
        batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
        computed = dict(ref_gpus=gpus, batch_size=batch, mbstd_group=min(batch // gpus, 4),
                        channel_base=int((1 if resolution >= 512 else 0.5) * 32768),
                        lrate=0.002 if resolution >= 1024 else 0.0025, gamma=0.0002 * resolution**2 / batch,
                        ema_kimg=batch * 10 / 32)
        spec.update({key: value for key, value in computed.items() if spec.get(key) is None})
    missing = [k for k in ("batch_size", "mbstd_group", "channel_base", "lrate", "gamma", "ema_kimg") if
               spec.get(k) is None]
    if missing:
        raise ConfigError(f"model preset {spec.get('name')!r} leaves {', '.join(missing)} unset; set them "
                          f"(e.g. model.{missing[0]}=...) or use model=auto")
    if spec["batch_gpu"] is None:
        spec["batch_gpu"] = max(spec["batch_size"] // max(spec["ref_gpus"], gpus), 1)
    if spec["fp32"]:
        spec["num_fp16_res"], spec["conv_clamp"] = 0, None
    return spec


def network_kwargs(spec: dict, resolution: int, channels: int, c_dim: int) -> tuple[dict, dict]:
    """Official Generator / Discriminator constructor arguments (spec 1.3) from a resolved model spec."""
    common = dict(c_dim=c_dim, img_resolution=resolution, img_channels=channels)
    nets = dict(channel_base=spec["channel_base"], channel_max=spec["channel_max"],
                num_fp16_res=spec["num_fp16_res"], conv_clamp=spec["conv_clamp"])
    G_kwargs = dict(z_dim=spec["z_dim"], w_dim=spec["w_dim"], **common,
                    mapping_kwargs=dict(num_layers=spec["map_layers"]),
                    synthesis_kwargs=dict(architecture=spec["g_architecture"], **nets))
    D_kwargs = dict(**common, architecture=spec["d_architecture"], **nets,
                    block_kwargs=dict(freeze_layers=spec["freeze_d"]),
                    epilogue_kwargs=dict(mbstd_group_size=spec["mbstd_group"]))
    if spec["channels_last"]:
        G_kwargs["synthesis_kwargs"]["fp16_channels_last"] = True
        D_kwargs["block_kwargs"]["fp16_channels_last"] = True
    return G_kwargs, D_kwargs


def configure_backends(cfg: DictConfig) -> None:
    """cuDNN autotuning and TF32 as configured (officially: autotuning on, TF32 off)."""
    torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.allow_tf32


def world_size(trainer_cfg: DictConfig) -> int:
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, str):
        devices = torch.cuda.device_count() if devices in ("auto", "-1") else len(devices.split(","))
    elif not isinstance(devices, int):
        devices = len(devices)
    elif devices == -1:
        devices = max(torch.cuda.device_count(), 1)
    return max(devices, 1) * int(trainer_cfg.get("num_nodes", 1))


def build_module(cfg: DictConfig, dataset: Any, gpus: int) -> StyleGAN2Module:
    spec = resolve_model_spec(cfg.model, dataset.resolution, gpus)
    batch_size, batch_gpu = spec["batch_size"], spec["batch_gpu"]
    if batch_size % (batch_gpu * gpus) != 0:
        raise ConfigError(f"batch {batch_size} does not split into rounds of {batch_gpu} on {gpus} device(s); "
                          f"set model.batch_size to a multiple of {batch_gpu * gpus} or change model.batch_gpu")
    if batch_gpu % min(spec["mbstd_group"], batch_gpu) != 0:
        raise ConfigError(f"model.batch_gpu={batch_gpu} is not divisible by the minibatch-std group "
                          f"{spec['mbstd_group']}; change model.batch_gpu or model.mbstd_group")
    G_kwargs, D_kwargs = network_kwargs(spec, dataset.resolution, dataset.num_channels, dataset.label_dim)
    loss = cfg.loss
    loss_kwargs = dict(r1_gamma=loss.r1_gamma if loss.r1_gamma is not None else spec["gamma"],
                       style_mixing_prob=loss.style_mixing_prob, pl_weight=loss.pl_weight,
                       pl_batch_shrink=loss.pl_batch_shrink, pl_decay=loss.pl_decay)
    optim_kwargs = dict(lr=cfg.optim.lr if cfg.optim.lr is not None else spec["lrate"],
                        betas=list(cfg.optim.betas), eps=cfg.optim.eps)
    augment = OmegaConf.to_container(cfg.augment, resolve=True)
    return StyleGAN2Module(
        G_kwargs=G_kwargs, D_kwargs=D_kwargs, loss_kwargs=loss_kwargs, optim_kwargs=optim_kwargs,
        batch_size=batch_size, batch_gpu=batch_gpu, total_kimg=cfg.total_kimg, augment=augment,
        G_reg_interval=loss.G_reg_interval, D_reg_interval=loss.D_reg_interval, ema_kimg=spec["ema_kimg"],
        ema_rampup=spec["ema_rampup"], kimg_per_tick=cfg.kimg_per_tick, seed=cfg.seed,
        training_set_kwargs=dict(dataset.training_set_kwargs), fp32_channels_last=spec["fp32_channels_last"],
        fp16_dtype=spec["fp16_dtype"])


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiates every `_target_` entry of a config group holding several objects (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if isinstance(entry, DictConfig) and "_target_" in entry]
