"""The Figure-8 layout: a row of images with their labels underneath."""

from __future__ import annotations

import numpy as np

from stylefuse.fusion.figure import labelled_row

RES = 32


def test_labelled_row_puts_labels_under_the_images():
    images = [np.full([RES, RES, 3], 60 * i, np.uint8) for i in range(3)] + [np.full([RES, RES, 1], 200, np.uint8)]
    row = labelled_row(images, ["image 1", "image 2", "layers 0-2", "x"])
    assert row.shape[1] == 4 * RES and RES < row.shape[0] <= 2 * RES and row.shape[2] == 3
    for i, img in enumerate(images):
        np.testing.assert_array_equal(row[:RES, i * RES:(i + 1) * RES], np.broadcast_to(img, [RES, RES, 3]))
        assert row[RES:, i * RES:(i + 1) * RES].min() < 128  # dark text on the white strip
