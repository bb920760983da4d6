"""Start-up checks of the jobs' configs: for each job, every knob it reads and the kind of value that knob takes.

`check_config(job, cfg)` runs before a job does any work (`stylefuse.cli.hydra_job`): a value of the wrong type
or range, or a mandatory value left unset (`???`), becomes one line that names the key, what it takes and what it
got ("total_kimg must be a positive number of kimg, got 'abc'"), instead of a traceback from deep inside the job.
Hydra has converted the command line by YAML rules before (`total_kimg=abc` is the string 'abc', `seed=1.5` a
float), so these checks see the composed values. What needs the data or the network (a resolution matching the
images, a layer range within num_ws) is checked by the job once it has them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stylefuse.align.aligners import ALIGN_CHOICES
from stylefuse.augment.ada import MODES as AUGMENT_MODES
from stylefuse.errors import ConfigError
from stylefuse.export import FORMATS as EXPORT_FORMATS
from stylefuse.export import PARTS as EXPORT_PARTS
from stylefuse.fusion.ranges import preset_ranges
from stylefuse.fusion.sweep import SWEEPS
from stylefuse.latents import parse_seeds
from stylefuse.nn.synthesis import NOISE_MODES
from stylefuse.training.compile import SETTINGS as COMPILE_SETTINGS
from stylefuse.training.preemption import parse_signals
from stylefuse.utils.images import RESIZE_FILTERS
from stylefuse.utils.shapes import is_power_of_two


@dataclass(frozen=True)
class Kind:
    """A kind of value: `what` it is, in the words of the error message, and the test a value must pass."""

    what: str
    accepts: Callable[[Any], bool]
    required: bool = True  # False: the job has a use for the value left unset (`???`)


def is_number(value: Any) -> bool:  # YAML's true/false are not numbers here, nor are inf and nan
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, ListConfig))


def number(what: str, test: Callable[[float], bool] = lambda v: True) -> Kind:
    return Kind(what, lambda v: is_number(v) and test(v))


def whole(what: str, test: Callable[[int], bool] = lambda v: True) -> Kind:
    return Kind(what, lambda v: is_whole(v) and test(v))


def one_of(choices: Sequence[str]) -> Kind:
    return Kind(f"one of {', '.join(choices)}", lambda v: isinstance(v, str) and v in choices)


def optional(kind: Kind) -> Kind:
    return replace(kind, what=f"null or {kind.what}", accepts=lambda v: v is None or kind.accepts(v))


def may_stay_unset(kind: Kind) -> Kind:
    return replace(kind, required=False)


def pair_of(kind: Kind, what: str) -> Kind:
    return Kind(what, lambda v: is_list(v) and len(v) == 2 and all(kind.accepts(x) for x in v))


def parses(parse: Callable[[Any], Any], what: str) -> Kind:
    """A value that `parse` reads without a ConfigError (seed lists: `0-7`, `[1,2]`, `'1,2'`)."""

    def accepts(value: Any) -> bool:
        try:
            parse(value)
        except ConfigError:
            return False
        return True

    return Kind(what, accepts)


def is_layer_range(value: Any) -> bool:
    return is_list(value) and len(value) == 2 and all(is_whole(idx) for idx in value)


def is_device(value: Any) -> bool:
    if value == "auto":
        return True
    try:
        return isinstance(value, str) and torch.device(value).type in ("cpu", "cuda")
    except RuntimeError:
        return False


def is_gpu_selection(value: Any) -> bool:
    """Lightning's `devices`: a count, -1 (all), 'auto', a list of indices or a string of them ('0,1')."""
    if is_whole(value):
        return value >= 1 or value == -1
    if isinstance(value, str):
        return value in ("auto", "-1") or all(part.strip().isdigit() for part in value.split(","))
    return is_list(value) and len(value) > 0 and all(is_whole(idx) and idx >= 0 for idx in value)


