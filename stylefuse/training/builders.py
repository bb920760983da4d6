"""Builders: from the composed `train` config to the training set, the data module and the training module.

This is the one place that reads training configs and checks them against each other and against the data; the
library classes (`StyleGAN2Module`, `ImageDataModule`, `AugmentPipe`, ...) take plain arguments. The official
`train.py` semantics (cfg_specs presets, `auto` formulas, `--resume` transfer settings) live here.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from stylefuse.augment.ada import MODES as AUGMENT_MODES
from stylefuse.data.datamodule import ImageDataModule
from stylefuse.data.datasets import Dataset
from stylefuse.errors import ConfigError
from stylefuse.training.compile import check_compile_setting
from stylefuse.training.module import StyleGAN2Module

log = logging.getLogger(__name__)

# Official `--resume` (transfer learning): no EMA ramp-up and ADA adjusting p five times faster.
TRANSFER_ADA_KIMG = 100
DEFAULT_ADA_KIMG = 500


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model preset (official train.py cfg_specs entry plus the fixed network kwargs, spec 1.1-1.3)."""

    name: str
    ref_gpus: int            # GPUs the preset was tuned for
    batch_size: int          # images per iteration over all GPUs
    batch_gpu: int           # images per accumulation round per GPU
    mbstd_group: int         # minibatch-std group size
    channel_base: int
    channel_max: int
    lrate: float             # Adam learning rate (before lazy-regularization scaling)
    gamma: float             # R1 weight
    ema_kimg: float          # G_ema half-life in kimg
    ema_rampup: float | None
    map_layers: int
    z_dim: int
    w_dim: int
    num_fp16_res: int
    conv_clamp: float | None
    channels_last: bool      # official --nhwc (fp16 blocks)
    fp32_channels_last: bool | None
    fp16_dtype: str
    compile: str | bool      # torch.compile of the main phases: auto (CUDA only), true or false
    g_architecture: str
    d_architecture: str
    freeze_d: int
    style_mixing_prob: float
    pl_weight: float


