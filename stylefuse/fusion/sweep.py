"""Sweeps of a fusion: the fused images of a layer window slid over all layers, or of a strength going 0 -> 1."""

from __future__ import annotations

import numpy as np
import torch

from stylefuse.errors import ConfigError
from stylefuse.fusion.ranges import LayerRange, fuse_ws, range_label
from stylefuse.latents import synthesize_uint8
from stylefuse.nn import Generator

SWEEPS = ("none", "range", "strength")


def check_sweep(kind: str) -> None:
    """A one-line error for an unknown sweep kind."""
    if kind not in SWEEPS:
        raise ConfigError(f"unknown sweep={kind!r}: use one of {', '.join(SWEEPS)}")


def sweep(G: Generator, w1: torch.Tensor, w2: torch.Tensor, layer_range: LayerRange | None, kind: str,
          strength: float = 1.0, width: int | None = None, num_frames: int = 9,
          noise_mode: str = "const") -> tuple[list[np.ndarray], list[str]]:
    """uint8 HWC frames and their labels, from w1, w2 [1, num_ws, w_dim]:
    - kind 'range': a window of `width` layers (None = the width of `layer_range`) at every start, fused at `strength`;
    - kind 'strength': `layer_range` fused at `num_frames` strengths from 0 to 1."""
    check_sweep(kind)
    if layer_range is None:
        raise ConfigError(f"sweep={kind} needs a layer range: give ranges=paper or e.g. ranges=[[0,6]]")
    if kind == "range":
        width = width or layer_range[1] - layer_range[0] + 1
        if not 1 <= width <= G.num_ws:
            raise ConfigError(f"sweep_width={width} does not fit this network's {G.num_ws} layers: "
                              f"give 1..{G.num_ws}")
        windows = [(start, start + width - 1) for start in range(G.num_ws - width + 1)]
        frames = [(window, strength) for window in windows]
    else:
        frames = [(layer_range, float(s)) for s in np.linspace(0, 1, num_frames)]
    labels = [range_label(pair, s) for pair, s in frames]  # each frame names its layers and strength
    images = [synthesize_uint8(G, fuse_ws(w1, w2, pair, s), noise_mode) for pair, s in frames]
    return images, labels
