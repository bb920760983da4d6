"""The projection job (`project.py`): the config edge of `stylefuse.projection`, targets in, per-image results out.

    python project.py network=ffhq target=faces/ projector=wplus batch_size=8
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from stylefuse.align.aligners import resolve_aligner
from stylefuse.errors import StylefuseError
from stylefuse.networks import load_network_pkl
from stylefuse.projection.io import list_targets, save_summary
from stylefuse.projection.projector import Projector
from stylefuse.projection.pti import PivotalTuningProjector, save_tuned_network
from stylefuse.projection.targets import prepare_targets, project_targets
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.video import VIDEO_HINT, video_available

log = logging.getLogger(__name__)


def build_projector(G: torch.nn.Module, projector_cfg: DictConfig, device: str | torch.device) -> Projector:
    """A `Projector` from a conf/projector/*.yaml config; seeds numpy and torch first, as the official tool does (an
    LPIPS model with a random trunk draws its weights from them)."""
    np.random.seed(projector_cfg.seed)
    torch.manual_seed(projector_cfg.seed)
    try:
        return hydra.utils.instantiate(projector_cfg, G=G, device=device)
    except InstantiationException as err:  # Hydra wraps what the constructors raise: show the user's error as it is
        cause = err.__cause__
        while cause is not None and not isinstance(cause, StylefuseError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


def save_tuned_networks(G_tuned: torch.nn.Module, out_dirs: Sequence[Path], network: dict) -> None:
    """The generator tuned on the images of `out_dirs` -> network.pt in each of those folders."""
    for out_dir in out_dirs:
        save_tuned_network(Path(out_dir) / "network.pt", G_tuned, network)


def run(cfg: DictConfig) -> float:
    """The project.py job: projects `cfg.target` (an image or a folder) into `cfg.network`; returns the mean LPIPS."""
    paths = list_targets(cfg.target)
    device = resolve_device(cfg.device)
    video = bool(cfg.save_video)
    if video and not video_available():
        log.warning(f"proj.mp4 skipped: {VIDEO_HINT}")
        video = False

    aligner = resolve_aligner(cfg.align, cfg.network)
    log.info(f"Loading network {cfg.network}")
    network = load_network_pkl(cfg.network, device, cache_dir=cfg.paths.cache_dir)
    G = network["G_ema"]
    out_dir = Path(cfg.paths.output_dir)
    out_dirs = [out_dir / p.stem for p in paths]
    targets = prepare_targets(paths, out_dirs, G, aligner)
    projector = build_projector(G, cfg.projector, device)
    batch_size, on_tuned = cfg.batch_size, None
    if isinstance(projector, PivotalTuningProjector):
        log.info("Pivotal tuning: one generator per image, saved as <image>/network.pt")
        batch_size = 1
        on_tuned = functools.partial(save_tuned_networks, network=network)
    log.info(f"Projecting {len(paths)} image(s) into {projector.space.upper()} ({projector.num_steps} steps, "
             f"batches of {batch_size}) -> {out_dir}")
    _, projs, metrics = project_targets(G, projector, targets, out_dirs, batch_size, video=video,
                                        info=dict(aligner=aligner or "none"), on_tuned=on_tuned)
    save_summary(out_dir / "summary.png", targets, projs)
    mean_lpips = float(np.mean([m["lpips"] for m in metrics]))
    log.info(f"Done: mean LPIPS {mean_lpips:.4f}; results in {out_dir}")
    return mean_lpips
