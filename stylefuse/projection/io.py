"""Files of the projection job: target images in, per-image results out (the official projector's formats)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from stylefuse.errors import TargetError
from stylefuse.utils.images import center_crop_resize, is_image_file, load_image, save_image, tile_grid
from stylefuse.utils.video import write_video


def list_targets(target: str | os.PathLike, argument: str = "target=") -> list[Path]:
    """One image file, or the images of a folder (sorted, not recursive); one-line errors for unusable paths, naming
    the command-line `argument` that gave it."""
    path = Path(target).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
        if not files:
            raise TargetError(f"no images in folder {path} (add image files such as .png or .jpg, or point "
                              f"{argument} at an image)")
        stems = [p.stem for p in files]
        clash = next((s for s in stems if stems.count(s) > 1), None)
        if clash is not None:
            raise TargetError(f"several images in {path} are named {clash!r}; results are named after the images, "
                              f"so rename them to distinct names")
        return files
    noun = argument.rstrip("=")
    if not path.exists():
        raise TargetError(f"{noun} not found: {path} ({argument} must be an image file or a folder of images)")
    if not is_image_file(path):
        raise TargetError(f"{noun} {path} is not an image file (use a format such as .png or .jpg)")
    return [path]


def load_target(path: str | os.PathLike, resolution: int, channels: int) -> np.ndarray:
    """An image file -> uint8 [C, resolution, resolution]: centre crop to square, Lanczos resize (as official)."""
    try:
        img = load_image(path)  # [H, W, 1 or 3]
    except (FileNotFoundError, ValueError) as err:
        raise TargetError(str(err)) from err
    pil = PIL.Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).convert("L" if channels == 1 else "RGB")
    arr = np.asarray(center_crop_resize(pil, resolution, "lanczos"), dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_targets(paths: Sequence[Path], G: torch.nn.Module) -> np.ndarray:
    """Target files -> uint8 [N, C, H, W] at G's resolution and channels; read before the long work, so that a bad
    file fails at once."""
    return np.stack([load_target(p, G.img_resolution, G.img_channels) for p in paths])


def save_projection(out_dir: str | os.PathLike, target: np.ndarray, proj: np.ndarray, w: np.ndarray,
                    noise: dict[str, np.ndarray], metrics: dict[str, float]) -> None:
    """Writes target.png, proj.png (uint8 [C, H, W]), projected_w.npz (key `w`, [1, num_ws, w_dim] float32, readable
    by the official generate.py --projected-w), noise.npz (noise buffers by state_dict name) and metrics.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    assert w.ndim == 3 and w.shape[0] == 1, f"w must be [1, num_ws, w_dim], got {list(w.shape)}"
    save_image(target, out_dir / "target.png")
    save_image(proj, out_dir / "proj.png")
    np.savez(out_dir / "projected_w.npz", w=w.astype(np.float32))
    np.savez(out_dir / "noise.npz", **{name: buf.astype(np.float32) for name, buf in noise.items()})
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def save_summary(path: str | os.PathLike, targets: np.ndarray, projs: np.ndarray, columns: int = 8) -> None:
    """uint8 [N, C, H, W] targets and projections -> one PNG: a targets row above a projections row, `columns` wide."""
    assert targets.shape == projs.shape, f"{targets.shape} != {projs.shape}"
    columns = min(columns, len(targets))
    rows = []
    for start in range(0, len(targets), columns):
        pair = [_pad(x[start:start + columns], columns) for x in (targets, projs)]
        rows.append(tile_grid(np.concatenate(pair), (columns, 2)))
    save_image(np.concatenate(rows, axis=0), path)


def save_video(path: str | os.PathLike, target: np.ndarray, frames: Iterable[np.ndarray | torch.Tensor]) -> None:
    """proj.mp4 as the official projector writes it: each frame is target | projection (uint8 [C, H, W]), 10 fps."""
    target_hwc = target.transpose(1, 2, 0)
    frames_hwc = (np.concatenate([target_hwc, _as_numpy(frame).transpose(1, 2, 0)], axis=1) for frame in frames)
    write_video(path, frames_hwc, fps=10)


def _as_numpy(img: np.ndarray | torch.Tensor) -> np.ndarray:
    return img.cpu().numpy() if isinstance(img, torch.Tensor) else img


def _pad(x: np.ndarray, n: int) -> np.ndarray:  # black images fill the last row of the summary
    return np.concatenate([x, np.zeros((n - len(x), *x.shape[1:]), dtype=x.dtype)])
