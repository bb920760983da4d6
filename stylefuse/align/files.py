"""Photos on disk -> aligned PNGs: one-line errors that name the file, and no half-written output."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import PIL.Image

from stylefuse.align.ffhq import FFHQ_RESOLUTION, align_face
from stylefuse.align.landmarks import LandmarkDetector
from stylefuse.errors import AlignmentError
from stylefuse.utils.files import atomic_write
from stylefuse.utils.images import open_image

log = logging.getLogger(__name__)


def align_file(path: str | os.PathLike, output_size: int = FFHQ_RESOLUTION,
               detector: LandmarkDetector | None = None) -> PIL.Image.Image:
    """An image file (turned upright by its EXIF orientation) -> its aligned face."""
    try:
        photo = open_image(path)
    except (FileNotFoundError, ValueError) as err:
        raise AlignmentError(str(err)) from err
    try:
        return align_face(photo, output_size, detector=detector)
    except AlignmentError as err:
        raise AlignmentError(f"{path}: {err}") from err


def save_png(image: PIL.Image.Image, path: str | os.PathLike) -> None:
    """Writes a PNG whole or not at all (stylefuse.utils.files): `path` is never half-written."""
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def align_targets(paths: Sequence[Path], out_dirs: Sequence[Path], resolution: int) -> list[Path]:
    """Projection targets -> `<out_dir>/aligned.png` each, at FFHQ's 1024 pixels (or `resolution` if larger): the
    form the FFHQ datasets of every resolution were resized from. Returns those files, in order."""
    size = max(FFHQ_RESOLUTION, resolution)
    aligned = []
    for path, out_dir in zip(paths, out_dirs, strict=True):
        aligned.append(Path(out_dir) / "aligned.png")
        save_png(align_file(path, size), aligned[-1])
        log.info(f"aligned {path} -> {aligned[-1]}")
    return aligned