TEXT = Kind("a non-empty text", lambda v: isinstance(v, str) and v != "")
PATH = Kind("a path", TEXT.accepts)
BOOL = Kind("true or false", lambda v: isinstance(v, bool))
POSITIVE = number("a positive number", lambda v: v > 0)
NON_NEGATIVE = number("a number >= 0", lambda v: v >= 0)
FRACTION = number("a number in [0, 1]", lambda v: 0 <= v <= 1)
RAMP = number("a fraction of the steps in (0, 1]", lambda v: 0 < v <= 1)
KIMG = number("a positive number of kimg", lambda v: v > 0)
COUNT = whole("a positive whole number", lambda v: v >= 1)
ZERO_OR_MORE = whole("a whole number >= 0", lambda v: v >= 0)
SEED = whole("a whole number in 0..2**32-1", lambda v: 0 <= v < 2**32)
SEEDS = parses(parse_seeds, "a seed list: [0,1,2], a range 0-7 or a quoted list '0,1,2'")
LAYERS = parses(parse_seeds, "a list of layer indices: [0,1,2], a range 0-6 or a quoted list '0,1,2'")
DEVICE = Kind("auto, cpu, cuda or cuda:<index>", is_device)
NETWORK = Kind("a network pickle (.pkl), a stylefuse snapshot or checkpoint (.ckpt), a URL or a pretrained name "
               "such as ffhq", TEXT.accepts)
TRUNCATION = number("a number (the truncation psi; 1 = none)")
CLASS = optional(whole("a class index >= 0", lambda v: v >= 0))
RESOLUTION = optional(whole("a power-of-two size >= 4 such as 256", lambda v: v >= 4 and is_power_of_two(v)))
FUSION_INPUT = Kind("an image file, a projected_w.npz or seed:<number>", TEXT.accepts)
LAYER_RANGES = Kind("a preset name (ranges=paper), one pair of layers [start, end] or a list of pairs "
                    "[[0,6],[8,14]]", lambda v: isinstance(v, str) or is_layer_range(v) or (is_list(v) and all(
                        pair is None or (is_list(pair) and len(pair) == 0) or is_layer_range(pair) for pair in v)))
SIGNALS = Kind("a list of signal names such as [SIGTERM, SIGUSR1]", lambda v: is_list(v) and all(
    isinstance(name, str) for name in v) and parses(parse_signals, "").accepts(v))
ALIGN = one_of(ALIGN_CHOICES)
METRICS = Kind("a list of metric names such as [fid50k_full]",
               lambda v: is_list(v) and all(isinstance(name, str) for name in v))


# Every knob of the jobs, by the key the command line sets; `<group>.*` is every other key of that group. A knob of
# one group option only (dataset.num_images of the toy data) is checked when the composed config has it.

INFERENCE = {
    "network": NETWORK,
    "device": DEVICE,
    "noise_mode": one_of(NOISE_MODES),
    "trunc": TRUNCATION,
    "class_idx": CLASS,
}

PROJECTOR = {
    "projector.space": one_of(("w", "w+")),  # the projector's SPACES (importing them loads LPIPS and torchvision)
    "projector.num_steps": COUNT,
    "projector.w_avg_samples": COUNT,
    "projector.initial_learning_rate": POSITIVE,
    "projector.initial_noise_factor": NON_NEGATIVE,
    "projector.lr_rampdown_length": RAMP,
    "projector.lr_rampup_length": RAMP,
    "projector.noise_ramp_length": RAMP,
    "projector.regularize_noise_weight": NON_NEGATIVE,
    "projector.mse_weight": NON_NEGATIVE,
    "projector.seed": SEED,
    "projector.lpips_model.pnet_rand": BOOL,
    # The fast mode (conf/projector/_fast.yaml); step_resolutions checks that the shares sum to 1.
    "projector.optimize_noise": BOOL,
    "projector.stages": optional(Kind("a list of [resolution or null, share of the steps] pairs, e.g. "
                                      "[[64,0.5],[null,0.5]]", lambda v: is_list(v) and len(v) > 0 and all(
                                          is_list(p) and len(p) == 2 and (p[0] is None or is_whole(p[0]))
                                          and is_number(p[1]) for p in v))),
    "projector.start": one_of(("w_avg", "nearest")),  # the projector's STARTS
    "projector.start_candidates": COUNT,
    "projector.start_nearest": COUNT,
    "projector.start_resolution": whole("a power-of-two size >= 16 such as 32", lambda v: v >= 16
                                        and is_power_of_two(v)),
    "projector.fused_modconv": optional(BOOL),
    "projector.factored_demod": BOOL,
    "projector.precision": one_of(("float32", "bfloat16")),  # fast.PRECISIONS
    "projector.channels_last": optional(BOOL),
    # W+ (conf/projector/wplus.yaml, wplus_reg.yaml).
    "projector.layer_learning_rate": NON_NEGATIVE,
    "projector.layer_start": number("a fraction of the steps in [0, 1)", lambda v: 0 <= v < 1),
    "projector.layer_weight": NON_NEGATIVE,
    # Pivotal tuning (conf/projector/pti.yaml).
    "projector.tune_steps": COUNT,
    "projector.tune_learning_rate": POSITIVE,
    "projector.tune_l2_weight": NON_NEGATIVE,
    "projector.locality_weight": NON_NEGATIVE,
    "projector.locality_radius": POSITIVE,
    "projector.stop_lpips": NON_NEGATIVE,
}

