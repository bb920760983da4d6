"""Network pickles written by NVIDIA's code, read WITHOUT importing or executing any of it.

An official StyleGAN2-ADA PyTorch snapshot embeds the source of `training/networks.py` and asks the reader to exec
it; a TensorFlow-era pickle names `dnnlib.tflib.network.Network` and carries its build source. Both go through the
restricted unpickler (`unpickler`): every persistent object becomes a `PersistentModule` (class name + saved
`__dict__`, the module source dropped unread), every TF network a `TFNetwork` (see `tensorflow`), and our
`stylefuse.nn` modules are rebuilt from their constructor kwargs and weights.
"""

from __future__ import annotations

import io
import mmap
from pathlib import Path
from typing import Any

from stylefuse import nn as networks
from stylefuse.errors import NetworkFileError
from stylefuse.networks import tensorflow
from stylefuse.networks.rebuild import NETWORK_KEYS, augment_probability, build_networks, network_class
from stylefuse.networks.torchfile import read_legacy
from stylefuse.networks.unpickler import (
    NUMPY_ARRAY_GLOBALS,
    NUMPY_SCALAR_GLOBALS,
    PLAIN_GLOBALS,
    TORCH_TENSOR_GLOBALS,
    Budget,
    Constructor,
    PlainDict,
    StorageStub,
    Stub,
    malformed,
    materialize,
    reconstructor,
    unpickle,
)

# Every class inside an official StyleGAN2-ADA G or D; stylefuse.nn exports exactly these names.
_STYLEGAN2_CLASS_NAMES = frozenset(name for name in networks.__all__ if isinstance(getattr(networks, name), type))


class PersistentModule:
    """A module of an official snapshot: its class name and saved instance `__dict__` (plain values, tensors and
    child PersistentModules)."""

    __slots__ = ("class_name", "state")

    def __init__(self, class_name: str, state: dict):
        self.class_name = class_name
        self.state = state


class _PersistentObject(Stub):
    """`torch_utils.persistence._reconstruct_persistent_obj(meta)`, kept as the meta until it is checked."""

    __slots__ = ("meta",)

    def __init__(self, meta: Any):
        self.meta = meta

    def parts(self) -> Any:
        if type(self.meta) is dict:  # the pickled module source is dropped unread
            return {key: value for key, value in self.meta.items() if key != "module_src"}
        return self.meta

    def build(self, meta: Any, display_name: str) -> PersistentModule:
        state = meta.get("state") if isinstance(meta, dict) else None
        if not (isinstance(state, dict) and meta.get("type") == "class" and isinstance(meta.get("class_name"), str)
                and all(isinstance(state.get(k, {}), dict) for k in ("_parameters", "_buffers", "_modules"))
                and isinstance(state.get("_non_persistent_buffers_set", set()), set)
                and isinstance(state.get("_init_args", ()), tuple)):
            raise malformed(display_name, "a persistent object in the pickle is not a saved torch module; the file "
                                          "is damaged or not a StyleGAN2-ADA snapshot")
        return PersistentModule(meta["class_name"], state)


def _allowed_globals(budget: Budget) -> dict[tuple[str, str], Any]:
    """The globals of official and TF-era network pickles; nothing else is ever resolved."""

    def storage_from_bytes(blob: Any) -> StorageStub:  # `torch.storage._load_from_bytes`: a legacy torch.save blob
        if not isinstance(blob, bytes):
            raise malformed(budget.display_name, "a tensor storage in the pickle is not a byte string; it is damaged")
        storage = read_legacy(io.BytesIO(blob), budget)
        if not isinstance(storage, StorageStub):
            raise malformed(budget.display_name, "a tensor storage blob in the pickle holds something else; it is "
                                                 "damaged")
        return storage

    return {
        **PLAIN_GLOBALS, **NUMPY_SCALAR_GLOBALS, **NUMPY_ARRAY_GLOBALS, **TORCH_TENSOR_GLOBALS,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): Constructor("persistent object",
                                                                                 _PersistentObject),
        ("dnnlib.util", "EasyDict"): PlainDict,
        ("dnnlib.tflib.network", "Network"): tensorflow.TFNetworkStub,
        ("copyreg", "_reconstructor"): reconstructor((PlainDict, tensorflow.TFNetworkStub)),
        ("torch.storage", "_load_from_bytes"): Constructor("storage", storage_from_bytes),
    }


