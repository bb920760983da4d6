"""The fusion figure: images side by side, each labelled underneath (the layout of the paper's Figure 8)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont


def labelled_row(images: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """uint8 HWC images side by side, each with its label centred in a white strip underneath -> uint8 HWC RGB."""
    H, W, _ = images[0].shape
    # The largest default-font size (at most H/10) at which the longest label fits its cell.
    size = max(8, H // 10)
    font = PIL.ImageFont.load_default(size=size)
    while size > 6 and max(font.getlength(label) for label in labels) > W - 2:
        size -= 1
        font = PIL.ImageFont.load_default(size=size)
    strip = round(size * 1.8)
    canvas = PIL.Image.new("RGB", (W * len(images), H + strip), "white")
    draw = PIL.ImageDraw.Draw(canvas)
    for idx, (img, label) in enumerate(zip(images, labels)):
        rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
        canvas.paste(PIL.Image.fromarray(rgb, "RGB"), (W * idx, 0))
        draw.text((W * idx + W / 2, H + strip / 2), label, fill="black", font=font, anchor="mm")
    return np.asarray(canvas)
