"""The projection job (`project.py`): targets in, per-image results out, in batches; also the entry point fusion
uses to project its image inputs."""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from stylefuse.errors import ConfigError, TargetError
from stylefuse.networks import load_generator
from stylefuse.projection.io import list_targets, load_target, save_projection, save_summary, save_video
from stylefuse.projection.lpips import LpipsDistance
from stylefuse.projection.projector import Projector
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import projected_to_uint8
from stylefuse.utils.video import VIDEO_HINT, video_available

log = logging.getLogger(__name__)


def build_projector(G: torch.nn.Module, projector_cfg: DictConfig, device: str | torch.device) -> Projector:
    """A `Projector` from a conf/projector/*.yaml config; seeds numpy and torch first, as the official tool does (an
    LPIPS model with a random trunk draws its weights from them)."""
    np.random.seed(projector_cfg.seed)
    torch.manual_seed(projector_cfg.seed)
    with warnings.catch_warnings():  # lpips calls torchvision with its deprecated `pretrained` argument
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        return hydra.utils.instantiate(projector_cfg, G=G, device=device)


def project_targets(G: torch.nn.Module, projector: Projector, targets: np.ndarray, out_dirs: Sequence[Path],
                    batch_size: int, video: bool = False, progress: bool = True) -> tuple[np.ndarray, np.ndarray,
                                                                                          list[dict]]:
    """Projects uint8 targets [N, C, H, W] in batches and writes each one's results to its folder in `out_dirs`.

    Returns ws [N, num_ws, w_dim] float32, projections uint8 [N, C, H, W] and per-image metrics.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    ws, projs, metrics = [], [], []
    num_batches = math.ceil(len(targets) / batch_size)
    for batch_idx, start in enumerate(range(0, len(targets), batch_size)):
        batch = slice(start, start + batch_size)
        if progress:
            log.info(f"batch {batch_idx + 1}/{num_batches}: {', '.join(Path(d).name for d in out_dirs[batch])}")
        target = torch.from_numpy(targets[batch])
        result = projector.project(target, record_steps=video, progress=progress)
        proj = render(G, result.ws)
        batch_metrics = image_metrics(projector.distance, target, proj)
        for i, out_dir in enumerate(out_dirs[batch]):
            w = result.ws[i:i + 1].cpu().numpy()
            noise = {name: maps[i].cpu().numpy() for name, maps in result.noise.items()}
            save_projection(out_dir, targets[start + i], proj[i].numpy(), w, noise, batch_metrics[i])
            if video:
                frames = (render(G, w_step[i:i + 1])[0] for w_step in result.w_steps)
                save_video(Path(out_dir) / "proj.mp4", targets[start + i], frames)
        ws.append(result.ws.cpu().numpy())
        projs.append(proj.numpy())
        metrics += batch_metrics
    return np.concatenate(ws), np.concatenate(projs), metrics


def load_targets(paths: Sequence[Path], G: torch.nn.Module) -> np.ndarray:
    """Target files -> uint8 [N, C, H, W] at G's resolution; read before the long work, so a bad file fails at once."""
    return np.stack([load_target(p, G.img_resolution, G.img_channels) for p in paths])


@torch.no_grad()
def render(G: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """ws [N, num_ws, w_dim] -> uint8 [N, C, H, W] on the CPU, as the official projector renders proj.png."""
    ws = ws.to(next(G.parameters()).device)
    return projected_to_uint8(G.synthesis(ws, noise_mode="const")).cpu()


@torch.no_grad()
def image_metrics(distance: LpipsDistance, target: torch.Tensor, proj: torch.Tensor) -> list[dict]:
    """Per-image LPIPS, MSE and PSNR (on the uint8 [N, C, H, W] values) of projections against their targets."""
    device = next(distance.parameters()).device
    target, proj = target.to(device, torch.float32), proj.to(device, torch.float32)
    lpips_dist = distance.distance(distance.features(target), distance.features(proj))
    mse = (proj.double() - target.double()).square().mean(dim=[1, 2, 3])
    return [dict(lpips=float(d), mse=float(m), psnr=10 * math.log10(255**2 / float(m)) if m > 0 else None)
            for d, m in zip(lpips_dist, mse)]


def project_image_file(G: torch.nn.Module, path: str | os.PathLike, projector_cfg: DictConfig,
                       device: str | torch.device, out_dir: str | os.PathLike) -> np.ndarray:
    """Projects one image file with a conf/projector config, writes the per-image outputs to `out_dir` and returns
    its w [1, num_ws, w_dim] float32 (the fusion job's entry point)."""
    if Path(path).is_dir():
        raise TargetError(f"{path} is a folder; give one image file here")
    targets = load_targets(list_targets(path), G)
    projector = build_projector(G, projector_cfg, device)
    ws, _, _ = project_targets(G, projector, targets, [Path(out_dir)], batch_size=1)
    return ws


def run(cfg: DictConfig) -> float:
    """The project.py job: projects `cfg.target` (an image or a folder) into `cfg.network`; returns the mean LPIPS."""
    for key in ("network", "target"):
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key}= is missing: python project.py network=<pkl|ckpt|url|name> "
                              f"target=<image or folder>")
    paths = list_targets(cfg.target)
    device = resolve_device(cfg.device)
    video = bool(cfg.save_video)
    if video and not video_available():
        log.warning(f"proj.mp4 skipped: {VIDEO_HINT}")
        video = False

    log.info(f"Loading network {cfg.network}")
    G = load_generator(cfg.network, device)
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
