"""Projecting target images: in batches through a `Projector`, each result rendered, measured and written as the
official projector writes it. Plain arguments throughout: usable from a notebook as from the project.py job.

    projector = Projector(G, lpips_vgg(), space="w+")
    w = project_image_file(G, projector, "face.png", "out/face")  # [1, num_ws, w_dim]; out/face/proj.png, ...
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from stylefuse.align.files import align_targets
from stylefuse.errors import ConfigError, TargetError
from stylefuse.projection.io import list_targets, load_targets, save_projection, save_video
from stylefuse.projection.lpips import LpipsDistance
from stylefuse.projection.projector import Projector
from stylefuse.utils.images import projected_to_uint8

log = logging.getLogger(__name__)


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
    lpips_dist = distance(target, proj)
    mse = (proj.double() - target.double()).square().mean(dim=[1, 2, 3])
    return [dict(lpips=float(d), mse=float(m), psnr=10 * math.log10(255**2 / float(m)) if m > 0 else None,
                 lpips_trunk=distance.trunk) for d, m in zip(lpips_dist, mse)]


def project_targets(G: torch.nn.Module, projector: Projector, targets: np.ndarray, out_dirs: Sequence[Path],
                    batch_size: int, video: bool = False, progress: bool = True, info: Mapping | None = None,
                    on_tuned: Callable[[torch.nn.Module, Sequence[Path]], None] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Projects uint8 targets [N, C, H, W] in batches and writes each one's results to its folder in `out_dirs`
    (target.png, proj.png, projected_w.npz, noise.npz, metrics.json and, with `video`, proj.mp4). `info` entries
    (e.g. the aligner) are added to every metrics.json. A projector that tunes the generator (pivotal tuning)
    renders each batch with its tuned generator, which `on_tuned(G_tuned, batch out_dirs)` receives.

    Returns ws [N, num_ws, w_dim] float32, projections uint8 [N, C, H, W] and per-image metrics.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    ws, projs, metrics = [], [], []
    num_batches = math.ceil(len(targets) / batch_size)
    if progress:  # one step per resolution of the schedule, timed: a few seconds against minutes or hours
        minutes = projector.estimate_seconds(min(batch_size, len(targets))) / 60
        log.info(f"expected time: about {minutes:.1f} min per batch, {minutes * num_batches:.1f} min in all")
    for batch_idx, start in enumerate(range(0, len(targets), batch_size)):
        batch = slice(start, start + batch_size)
        if progress:
            log.info(f"batch {batch_idx + 1}/{num_batches}: {', '.join(Path(d).name for d in out_dirs[batch])}")
        target = torch.from_numpy(targets[batch])
        result = projector.project(target, record_steps=video, progress=progress)
        G_result = G if result.G is None else result.G
        if result.G is not None and on_tuned is not None:
            on_tuned(result.G, out_dirs[batch])
        proj = render(G_result, result.ws)
        batch_metrics = [dict(m, **(info or {})) for m in image_metrics(projector.distance, target, proj)]
        for i, out_dir in enumerate(out_dirs[batch]):
            w = result.ws[i:i + 1].cpu().numpy()
            noise = {name: maps[i].cpu().numpy() for name, maps in result.noise.items()}
            save_projection(out_dir, targets[start + i], proj[i].numpy(), w, noise, batch_metrics[i])
            if video:
                frames = (render(G_result, w_step[i:i + 1])[0] for w_step in result.w_steps)
                save_video(Path(out_dir) / "proj.mp4", targets[start + i], frames)
        ws.append(result.ws.cpu().numpy())
        projs.append(proj.numpy())
        metrics += batch_metrics
    return np.concatenate(ws), np.concatenate(projs), metrics


def prepare_targets(paths: Sequence[Path], out_dirs: Sequence[Path], G: torch.nn.Module, aligner: str | None
                    ) -> np.ndarray:
    """Target files -> uint8 [N, C, H, W] at G's resolution; with aligner 'ffhq', each photo is aligned first and
    the aligned face saved beside its projection (`<out_dir>/aligned.png`)."""
    if aligner is not None:
        assert aligner == "ffhq", aligner
        paths = align_targets(paths, out_dirs, G.img_resolution)
    return load_targets(paths, G)


def project_image_file(G: torch.nn.Module, projector: Projector, path: str | os.PathLike,
                       out_dir: str | os.PathLike, aligner: str | None = None) -> np.ndarray:
    """Projects one image file (aligned first with aligner 'ffhq'), writes its results to `out_dir` and returns its
    w [1, num_ws, w_dim] float32."""
    if Path(path).is_dir():
        raise TargetError(f"{path} is a folder; give one image file here")
    targets = prepare_targets(list_targets(path), [Path(out_dir)], G, aligner)
    ws, _, _ = project_targets(G, projector, targets, [Path(out_dir)], batch_size=1,
                               info=dict(aligner=aligner or "none"))
    return ws
