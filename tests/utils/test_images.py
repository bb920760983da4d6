"""The image rules shared by the datasets, the dataset tool and the projector: extensions, crop + resize, sizes."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

from stylefuse.utils.images import center_crop_resize, is_image_file, suggested_resolution, training_size_problem
from stylefuse.utils.shapes import is_power_of_two


def test_image_files_are_the_formats_pil_opens():
    assert all(is_image_file(name) for name in ["a.png", "b.JPG", "c.jpeg", "d.webp", "e.tif", "dir/f.bmp"])
    assert not any(is_image_file(name) for name in ["notes.txt", "dataset.json", "w.npz", "noext", "doc.pdf"])


@pytest.mark.parametrize("w, h", [(56, 40), (41, 40), (40, 43), (32, 32)])
def test_center_crop_resize_is_the_official_projector_crop(w, h):
    img = PIL.Image.fromarray(np.random.RandomState(0).randint(0, 256, [h, w, 3], dtype=np.uint8))
    s = min(w, h)  # the official projector.py, written out
    official = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((16, 16), PIL.Image.LANCZOS)
    assert np.array_equal(np.asarray(center_crop_resize(img, 16)), np.asarray(official))
    box = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((16, 16), PIL.Image.BOX)
    assert np.array_equal(np.asarray(center_crop_resize(img, 16, "box")), np.asarray(box))


def test_training_sizes_and_their_fixes():
    assert [n for n in range(1, 70) if is_power_of_two(n)] == [1, 2, 4, 8, 16, 32, 64] and not is_power_of_two(0)
    assert [suggested_resolution(n) for n in (1, 4, 7, 8, 24, 1000, 1024)] == [4, 4, 4, 8, 16, 512, 1024]
    assert training_size_problem(32, 32) is None and training_size_problem(4, 4) is None
    assert training_size_problem(20, 12) == ("not square", "--transform center-crop --resolution 8", 8)
    assert training_size_problem(24, 24) == ("not a power of two", "--resolution 16", 16)
