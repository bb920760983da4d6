"""Sweeps: the frames of a sliding layer window or of a strength ramp, and their one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from stylefuse.errors import ConfigError
from stylefuse.fusion import fuse_ws, sweep
from tests.helpers import official_image


def test_range_sweep_slides_the_window_over_every_layer(network, codes):
    _, G = network
    w1, w2 = codes
    frames, labels = sweep(G, w1, w2, (2, 4), "range", strength=0.5)
    # The range's width, 3 layers, at starts 0..5; every label names its layers and strength.
    assert labels == [f"layers {a}-{a + 2}\nstrength 0.50" for a in range(6)]
    for (start, end), frame in zip([(0, 2), (3, 5), (5, 7)], [frames[0], frames[3], frames[5]]):
        np.testing.assert_array_equal(frame, official_image(G, fuse_ws(w1, w2, (start, end), 0.5)))
    frames, labels = sweep(G, w1, w2, (2, 4), "range", width=8)
    assert labels == ["layers 0-7\nstrength 1.00"] and np.array_equal(frames[0], official_image(G, w2))


def test_strength_sweep_goes_from_image_1_to_the_fused_range(network, codes):
    _, G = network
    w1, w2 = codes
    frames, labels = sweep(G, w1, w2, (0, 3), "strength", num_frames=5)
    assert labels == [f"layers 0-3\nstrength {s:.2f}" for s in (0, 0.25, 0.5, 0.75, 1)]
    np.testing.assert_array_equal(frames[0], official_image(G, w1))
    np.testing.assert_array_equal(frames[2], official_image(G, fuse_ws(w1, w2, (0, 3), 0.5)))
    np.testing.assert_array_equal(frames[-1], official_image(G, fuse_ws(w1, w2, (0, 3))))
    assert not np.array_equal(frames[0], frames[-1])


@pytest.mark.parametrize("layer_range, kind, width, message", [
    (None, "range", None, "needs a layer range"), ((0, 3), "range", 9, "sweep_width=9 does not fit"),
    ((0, 3), "ranges", None, "unknown sweep='ranges': use one of none, range, strength"),
])
def test_bad_sweeps_are_one_line_errors(network, codes, layer_range, kind, width, message):
    _, G = network
    with pytest.raises(ConfigError, match=message) as err:
        sweep(G, *codes, layer_range, kind, width=width)
    assert "\n" not in str(err.value)
