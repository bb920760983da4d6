"""FID: the Frechet distance against scipy and torchmetrics, and on real images through a detector."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from stylefuse.metrics.fid import frechet_distance
from tests.metrics.stand_ins import random_images, shifted_stats


def test_frechet_distance_matches_direct_scipy_and_torchmetrics() -> None:
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.RandomState(1)
    a = rng.randn(500, 6) @ rng.randn(6, 6)
    b = rng.randn(400, 6) @ rng.randn(6, 6) + 0.5
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    fid = frechet_distance(mu_a, cov_a, mu_b, cov_b)
    direct = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
    eig = _compute_fid(*(torch.from_numpy(v) for v in (mu_a, cov_a, mu_b, cov_b))).item()
    assert fid > 1
    assert fid == pytest.approx(direct, rel=1e-10)
    assert fid == pytest.approx(eig, rel=1e-8)


def test_fid_zero_on_same_set_and_growing_with_shift() -> None:
    base, *shifted = shifted_stats(random_images(200), [0, 0, 8, 16, 32], capture_mean_cov=True)
    fids = [frechet_distance(*s.get_mean_cov(), *base.get_mean_cov()) for s in shifted]
    assert abs(fids[0]) < 1e-8
    assert 0 < fids[1] < fids[2] < fids[3]
