"""FFHQ alignment: a photo -> the square face crop the FFHQ networks were trained on.

The steps of the FFHQ dataset's own alignment (`recreate_aligned_images` in NVlabs/ffhq-dataset, with its defaults:
level rotation, padding, no random shift): an oriented square from the eye centres and mouth corners, a Lanczos
pre-shrink when the face is much larger than the output, a crop, a reflected and blurred pad where the square leaves
the photo, a bilinear quad transform to 4096 x 4096 and a Lanczos resize to the output size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import scipy.ndimage

from stylefuse.align.landmarks import LandmarkDetector, default_detector
from stylefuse.errors import ConfigError

FFHQ_RESOLUTION = 1024  # the FFHQ images; the smaller FFHQ datasets are these, resized
TRANSFORM_SIZE = 4096  # the quad is first resampled at this size, then Lanczos-resized to the output

# 68-point markup: each eye's six contour points, the outer mouth corners.
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


def _turned(v: np.ndarray) -> np.ndarray:
    """v turned by 90 degrees, clockwise on screen (image y points down): right -> down."""
    return np.array([-v[1], v[0]])


@dataclass(frozen=True)
class FaceQuad:
    """The oriented square FFHQ crops around a face, in photo pixels (x, y).

    `half_x` runs from the centre to the middle of the right side (the face's left-to-right direction, levelled
    between the eye line and the perpendicular of the eye-mouth line), `half_y` to the middle of the bottom side.
    """

    center: np.ndarray  # [2]
    half_x: np.ndarray  # [2]
    half_y: np.ndarray  # [2], half_x turned by 90 degrees

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> FaceQuad:
        """landmarks [68, 2] -> the quad: side max(4 x eye distance, 3.6 x eye-to-mouth distance), centred a tenth of
        the way from the eyes' midpoint to the mouth's."""
        landmarks = np.asarray(landmarks, dtype=np.float64)
        assert landmarks.shape == (68, 2), f"expected 68 (x, y) landmarks, got {list(landmarks.shape)}"
        eye_left = landmarks[LEFT_EYE].mean(axis=0)
        eye_right = landmarks[RIGHT_EYE].mean(axis=0)
        eyes = (eye_left + eye_right) * 0.5
        eye_to_eye = eye_right - eye_left
        eye_to_mouth = (landmarks[MOUTH_LEFT] + landmarks[MOUTH_RIGHT]) * 0.5 - eyes
        direction = eye_to_eye - _turned(eye_to_mouth)
        half_side = max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
        half_x = direction / np.hypot(*direction) * half_side
        return cls(center=eyes + eye_to_mouth * 0.1, half_x=half_x, half_y=_turned(half_x))

    @property
    def corners(self) -> np.ndarray:
        """[4, 2]: top-left, bottom-left, bottom-right, top-right, the order of PIL's QUAD transform."""
        c, x, y = self.center, self.half_x, self.half_y
        return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])

    @property
    def size(self) -> float:
        """Side length in pixels."""
        return float(np.hypot(*self.half_x) * 2)


def _bounds(corners: np.ndarray) -> tuple[int, int, int, int]:
    """Integer box (left, top, right, bottom) around the corners, rounded outwards."""
    lo, hi = np.floor(corners.min(axis=0)), np.ceil(corners.max(axis=0))
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def _pad_blurred(pixels: np.ndarray, pad: np.ndarray, size: float) -> np.ndarray:
    """uint8 [H, W, 3] -> reflect-padded by pad (left, top, right, bottom), the padding faded from a blur of itself
    into the image's median colour, so that no mirrored face detail shows at the border."""
    left, top, right, bottom = (int(p) for p in pad)
    img = np.pad(pixels.astype(np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w, _ = img.shape
    y, x, _ = np.ogrid[:h, :w, :1]
    x, y = x.astype(np.float32), y.astype(np.float32)
    # 1 on the outer edge, 0 where the photo starts (negative inside it).
    outside = np.maximum(1.0 - np.minimum(x / np.float32(left), (w - 1 - x) / np.float32(right)),
                         1.0 - np.minimum(y / np.float32(top), (h - 1 - y) / np.float32(bottom)))
    blur = size * 0.02
    img += (scipy.ndimage.gaussian_filter(img, [blur, blur, 0]) - img) * np.clip(outside * 3.0 + 1.0, 0.0, 1.0)
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(outside, 0.0, 1.0)
    return np.uint8(np.clip(np.rint(img), 0, 255))


def warp_face(image: PIL.Image.Image, quad: FaceQuad, output_size: int = FFHQ_RESOLUTION,
              transform_size: int = TRANSFORM_SIZE) -> PIL.Image.Image:
    """Resamples the quad of an RGB photo to an output_size x output_size image, as FFHQ did."""
    if not 1 <= output_size <= transform_size:
        raise ConfigError(f"aligned size {output_size} must be between 1 and the transform size {transform_size}")
    corners, size = quad.corners, quad.size

    # Shrink a face much larger than the output first: the bilinear quad transform alone would alias.
    shrink = int(np.floor(size / output_size * 0.5))
    if shrink > 1:
        shrunk = (int(np.rint(image.width / shrink)), int(np.rint(image.height / shrink)))
        image = image.resize(shrunk, PIL.Image.Resampling.LANCZOS)
        corners, size = corners / shrink, size / shrink

    # Crop to the quad plus a border.
    border = max(int(np.rint(size * 0.1)), 3)
    left, top, right, bottom = _bounds(corners)
    crop = (max(left - border, 0), max(top - border, 0),
            min(right + border, image.width), min(bottom + border, image.height))
    if crop[2] - crop[0] < image.width or crop[3] - crop[1] < image.height:
        image = image.crop(crop)
        corners = corners - crop[:2]

    # Pad where the quad (plus border) leaves the photo; a few pixels short are left to the transform's edge.
    left, top, right, bottom = _bounds(corners)
    pad = np.array([max(border - left, 0), max(border - top, 0),
                    max(right - image.width + border, 0), max(bottom - image.height + border, 0)])
    if pad.max() > border - 4:
        pad = np.maximum(pad, int(np.rint(size * 0.3)))
        image = PIL.Image.fromarray(_pad_blurred(np.asarray(image), pad, size), "RGB")
        corners = corners + pad[:2]

    # PIL's QUAD maps the output square's corners onto these source points (pixel centres at +0.5).
    image = image.transform((transform_size, transform_size), PIL.Image.Transform.QUAD, (corners + 0.5).flatten(),
                            PIL.Image.Resampling.BILINEAR)
    if output_size < transform_size:
        image = image.resize((output_size, output_size), PIL.Image.Resampling.LANCZOS)
    return image


def align_face(image: PIL.Image.Image, output_size: int = FFHQ_RESOLUTION, transform_size: int = TRANSFORM_SIZE,
               detector: LandmarkDetector | None = None) -> PIL.Image.Image:
    """A photo -> its best-scoring face, aligned and cropped as FFHQ (RGB, output_size x output_size).

    Raises AlignmentError when no face is found, MissingExtraError without the `stylefuse[align]` extra.
    """
    image = image if image.mode == "RGB" else image.convert("RGB")
    landmarks = (detector or default_detector())(image)
    return warp_face(image, FaceQuad.from_landmarks(landmarks), output_size, transform_size)