def _class_names(module: PersistentModule) -> set[str]:
    names = {module.class_name}
    for child in module.state.get("_modules", {}).values():
        if isinstance(child, PersistentModule):
            names |= _class_names(child)
    return names


def _state_dict(module: PersistentModule, what: str, prefix: str = "", out: dict | None = None) -> dict[str, Any]:
    """The flat `state_dict()` of the pickled module: parameters, then persistent buffers, then children.
    Frozen (Freeze-D) layers keep their weights in `_buffers`, so they are picked up under the same names."""
    out = {} if out is None else out
    state = module.state
    skipped = state.get("_non_persistent_buffers_set", set())
    tensors = list(state.get("_parameters", {}).items())
    tensors += [(name, tensor) for name, tensor in state.get("_buffers", {}).items() if name not in skipped]
    for name, tensor in tensors:
        if tensor is not None:
            out[prefix + str(name)] = tensor
    for name, child in state.get("_modules", {}).items():
        if isinstance(child, PersistentModule):
            _state_dict(child, what, f"{prefix}{name}.", out)
        elif child is not None:
            raise NetworkFileError(f"{what}: submodule {prefix}{name} is a {type(child).__name__}, not a "
                                   f"StyleGAN2-ADA module; the file is not a StyleGAN2-ADA snapshot")
    return out


def _network_parts(data: dict, key: str, display_name: str) -> tuple[type, Any, dict[str, Any]]:
    """(class, kwargs, state dict) of the snapshot's network `key`."""
    module = data.get(key)
    cls = network_class(key)
    what = f"{display_name}: network '{key}'"
    if not isinstance(module, PersistentModule):
        raise NetworkFileError(f"{display_name} has no StyleGAN2-ADA network '{key}' (found {type(module).__name__}); "
                               f"use a StyleGAN2-ADA snapshot pickle")
    unknown = sorted(_class_names(module) - _STYLEGAN2_CLASS_NAMES)
    if module.class_name != cls.__name__ or unknown:
        found = unknown or [module.class_name]
        raise NetworkFileError(
            f"{what} is made of {', '.join(found)}, which StyleGAN2-ADA does not have (a StyleGAN3 or other "
            f"non-StyleGAN2-ADA pickle?); stylefuse loads only StyleGAN2-ADA networks")
    if module.state.get("_init_args", ()) != ():  # the official training loop builds G and D from kwargs only
        raise NetworkFileError(f"{what} was built with positional constructor arguments, which StyleGAN2-ADA "
                               f"networks never have; the file is not a StyleGAN2-ADA snapshot")
    return cls, module.state.get("_init_kwargs", {}), _state_dict(module, what)


def read_network_pickle(path: Path, display_name: str) -> dict[str, Any]:
    """An official StyleGAN2-ADA snapshot or a TF-era (G, D, Gs) pickle -> G, D, G_ema, augment_p,
    training_set_kwargs."""
    budget = Budget(display_name)
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        data = materialize(unpickle(mm, budget, _allowed_globals(budget)), budget)
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(net, tensorflow.TFNetwork) for net in data):
        return tensorflow.convert(*data, display_name=display_name)
    if not isinstance(data, dict):
        raise NetworkFileError(f"{display_name} holds a {type(data).__name__}, not a StyleGAN2-ADA snapshot dict with "
                               f"G, D and G_ema; use a network-snapshot-*.pkl")

    result = build_networks({key: _network_parts(data, key, display_name) for key in NETWORK_KEYS}, display_name)
    pipe = data.get("augment_pipe")
    p = pipe.state.get("_buffers", {}).get("p") if isinstance(pipe, PersistentModule) else None
    training_set_kwargs = data.get("training_set_kwargs")
    if training_set_kwargs is not None and not isinstance(training_set_kwargs, dict):
        raise NetworkFileError(f"{display_name}: training_set_kwargs is a {type(training_set_kwargs).__name__}, not a "
                               f"dictionary; the file is damaged")
    return dict(result, augment_p=augment_probability(p, display_name), training_set_kwargs=training_set_kwargs)
