"""TensorFlow-era StyleGAN2 network pickles (StyleGAN2 TF, StyleGAN2-ADA TF): read without TensorFlow."""

from __future__ import annotations

from typing import Any

import numpy as np

from stylefuse.errors import NetworkFileError
from stylefuse.networks.unpickler import Stub, malformed


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
                and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], np.ndarray)
                        for v in variables)):
            raise malformed(display_name, f"the TensorFlow network {name!r} in the pickle has a malformed state; the "
                                          f"file is damaged or not a StyleGAN2 network")
        return TFNetwork(version, name, static_kwargs, components, func, dict(variables))


def convert(tf_G: TFNetwork, tf_D: TFNetwork, tf_Gs: TFNetwork, display_name: str) -> dict[str, Any]:
    raise NetworkFileError(f"{display_name} is a TensorFlow-era StyleGAN2 pickle; convert it with the official "
                           f"stylegan2-ada-pytorch `python legacy.py --source=<file> --dest=<new.pkl>` and load the "
                           f"new pickle")
