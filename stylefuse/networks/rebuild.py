"""Rebuilding stylefuse.nn modules from what a network file holds: plain constructor kwargs and a state dict."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from stylefuse.errors import NetworkFileError

NETWORK_KEYS = ("G", "D", "G_ema")


def plain(obj: Any) -> Any:
    """EasyDicts, OmegaConf containers, numpy scalars -> plain dicts, lists and Python numbers (for kwargs/files)."""
    if isinstance(obj, Mapping):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, tuple):
        return tuple(plain(value) for value in obj)
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return [plain(value) for value in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj



def build_network(cls: type[torch.nn.Module], args: tuple, kwargs: dict, state_dict: Mapping[str, torch.Tensor],
                   what: str) -> torch.nn.Module:
    """`cls(*args, **kwargs)` with exactly the given weights (strict), frozen for inference."""
    if not isinstance(kwargs, dict) or not isinstance(state_dict, Mapping):
        raise NetworkFileError(f"{what} has no constructor arguments or no weights; the file is damaged or not a "
                               f"StyleGAN2-ADA network")
    try:
        module = cls(*args, **copy.deepcopy(kwargs))
    except (TypeError, ValueError, KeyError, AssertionError) as err:
        raise NetworkFileError(f"{what} has constructor arguments StyleGAN2-ADA's {cls.__name__} does not accept "
                               f"({first_line(err)}); the file is not a StyleGAN2-ADA network") from err
    expected = module.state_dict()
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict if name not in expected]
    mismatched = [name for name in expected if name in state_dict
                  and tuple(state_dict[name].shape) != tuple(expected[name].shape)]
    if missing or unexpected or mismatched:
        details = "; ".join(f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                            for label, names in (("missing", missing), ("unexpected", unexpected),
                                                 ("wrong shape", mismatched)) if names)
        raise NetworkFileError(f"{what} weights do not fit its architecture ({details}); the file is damaged or not "
                               f"a StyleGAN2-ADA network")
    module.load_state_dict(state_dict, strict=True)
    return module.eval().requires_grad_(False)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__



def copy_params_and_buffers(src_module: torch.nn.Module, dst_module: torch.nn.Module,
                            require_all: bool = False) -> None:
    """Copies every parameter and buffer of `dst_module` that `src_module` has under the same name (resume and
    transfer learning); with `require_all`, a name missing from the source is an error."""
    src_tensors = dict(src_module.named_parameters())
    src_tensors.update(src_module.named_buffers())
    dst_tensors = dict(dst_module.named_parameters())
    dst_tensors.update(dst_module.named_buffers())
    with torch.no_grad():
        for name, dst in dst_tensors.items():
            src = src_tensors.get(name)
            if src is None:
                if require_all:
                    raise NetworkFileError(f"the source network has no '{name}'; resume from a network with the same "
                                           f"architecture")
                continue
            if src.shape != dst.shape:
                raise NetworkFileError(f"cannot copy '{name}': shape {list(src.shape)} in the source network, "
                                       f"{list(dst.shape)} here; resume from a network with the same architecture "
                                       f"(resolution, channels, c_dim)")
            dst.copy_(src.detach())
