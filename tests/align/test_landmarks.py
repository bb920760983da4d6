"""Landmarks: the best-scoring face of several, one-line errors for a photo without a face and a missing extra."""

from __future__ import annotations

import sys

import numpy as np
import PIL.Image
import PIL.ImageFilter
import pytest
from skimage import data

from stylefuse.align import align_face
from stylefuse.align import landmarks as landmarks_module
from stylefuse.errors import AlignmentError, MissingExtraError


def test_landmarks_of_the_best_scoring_face(detector, astronaut):
    # Two faces side by side, one blurred: both are detected, the sharp one scores higher and gives the landmarks,
    # whichever side it is on.
    blurred = astronaut.filter(PIL.ImageFilter.GaussianBlur(2))
    alone = detector(astronaut)
    assert alone.shape == (68, 2)
    for sharp_x, (left, right) in [(0, (astronaut, blurred)), (512, (blurred, astronaut))]:
        photo = PIL.Image.new("RGB", (1024, 512))
        photo.paste(left, (0, 0))
        photo.paste(right, (512, 0))
        _, scores, _ = detector.detector.run(np.asarray(photo), detector.upsample, 0.0)
        assert sum(score > 0.5 for score in scores) == 2
        np.testing.assert_allclose(detector(photo), alone + [sharp_x, 0], atol=2)


def test_large_photo_is_searched_at_a_reduced_size(detector, astronaut):
    # A 2048-pixel photo is searched on a 1024-pixel copy; the landmarks are fitted at full size.
    big = astronaut.resize((2048, 2048), PIL.Image.Resampling.LANCZOS)
    np.testing.assert_allclose(detector(big), detector(astronaut) * 4, atol=8)


@pytest.mark.parametrize("name", ["coffee", "chelsea"])  # a cup of coffee, a cat
def test_photo_without_a_face_is_a_one_line_error(detector, name):
    photo = PIL.Image.fromarray(getattr(data, name)())
    with pytest.raises(AlignmentError, match="no face found in the photo") as err:
        align_face(photo, 64, detector=detector)
    assert "\n" not in str(err.value)


def test_missing_extra_names_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError, as without the extra
    with pytest.raises(MissingExtraError, match=r"pip install 'stylefuse\[align\]'") as err:
        landmarks_module.LandmarkDetector()
    assert "\n" not in str(err.value)
    monkeypatch.setattr(landmarks_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=r"shape_predictor_68_face_landmarks.dat .*pip install"):
        landmarks_module.predictor_path()
