"""Official StyleGAN2-ADA PyTorch snapshot pickles, read WITHOUT importing or executing NVIDIA's code.

Such a pickle embeds the source of `training/networks.py` and asks the reader to exec it. A restricted unpickler
instead turns every persistent object into a `_PersistentStub` (class name + saved `__dict__`), refuses any global
outside a short list of plain-data constructors, and our `stylefuse.nn` modules are rebuilt from the stubs'
constructor kwargs and weights.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylefuse import nn as networks
from stylefuse.errors import NetworkFileError
from stylefuse.networks.rebuild import NETWORK_KEYS, build_network, first_line, plain
from stylefuse.nn import Discriminator, Generator

try:  # numpy >= 2 writes numpy scalars as `numpy._core.multiarray.scalar`, numpy 1 as `numpy.core.multiarray.scalar`.
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:
    from numpy.core.multiarray import scalar as _numpy_scalar

# Every class inside an official StyleGAN2-ADA G or D; stylefuse.nn exports exactly these names.
_STYLEGAN2_CLASS_NAMES = frozenset(name for name in networks.__all__ if isinstance(getattr(networks, name), type))



class _PersistentStub:
    """What `torch_utils.persistence._reconstruct_persistent_obj(meta)` yields here: the class name and the saved
    instance `__dict__`. The pickled module source (`meta['module_src']`) is dropped unread."""

    __slots__ = ("class_name", "state")

    def __init__(self, class_name: str, state: dict):
        self.class_name = class_name
        self.state = state

    @classmethod
    def from_meta(cls, meta: Any) -> _PersistentStub:
        state = meta.get("state") if isinstance(meta, dict) else None
        if not (isinstance(state, dict) and meta.get("type") == "class" and isinstance(meta.get("class_name"), str)
                and all(isinstance(state.get(k, {}), dict) for k in ("_parameters", "_buffers", "_modules"))
                and isinstance(state.get("_non_persistent_buffers_set", set()), set)
                and isinstance(state.get("_init_args", ()), tuple)):
            raise NetworkFileError("a persistent object in the pickle is not a saved torch module; the file is "
                                   "damaged or not a StyleGAN2-ADA snapshot")
        return cls(meta["class_name"], state)


class _EasyDict(dict):
    """Stands in for `dnnlib.util.EasyDict` (a dict with attribute access); converted to plain dicts after loading."""


def _storage_from_bytes(blob: bytes) -> Any:
    """`torch.storage._load_from_bytes`: a tensor storage pickled by `pickle.dump` is a legacy `torch.save` blob."""
    if not isinstance(blob, bytes):
        raise NetworkFileError("a tensor storage in the pickle is not a byte string; the file is damaged")
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def _plain_dtype(*args: Any) -> np.dtype:
    """`numpy.dtype`, limited to numbers and booleans (an object dtype would let a scalar carry a pickled object)."""
    dtype = np.dtype(*args)
    if dtype.kind not in "biufc":
        raise NetworkFileError(f"the pickle asks for a numpy {dtype} value; network snapshots hold only numbers")
    return dtype


# The only globals a StyleGAN2-ADA snapshot needs; each builds plain data and none can run pickled code.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _PersistentStub.from_meta,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,                  # `_non_persistent_buffers_set` in protocol <= 3 pickles
    ("_codecs", "encode"): codecs.encode,      # byte strings in protocol 2 pickles
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("numpy", "dtype"): _plain_dtype,          # numpy float64 attributes such as `weight_gain`, `act_gain`
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


class _SnapshotUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED_GLOBALS`; any other global is refused before it can be called."""

    def __init__(self, file: Any, display_name: str):
        super().__init__(file)
        self.display_name = display_name

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol 2 pickles spell `builtins` the Python 2 way
            module = "builtins"
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module.startswith("dnnlib.tflib"):
            raise NetworkFileError(
                f"{self.display_name} is a TensorFlow-era StyleGAN2 pickle; convert it with the official "
                f"stylegan2-ada-pytorch `python legacy.py --source=<file> --dest=<new.pkl>` and load the new pickle")
        raise NetworkFileError(
            f"{self.display_name} refers to {module}.{name}, which is not part of a plain network snapshot; refusing "
            f"to load it (it could run code) -- use only StyleGAN2-ADA snapshot pickles or stylefuse files you trust")

    def persistent_load(self, pid: Any) -> Any:
        raise NetworkFileError(f"{self.display_name} holds torch.save references, not a pickled snapshot; the file is "
                               f"damaged or not a StyleGAN2-ADA network")


