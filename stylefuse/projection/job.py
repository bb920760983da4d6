"""The projection job (`project.py`): the config edge of `stylefuse.projection`, targets in, per-image results out.

    python project.py network=ffhq target=faces/ projector=wplus batch_size=8
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from stylefuse.networks import load_generator
from stylefuse.projection.io import list_targets, load_targets, save_summary
from stylefuse.projection.projector import Projector
from stylefuse.projection.targets import project_targets
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.video import VIDEO_HINT, video_available

log = logging.getLogger(__name__)


def build_projector(G: torch.nn.Module, projector_cfg: DictConfig, device: str | torch.device) -> Projector:
    """A `Projector` from a conf/projector/*.yaml config; seeds numpy and torch first, as the official tool does (an
    LPIPS model with a random trunk draws its weights from them)."""
    np.random.seed(projector_cfg.seed)
    torch.manual_seed(projector_cfg.seed)
    return hydra.utils.instantiate(projector_cfg, G=G, device=device)


def run(cfg: DictConfig) -> float:
    """The project.py job: projects `cfg.target` (an image or a folder) into `cfg.network`; returns the mean LPIPS."""
    paths = list_targets(cfg.target)
    device = resolve_device(cfg.device)
    video = bool(cfg.save_video)
    if video and not video_available():
        log.warning(f"proj.mp4 skipped: {VIDEO_HINT}")
        video = False

    log.info(f"Loading network {cfg.network}")
    G = load_generator(cfg.network, device, cache_dir=cfg.paths.cache_dir)
    targets = load_targets(paths, G)
    projector = build_projector(G, cfg.projector, device)
    out_dir = Path(cfg.paths.output_dir)
    log.info(f"Projecting {len(paths)} image(s) into {projector.space.upper()} ({projector.num_steps} steps, "
             f"batches of {cfg.batch_size}) -> {out_dir}")
    _, projs, metrics = project_targets(G, projector, targets, [out_dir / p.stem for p in paths], cfg.batch_size,
                                        video=video)
    save_summary(out_dir / "summary.png", targets, projs)
    mean_lpips = float(np.mean([m["lpips"] for m in metrics]))
    log.info(f"Done: mean LPIPS {mean_lpips:.4f}; results in {out_dir}")
    return mean_lpips
