"""Images: uint8 conversions, PNG grids, reading and writing files, and the rules image inputs share.

The official tools convert float images to uint8 in three slightly different ways; each is named here so that
our outputs match theirs bit for bit:
- grids (training snapshots, style-mixing grids): `rint((x - lo) * 255 / (hi - lo))`,
- generated images and metrics: `floor(x * 127.5 + 128)` (round half up),
- projector outputs: `floor((x + 1) * 127.5)`.

The datasets, the dataset tool and the projector read image files by one set of rules: the file extensions PIL can
open, the centre crop + resize of the official tools, and the square power-of-two sizes StyleGAN2 trains on.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from stylefuse.utils.files import atomic_write
from stylefuse.utils.shapes import is_power_of_two

RESIZE_FILTERS = {"box": PIL.Image.Resampling.BOX, "lanczos": PIL.Image.Resampling.LANCZOS}


def grid_to_uint8(img: torch.Tensor | np.ndarray, drange: Sequence[float] = (-1, 1)) -> np.ndarray:
    """[N, C, H, W] float -> uint8 with rounding to nearest (the snapshot-grid convention)."""
    img = _as_numpy(img).astype(np.float32)
    lo, hi = drange
    return np.rint((img - lo) * (255 / (hi - lo))).clip(0, 255).astype(np.uint8)


def generated_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] float in [-1, 1] -> uint8 NCHW, as official generate.py and the metrics do."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def projected_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] float in [-1, 1] -> uint8 NCHW, as the official projector saves proj.png."""
    return ((img + 1) * 127.5).clamp(0, 255).to(torch.uint8)


def tile_grid(img: np.ndarray, grid_size: tuple[int, int]) -> np.ndarray:
    """uint8 [N, C, H, W] -> [gh * H, gw * W, C], row-major (image y * gw + x)."""
    gw, gh = grid_size
    N, C, H, W = img.shape
    assert N == gw * gh, f"{N} images do not fill a {gw}x{gh} grid"
    img = img.reshape(gh, gw, C, H, W).transpose(0, 3, 1, 4, 2)
    return img.reshape(gh * H, gw * W, C)


def save_image_grid(img: torch.Tensor | np.ndarray, path: str | os.PathLike, grid_size: tuple[int, int],
                    drange: Sequence[float] = (-1, 1)) -> np.ndarray:
    """Saves [N, C, H, W] images (float in `drange`, or uint8) as one PNG grid; returns the HWC uint8 canvas."""
    img = _as_numpy(img)
    if img.dtype != np.uint8:
        img = grid_to_uint8(img, drange)
    canvas = tile_grid(img, grid_size)
    save_image(canvas, path)
    return canvas


def save_image(img: np.ndarray | torch.Tensor, path: str | os.PathLike) -> None:
    """Saves one uint8 image, HWC (or CHW tensor), 1 or 3 channels, creating the parent folder."""
    img = _as_numpy(img)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[2] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    image = PIL.Image.fromarray(img, "L" if img.ndim == 2 else "RGB")
    atomic_write(path, image.save)  # never a half-written PNG, also when the process is killed


def open_image(path: str | os.PathLike) -> PIL.Image.Image:
    """An image file, decoded and upright (its EXIF orientation applied: phone photos are often stored sideways);
    one-line errors for missing, corrupt or oversized files."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path} (check the path)")
    try:
        with PIL.Image.open(path) as image:
            return PIL.ImageOps.exif_transpose(image)  # a decoded copy, also when there is nothing to turn
    except PIL.Image.DecompressionBombError as err:
        raise ValueError(f"cannot read image {path}: {err} (downscale it first)") from err
    except (PIL.UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path}: {err} (is it a valid PNG/JPEG file?)") from err


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as uint8 HWC RGB (grayscale kept as HW1); one-line error for missing or corrupt files."""
    image = open_image(path)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    arr = np.asarray(image)
    return arr[:, :, None] if arr.ndim == 2 else arr


@functools.cache
def image_extensions() -> frozenset[str]:
    """Lower-case file extensions PIL can open (save-only formats such as .pdf excluded), as the official tools."""
    PIL.Image.init()
    return frozenset(ext for ext, fmt in PIL.Image.registered_extensions().items() if fmt in PIL.Image.OPEN)


def is_image_file(path: str | os.PathLike) -> bool:
    """The file name has an extension PIL can open."""
    return os.path.splitext(path)[1].lower() in image_extensions()


def center_crop_resize(image: PIL.Image.Image, resolution: int, resize_filter: str = "lanczos") -> PIL.Image.Image:
    """The largest centred square of `image`, resized to `resolution` x `resolution`: the official projector's
    target and the dataset tool's `--transform center-crop`."""
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    image = image.crop((left, top, left + s, top + s))
    return image.resize((resolution, resolution), RESIZE_FILTERS[resize_filter])


def suggested_resolution(size: int) -> int:
    """The largest power of two <= size (at least 4): the training resolution to suggest for size-pixel images."""
    return max(4, 1 << (max(size, 1).bit_length() - 1))


def training_size_problem(w: int, h: int) -> tuple[str, str, int] | None:
    """None when w x h is a size StyleGAN2 trains on (square, a power of two >= 4); else what is wrong ('not
    square' or 'not a power of two'), the dataset tool's flags that fix it, and the resolution they give."""
    if w == h and is_power_of_two(w) and w >= 4:
        return None
    res = suggested_resolution(min(w, h))
    if w != h:
        return "not square", f"--transform center-crop --resolution {res}", res
    return "not a power of two", f"--resolution {res}", res


def _as_numpy(img: torch.Tensor | np.ndarray) -> np.ndarray:
    return img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
