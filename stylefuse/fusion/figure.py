"""The fusion figure: images side by side, each labelled underneath (the layout of the paper's Figure 8)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

MIN_CELL = 160  # Pixels: smaller images are enlarged to at least this, so that a 32x32 network's figure is readable.


def enlarge(img: np.ndarray, min_size: int = MIN_CELL) -> np.ndarray:
    """uint8 HWC -> the image repeated by the smallest whole factor that makes it at least `min_size` pixels wide
    (nearest neighbour: every generated pixel stays visible as it is)."""
    factor = max(1, -(-min_size // img.shape[1]))
    return img.repeat(factor, axis=0).repeat(factor, axis=1)


def labelled_row(images: Sequence[np.ndarray], labels: Sequence[str], min_size: int = MIN_CELL) -> np.ndarray:
    """uint8 HWC images side by side, each enlarged to `min_size` (see `enlarge`) with its label (lines separated
    by '\\n') centred in a white strip underneath -> uint8 HWC RGB."""
    images = [enlarge(np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img, min_size) for img in images]
    H, W, _ = images[0].shape
    lines = [line for label in labels for line in label.split("\n")]
    # The largest default-font size (at most W/9) at which the longest line fits its cell.
    size = max(8, W // 9)
    font = PIL.ImageFont.load_default(size=size)
    while size > 8 and max(font.getlength(line) for line in lines) > W - 4:
        size -= 1
        font = PIL.ImageFont.load_default(size=size)
    line_height = round(size * 1.25)
    num_lines = max(label.count("\n") + 1 for label in labels)
    strip = line_height * num_lines + size // 2 + 4
    canvas = PIL.Image.new("RGB", (W * len(images), H + strip), "white")
    draw = PIL.ImageDraw.Draw(canvas)
    for idx, (img, label) in enumerate(zip(images, labels)):
        canvas.paste(PIL.Image.fromarray(img, "RGB"), (W * idx, 0))
        for row, line in enumerate(label.split("\n")):
            draw.text((W * idx + W / 2, H + 4 + size // 4 + line_height * (row + 0.5)), line, fill="black",
                      font=font, anchor="mm")
    return np.asarray(canvas)
