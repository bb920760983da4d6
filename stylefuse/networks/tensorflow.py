"""TensorFlow-era StyleGAN2 network pickles (StyleGAN2 TF and StyleGAN2-ADA TF), read without TensorFlow.

Such a pickle is the tuple (G, D, Gs) of `dnnlib.tflib.network.Network` objects. Each is read by the restricted
unpickler as a `TFNetworkStub` (its pickled state: kwargs, sub-networks, numpy variables; the embedded TensorFlow
build source is dropped unread) and converted to our Generator/Discriminator with the semantics of NVIDIA's
stylegan2-ada-pytorch `legacy.py` (spec 10.4):
  * constructor kwargs from the TF `static_kwargs`, with the TF defaults for absent ones (`fmap_base` doubles into
    `channel_base`); `truncation_psi`, `truncation_cutoff`, `style_mixing_prob` and `structure` are ignored and any
    other unknown kwarg is refused;
  * dense weights transposed, convolution weights [kh, kw, in, out] -> [out, in, kh, kw], the up-sampling (Conv0_up)
    and G skip weights spatially flipped (TF's transposed convolution), `mod_bias + 1` (TF added the 1 at run time),
    `noise<i>` variables as the noise buffers, `dlatent_avg` as `w_avg`; FIR filters as constructed.
Caveats, as officially: StyleGAN2 configs A-D (progressive growing: `G_synthesis_stylegan_revised`, `D_stylegan`),
StyleGAN1 (`G_style`) and the StyleGAN2-ADA comparison methods are not supported; a converted D takes
`mbstd_group_size` from the TF kwargs, and StyleGAN2-TF pickles do not store it (TF's default was 4), so their D
computes the minibatch standard deviation over the whole batch (group None), as NVIDIA's conversion does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks.rebuild import check_network_kwargs, construct_network, load_weights, network_class
from stylefuse.networks.unpickler import Stub, malformed

# Build functions of the supported TF networks: StyleGAN2 TF (version 4) and StyleGAN2-ADA TF (version 5).
_GENERATOR_FUNCS = {"G_main"}
_MAPPING_FUNCS = {"G_mapping"}
_SYNTHESIS_FUNCS = {"G_synthesis_stylegan2", "G_synthesis"}
_DISCRIMINATOR_FUNCS = {"D_stylegan2", "D_main"}
_IGNORED_KWARGS = {"truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure"}


class TFNetwork:
    """A `dnnlib.tflib.network.Network` as pickled (its `__getstate__`): kwargs, sub-networks and variables."""

    __slots__ = ("version", "name", "static_kwargs", "components", "build_func_name", "variables")

    def __init__(self, version: int, name: str, static_kwargs: dict, components: dict, build_func_name: str,
                 variables: dict[str, np.ndarray]):
        self.version = version
        self.name = name
        self.static_kwargs = static_kwargs
        self.components = components
        self.build_func_name = build_func_name
        self.variables = variables

    def all_variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Own variables and those of the sub-networks, named `<component>/<variable>`."""
        out = {prefix + name: value for name, value in self.variables.items()}
        for name, component in self.components.items():
            out.update(component.all_variables(f"{prefix}{name}/"))
        return out


class TFNetworkStub(Stub):
    """What the pickle's `dnnlib.tflib.network.Network` becomes: an inert holder of the pickled state (one BUILD).
    The embedded `build_module_src` (TensorFlow code the original loader executes) is dropped unread."""

    __slots__ = ("state",)

    def __setstate__(self, state: Any) -> None:
        if getattr(self, "state", None) is not None or not isinstance(state, dict):
            super().__setstate__(state)
        self.state = {key: value for key, value in state.items() if key != "build_module_src"}

    def parts(self) -> Any:
        return getattr(self, "state", None)

    def build(self, state: Any, display_name: str) -> TFNetwork:
        fields = ("version", "name", "static_kwargs", "components", "build_func_name", "variables")
        if not (isinstance(state, dict) and all(key in state for key in fields)):
            raise malformed(display_name, "a TensorFlow network in the pickle lacks its saved state; the file is "
                                          "damaged or not a StyleGAN2 network")
        version, name, static_kwargs, components, func, variables = (state[key] for key in fields)
        if not (type(version) is int and isinstance(name, str) and isinstance(static_kwargs, dict)
                and isinstance(components, dict) and all(isinstance(c, TFNetwork) for c in components.values())
                and isinstance(func, str) and isinstance(variables, list)
                and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str)
                        and isinstance(v[1], (np.ndarray, float, int)) for v in variables)):
            raise malformed(display_name, f"the TensorFlow network {name!r} in the pickle has a malformed state; the "
                                          f"file is damaged or not a StyleGAN2 network")
        # 0-d variables (noise strengths) are pickled as numpy scalars, which read as Python numbers.
        arrays = {key: np.asarray(value, dtype=np.float32) if not isinstance(value, np.ndarray) else value
                  for key, value in variables}
        return TFNetwork(version, name, static_kwargs, components, func, arrays)


