"""Fixtures of the alignment tests: the landmark detector (skips without the align extra) and a real photo."""

from __future__ import annotations

import PIL.Image
import pytest
from skimage import data


@pytest.fixture(scope="session")
def detector():
    pytest.importorskip("dlib", reason="the align extra is not installed (pip install 'stylefuse[align]')")
    from stylefuse.align.landmarks import default_detector

    return default_detector()


@pytest.fixture(scope="session")
def astronaut() -> PIL.Image.Image:
    """scikit-image's astronaut portrait (512 x 512, shipped inside its wheel): one frontal face, eyes near the top."""
    return PIL.Image.fromarray(data.astronaut())
