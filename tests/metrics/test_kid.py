"""KID: the unbiased MMD estimate, and KID/precision-recall on the same and on shifted image sets."""

from __future__ import annotations

import numpy as np
import pytest

from stylefuse.metrics.kid import kernel_distance
from stylefuse.metrics.precision_recall import precision_recall
from tests.metrics.stand_ins import random_images, shifted_stats


def test_kernel_distance_matches_direct_unbiased_mmd() -> None:
    rng = np.random.RandomState(2)
    real = rng.randn(40, 5).astype(np.float32)
    gen = (rng.randn(40, 5) * 1.5 + 0.3).astype(np.float32)
    # One subset of all rows: the subset choice only permutes rows, so the estimate is the plain unbiased MMD^2.
    kid = kernel_distance(real, gen, num_subsets=1, max_subset_size=1000, rng=np.random.RandomState(0))
    x, y, n, m = gen.astype(np.float64), real.astype(np.float64), 5, 40
    kxx, kyy, kxy = (x @ x.T / n + 1) ** 3, (y @ y.T / n + 1) ** 3, (x @ y.T / n + 1) ** 3
    off = ~np.eye(m, dtype=bool)
    direct = kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean()
    assert direct > 0.1
    assert kid == pytest.approx(direct, rel=1e-5)


def test_kid_and_pr_on_same_and_shifted_sets() -> None:
    base, *shifted = shifted_stats(random_images(200), [0, 0, 16, 32, 100], capture_all=True)
    rng = np.random.RandomState(0)
    kids = [kernel_distance(base.get_all().numpy(), s.get_all().numpy(), 20, 100, rng) for s in shifted]
    assert abs(kids[0]) < 0.1 * kids[1]
    assert 0 < kids[1] < kids[2] < kids[3]
    assert precision_recall(base.get_all(), shifted[0].get_all(), 3, 64, 64) == (1.0, 1.0)
    assert precision_recall(base.get_all(), shifted[3].get_all(), 3, 64, 64) == (0.0, 0.0)