DATASET = {
    "dataset.class_name": TEXT,
    "dataset.path": Kind("a folder or zip of images", TEXT.accepts),
    "dataset.resolution": RESOLUTION,
    "dataset.xflip": BOOL,
    "dataset.use_labels": BOOL,
    "dataset.max_size": optional(COUNT),
    "dataset.num_workers": ZERO_OR_MORE,
    "dataset.pin_memory": BOOL,
    "dataset.num_images": COUNT,
    "dataset.max_images": optional(COUNT),
    "dataset.resize_filter": one_of(sorted(RESIZE_FILTERS)),
    "dataset.download_hint": TEXT,
}

ARCHITECTURES = ("orig", "skip", "resnet")
MODEL = {
    "model.name": TEXT,
    "model.ref_gpus": optional(COUNT),
    "model.batch_size": optional(COUNT),
    "model.batch_gpu": optional(COUNT),
    "model.mbstd_group": optional(COUNT),
    "model.channel_base": optional(COUNT),
    "model.channel_max": COUNT,
    "model.lrate": optional(number("a positive learning rate such as 0.0025", lambda v: v > 0)),
    "model.gamma": optional(number("an R1 weight >= 0 such as 10", lambda v: v >= 0)),
    "model.ema_kimg": optional(number("a number of kimg >= 0", lambda v: v >= 0)),
    "model.ema_rampup": optional(NON_NEGATIVE),
    "model.map_layers": COUNT,
    "model.z_dim": COUNT,
    "model.w_dim": COUNT,
    "model.num_fp16_res": ZERO_OR_MORE,
    "model.conv_clamp": optional(POSITIVE),
    "model.fp32": BOOL,
    "model.channels_last": BOOL,
    "model.fp32_channels_last": optional(BOOL),
    "model.fp16_dtype": one_of(("float16", "bfloat16")),
    "model.g_architecture": one_of(ARCHITECTURES),
    "model.d_architecture": one_of(ARCHITECTURES),
    "model.freeze_d": ZERO_OR_MORE,
    "model.style_mixing_prob": FRACTION,
    "model.pl_weight": NON_NEGATIVE,
    "model.compile": Kind("auto, true or false", lambda v: any(v is setting or v == setting and isinstance(v, str)
                                                                for setting in COMPILE_SETTINGS)),
}

TRAINING = {
    "seed": SEED,
    "total_kimg": KIMG,
    "kimg_per_tick": KIMG,
    "snapshot_kimg": KIMG,
    "grid_size": optional(pair_of(COUNT, "[columns, rows], two positive whole numbers")),
    "metrics": METRICS,
    "metrics_kimg": KIMG,
    "metrics_num_gen": optional(COUNT),
    "optimized_metric": optional(TEXT),
    "resume": optional(NETWORK),
    "cudnn_benchmark": BOOL,
    "allow_tf32": BOOL,
    "num_threads": optional(COUNT),
    "optim.betas": pair_of(number("a number in [0, 1)", lambda v: 0 <= v < 1), "[beta1, beta2], two numbers in [0, 1)"),
    "optim.eps": POSITIVE,
    **DATASET,
    **MODEL,
    "loss.pl_batch_shrink": COUNT,
    "loss.pl_decay": FRACTION,
    "loss.G_reg_interval": COUNT,
    "loss.D_reg_interval": COUNT,
    "augment.mode": one_of(AUGMENT_MODES),
    "augment.target": FRACTION,
    "augment.interval": COUNT,
    "augment.kimg": optional(KIMG),
    "augment.initial_p": NON_NEGATIVE,
    "augment.p": number("an augmentation probability in [0, 1]", lambda v: 0 <= v <= 1),
    "augment.pipe.imgfilter_bands": Kind("a list of 4 numbers >= 0", lambda v: is_list(v) and len(v) == 4 and all(
        NON_NEGATIVE.accepts(x) for x in v)),
    "augment.pipe.*": NON_NEGATIVE,
    "trainer.accelerator": TEXT,
    "trainer.devices": Kind("a number of devices, -1 (all GPUs), auto or a list of GPU indices such as [0,1]",
                            is_gpu_selection),
    "trainer.num_nodes": COUNT,
    "callbacks.metrics.max_real": optional(COUNT),
    "callbacks.metrics.seed": SEED,
    "callbacks.metrics.batch_size": COUNT,
    "callbacks.metrics.batch_gen": COUNT,
    "callbacks.metrics.num_workers": ZERO_OR_MORE,
    "callbacks.metrics.verbose": BOOL,
    "callbacks.snapshot.grid_seed": SEED,
    "callbacks.snapshot.noise_mode": one_of(NOISE_MODES),
    "callbacks.snapshot.keep_checkpoints": BOOL,
    "callbacks.snapshot.stop_signals": SIGNALS,
    "callbacks.snapshot.requeue_signals": SIGNALS,
}