class _Kwargs:
    """TF `static_kwargs` read with defaults, remembering which names were read (the rest are refused)."""

    def __init__(self, net: TFNetwork, what: str):
        self.values = net.static_kwargs
        self.known = set(_IGNORED_KWARGS)
        self.what = what

    def __call__(self, tf_name: str, default: Any, when_none: Any = None) -> Any:
        self.known.add(tf_name)
        value = self.values.get(tf_name, default)
        return when_none if value is None else value

    def check_all_read(self) -> None:
        unknown = sorted(set(self.values) - self.known)
        if unknown:
            raise NetworkFileError(f"{self.what}: the TensorFlow kwarg {unknown[0]!r} has no StyleGAN2-ADA equivalent "
                                   f"(StyleGAN2 configs A-D, StyleGAN1 and the StyleGAN2-ADA comparison methods are "
                                   f"not supported)")


def _check_supported(net: TFNetwork, funcs: set[str], what: str) -> None:
    if net.version < 4:
        raise NetworkFileError(f"{what}: TensorFlow network pickle version {net.version} (StyleGAN1 or an early "
                               f"StyleGAN2); only StyleGAN2 and StyleGAN2-ADA TensorFlow networks are supported")
    if net.build_func_name not in funcs:
        raise NetworkFileError(f"{what}: the TensorFlow network is built by {net.build_func_name!r}, not by the "
                               f"StyleGAN2 config E/F or StyleGAN2-ADA networks (configs A-D and StyleGAN1 are not "
                               f"supported)")


def generator_kwargs(net: TFNetwork, what: str) -> dict[str, Any]:
    """Our Generator's kwargs from a TF G (or Gs)."""
    _check_supported(net, _GENERATOR_FUNCS, what)
    components = net.components
    if "mapping" not in components or "synthesis" not in components:
        raise NetworkFileError(f"{what}: the TensorFlow generator lacks its mapping or synthesis network")
    _check_supported(components["mapping"], _MAPPING_FUNCS, what + " (mapping)")
    _check_supported(components["synthesis"], _SYNTHESIS_FUNCS, what + " (synthesis)")
    kwarg = _Kwargs(net, what)
    fmap_base = kwarg("fmap_base", 16384)
    kwargs = dict(
        z_dim=kwarg("latent_size", 512), c_dim=kwarg("label_size", 0), w_dim=kwarg("dlatent_size", 512),
        img_resolution=kwarg("resolution", 1024), img_channels=kwarg("num_channels", 3),
        mapping_kwargs=dict(
            num_layers=kwarg("mapping_layers", 8), embed_features=kwarg("label_fmaps", None),
            layer_features=kwarg("mapping_fmaps", None), activation=kwarg("mapping_nonlinearity", "lrelu"),
            lr_multiplier=kwarg("mapping_lrmul", 0.01), w_avg_beta=kwarg("w_avg_beta", 0.995, when_none=1)),
        synthesis_kwargs=dict(
            channel_base=fmap_base * 2 if type(fmap_base) is int else fmap_base, channel_max=kwarg("fmap_max", 512),
            num_fp16_res=kwarg("num_fp16_res", 0), conv_clamp=kwarg("conv_clamp", None),
            architecture=kwarg("architecture", "skip"), resample_filter=kwarg("resample_kernel", [1, 3, 3, 1]),
            use_noise=kwarg("use_noise", True), activation=kwarg("nonlinearity", "lrelu")),
    )
    kwarg.check_all_read()
    return kwargs


def discriminator_kwargs(net: TFNetwork, what: str) -> dict[str, Any]:
    """Our Discriminator's kwargs from a TF D."""
    _check_supported(net, _DISCRIMINATOR_FUNCS, what)
    kwarg = _Kwargs(net, what)
    fmap_base = kwarg("fmap_base", 16384)
    mapping_fmaps = kwarg("mapping_fmaps", None)
    activation = kwarg("nonlinearity", "lrelu")
    kwargs = dict(
        c_dim=kwarg("label_size", 0), img_resolution=kwarg("resolution", 1024), img_channels=kwarg("num_channels", 3),
        architecture=kwarg("architecture", "resnet"),
        channel_base=fmap_base * 2 if type(fmap_base) is int else fmap_base, channel_max=kwarg("fmap_max", 512),
        num_fp16_res=kwarg("num_fp16_res", 0), conv_clamp=kwarg("conv_clamp", None), cmap_dim=mapping_fmaps,
        block_kwargs=dict(activation=activation, resample_filter=kwarg("resample_kernel", [1, 3, 3, 1]),
                          freeze_layers=kwarg("freeze_layers", 0)),
        mapping_kwargs=dict(num_layers=kwarg("mapping_layers", 0), embed_features=mapping_fmaps,
                            layer_features=mapping_fmaps, activation=activation,
                            lr_multiplier=kwarg("mapping_lrmul", 0.1)),
        epilogue_kwargs=dict(mbstd_group_size=kwarg("mbstd_group_size", None),
                             mbstd_num_channels=kwarg("mbstd_num_features", 1), activation=activation),
    )
    kwarg.check_all_read()
    return kwargs


