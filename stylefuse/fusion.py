"""Style fusion: image 1's latent code with a range of its style layers taken from image 2 (the paper's Figure 8).

Each of the `num_ws` rows of w drives one synthesis layer, from 4x4 up to the output resolution. Replacing coarse
rows (low indices) carries over pose and face shape, fine rows colour and detail; the layer range is the degree of
fusion. Inputs are latent codes in the official `projected_w.npz` format, images (projected first, see
`stylefuse.projection`) or `seed:N` for quick looks without projection.

    python fuse.py network=ffhq image1=a.png image2=b.png ranges=paper
    python fuse.py network=ffhq image1=seed:85 image2=seed:821 ranges=[[0,6],[8,14]] strength=0.7 sweep=range
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from typing import Any

import imageio.v2 as imageio
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from stylefuse.errors import ConfigError
from stylefuse.generate import (
    class_label,
    load_generator,
    load_w,
    save_w,
    seed_to_z,
    synthesize_uint8,
)
from stylefuse.nn import Generator
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import save_image
from stylefuse.utils.shapes import assert_shape

log = logging.getLogger(__name__)

LayerRange = tuple[int, int]  # first and last layer, inclusive
SWEEPS = ("none", "range", "strength")


def check_range(layer_range: Sequence[int], num_ws: int) -> LayerRange:
    """[start, end] -> (start, end) after checking 0 <= start <= end < num_ws."""
    if len(layer_range) != 2 or not all(isinstance(idx, int) for idx in layer_range):
        raise ConfigError(f"layer range {list(layer_range)} is not a pair of layer indices: write it as [start, end]")
    start, end = layer_range
    if not 0 <= start <= end < num_ws:
        raise ConfigError(f"layer range [{start}, {end}] does not fit this network's layers 0..{num_ws - 1}: "
                          f"pick 0 <= start <= end <= {num_ws - 1}")
    return start, end


def fuse_ws(w1: torch.Tensor, w2: torch.Tensor, layer_range: Sequence[int] | None,
            strength: float = 1.0) -> torch.Tensor:
    """w1, w2 [N, num_ws, w_dim] -> w1 with layers start..end (inclusive) moved towards w2 by `strength`.

    strength 1 replaces those layers by w2's, 0 keeps w1; an empty range (None or []) returns w1 unchanged.
    """
    assert_shape(w2, list(w1.shape))
    if not 0 <= strength <= 1:
        raise ConfigError(f"strength={strength} is outside [0, 1]: 0 keeps image 1, 1 takes image 2's layers")
    fused = w1.clone()
    if layer_range is None or len(layer_range) == 0:
        return fused
    start, end = check_range(layer_range, num_ws=w1.shape[1])
    fused[:, start:end + 1] = w1[:, start:end + 1].lerp(w2[:, start:end + 1], strength)
    return fused


def scale_range(layer_range: Sequence[int], from_num_ws: int, to_num_ws: int) -> LayerRange:
    """Maps a range of a `from_num_ws`-layer network onto a `to_num_ws`-layer one, proportionally.

    Layer i goes to round(i * (to - 1) / (from - 1)), halves rounded up, so the first and last layers stay first and
    last and the order of range ends is kept. The paper's 0-6, 4-10, 8-14, 12-17 (18 layers) become 0-2, 2-4, 3-6,
    5-7 at 8 layers (32x32) and 0-5, 3-8, 6-11, 9-13 at 14 layers (256x256).
    """
    scale = (to_num_ws - 1) / (from_num_ws - 1)
    start, end = (int(np.floor(idx * scale + 0.5)) for idx in layer_range)
    return start, end


def resolve_ranges(ranges: str | Sequence[Any], presets: DictConfig, num_ws: int) -> list[LayerRange | None]:
    """`ranges` = a preset name (scaled to num_ws), one [start, end] pair or a list of pairs ([] = no fusion)."""
    if isinstance(ranges, str):
        if ranges not in presets:
            raise ConfigError(f"unknown ranges preset {ranges!r}: use one of {sorted(presets)} "
                              f"or explicit pairs such as ranges=[[0,6],[4,10]]")
        preset = presets[ranges]
        return [scale_range(pair, preset.num_ws, num_ws) for pair in preset.ranges]
    if len(ranges) == 2 and all(isinstance(idx, int) for idx in ranges):
        ranges = [ranges]
    return [check_range(pair, num_ws) if pair is not None and len(pair) > 0 else None for pair in ranges]


def range_name(layer_range: LayerRange | None) -> str:  # for file names: 00-06
    return "none" if layer_range is None else f"{layer_range[0]:02d}-{layer_range[1]:02d}"


def range_label(layer_range: LayerRange | None) -> str:  # for figures: layers 0-6
    return "none" if layer_range is None else f"layers {layer_range[0]}-{layer_range[1]}"


def load_latent(source: str, G: Generator, cfg: DictConfig, out_dir: str) -> torch.Tensor:
    """`seed:N`, a `projected_w.npz` or an image (projected into `out_dir`) -> w [1, num_ws, w_dim]."""
    device = next(G.parameters()).device
    source = str(source)
    if source.startswith("seed:"):
        try:
            seed = int(source[len("seed:"):])
        except ValueError:
            raise ConfigError(f"cannot read {source!r}: write a seed as seed:<number>, e.g. seed:85") from None
        z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device)
        with torch.no_grad():
            return G.mapping(z, class_label(G, cfg.class_idx, device), truncation_psi=cfg.trunc)
    if source.endswith(".npz"):
        w = load_w(source, G)
        if w.shape[0] != 1:
            raise ConfigError(f"{source} holds {w.shape[0]} codes, fusion needs one ([1, {G.num_ws}, {G.w_dim}]): "
                              f"give the projected_w.npz of a single image")
        return torch.from_numpy(w).to(device)
    if not os.path.isfile(source):
        raise ConfigError(f"input not found: {source} (give an image, a projected_w.npz or seed:<number>)")
    # Imported here: projection loads LPIPS, which seed and npz inputs do not need.
    from stylefuse.projection import project_image_file

    w = project_image_file(G, source, cfg.projector, device, out_dir)
    return torch.from_numpy(np.asarray(w, dtype=np.float32)).to(device)


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


def sweep(G: Generator, w1: torch.Tensor, w2: torch.Tensor, ranges: Sequence[LayerRange | None],
          cfg: DictConfig) -> tuple[list[np.ndarray], list[str]]:
    """Frames and labels: a window sliding over the layers (`range`) or strength 0..1 on the first range."""
    layer_range = next((pair for pair in ranges if pair is not None), None)
    if layer_range is None:
        raise ConfigError(f"sweep={cfg.sweep} needs a layer range: give ranges=paper or e.g. ranges=[[0,6]]")
    if cfg.sweep == "range":
        width = cfg.sweep_width or layer_range[1] - layer_range[0] + 1
        if not 1 <= width <= G.num_ws:
            raise ConfigError(f"sweep_width={width} does not fit this network's {G.num_ws} layers: "
                              f"give 1..{G.num_ws}")
        windows = [(start, start + width - 1) for start in range(G.num_ws - width + 1)]
        frames = [(window, cfg.strength) for window in windows]
        labels = [f"{start}-{end}" for start, end in windows]
    else:
        assert cfg.sweep == "strength", cfg.sweep
        strengths = np.linspace(0, 1, cfg.sweep_frames)
        frames = [(layer_range, float(s)) for s in strengths]
        labels = [f"{s:.2f}" for s in strengths]
    images = [synthesize_uint8(G, fuse_ws(w1, w2, pair, s), cfg.noise_mode) for pair, s in frames]
    return images, labels


def save_video(frames: Sequence[np.ndarray], path: str, fps: int) -> None:
    """Writes an H.264 mp4 when imageio-ffmpeg is installed; says how to get it otherwise."""
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        log.warning("Skipped %s: install imageio-ffmpeg (pip install 'stylefuse[video]') to write videos", path)
        return
    with imageio.get_writer(path, mode="I", fps=fps, codec="libx264", macro_block_size=1) as video:
        for frame in frames:
            video.append_data(np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame)


def run_fusion(cfg: DictConfig) -> np.ndarray:
    """The job behind `fuse.py`: inputs -> codes -> one fused image per range, the figure and the sweep.

    Writes image{1,2}.png/.npz, fused_<start>-<end>.png/.npz (w in the official npz format; the PNG is what the
    official generate.py renders from it), figure.png and, with a sweep, sweep_<kind>.png (+ .mp4). Returns the
    figure, a uint8 HWC canvas.
    """
    out_dir = str(cfg.paths.output_dir)
    G = load_generator(cfg.network, resolve_device(cfg.device))
    ranges = resolve_ranges(cfg.ranges, cfg.fusion, G.num_ws)
    if cfg.sweep not in SWEEPS:  # checked before any projection starts
        raise ConfigError(f"unknown sweep={cfg.sweep!r}: use one of {', '.join(SWEEPS)}")

    w1 = load_latent(cfg.image1, G, cfg, os.path.join(out_dir, "image1"))
    w2 = load_latent(cfg.image2, G, cfg, os.path.join(out_dir, "image2"))
    cells = [("image1", "image 1", w1), ("image2", "image 2", w2)]  # (file name, label, w)
    cells += [(f"fused_{range_name(r)}", range_label(r), fuse_ws(w1, w2, r, cfg.strength)) for r in ranges]
    images = []
    for name, _, w in tqdm(cells, desc="synthesizing", unit="img"):
        images.append(synthesize_uint8(G, w, cfg.noise_mode))
        save_w(os.path.join(out_dir, f"{name}.npz"), w)
        save_image(images[-1], os.path.join(out_dir, f"{name}.png"))
    figure = labelled_row(images, [label for _, label, _ in cells])
    save_image(figure, os.path.join(out_dir, "figure.png"))

    if cfg.sweep != "none":
        frames, frame_labels = sweep(G, w1, w2, ranges, cfg)
        save_image(labelled_row(frames, frame_labels), os.path.join(out_dir, f"sweep_{cfg.sweep}.png"))
        save_video(frames, os.path.join(out_dir, f"sweep_{cfg.sweep}.mp4"), cfg.video_fps)
    log.info("Wrote figure.png and %d fused images to %s", len(ranges), out_dir)
    return figure
