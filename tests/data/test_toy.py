"""ToyDataset: deterministic smooth images whose coarse and fine codes vary independently."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stylefuse.data import ToyDataset
from stylefuse.data.toy import NUM_CLASSES, foreground_mask, render, sample_codes
from stylefuse.errors import DatasetError


def test_toy_deterministic_shapes_and_labels():
    a = ToyDataset(resolution=8, num_images=16, use_labels=True)
    b = ToyDataset(resolution=8, num_images=16, use_labels=True)
    assert len(a) == 16 and a.image_shape == [3, 8, 8] and a.label_dim == NUM_CLASSES
    for i in (0, 5, 15):
        assert a[i][0].dtype == np.uint8 and np.array_equal(a[i][0], b[i][0])
        assert np.array_equal(a[i][1], np.eye(NUM_CLASSES, dtype=np.float32)[sample_codes(0, i)[0].shape])
    other = ToyDataset(resolution=8, num_images=16, seed=1)
    assert not np.array_equal(a[0][0], other[0][0])
    assert not np.array_equal(a[0][0], a[1][0])
    assert ToyDataset(resolution=64, num_images=2)[1][0].shape == (3, 64, 64)
    with pytest.raises(DatasetError, match="power of two"):
        ToyDataset(resolution=12)


def test_toy_is_smooth_not_binary():
    img = ToyDataset(resolution=32, num_images=1)[0][0].astype(np.int64)
    # Anti-aliased edges: many distinct levels, and no pixel jumps the full range to its neighbour.
    assert len(np.unique(img)) > 100
    assert np.abs(np.diff(img, axis=2)).max() < 255


def test_toy_coarse_and_fine_vary_independently():
    coarse, fine1 = sample_codes(0, 0)
    coarse2, fine2 = sample_codes(0, 1)
    res = 32
    # Same geometry, a different palette/texture (backgrounds made equal so that only the face can change).
    fine2 = dataclasses.replace(fine2, background_top=fine1.background_top, background_bottom=fine1.background_bottom)
    img1, img2 = render(coarse, fine1, res).astype(np.float64), render(coarse, fine2, res).astype(np.float64)
    mask = foreground_mask(coarse, res)
    # Colour statistics differ ...
    fg = mask > 0.99
    assert np.abs(img1[:, fg].mean(axis=1) - img2[:, fg].mean(axis=1)).max() > 20
    # ... but only inside the foreground mask, which the fine code does not move.
    changed = np.abs(img1 - img2).max(axis=0) > 0
    assert not changed[mask == 0].any()
    assert changed[fg].mean() > 0.9
    # A different coarse code moves the mask.
    mask2 = foreground_mask(coarse2, res)
    iou = ((mask > 0.5) & (mask2 > 0.5)).sum() / ((mask > 0.5) | (mask2 > 0.5)).sum()
    assert iou < 0.9
    # Background pixels follow the fine code only.
    bg = mask == 0
    assert np.array_equal(render(coarse, fine1, res)[:, bg], render(coarse, fine2, res)[:, bg])
    assert not np.array_equal(render(coarse, fine1, res)[:, bg], render(coarse, sample_codes(0, 2)[1], res)[:, bg])
