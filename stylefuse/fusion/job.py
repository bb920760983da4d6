"""The fusion job (`fuse.py`): image 1's latent code with a range of its style layers taken from image 2.

Each of the `num_ws` rows of w drives one synthesis layer, from 4x4 up to the output resolution. Replacing coarse
rows (low indices) carries over pose and face shape, fine rows colour and detail; the layer range is the degree of
fusion. Inputs are latent codes in the official `projected_w.npz` format, images (projected first, see
`stylefuse.projection`) or `seed:N` for quick looks without projection.

    python fuse.py network=ffhq image1=a.png image2=b.png ranges=paper
    python fuse.py network=ffhq image1=seed:85 image2=seed:821 ranges=[[0,6],[8,14]] strength=0.7 sweep=range
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from stylefuse.align.aligners import resolve_aligner
from stylefuse.fusion.figure import labelled_row
from stylefuse.fusion.ranges import fuse_ws, range_label, range_name, resolve_ranges
from stylefuse.fusion.sweep import sweep
from stylefuse.latents import load_latent, save_w, synthesize_uint8
from stylefuse.networks import load_network_pkl
from stylefuse.nn import Generator
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import save_image
from stylefuse.utils.video import VIDEO_HINT, video_available, write_video

log = logging.getLogger(__name__)


def project_images(network: dict, projector_cfg: DictConfig, sources: dict[str, str], aligner: str | None,
                   out_dir: str) -> tuple[Generator, dict[str, np.ndarray]]:
    """Projects the inputs among `sources` ({name: input}) that are image files, each into `<out_dir>/<name>/`.

    Returns the generator to fuse in and {name: w [1, num_ws, w_dim]}. A pivotal-tuning projector (`projector=pti`)
    tunes ONE generator on all the images together, so that both codes of a fusion live in the same network; it is
    saved as `<out_dir>/network.pt` and returned. Seed and npz inputs need no projector, so none is built for them.
    """
    G = network["G_ema"]
    images = {name: source for name, source in sources.items()
              if not source.startswith("seed:") and not source.endswith(".npz") and os.path.isfile(source)}
    if not images:
        return G, {}
    # Imported here for the same reason: projection loads LPIPS.
    from stylefuse.projection import prepare_targets, project_image_file, project_targets
    from stylefuse.projection.job import build_projector
    from stylefuse.projection.pti import PivotalTuningProjector, save_tuned_network

    projector = build_projector(G, projector_cfg, next(G.parameters()).device)
    if not isinstance(projector, PivotalTuningProjector):
        return G, {name: project_image_file(G, projector, path, os.path.join(out_dir, name), aligner)
                   for name, path in images.items()}
    dirs = [Path(out_dir) / name for name in images]
    targets = prepare_targets([Path(path) for path in images.values()], dirs, G, aligner)
    tuned = []
    ws, _, _ = project_targets(G, projector, targets, dirs, batch_size=len(images),
                               info=dict(aligner=aligner or "none"), on_tuned=lambda G_tuned, _: tuned.append(G_tuned))
    save_tuned_network(Path(out_dir) / "network.pt", tuned[0], network)
    log.info(f"Fusing in the generator tuned on {' and '.join(images)}: {Path(out_dir) / 'network.pt'}")
    return tuned[0], {name: ws[i:i + 1] for i, name in enumerate(images)}


def run(cfg: DictConfig) -> np.ndarray:
    """The job behind `fuse.py`: inputs -> codes -> one fused image per range, the figure and the sweep.

    Writes image{1,2}.png/.npz, fused_<start>-<end>.png/.npz (w in the official npz format; the PNG is what the
    official generate.py renders from it), figure.png and, with a sweep, sweep_<kind>.png (+ .mp4). Returns the
    figure, a uint8 HWC canvas.
    """
    out_dir = str(cfg.paths.output_dir)
    network = load_network_pkl(cfg.network, resolve_device(cfg.device), cache_dir=cfg.paths.cache_dir)
    ranges = cfg.ranges if isinstance(cfg.ranges, str) else OmegaConf.to_object(cfg.ranges)
    ranges = resolve_ranges(ranges, OmegaConf.to_object(cfg.fusion), network["G_ema"].num_ws)
    aligner = resolve_aligner(cfg.align, cfg.network)

    G, projected = project_images(network, cfg.projector, dict(image1=str(cfg.image1), image2=str(cfg.image2)),
                                  aligner, out_dir)
    w1 = load_latent(cfg.image1, G, cfg.trunc, cfg.class_idx, lambda path: projected["image1"])
    w2 = load_latent(cfg.image2, G, cfg.trunc, cfg.class_idx, lambda path: projected["image2"])
    cells = [("image1", "image 1", w1), ("image2", "image 2", w2)]  # (file name, label, w)
    cells += [(f"fused_{range_name(r)}", range_label(r, cfg.strength), fuse_ws(w1, w2, r, cfg.strength))
              for r in ranges]
    images = []
    for name, _, w in tqdm(cells, desc="synthesizing", unit="img"):
        images.append(synthesize_uint8(G, w, cfg.noise_mode))
        save_w(os.path.join(out_dir, f"{name}.npz"), w)
        save_image(images[-1], os.path.join(out_dir, f"{name}.png"))
    figure = labelled_row(images, [label for _, label, _ in cells])
    save_image(figure, os.path.join(out_dir, "figure.png"))

    if cfg.sweep != "none":
        first_range = next((pair for pair in ranges if pair is not None), None)
        frames, frame_labels = sweep(G, w1, w2, first_range, cfg.sweep, cfg.strength, cfg.sweep_width,
                                     cfg.sweep_frames, cfg.noise_mode)
        save_image(labelled_row(frames, frame_labels), os.path.join(out_dir, f"sweep_{cfg.sweep}.png"))
        if video_available():
            write_video(os.path.join(out_dir, f"sweep_{cfg.sweep}.mp4"), frames, cfg.video_fps)
        else:
            log.warning("sweep_%s.mp4 skipped: %s", cfg.sweep, VIDEO_HINT)
    log.info("Wrote figure.png and %d fused images to %s", len(ranges), out_dir)
    return figure
