"""stylefuse network snapshots and Lightning checkpoints of the training module: `torch.save` files, written with
torch.save and read by `torchfile` (the restricted unpickler, never torch.load)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks.rebuild import (
    NETWORK_KEYS,
    augment_probability,
    build_networks,
    check_network_kwargs,
    network_class,
    plain,
)
from stylefuse.networks.sniff import TORCH_LEGACY, ZIP, sniff
from stylefuse.networks.torchfile import read_legacy_file, read_zip
from stylefuse.networks.unpickler import Budget, reading
from stylefuse.nn import Discriminator, Generator
from stylefuse.utils.files import atomic_write, torch_save

SNAPSHOT_FORMAT = "stylefuse-snapshot"
SNAPSHOT_VERSION = 1


def _cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}


def save_network_snapshot(path: str | os.PathLike, G: Generator, D: Discriminator, G_ema: Generator,
                          augment_p: float | None, training_set_kwargs: Mapping | None, kimg: float) -> None:
    """Writes a stylefuse network snapshot (atomically) that `load_network_pkl` reads back."""
    assert G.init_kwargs == G_ema.init_kwargs, "G and G_ema must share one architecture"
    data = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "G_kwargs": plain(G.init_kwargs),
        "D_kwargs": plain(D.init_kwargs),
        "G": _cpu_state_dict(G),
        "D": _cpu_state_dict(D),
        "G_ema": _cpu_state_dict(G_ema),
        "augment_p": None if augment_p is None else float(augment_p),
        "training_set_kwargs": None if training_set_kwargs is None else plain(training_set_kwargs),
        "kimg": float(kimg),
    }
    atomic_write(path, lambda tmp: torch_save(data, tmp))  # readers never see a half-written snapshot


def read_torch_file(path: Path, display_name: str, kind: str) -> Any:
    """The plain contents of a torch.save file (`kind`: sniff.ZIP or sniff.TORCH_LEGACY), read without torch.load."""
    budget = Budget(display_name)
    with reading(display_name):
        return read_zip(path, budget) if kind == ZIP else read_legacy_file(path, budget)


def load_torch_file(path: Path, display_name: str, kind: str) -> dict[str, Any]:
    data = read_torch_file(path, display_name, kind)
    if isinstance(data, dict) and data.get("format") == SNAPSHOT_FORMAT:
        return _from_stylefuse_snapshot(data, display_name)
    if is_lightning_checkpoint(data):
        return _from_lightning_checkpoint(data, display_name)
    raise NetworkFileError(f"{display_name} is a torch.save file but neither a stylefuse snapshot nor a Lightning "
                           f"checkpoint of the training module; pass a network-snapshot file or a training .ckpt")


def _from_stylefuse_snapshot(data: dict, display_name: str) -> dict[str, Any]:
    if data.get("version") != SNAPSHOT_VERSION:
        raise NetworkFileError(f"{display_name} is a stylefuse snapshot of version {data.get('version')!r}, this "
                               f"stylefuse reads version {SNAPSHOT_VERSION}; use the stylefuse release that wrote it")
    networks = build_networks({key: (network_class(key), data.get("D_kwargs" if key == "D" else "G_kwargs"),
                                      data.get(key)) for key in NETWORK_KEYS}, display_name)
    return dict(networks, augment_p=augment_probability(data.get("augment_p"), display_name),
                training_set_kwargs=_training_set_kwargs(data.get("training_set_kwargs"), display_name))


def _from_lightning_checkpoint(data: dict, display_name: str) -> dict[str, Any]:
    hparams = data["hyper_parameters"] or {}
    state_dict = data["state_dict"]
    if not isinstance(hparams, dict) or not isinstance(state_dict, dict):
        raise NetworkFileError(f"{display_name} is a Lightning checkpoint whose hyper-parameters or state dict are not "
                               f"dictionaries; the file is damaged")
    missing = [name for name in ("G_kwargs", "D_kwargs") if not isinstance(hparams.get(name), dict)]
    if missing:
        raise NetworkFileError(f"{display_name} is a Lightning checkpoint without hyper-parameters "
                               f"{' and '.join(missing)}; use a checkpoint written by stylefuse's training job")
    parts = {}
    for key in NETWORK_KEYS:
        prefix = key + "."
        weights = {name[len(prefix):]: tensor for name, tensor in state_dict.items()
                   if isinstance(name, str) and name.startswith(prefix)}
        parts[key] = (network_class(key), hparams["D_kwargs" if key == "D" else "G_kwargs"], weights)
    networks = build_networks(parts, display_name)
    return dict(networks, augment_p=augment_probability(state_dict.get("augment_pipe.p"), display_name),
                training_set_kwargs=_training_set_kwargs(hparams.get("training_set_kwargs"), display_name))


def _training_set_kwargs(value: Any, display_name: str) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise NetworkFileError(f"{display_name}: training_set_kwargs is a {type(value).__name__}, not a dictionary; "
                               f"the file is damaged")
    return value


def read_plain_torch_file(path: str | os.PathLike, what: str = "file") -> Any:
    """Any torch.save file's contents, read by the restricted unpickler (never torch.load): plain data only."""
    path = Path(path)
    display_name = str(path)
    if not path.is_file():
        raise NetworkFileError(f"{what} not found: {display_name}; pass an existing .ckpt file")
    with reading(display_name):
        kind = sniff(path, display_name)
    if kind not in (ZIP, TORCH_LEGACY):
        raise NetworkFileError(f"{display_name} is not a Lightning checkpoint (not a torch.save file)")
    return read_torch_file(path, display_name, kind)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A Lightning checkpoint read with every network-file check (the restricted unpickler, never torch.load; the
    G/D constructor kwargs of its hyper-parameters, when it has them, within what a StyleGAN2 can be): what
    `StyleGAN2Module.load_from_checkpoint` and `Trainer.fit(ckpt_path=...)` may hand on to Lightning."""
    return check_checkpoint(read_plain_torch_file(path, "checkpoint"), str(path))


def check_checkpoint(data: Any, display_name: str) -> dict[str, Any]:
    """`data` (a torch.save file's plain contents) is a Lightning checkpoint whose network kwargs are in bounds."""
    if not is_lightning_checkpoint(data):
        raise NetworkFileError(f"{display_name} is a torch.save file but not a Lightning checkpoint")
    hparams = data["hyper_parameters"] or {}
    if not isinstance(hparams, dict):
        raise NetworkFileError(f"{display_name}: the checkpoint's hyper-parameters are not a dictionary")
    for key, cls in (("G_kwargs", Generator), ("D_kwargs", Discriminator)):
        if key in hparams:
            check_network_kwargs(cls, hparams[key], f"{display_name}: hyper-parameter {key}")
    return data


def is_lightning_checkpoint(data: Any) -> bool:
    """A loaded `torch.save` object is a Lightning checkpoint (of any module)."""
    return isinstance(data, dict) and "state_dict" in data and "hyper_parameters" in data


def is_training_checkpoint(path: str | os.PathLike) -> bool:
    """A file is a Lightning checkpoint with optimizer states: one that resumes a run exactly. Anything else (an
    official pickle, a network snapshot) starts a new run from its weights (transfer learning). The file is read with
    the same checks as every network file, so a checkpoint handed on to Lightning has been found plain data first;
    a torch.save file that fails them raises NetworkFileError."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with reading(str(path)):
            kind = sniff(path, str(path))
    except NetworkFileError:  # not a network file at all: the transfer-learning path reports what it is
        return False
    if kind not in (ZIP, TORCH_LEGACY):
        return False
    data = read_torch_file(path, str(path), kind)
    return is_lightning_checkpoint(data) and "optimizer_states" in data
