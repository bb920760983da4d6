"""Layer ranges and the fusion of two latent codes.

Each of the `num_ws` rows of w drives one synthesis layer, from 4x4 up to the output resolution. Replacing coarse
rows (low indices) carries over pose and face shape, fine rows colour and detail; the layer range is the degree of
fusion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from stylefuse.errors import ConfigError
from stylefuse.utils.shapes import assert_shape

LayerRange = tuple[int, int]  # first and last layer, inclusive


def check_range(layer_range: Sequence[int], num_ws: int) -> LayerRange:
    """[start, end] -> (start, end) after checking 0 <= start <= end < num_ws."""
    if len(layer_range) != 2 or not all(isinstance(idx, int) for idx in layer_range):
        raise ConfigError(f"layer range {list(layer_range)} is not a pair of layer indices: write it as [start, end]")
    start, end = layer_range
    if not 0 <= start <= end < num_ws:
        raise ConfigError(f"layer range [{start}, {end}] does not fit this network's layers 0..{num_ws - 1}: "
                          f"pick 0 <= start <= end <= {num_ws - 1}")
    return start, end


def fuse_ws(w1: torch.Tensor, w2: torch.Tensor, layer_range: Sequence[int] | None,
            strength: float = 1.0) -> torch.Tensor:
    """w1, w2 [N, num_ws, w_dim] -> w1 with layers start..end (inclusive) moved towards w2 by `strength`.

    strength 1 replaces those layers by w2's, 0 keeps w1; an empty range (None or []) returns w1 unchanged.
    """
    assert_shape(w2, list(w1.shape))
    if not 0 <= strength <= 1:
        raise ConfigError(f"strength={strength} is outside [0, 1]: 0 keeps image 1, 1 takes image 2's layers")
    fused = w1.clone()
    if layer_range is None or len(layer_range) == 0:
        return fused
    start, end = check_range(layer_range, num_ws=w1.shape[1])
    fused[:, start:end + 1] = w1[:, start:end + 1].lerp(w2[:, start:end + 1], strength)
    return fused


def scale_range(layer_range: Sequence[int], from_num_ws: int, to_num_ws: int) -> LayerRange:
    """Maps a range of a `from_num_ws`-layer network onto a `to_num_ws`-layer one by its boundaries.

    A range [start, end] covers the layer slots [start, end + 1); each boundary b goes to round(b * to / from)
    (halves up), so the first and last layers stay first and last, ranges that tile the layers at `from_num_ws`
    tile them at any `to_num_ws` (StyleGAN's coarse/middle/fine 0-3, 4-7, 8-17 become 0-1, 2-3, 4-7 at 8 layers),
    and ranges that overlap there overlap here or meet. The paper's 0-6, 4-10, 8-14, 12-17 (18 layers) become 0-2,
    2-4, 4-6, 5-7 at 8 layers (32x32) and 0-4, 3-8, 6-11, 9-13 at 14 layers (256x256).
    """
    start, stop = (int(np.floor(b * to_num_ws / from_num_ws + 0.5)) for b in (layer_range[0], layer_range[1] + 1))
    if stop <= start:
        raise ConfigError(f"layer range {list(layer_range)} of a {from_num_ws}-layer network covers no layer of this "
                          f"{to_num_ws}-layer network: give explicit ranges, e.g. ranges=[[0,{to_num_ws // 2 - 1}]]")
    return start, stop - 1


def _relation(a: LayerRange, b: LayerRange) -> int:
    """-1 if range b starts inside range a (overlap), 0 if right after it (they meet), 1 if layers lie between."""
    return int(np.sign(b[0] - (a[1] + 1)))


def scale_preset(ranges: Sequence[Sequence[int]], from_num_ws: int, to_num_ws: int, name: str) -> list[LayerRange]:
    """Every range of a preset scaled (`scale_range`), after checking that consecutive ranges still overlap, meet
    or leave a gap exactly where they do at `from_num_ws` layers."""
    scaled = [scale_range(pair, from_num_ws, to_num_ws) for pair in ranges]
    for idx in range(len(ranges) - 1):
        if _relation(ranges[idx], ranges[idx + 1]) != _relation(scaled[idx], scaled[idx + 1]):
            raise ConfigError(f"ranges={name} cannot keep its overlaps at this network's {to_num_ws} layers "
                              f"({', '.join(f'{a}-{b}' for a, b in scaled)}): give explicit ranges instead, "
                              f"e.g. ranges=[[0,{to_num_ws // 2 - 1}],[{to_num_ws // 2},{to_num_ws - 1}]]")
    return scaled


def preset_ranges(name: str, presets: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """The preset `name` of `presets` (conf/fusion/): {'num_ws': ..., 'ranges': ...}."""
    if name not in presets:
        raise ConfigError(f"unknown ranges preset {name!r}: use one of {sorted(presets)} "
                          f"or explicit pairs such as ranges=[[0,6],[4,10]]")
    return presets[name]


def resolve_ranges(ranges: str | Sequence[Any], presets: Mapping[str, Mapping[str, Any]],
                   num_ws: int) -> list[LayerRange | None]:
    """`ranges` = a preset name (scaled to num_ws), one [start, end] pair or a list of pairs ([] = no fusion).
    presets: name -> {'num_ws': layers of the network the preset was written for, 'ranges': its pairs}."""
    if isinstance(ranges, str):
        preset = preset_ranges(ranges, presets)
        return scale_preset([tuple(pair) for pair in preset["ranges"]], preset["num_ws"], num_ws, ranges)
    if len(ranges) == 2 and all(isinstance(idx, int) for idx in ranges):
        ranges = [ranges]
    return [check_range(pair, num_ws) if pair is not None and len(pair) > 0 else None for pair in ranges]


def range_name(layer_range: LayerRange | None) -> str:  # for file names: 00-06
    return "none" if layer_range is None else f"{layer_range[0]:02d}-{layer_range[1]:02d}"


def range_label(layer_range: LayerRange | None, strength: float | None = None) -> str:
    """For figures: 'layers 0-6', with a second line 'strength 0.70' when a strength is given."""
    label = "none" if layer_range is None else f"layers {layer_range[0]}-{layer_range[1]}"
    return label if strength is None else f"{label}\nstrength {strength:.2f}"
