"""Rebuilding stylefuse.nn modules from what a network file holds: plain constructor kwargs and a state dict.

The kwargs come from the file, so they are checked against what a StyleGAN2 can be (`check_network_kwargs`) before
anything is built: a file cannot make the loader build a network of billions of parameters or 200000 layers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks.unpickler import first_line
from stylefuse.nn import Discriminator, Generator
from stylefuse.ops.bias_act import activation_funcs

NETWORK_KEYS = ("G", "D", "G_ema")

# What a StyleGAN2 can be. Official networks: resolution <= 1024, 512 channels and dims, 8 mapping layers, ~33M
# parameters and buffers; the largest published community ones about 250M parameters (w_dim 1024).
MAX_RESOLUTION = 4096
MAX_WIDTH = 4096              # channel_max, z/w dims, feature counts, cmap_dim
MAX_C_DIM = 100_000           # label dimensionality (one-hot classes)
MAX_MAPPING_LAYERS = 64
MAX_IMG_CHANNELS = 16
MAX_ELEMENTS = 1 << 29        # parameters + buffers of one network (2 GiB of float32)


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


# ---------------------------------------------------------------------------------------------------------------------
# Constructor kwargs: every size-defining argument within bounds, checked before building.

def _integer(low: int, high: int, optional: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if optional and value is None:
            return None
        if type(value) is not int or not low <= value <= high:
            return f"{'None or ' if optional else ''}an integer from {low} to {high}"
        return None
    return check


def _number(low: float, high: float, optional: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if optional and value is None:
            return None
        if type(value) not in (int, float) or not (math.isfinite(value) and low <= value <= high):
            return f"{'None or ' if optional else ''}a number from {low:g} to {high:g}"
        return None
    return check


def _choice(*options: Any) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if any(type(value) is type(option) and value == option for option in options):
            return None
        return f"one of {', '.join(map(str, options))}"
    return check


def _resolution(value: Any) -> str | None:
    if type(value) is not int or not 4 <= value <= MAX_RESOLUTION or value & (value - 1):
        return f"a power of two from 4 to {MAX_RESOLUTION}"
    return None


def _filter(value: Any) -> str | None:
    if (isinstance(value, (list, tuple)) and 1 <= len(value) <= 16
            and all(type(v) in (int, float) and math.isfinite(v) for v in value) and sum(value) != 0):
        return None
    return "a list of 1 to 16 filter taps with a non-zero sum"


_BOOL = _choice(True, False)
_ACTIVATION = _choice(*activation_funcs)
_ARCHITECTURE = _choice("orig", "skip", "resnet")
_COMMON = dict(img_resolution=_resolution, img_channels=_integer(1, MAX_IMG_CHANNELS), c_dim=_integer(0, MAX_C_DIM))
_NETS = dict(channel_base=_integer(1, 1 << 24), channel_max=_integer(1, MAX_WIDTH), num_fp16_res=_integer(0, 16),
             conv_clamp=_number(1e-3, 1e6, optional=True), architecture=_ARCHITECTURE)
_MAPPING = dict(num_layers=_integer(0, MAX_MAPPING_LAYERS), embed_features=_integer(1, MAX_WIDTH, optional=True),
                layer_features=_integer(1, MAX_WIDTH, optional=True), activation=_ACTIVATION,
                lr_multiplier=_number(1e-6, 1e3), w_avg_beta=_number(0, 1, optional=True))
_RULES: dict[type, dict[str, Any]] = {
    Generator: dict(
        **_COMMON, z_dim=_integer(1, MAX_WIDTH), w_dim=_integer(1, MAX_WIDTH), mapping_kwargs=_MAPPING,
        synthesis_kwargs=dict(**_NETS, resample_filter=_filter, use_noise=_BOOL, activation=_ACTIVATION,
                              kernel_size=_choice(1, 3, 5, 7), fp16_channels_last=_BOOL)),
    Discriminator: dict(
        **_COMMON, **_NETS, cmap_dim=_integer(1, MAX_WIDTH, optional=True), mapping_kwargs=_MAPPING,
        block_kwargs=dict(activation=_ACTIVATION, resample_filter=_filter, fp16_channels_last=_BOOL,
                          freeze_layers=_integer(0, 1000)),
        epilogue_kwargs=dict(mbstd_group_size=_integer(1, 4096, optional=True), mbstd_num_channels=_integer(0, 64),
                             activation=_ACTIVATION)),
}


def _short(value: Any) -> str:
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value) if not isinstance(value, (list, tuple, dict)) or len(value) < 100 else \
        f"a {type(value).__name__} of {len(value)} items"
    return text if len(text) <= 40 else text[:37] + "..."


def _check_fields(kwargs: Any, rules: Mapping[str, Any], where: str, what: str, cls: type) -> None:
    if not isinstance(kwargs, dict) or not all(type(key) is str for key in kwargs):
        raise NetworkFileError(f"{what}: {where or 'the constructor arguments'} are not a dictionary of named "
                               f"arguments; the file is damaged or not a StyleGAN2 network")
    for key, value in kwargs.items():
        rule = rules.get(key)
        name = f"{where}.{key}" if where else key
        if isinstance(rule, dict):
            if value is not None:
                _check_fields(value, rule, name, what, cls)
        elif rule is not None and (expected := rule(value)) is not None:
            raise NetworkFileError(f"{what}: {name} is {_short(value)}, but a StyleGAN2 {cls.__name__} takes "
                                   f"{expected}; the file is damaged or not a StyleGAN2 network")


def _size_bound(cls: type, kwargs: dict) -> int:
    """An upper bound on the parameters + buffers `cls(**kwargs)` has (every block at the widest channel count)."""
    res = kwargs["img_resolution"]
    nets = (kwargs.get("synthesis_kwargs") or {}) if cls is Generator else kwargs
    mapping = kwargs.get("mapping_kwargs") or {}
    width = min(nets.get("channel_base", 32768) // 4, nets.get("channel_max", 512))
    w_dim = kwargs.get("w_dim") or kwargs.get("cmap_dim") or width
    embed = mapping.get("embed_features") or w_dim
    features = max(kwargs.get("z_dim", 0) + embed, mapping.get("layer_features") or w_dim, w_dim)
    kernel = nets.get("kernel_size", 3)
    blocks = int(math.log2(res)) - 1
    per_block = 2 * kernel**2 * width**2 + width**2 + 4 * w_dim * width + 2 * res**2 + 32 * width
    return (blocks * per_block + 16 * width**2 + mapping.get("num_layers", 8) * features**2
            + kwargs["c_dim"] * embed)


def network_class(key: str) -> type[torch.nn.Module]:
    """The class of a network file's network `key` ('G', 'D' or 'G_ema')."""
    return Discriminator if key == "D" else Generator


