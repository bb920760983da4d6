"""Pivotal tuning: better reconstructions than the pivots, locality away from them, early stop, and the tuned network
as a file every tool loads."""

from __future__ import annotations

import pytest
import torch

from stylefuse.networks import load_generator
from stylefuse.projection.pti import PivotalTuner, PivotalTuningProjector, save_tuned_network
from stylefuse.projection.targets import render
from tests.helpers import tiny_discriminator


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # uint8 [N, C, H, W] -> [N]
    mse = (a.double() - b.double()).square().mean(dim=[1, 2, 3])
    return 10 * torch.log10(255**2 / mse)


@pytest.fixture(scope="module")
def pivots(tiny_G, lpips_model):
    """Two style-mixed targets of a tiny G (no single w makes them) and their W pivots from a short projection."""
    G = tiny_G(seed=0).eval()
    ws = G.mapping(torch.randn(4, 32, generator=torch.Generator().manual_seed(1)), None)
    ws[:2, 4:] = ws[2:, 4:]
    target = render(G, ws[:2])
    projector = PivotalTuningProjector(G, lpips_model=lpips_model, num_steps=40, w_avg_samples=1000, tune_steps=30,
                                       tune_learning_rate=2e-3)
    result = projector.project(target, progress=False)
    return G, projector, target, result


def test_tuning_reconstructs_better_than_the_pivots(pivots):
    G, projector, target, result = pivots
    before, after = render(G, result.ws), render(result.G, result.ws)
    assert (psnr(after, target) > psnr(before, target) + 2).all(), (psnr(before, target), psnr(after, target))
    distance = projector.distance
    lpips_before, lpips_after = (distance(target.float(), x.float()) for x in (before, after))
    assert (lpips_after < lpips_before * 0.7).all(), (lpips_before, lpips_after)
    assert torch.equal(result.G.mapping.fc0.weight, G.mapping.fc0.weight)  # only the synthesis is tuned
    assert not any(p.requires_grad for p in result.G.parameters())


def test_locality_keeps_images_away_from_the_pivots(pivots, lpips_model):
    G, projector, target, result = pivots
    far = G.mapping(torch.randn(8, 32, generator=torch.Generator().manual_seed(5)), None)
    original = render(G, far)
    free = PivotalTuner(G, projector.distance, projector.w_std, num_steps=30, learning_rate=2e-3, locality_weight=0)
    unconstrained = free.tune(target, result.ws, progress=False).G
    kept, moved = psnr(render(result.G, far), original), psnr(render(unconstrained, far), original)
    assert kept.mean() > moved.mean() + 1, (kept, moved)


def test_stops_early_once_every_target_is_close(pivots):
    G, projector, target, result = pivots
    lpips_start = projector.distance(target.float(), render(G, result.ws).float())
    tuner = PivotalTuner(G, projector.distance, projector.w_std, num_steps=30, learning_rate=2e-3,
                         stop_lpips=float(lpips_start.max()) * 0.9)
    tuning = tuner.tune(target, result.ws, progress=False)
    assert 1 < tuning.num_steps < 30
    assert max(tuning.lpips) < float(lpips_start.max()) * 0.9


def test_tuned_network_file_loads_as_the_tuned_generator(pivots, tmp_path):
    G, _, _, result = pivots
    path = tmp_path / "network.pt"
    save_tuned_network(path, result.G, dict(D=tiny_discriminator(), augment_p=None, training_set_kwargs=None))
    loaded = load_generator(path)
    assert torch.equal(render(loaded, result.ws), render(result.G, result.ws))