def devices_available(cfg: DictConfig) -> None:
    """trainer=gpu on a machine without GPUs, more GPUs than it has, or GPU indices for a CPU run."""
    accelerator, devices = cfg.trainer.accelerator, cfg.trainer.devices
    found = torch.cuda.device_count()
    if accelerator == "cpu" or (accelerator == "auto" and found == 0):
        if devices != "auto" and not (is_whole(devices) and devices >= 1):
            raise ConfigError(f"trainer.devices={shown(devices)} selects GPUs, but this run trains on the CPU; give "
                              f"a number of processes such as trainer.devices=1")
        return
    if accelerator not in ("gpu", "cuda", "auto"):
        return  # the others (mps, tpu, ...) are Lightning's to check
    if found == 0:
        raise ConfigError(f"trainer.accelerator={accelerator} needs a CUDA GPU, and torch finds none "
                          f"(torch.cuda.is_available() is False); train on the CPU with trainer=cpu")
    if is_whole(devices):
        wanted = max(devices, 1)  # (-1: all of them)
    elif isinstance(devices, str):
        wanted = 1 if devices in ("auto", "-1") else max(int(idx) for idx in devices.split(",")) + 1
    else:
        wanted = max(devices) + 1
    if wanted > found:
        raise ConfigError(f"trainer.devices={shown(devices)} asks for more GPUs than the {found} torch finds; set "
                          f"trainer.devices={found} or fewer")


def known_metrics(cfg: DictConfig) -> None:
    from stylefuse.metrics.registry import check_metrics  # (imports Lightning: only the jobs that compute metrics)

    check_metrics(list(cfg.metrics))


def seeds_or_projected_w(cfg: DictConfig) -> None:
    if cfg.projected_w is None:
        parse_seeds(cfg.seeds)  # seeds=null: "seeds is not set: ..."


def eval_presets_exist(cfg: DictConfig) -> None:
    for name in [*cfg.presets, *([cfg.strength_preset] if cfg.strength_preset is not None else [])]:
        preset_ranges(name, cfg.fusion)


def ranges_preset_exists(cfg: DictConfig) -> None:
    if isinstance(cfg.ranges, str):
        preset_ranges(cfg.ranges, cfg.fusion)


@dataclass(frozen=True)
class JobChecks:
    knobs: dict[str, Kind]
    rules: tuple[Callable[[DictConfig], None], ...] = ()  # checks across knobs, after every knob passed its own


