"""mp4 output (projection progress, fusion sweeps): H.264 through imageio, which needs the imageio-ffmpeg package."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable

import numpy as np

VIDEO_HINT = "install imageio-ffmpeg (pip install 'stylefuse[video]') to write mp4 files"


def video_available() -> bool:
    """True when imageio can write mp4."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int) -> None:
    """Writes uint8 HWC frames (1 or 3 channels) as an H.264 mp4; call only when `video_available()`."""
    import imageio.v2 as imageio

    with imageio.get_writer(path, mode="I", fps=fps, codec="libx264", bitrate="16M", macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame)
