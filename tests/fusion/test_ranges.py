"""Layer ranges: fuse_ws replaces the layers of a range (at a strength), the paper's range presets scale to any
network depth, bad ranges are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylefuse.errors import ConfigError
from stylefuse.fusion import fuse_ws, resolve_ranges, scale_range
from tests.helpers import compose_cfg, official_image

RES, NUM_WS, W_DIM = 32, 8, 32


def test_empty_range_gives_image_1(network, codes):
    _, G = network
    w1, w2 = codes
    for empty in (None, [], ()):
        fused = fuse_ws(w1, w2, empty)
        assert torch.equal(fused, w1) and fused is not w1
    np.testing.assert_array_equal(official_image(G, fuse_ws(w1, w2, None)), official_image(G, w1))


def test_full_range_gives_image_2(network, codes):
    _, G = network
    w1, w2 = codes
    fused = fuse_ws(w1, w2, (0, NUM_WS - 1))
    assert torch.equal(fused, w2)
    np.testing.assert_array_equal(official_image(G, fused), official_image(G, w2))
    assert not np.array_equal(official_image(G, w1), official_image(G, w2))


@pytest.mark.parametrize("start, end", [(0, 0), (2, 5), (7, 7)])
def test_range_changes_exactly_its_layers(codes, start, end):
    w1, w2 = codes
    inside = torch.zeros(NUM_WS, dtype=torch.bool)
    inside[start:end + 1] = True
    fused = fuse_ws(w1, w2, [start, end])
    assert torch.equal(fused[:, inside], w2[:, inside]) and torch.equal(fused[:, ~inside], w1[:, ~inside])
    half = fuse_ws(w1, w2, (start, end), strength=0.5)
    torch.testing.assert_close(half[:, inside], (w1[:, inside] + w2[:, inside]) / 2, rtol=0, atol=1e-6)
    assert torch.equal(half[:, ~inside], w1[:, ~inside])
    assert torch.equal(fuse_ws(w1, w2, (start, end), strength=0.0), w1)


@pytest.mark.parametrize("layer_range, strength, message", [
    ((3, 8), 1.0, r"layers 0\.\.7"), ((5, 2), 1.0, "start <= end"), ((-1, 2), 1.0, "start <= end"),
    ((1,), 1.0, "pair"), ((1, 2, 3), 1.0, "pair"), ((1, 2), 1.5, r"outside \[0, 1\]"),
])
def test_bad_ranges_and_strengths_are_one_line_errors(codes, layer_range, strength, message):
    with pytest.raises(ConfigError, match=message) as err:
        fuse_ws(*codes, layer_range, strength)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def presets():
    return compose_cfg("fuse", []).fusion


def test_paper_preset_is_the_papers_ranges_at_18_layers_and_scales(presets):
    assert resolve_ranges("paper", presets, 18) == [(0, 6), (4, 10), (8, 14), (12, 17)]
    assert resolve_ranges("paper", presets, 8) == [(0, 2), (2, 4), (4, 6), (5, 7)]     # 32x32
    assert resolve_ranges("paper", presets, 14) == [(0, 4), (3, 8), (6, 11), (9, 13)]  # 256x256
    for num_ws in range(6, 19, 2):  # 16x16 .. 1024x1024
        ranges = resolve_ranges("paper", presets, num_ws)
        assert ranges[0][0] == 0 and ranges[-1][1] == num_ws - 1  # from the coarsest to the finest layer
        assert all(0 <= a <= b < num_ws for a, b in ranges)
        assert all(b[0] <= a[1] for a, b in zip(ranges, ranges[1:]))  # each overlaps the next, as at 18 layers
        assert [a for a, _ in ranges] == sorted(a for a, _ in ranges)  # still coarse to fine
    assert scale_range((0, 17), 18, 10) == (0, 9)
    with pytest.raises(ConfigError, match="cannot keep its overlaps at this network's 4 layers"):
        resolve_ranges("paper", presets, 4)  # 8x8: four overlapping ranges do not fit


def test_styles_preset_partitions_the_layers_at_every_depth(presets):
    assert resolve_ranges("styles", presets, 18) == [(0, 3), (4, 7), (8, 17)]
    assert resolve_ranges("styles", presets, 8) == [(0, 1), (2, 3), (4, 7)]  # was 0-1, 2-3, 3-7
    for num_ws in range(4, 19, 2):  # 8x8 .. 1024x1024: no layer in two ranges, none left out
        ranges = resolve_ranges("styles", presets, num_ws)
        assert [layer for a, b in ranges for layer in range(a, b + 1)] == list(range(num_ws)), num_ws


def test_explicit_ranges_and_unknown_presets(presets):
    assert resolve_ranges([[0, 6], [4, 7]], presets, 8) == [(0, 6), (4, 7)]
    assert resolve_ranges([1, 3], presets, 8) == [(1, 3)]
    assert resolve_ranges([[], [2, 2]], presets, 8) == [None, (2, 2)]
    with pytest.raises(ConfigError, match=r"layers 0\.\.7"):
        resolve_ranges([[0, 6], [4, 10]], presets, 8)
    with pytest.raises(ConfigError, match=r"\['paper', 'styles'\]"):
        resolve_ranges("papr", presets, 8)