def _dense(tf: dict[str, np.ndarray], scope: str, param: str) -> np.ndarray:
    """A TF dense layer's weight [in, out] as ours [out, in], or its bias."""
    return tf[f"{scope}/weight"].T if param == "weight" else tf[f"{scope}/bias"]


def _conv(weight: np.ndarray, flip: bool = False) -> np.ndarray:
    """A TF convolution weight [kh, kw, in, out] as ours [out, in, kh, kw]; `flip` mirrors the kernel (TF's
    up-sampling layers are transposed convolutions)."""
    return (weight[::-1, ::-1] if flip else weight).transpose(3, 2, 0, 1)


def _generator_variable(name: str, tf: dict[str, np.ndarray]) -> np.ndarray:
    """The TF value of our Generator's parameter or buffer `name`."""
    parts = name.split(".")
    if name == "mapping.w_avg":
        return tf["dlatent_avg"]
    if parts[0] == "mapping":  # mapping.embed.weight, mapping.fc3.bias
        layer = "LabelEmbed" if parts[1] == "embed" else f"Dense{parts[1][2:]}"
        return _dense(tf, f"mapping/{layer}", parts[2])
    res, layer, param = int(parts[1][1:]), parts[2], ".".join(parts[3:])  # synthesis.b<res>.<layer>.<param>
    scope = f"synthesis/{res}x{res}"
    if layer == "const":
        return tf[f"{scope}/Const/const"][0]
    if param == "noise_const":  # the noise inputs are numbered over all conv layers, two per resolution
        index = 2 * int(math.log2(res)) - (5 if layer == "conv0" else 4)
        return tf[f"synthesis/noise{index}"][0, 0]
    tf_layer = {"conv0": "Conv0_up", "conv1": "Conv" if res == 4 else "Conv1", "torgb": "ToRGB", "skip": "Skip"}[layer]
    if param == "affine.weight":
        return tf[f"{scope}/{tf_layer}/mod_weight"].T
    if param == "affine.bias":
        return tf[f"{scope}/{tf_layer}/mod_bias"] + 1  # TF adds the style's 1 at run time
    if param == "weight":
        return _conv(tf[f"{scope}/{tf_layer}/weight"], flip=layer in ("conv0", "skip"))
    return tf[f"{scope}/{tf_layer}/{param}"]  # bias, noise_strength


def _discriminator_variable(name: str, tf: dict[str, np.ndarray]) -> np.ndarray:
    """The TF value of our Discriminator's parameter or buffer `name`."""
    parts = name.split(".")
    if parts[0] == "mapping":  # mapping.embed.weight, mapping.fc0.bias
        layer = "LabelEmbed" if parts[1] == "embed" else f"Mapping{parts[1][2:]}"
        return _dense(tf, layer, parts[2])
    res, layer, param = int(parts[0][1:]), parts[1], parts[2]  # b<res>.<layer>.<param>
    if res == 4 and layer in ("fc", "out"):
        return _dense(tf, "4x4/Dense0" if layer == "fc" else "Output", param)
    tf_layer = {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down", "skip": "Skip", "conv": "Conv"}[layer]
    value = tf[f"{res}x{res}/{tf_layer}/{param}"]
    return _conv(value) if param == "weight" else value


def _convert(module: torch.nn.Module, net: TFNetwork, variable: Any, what: str) -> torch.nn.Module:
    tf = net.all_variables()
    state = {}
    for name, tensor in module.state_dict().items():
        if name.endswith("resample_filter"):  # FIR filters stay as constructed
            state[name] = tensor
            continue
        try:
            value = variable(name, tf)
        except KeyError as err:
            raise NetworkFileError(f"{what}: the TensorFlow network has no variable {err.args[0]} for {name}; it is "
                                   f"not a StyleGAN2 configuration stylefuse converts (StyleGAN2-TF conditional "
                                   f"networks and configs A-D are not supported)") from None
        state[name] = torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # (a copy: views flip)
    return load_weights(module, state, what)


def convert(tf_G: TFNetwork, tf_D: TFNetwork, tf_Gs: TFNetwork, display_name: str) -> dict[str, Any]:
    """A TF-era (G, D, Gs) -> the dict every network file loads as (G_ema from Gs)."""
    nets = {"G": tf_G, "D": tf_D, "G_ema": tf_Gs}
    what = {key: f"{display_name}: network '{key}'" for key in nets}
    kwargs = {key: (discriminator_kwargs if key == "D" else generator_kwargs)(net, what[key])
              for key, net in nets.items()}
    for key, value in kwargs.items():  # every network checked before any is built
        check_network_kwargs(network_class(key), value, what[key])
    networks = {}
    for key, net in nets.items():
        variable = _discriminator_variable if key == "D" else _generator_variable
        networks[key] = _convert(construct_network(network_class(key), kwargs[key], what[key]), net, variable,
                                 what[key])
    return dict(networks, augment_p=None, training_set_kwargs=None)
