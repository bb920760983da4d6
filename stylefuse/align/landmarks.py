"""Face landmarks for FFHQ alignment: dlib's HOG face detector and its 68-point shape predictor.

FFHQ was aligned with exactly these landmarks (the iBUG 300-W markup: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67). Both models come from pip wheels, nothing is downloaded at run time: the detector is built into
`dlib-bin`, the predictor file ships in `face_recognition_models` (the `stylefuse[align]` extra). The predictor was
trained on iBUG 300-W, whose images are licensed for non-commercial research only.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import PIL.Image

from stylefuse.errors import AlignmentError, MissingExtraError

INSTALL_HINT = "pip install 'stylefuse[align]'"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise MissingExtraError(f"face alignment needs dlib and its landmark model: {INSTALL_HINT}") from None
    return dlib


def predictor_path() -> Path:
    """The 68-point model file inside the installed `face_recognition_models` package.

    Found without importing the package: its __init__ needs pkg_resources, which recent setuptools no longer has.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    path = Path(spec.submodule_search_locations[0]) / "models" / PREDICTOR_FILE if spec else None
    if path is None or not path.is_file():
        raise MissingExtraError(f"face alignment needs the landmark model {PREDICTOR_FILE} of face_recognition_models: "
                                f"{INSTALL_HINT}")
    return path


class LandmarkDetector:
    """Photo -> the 68 landmarks [68, 2] (x, y in pixels) of its best-scoring face.

    Faces are searched on a copy no larger than `detect_size` pixels (the detector's cost grows with the pixel count,
    and FFHQ-sized faces are large), upsampled `upsample` times (dlib's detector finds faces from about 80 pixels;
    each upsampling halves that). The landmarks are then fitted on the full-resolution photo.
    """

    def __init__(self, detect_size: int = 1024, upsample: int = 1) -> None:
        dlib = _import_dlib()
        self.detect_size = detect_size
        self.upsample = upsample
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor_path()))
        self._rectangle = dlib.rectangle

    def __call__(self, image: PIL.Image.Image) -> np.ndarray:
        image = image if image.mode == "RGB" else image.convert("RGB")
        pixels = np.asarray(image)
        scale = min(1.0, self.detect_size / max(image.size))
        small = pixels
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            small = np.asarray(image.resize(size, PIL.Image.Resampling.BILINEAR, reducing_gap=2.0))
        boxes, scores, _ = self.detector.run(small, self.upsample, 0.0)
        if not boxes:
            raise AlignmentError("no face found in the photo (it needs an upright, frontal face with both eyes and "
                                 "the mouth visible; crop closer to a small face)")
        box = boxes[int(np.argmax(scores))]
        box = self._rectangle(*(round(v / scale) for v in (box.left(), box.top(), box.right(), box.bottom())))
        shape = self.predictor(pixels, box)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


@functools.cache
def default_detector() -> LandmarkDetector:
    """One detector per process: loading the 100 MB predictor takes about a second."""
    return LandmarkDetector()
