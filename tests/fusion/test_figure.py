"""The Figure-8 layout: a row of enlarged images with their labels underneath."""

from __future__ import annotations

import numpy as np

from stylefuse.fusion.figure import enlarge, labelled_row

RES = 32
CELL = 160  # RES enlarged 5x


def test_labelled_row_enlarges_small_images_and_labels_them_readably():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, [RES, RES, 3], dtype=np.uint8) for _ in range(3)]
    images.append(np.full([RES, RES, 1], 200, np.uint8))
    row = labelled_row(images, ["image 1", "image 2", "layers 0-2\nstrength 0.50", "x"])
    assert row.shape[1] == 4 * CELL and CELL < row.shape[0] <= CELL + 60 and row.shape[2] == 3
    for i, img in enumerate(images):
        cell = row[:CELL, i * CELL:(i + 1) * CELL]
        np.testing.assert_array_equal(cell, np.broadcast_to(img.repeat(5, 0).repeat(5, 1), [CELL, CELL, 3]))
        strip = row[CELL:, i * CELL:(i + 1) * CELL].min(axis=2) < 128  # dark text on the white strip
        assert strip.any()
        rows_with_text = np.flatnonzero(strip.any(axis=1))
        if i == 2:  # two lines, each about 17 px high: readable
            assert np.ptp(rows_with_text) > 30
    assert enlarge(images[0], 100).shape == (128, 128, 3) and enlarge(images[0], 20).shape == (RES, RES, 3)