def check_network_kwargs(cls: type, kwargs: Any, what: str) -> None:
    """Refuses constructor kwargs outside what a StyleGAN2 `cls` (Generator or Discriminator) can be, in one line."""
    _check_fields(kwargs, _RULES[cls], "", what, cls)
    missing = [key for key in ("img_resolution", "img_channels", "c_dim") + (("z_dim", "w_dim") if cls is Generator
                                                                              else ()) if key not in kwargs]
    if missing:
        raise NetworkFileError(f"{what} lacks the constructor argument {missing[0]}; the file is damaged or not a "
                               f"StyleGAN2 network")
    bound = _size_bound(cls, kwargs)
    if bound > MAX_ELEMENTS:
        raise NetworkFileError(f"{what} would have up to {bound:,} parameters, more than a StyleGAN2 network loaded "
                               f"by stylefuse may have ({MAX_ELEMENTS:,}); refusing to build it")


def construct_network(cls: type[torch.nn.Module], kwargs: Any, what: str) -> torch.nn.Module:
    """`cls(**kwargs)` once the kwargs are found within bounds; every failure is one NetworkFileError."""
    check_network_kwargs(cls, kwargs, what)
    try:
        return cls(**copy.deepcopy(kwargs))
    except Exception as err:  # unknown or inconsistent arguments (TypeError, AssertionError, ZeroDivisionError, ...)
        raise NetworkFileError(f"{what} has constructor arguments StyleGAN2-ADA's {cls.__name__} does not accept "
                               f"({first_line(err)}); the file is not a StyleGAN2-ADA network") from err


def _check_weights(state_dict: Any, what: str) -> None:
    if not isinstance(state_dict, Mapping):
        raise NetworkFileError(f"{what} has no weights (found {type(state_dict).__name__}); the file is damaged or "
                               f"not a StyleGAN2 network")
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise NetworkFileError(f"{what}: weight {name} is a {type(tensor).__name__}, not a tensor; the file is "
                                   f"damaged or not a StyleGAN2 network")
        if not tensor.is_floating_point():
            raise NetworkFileError(f"{what}: weight {name} holds {str(tensor.dtype).removeprefix('torch.')} values, "
                                   f"not floating-point numbers; the file is damaged or not a StyleGAN2 network")


def load_weights(module: torch.nn.Module, state_dict: Any, what: str) -> torch.nn.Module:
    """`module` with exactly the given weights (strict: names and shapes), frozen for inference."""
    _check_weights(state_dict, what)
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


def build_network(cls: type[torch.nn.Module], kwargs: Any, state_dict: Any, what: str) -> torch.nn.Module:
    """`cls(**kwargs)` with exactly the given weights, frozen for inference; kwargs and weights are checked first."""
    check_network_kwargs(cls, kwargs, what)
    _check_weights(state_dict, what)
    return load_weights(construct_network(cls, kwargs, what), state_dict, what)


def build_networks(parts: Mapping[str, tuple[type, Any, Any]], display_name: str) -> dict[str, torch.nn.Module]:
    """`{key: (cls, kwargs, state_dict)}` -> `{key: module}`; every network's kwargs are checked before any is
    built."""
    for key, (cls, kwargs, _) in parts.items():
        check_network_kwargs(cls, kwargs, f"{display_name}: network '{key}'")
    return {key: build_network(cls, kwargs, state_dict, f"{display_name}: network '{key}'")
            for key, (cls, kwargs, state_dict) in parts.items()}


def augment_probability(value: Any, what: str) -> float | None:
    """The augmentation probability p stored with a network: None or one number in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        value = float(value)
    if type(value) not in (int, float) or not 0 <= value <= 1:
        shape = f"a tensor of {value.numel()} values" if isinstance(value, torch.Tensor) else _short(value)
        raise NetworkFileError(f"{what}: the augmentation probability p is {shape}, not one number in [0, 1]; the "
                               f"file is damaged")
    return float(value)


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