def _stub_class_names(stub: _PersistentStub) -> set[str]:
    names = {stub.class_name}
    for child in stub.state.get("_modules", {}).values():
        if isinstance(child, _PersistentStub):
            names |= _stub_class_names(child)
    return names


def _stub_state_dict(stub: _PersistentStub, prefix: str = "", out: dict | None = None) -> dict[str, torch.Tensor]:
    """The flat `state_dict()` of the pickled module: parameters, then persistent buffers, then children.
    Frozen (Freeze-D) layers keep their weights in `_buffers`, so they are picked up under the same names."""
    out = {} if out is None else out
    state = stub.state
    skipped = state.get("_non_persistent_buffers_set", set())
    tensors = list(state.get("_parameters", {}).items())
    tensors += [(name, tensor) for name, tensor in state.get("_buffers", {}).items() if name not in skipped]
    for name, tensor in tensors:
        if tensor is None:
            continue
        if not isinstance(tensor, torch.Tensor):
            raise NetworkFileError(f"{prefix + name} is a {type(tensor).__name__}, not a tensor; the file is damaged "
                                   f"or not a StyleGAN2-ADA snapshot")
        out[prefix + name] = tensor.detach()
    for name, child in state.get("_modules", {}).items():
        if isinstance(child, _PersistentStub):
            _stub_state_dict(child, prefix + name + ".", out)
        elif child is not None:
            raise NetworkFileError(f"submodule {prefix + name} is not a persistent StyleGAN2-ADA object; the file is "
                                   f"not a StyleGAN2-ADA snapshot")
    return out


def _module_from_stub(data: dict, key: str, display_name: str) -> torch.nn.Module:
    stub = data.get(key)
    cls = Discriminator if key == "D" else Generator
    if not isinstance(stub, _PersistentStub):
        raise NetworkFileError(f"{display_name} has no StyleGAN2-ADA network '{key}' (found {type(stub).__name__}); "
                               f"use a StyleGAN2-ADA snapshot pickle")
    unknown = sorted(_stub_class_names(stub) - _STYLEGAN2_CLASS_NAMES)
    if stub.class_name != cls.__name__ or unknown:
        found = unknown or [stub.class_name]
        raise NetworkFileError(
            f"{display_name}: network '{key}' is made of {', '.join(found)}, which StyleGAN2-ADA does not have (a "
            f"StyleGAN3 or other non-StyleGAN2-ADA pickle?); stylefuse loads only StyleGAN2-ADA networks")
    args = tuple(plain(stub.state.get("_init_args", ())))
    kwargs = plain(stub.state.get("_init_kwargs", {}))
    return build_network(cls, args, kwargs, _stub_state_dict(stub), f"{display_name}: network '{key}'")


def load_official_pickle(path: Path, display_name: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            data = _SnapshotUnpickler(file, display_name).load()
    except NetworkFileError:
        raise
    except Exception as err:  # any parse failure of a damaged/foreign file becomes one clear line
        raise NetworkFileError(f"cannot read {display_name} as a network pickle ({type(err).__name__}: "
                               f"{first_line(err)}); the file is damaged or not a StyleGAN2-ADA snapshot") from err
    if not isinstance(data, dict):
        raise NetworkFileError(f"{display_name} holds a {type(data).__name__}, not a StyleGAN2-ADA snapshot dict with "
                               f"G, D and G_ema; use a network-snapshot-*.pkl")

    networks = {key: _module_from_stub(data, key, display_name) for key in NETWORK_KEYS}
    augment_p = None
    pipe = data.get("augment_pipe")
    if isinstance(pipe, _PersistentStub) and isinstance(pipe.state.get("_buffers", {}).get("p"), torch.Tensor):
        augment_p = float(pipe.state["_buffers"]["p"])
    training_set_kwargs = data.get("training_set_kwargs")
    return dict(networks, augment_p=augment_p,
                training_set_kwargs=None if training_set_kwargs is None else plain(training_set_kwargs))

