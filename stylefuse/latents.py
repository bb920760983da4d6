"""Latent codes shared by the inference jobs (generation, style mixing, fusion, projection): seed lists, seed -> z,
class labels, the official `projected_w.npz` format, one latent from a seed, a file or an image, and w -> uint8
image."""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence

import numpy as np
import torch

from stylefuse.errors import ConfigError
from stylefuse.nn import Generator
from stylefuse.utils.images import generated_to_uint8

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_seeds(spec: int | str | Sequence[int | str] | None, what: str = "seeds") -> list[int]:
    """`5`, `'a,b,c'`, `'a-b'` (inclusive) or a list of those -> a flat list of non-negative ints."""
    if isinstance(spec, bool) or spec is None:
        raise ConfigError(f"{what} is not set: give a list [0,1,2], a range 0-7 or a quoted list '0,1,2'")
    if isinstance(spec, int):
        values = [spec]
    elif isinstance(spec, str):
        match = _RANGE.match(spec)
        try:
            if match:
                values = list(range(int(match.group(1)), int(match.group(2)) + 1))
            else:
                values = [int(item) for item in spec.split(",")]
        except ValueError:
            raise ConfigError(f"cannot read {what}={spec!r}: give a list [0,1,2], a range 0-7 or a quoted list "
                              f"'0,1,2'") from None
    elif isinstance(spec, Sequence):
        values = [value for item in spec for value in parse_seeds(item, what)]
    else:
        raise ConfigError(f"cannot read {what}={spec!r}: give a list [0,1,2], a range 0-7 or a quoted list '0,1,2'")
    if not values:
        raise ConfigError(f"{what}={spec!r} is empty: give at least one number, e.g. {what}=[0]")
    for value in values:
        if not 0 <= value < 2**32:
            raise ConfigError(f"{what} must lie in 0..2**32-1 (numpy RandomState seeds), got {value}")
    return values


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The official latent of a seed: float64 [1, z_dim] (the mapping casts it to float32)."""
    return np.random.RandomState(seed).randn(1, z_dim)


def class_label(G: Generator, class_idx: int | None, device: torch.device) -> torch.Tensor:
    """One-hot label [1, c_dim]; conditional networks need `class_idx`, unconditional ones ignore it (a warning)."""
    label = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            warnings.warn(f"class_idx={class_idx} is ignored: the network is unconditional", stacklevel=2)
        return label
    if class_idx is None:
        raise ConfigError(f"the network is conditional ({G.c_dim} classes): give class_idx=<0..{G.c_dim - 1}>")
    if not 0 <= class_idx < G.c_dim:
        raise ConfigError(f"class_idx={class_idx} is out of range: the network has classes 0..{G.c_dim - 1}")
    label[:, class_idx] = 1
    return label


def load_w(path: str | os.PathLike, G: Generator) -> np.ndarray:
    """Reads the key `w` of an npz file (the projector's format) -> float32 [K, num_ws, w_dim]."""
    fix = "give the projected_w.npz written by the projector"
    if not os.path.isfile(path):
        raise ConfigError(f"w file not found: {path} ({fix})")
    try:
        data = np.load(path, allow_pickle=False)
        arrays = {}  # a plain .npy file holds one unnamed array
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ConfigError(f"cannot read {path} as an npz file ({err}): {fix}") from None
    if "w" not in arrays:
        raise ConfigError(f"{path} has no array named 'w' (it has {sorted(arrays)}): {fix}")
    w = arrays["w"]
    if w.ndim != 3 or w.shape[1:] != (G.num_ws, G.w_dim):
        raise ConfigError(f"w in {path} has shape {list(w.shape)}, this network needs [K, {G.num_ws}, {G.w_dim}] "
                          f"(num_ws, w_dim): project with the same network")
    return w.astype(np.float32)


def save_w(path: str | os.PathLike, w: torch.Tensor) -> None:
    """Writes w [K, num_ws, w_dim] as float32 under the key `w`, readable by the official generate.py."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, w=w.detach().cpu().numpy().astype(np.float32))


def load_latent(source: str | os.PathLike, G: Generator, truncation_psi: float = 1.0, class_idx: int | None = None,
                project_image: Callable[[str], np.ndarray] | None = None) -> torch.Tensor:
    """`seed:N` (the official seed -> z, mapped with truncation_psi and class_idx), a `projected_w.npz` holding one
    code, or an image file (`project_image(path)` -> w [1, num_ws, w_dim], e.g. through a Projector) -> w
    [1, num_ws, w_dim] on G's device."""
    device = next(G.parameters()).device
    source = str(source)
    if source.startswith("seed:"):
        try:
            seed = int(source[len("seed:"):])
        except ValueError:
            raise ConfigError(f"cannot read {source!r}: write a seed as seed:<number>, e.g. seed:85") from None
        z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device)
        with torch.no_grad():
            return G.mapping(z, class_label(G, class_idx, device), truncation_psi=truncation_psi)
    if source.endswith(".npz"):
        w = load_w(source, G)
        if w.shape[0] != 1:
            raise ConfigError(f"{source} holds {w.shape[0]} codes, one is needed ([1, {G.num_ws}, {G.w_dim}]): "
                              f"give the projected_w.npz of a single image")
        return torch.from_numpy(w).to(device)
    if not os.path.isfile(source):
        raise ConfigError(f"input not found: {source} (give an image, a projected_w.npz or seed:<number>)")
    if project_image is None:
        raise ConfigError(f"{source} is an image: project it first (python project.py), then give its "
                          f"projected_w.npz")
    w = project_image(source)
    return torch.from_numpy(np.asarray(w, dtype=np.float32)).to(device)


@torch.no_grad()
def synthesize_uint8(G: Generator, ws: torch.Tensor, noise_mode: str) -> np.ndarray:
    """ws [1, num_ws, w_dim] -> uint8 HWC image, with the official generate.py conversion."""
    return generated_to_uint8(G.synthesis(ws, noise_mode=noise_mode))[0].permute(1, 2, 0).cpu().numpy()