def resolve_model_spec(model: DictConfig | dict, resolution: int, gpus: int) -> ModelSpec:
    """The model preset for this run: `auto` computes its values from the resolution and the GPU count (official
    formulas); values set in the config (not null) always win; `fp32` turns mixed precision and clamping off."""
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
    if spec.get("batch_gpu") is None:
        spec["batch_gpu"] = max(spec["batch_size"] // max(spec["ref_gpus"], gpus), 1)
    if spec.pop("fp32"):
        spec["num_fp16_res"], spec["conv_clamp"] = 0, None
    check_compile_setting(spec.get("compile"))
    if spec.get("fp16_dtype") not in ("float16", "bfloat16"):
        raise ConfigError(f"model.fp16_dtype must be float16 or bfloat16, got {spec.get('fp16_dtype')!r}")
    unknown = sorted(set(spec) - {f.name for f in fields(ModelSpec)})
    if unknown:
        raise ConfigError(f"model preset {spec.get('name')!r} has unknown keys {', '.join(unknown)}; remove them")
    return ModelSpec(**spec)


def check_batch(spec: ModelSpec, world_size: int) -> None:
    """The global batch must split into `batch_gpu`-sized rounds on every device, each a whole number of
    minibatch-std groups."""
    if spec.batch_size % (spec.batch_gpu * world_size) != 0:
        raise ConfigError(f"batch {spec.batch_size} does not split into rounds of {spec.batch_gpu} on {world_size} "
                          f"device(s); set model.batch_size to a multiple of {spec.batch_gpu * world_size} or change "
                          f"model.batch_gpu")
    if spec.batch_gpu % min(spec.mbstd_group, spec.batch_gpu) != 0:
        raise ConfigError(f"model.batch_gpu={spec.batch_gpu} is not divisible by the minibatch-std group "
                          f"{spec.mbstd_group}; change model.batch_gpu or model.mbstd_group")


def network_kwargs(spec: ModelSpec, resolution: int, channels: int, c_dim: int) -> tuple[dict, dict]:
    """Official Generator / Discriminator constructor arguments (spec 1.3) from a resolved model spec."""
    common = dict(c_dim=c_dim, img_resolution=resolution, img_channels=channels)
    nets = dict(channel_base=spec.channel_base, channel_max=spec.channel_max, num_fp16_res=spec.num_fp16_res,
                conv_clamp=spec.conv_clamp)
    G_kwargs = dict(z_dim=spec.z_dim, w_dim=spec.w_dim, **common, mapping_kwargs=dict(num_layers=spec.map_layers),
                    synthesis_kwargs=dict(architecture=spec.g_architecture, **nets))
    D_kwargs = dict(**common, architecture=spec.d_architecture, **nets,
                    block_kwargs=dict(freeze_layers=spec.freeze_d),
                    epilogue_kwargs=dict(mbstd_group_size=spec.mbstd_group))
    if spec.channels_last:
        G_kwargs["synthesis_kwargs"]["fp16_channels_last"] = True
        D_kwargs["block_kwargs"]["fp16_channels_last"] = True
    return G_kwargs, D_kwargs


@dataclass(frozen=True)
class AugmentSettings:
    """The `augment` config as the training module's plain arguments."""

    augment_kwargs: dict | None   # AugmentPipe arguments; None = no pipe (noaug, or fixed at p = 0)
    augment_p: float              # starting probability
    ada_kwargs: dict              # AdaController arguments


def augment_settings(augment: DictConfig | dict, transfer: bool) -> AugmentSettings:
    """Official --aug/--p/--target/--augpipe semantics. ADA's speed `kimg` left null is 500, or 100 when training
    starts from another network's weights (official --resume)."""
    cfg = OmegaConf.to_container(augment, resolve=True) if isinstance(augment, DictConfig) else dict(augment)
    mode = cfg.get("mode")
    if mode not in AUGMENT_MODES:
        raise ConfigError(f"unknown augment mode {mode!r}; use augment=ada, augment=fixed or augment=noaug")
    if mode == "noaug":
        return AugmentSettings(None, 0.0, dict(mode=mode))
    if mode == "fixed":
        if cfg.get("p") in (None, "???"):
            raise ConfigError("augment=fixed needs the augmentation probability; add e.g. augment.p=0.2")
        p, ada_kwargs = float(cfg["p"]), dict(mode=mode)
    else:
        p = float(cfg["initial_p"])
        kimg = cfg["kimg"] if cfg["kimg"] is not None else TRANSFER_ADA_KIMG if transfer else DEFAULT_ADA_KIMG
        ada_kwargs = dict(mode=mode, target=cfg["target"], interval=cfg["interval"], kimg=kimg)
    if p < 0:
        raise ConfigError(f"the augmentation probability must be >= 0, got {p}; fix augment.p / augment.initial_p")
    pipe = None if mode == "fixed" and p == 0 else dict(cfg["pipe"])
    return AugmentSettings(pipe, p, ada_kwargs)


def build_datamodule(dataset: Dataset, loader: dict[str, Any], batch_size: int, seed: int) -> ImageDataModule:
    return ImageDataModule(dataset, batch_size=batch_size, seed=seed, **loader)


def build_module(cfg: DictConfig, dataset: Dataset, world_size: int, transfer: bool) -> StyleGAN2Module:
    """The training module of a `train` config for `dataset` on `world_size` devices. `transfer`: training starts
    from another network's weights (official --resume): no EMA ramp-up, faster ADA (unless augment.kimg is set)."""
    return StyleGAN2Module(**module_kwargs(cfg, dataset, world_size, transfer))


def module_kwargs(cfg: DictConfig, dataset: Dataset, world_size: int, transfer: bool) -> dict[str, Any]:
    """The `StyleGAN2Module` arguments of `build_module` (plain values, as a checkpoint's hyper-parameters)."""
    spec = resolve_model_spec(cfg.model, dataset.resolution, world_size)
    check_batch(spec, world_size)
    G_kwargs, D_kwargs = network_kwargs(spec, dataset.resolution, dataset.num_channels, dataset.label_dim)
    augment = augment_settings(cfg.augment, transfer)
    loss = cfg.loss
    return dict(
        G_kwargs=G_kwargs, D_kwargs=D_kwargs,
        loss_kwargs=dict(r1_gamma=spec.gamma, style_mixing_prob=spec.style_mixing_prob, pl_weight=spec.pl_weight,
                         pl_batch_shrink=loss.pl_batch_shrink, pl_decay=loss.pl_decay),
        optim_kwargs=dict(lr=spec.lrate, betas=list(cfg.optim.betas), eps=cfg.optim.eps),
        batch_size=spec.batch_size, batch_gpu=spec.batch_gpu, total_kimg=cfg.total_kimg, **asdict(augment),
        G_reg_interval=loss.G_reg_interval, D_reg_interval=loss.D_reg_interval, ema_kimg=spec.ema_kimg,
        ema_rampup=None if transfer else spec.ema_rampup, seed=cfg.seed,
        training_set_kwargs=dict(dataset.training_set_kwargs), fp32_channels_last=spec.fp32_channels_last,
        fp16_dtype=spec.fp16_dtype, compile_main_phases=spec.compile)


# Where `network_kwargs` takes each network argument from, by its last name (for messages about a checkpoint of
# another architecture); `architecture` depends on the network, and the image channels come from the data alone.
_NETWORK_KWARG_SOURCES = {
    "z_dim": "model.z_dim", "w_dim": "model.w_dim", "c_dim": "dataset.use_labels", "img_resolution":
    "dataset.resolution", "num_layers": "model.map_layers", "channel_base": "model.channel_base", "channel_max":
    "model.channel_max", "num_fp16_res": "model.num_fp16_res", "conv_clamp": "model.conv_clamp",
    "fp16_channels_last": "model.channels_last", "freeze_layers": "model.freeze_d",
    "mbstd_group_size": "model.mbstd_group",
}


def network_kwarg_override(path: str, value: Any) -> str | None:
    """The command-line override that gives the network argument `path` (e.g. `G_kwargs.synthesis_kwargs.channel_base`)
    the value `value`, or None when no config key sets it."""
    name = path.rsplit(".", 1)[-1]
    key = _NETWORK_KWARG_SOURCES.get(name)
    if name == "architecture":
        key = "model.g_architecture" if path.startswith("G_kwargs") else "model.d_architecture"
    if key is None:
        return None
    if name == "c_dim":
        value = value > 0
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"{key}={text}"


def configure_backends(cudnn_benchmark: bool, allow_tf32: bool, num_threads: int | None = None) -> None:
    """cuDNN autotuning and TF32 (officially: autotuning on, TF32 off), and the CPU threads of this process (None =
    torch's default, one per core: on a machine other jobs load, fewer threads than cores avoid oversubscription,
    which slows every thread down, not just the extra ones)."""
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow_tf32
    if num_threads is not None:
        if num_threads < 1:
            raise ConfigError(f"num_threads must be at least 1, got {num_threads}; set num_threads=null for torch's "
                              f"default")
        torch.set_num_threads(num_threads)


def world_size(trainer_cfg: DictConfig) -> int:
    """The number of training processes a `trainer` config asks for (devices x nodes)."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, str):
        devices = torch.cuda.device_count() if devices in ("auto", "-1") else len(devices.split(","))
    elif not isinstance(devices, int):
        devices = len(devices)
    elif devices == -1:
        devices = max(torch.cuda.device_count(), 1)
    return max(devices, 1) * int(trainer_cfg.get("num_nodes", 1))
