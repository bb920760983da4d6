"""stylefuse network snapshots and Lightning checkpoints of the training module: `torch.save` files, read with
`torch.load(weights_only=True)`, which cannot run code."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks.rebuild import NETWORK_KEYS, build_network, first_line, plain
from stylefuse.nn import Discriminator, Generator

SNAPSHOT_FORMAT = "stylefuse-snapshot"
SNAPSHOT_VERSION = 1

# First bytes of a legacy (pre-zip) `torch.save` file: the pickled serialization magic number.
TORCH_LEGACY_PREFIX = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:12]


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)  # readers never see a half-written snapshot
    finally:
        tmp.unlink(missing_ok=True)


def load_torch_file(path: Path, display_name: str) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses any global that is not plain data
        refused = _unsupported(err)
        if refused is not None:
            raise NetworkFileError(f"{display_name} refers to objects that are not plain data ({refused}); refusing "
                                   f"to load it -- store hyper-parameters as plain dicts, lists and numbers") from err
        raise NetworkFileError(f"cannot read {display_name} ({type(err).__name__}: {first_line(err)}); the file is "
                               f"damaged or not a network file") from err
    if isinstance(data, dict) and data.get("format") == SNAPSHOT_FORMAT:
        return _from_stylefuse_snapshot(data, display_name)
    if is_lightning_checkpoint(data):
        return _from_lightning_checkpoint(data, display_name)
    raise NetworkFileError(f"{display_name} is a torch.save file but neither a stylefuse snapshot nor a Lightning "
                           f"checkpoint of the training module; pass a network-snapshot file or a training .ckpt")


def _from_stylefuse_snapshot(data: dict, display_name: str) -> dict[str, Any]:
    if data.get("version") != SNAPSHOT_VERSION:
        raise NetworkFileError(f"{display_name} is a stylefuse snapshot of version {data.get('version')}, this "
                               f"stylefuse reads version {SNAPSHOT_VERSION}; use the stylefuse release that wrote it")
    networks = {
        key: build_network(Discriminator if key == "D" else Generator, (),
                            data.get("D_kwargs" if key == "D" else "G_kwargs"), data.get(key),
                            f"{display_name}: network '{key}'")
        for key in NETWORK_KEYS
    }
    return dict(networks, augment_p=data.get("augment_p"), training_set_kwargs=data.get("training_set_kwargs"))


def _from_lightning_checkpoint(data: dict, display_name: str) -> dict[str, Any]:
    hparams = data["hyper_parameters"] or {}
    missing = [name for name in ("G_kwargs", "D_kwargs") if not isinstance(hparams.get(name), Mapping)]
    if missing:
        raise NetworkFileError(f"{display_name} is a Lightning checkpoint without hyper-parameters "
                               f"{' and '.join(missing)}; use a checkpoint written by stylefuse's training job")
    state_dict = data["state_dict"]
    networks = {}
    for key in NETWORK_KEYS:
        prefix = key + "."
        weights = {name[len(prefix):]: tensor for name, tensor in state_dict.items() if name.startswith(prefix)}
        networks[key] = build_network(Discriminator if key == "D" else Generator, (),
                                       plain(hparams["D_kwargs" if key == "D" else "G_kwargs"]), weights,
                                       f"{display_name}: network '{key}'")
    augment_p = state_dict.get("augment_pipe.p")
    training_set_kwargs = hparams.get("training_set_kwargs")
    return dict(networks, augment_p=None if augment_p is None else float(augment_p),
                training_set_kwargs=None if training_set_kwargs is None else plain(training_set_kwargs))



def _unsupported(err: BaseException) -> str | None:
    """The informative line of torch's multi-line weights_only refusal (`Unsupported global: GLOBAL x.y`)."""
    for line in str(err).splitlines():
        if "Unsupported global" in line:
            return line.strip().removeprefix("WeightsUnpickler error: ")
    return None



def is_lightning_checkpoint(data: Any) -> bool:
    """A loaded `torch.save` object is a Lightning checkpoint (of any module)."""
    return isinstance(data, dict) and "state_dict" in data and "hyper_parameters" in data


def is_training_checkpoint(path: str | os.PathLike) -> bool:
    """A file is a Lightning checkpoint with optimizer states: one that resumes a run exactly. Anything else (an
    official pickle, a network snapshot) starts a new run from its weights (transfer learning)."""
    if not os.path.isfile(path):
        return False
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    return is_lightning_checkpoint(data) and "optimizer_states" in data