JOBS = {
    "train": JobChecks(TRAINING, (devices_available, known_metrics)),
    "project": JobChecks({
        "network": NETWORK, "target": Kind("an image file or a folder of images", TEXT.accepts),
        "batch_size": COUNT, "device": DEVICE, "save_video": BOOL, "align": ALIGN, **PROJECTOR}),
    "fuse": JobChecks({
        **INFERENCE, "image1": FUSION_INPUT, "image2": FUSION_INPUT, "ranges": LAYER_RANGES,
        "strength": number("a number in [0, 1] (0 keeps image 1, 1 takes image 2's layers)", lambda v: 0 <= v <= 1),
        "sweep": one_of(SWEEPS), "sweep_width": optional(COUNT), "sweep_frames": COUNT,
        "video_fps": POSITIVE, "align": ALIGN, **PROJECTOR}, (ranges_preset_exists,)),
    "generate": JobChecks({
        **INFERENCE, "seeds": optional(SEEDS), "projected_w": optional(PATH)}, (seeds_or_projected_w,)),
    "style_mixing": JobChecks({**INFERENCE, "rows": SEEDS, "cols": SEEDS, "styles": LAYERS}),
    "metrics": JobChecks({
        "network": NETWORK, "metrics": METRICS, "num_gen": optional(COUNT), "max_real": optional(COUNT),
        "cache_dir": PATH, "device": DEVICE, "seed": SEED, "batch_size": COUNT, "batch_gen": COUNT,
        "num_workers": ZERO_OR_MORE, "verbose": BOOL,
        # Left unset, the data comes from the network file's training_set_kwargs.
        **DATASET, "dataset.path": may_stay_unset(DATASET["dataset.path"])}, (known_metrics,)),
    "export": JobChecks({
        "network": NETWORK, "format": one_of(list(EXPORT_FORMATS)), "part": one_of(EXPORT_PARTS),
        "truncation_psi": TRUNCATION, "truncation_cutoff": optional(whole("a number of layers", lambda v: v >= 0)),
        "out": optional(PATH), "check_batch": whole("a number of images (0 = no check)", lambda v: v >= 0)}),
    "probe": JobChecks({
        "out": PATH, "resolution": RESOLUTION, "num_train": COUNT, "num_test": COUNT, "epochs": COUNT,
        "batch_size": COUNT, "lr": POSITIVE, "noise_std": NON_NEGATIVE, "train_seed": SEED, "test_seed": SEED,
        "seed": SEED}),
    "eval_fusion": JobChecks({
        "network": NETWORK, "device": DEVICE, "noise_mode": one_of(NOISE_MODES),
        "presets": Kind("a list of range preset names such as [paper, styles]",
                        lambda v: is_list(v) and all(isinstance(name, str) for name in v)),
        "window": optional(COUNT), "strength_preset": optional(TEXT),
        "strengths": Kind("a list of strengths in [0, 1]", lambda v: is_list(v) and len(v) > 0 and all(
            FRACTION.accepts(x) for x in v)),
        "min_gap": FRACTION, "num_real": ZERO_OR_MORE, "batch_size": COUNT, "example_rows": ZERO_OR_MORE,
        "inputs.kind": one_of(("seeds", "projected")), "inputs.num_pairs": COUNT, "inputs.first_seed": SEED,
        "inputs.trunc": TRUNCATION, "inputs.toy_seed": SEED, "inputs.batch_size": COUNT, **PROJECTOR},
        (eval_presets_exist,)),
}


def shown(value: Any) -> str:
    """A value as the command line writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return repr(value)


def check_knob(cfg: DictConfig, key: str, kind: Kind) -> None:
    group, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, group, default=None) if group else cfg
    if not isinstance(node, DictConfig) or name not in node.keys():  # (`in node` is False for `???` values)
        return  # a knob of another group option
    if OmegaConf.is_missing(node, name):
        if kind.required:
            raise ConfigError(f"{key} must be set to {kind.what}: add {key}=... to the command line")
        return
    try:
        value = node[name]
    except OmegaConfBaseException as err:  # an interpolation that does not resolve
        raise ConfigError(f"{key} cannot be read: {str(err).splitlines()[0]}") from None
    if not kind.accepts(value):
        raise ConfigError(f"{key} must be {kind.what}, got {shown(value)}")


def check_config(job: str, cfg: DictConfig) -> None:
    """Raises a one-line ConfigError for the first knob of `job` (a conf/<job>.yaml name) whose value is unset or not
    of its kind, then applies the job's rules across knobs."""
    checks = JOBS[job]
    for key, kind in checks.knobs.items():
        if key.endswith(".*"):
            group = OmegaConf.select(cfg, key[:-2], default=None)
            for name in group.keys() if isinstance(group, DictConfig) else ():
                if f"{key[:-2]}.{name}" not in checks.knobs:
                    check_knob(cfg, f"{key[:-2]}.{name}", kind)
        else:
            check_knob(cfg, key, kind)
    for rule in checks.rules:
        rule(cfg)
