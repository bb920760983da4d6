"""FeatureStats: running mean and covariance, capped item counts."""

from __future__ import annotations

import numpy as np
import torch

from stylefuse.metrics.stats import FeatureStats


def test_feature_stats_mean_cov_match_numpy_and_cap_items() -> None:
    x = np.random.RandomState(0).randn(300, 5).astype(np.float32) * 3 + 1
    stats = FeatureStats(capture_all=True, capture_mean_cov=True, max_items=250)
    for batch in np.array_split(x, 7):
        stats.append(torch.from_numpy(batch))
    assert stats.num_items == 250 and stats.is_full()
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, x[:250].astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x[:250].astype(np.float64), rowvar=False, bias=True), rtol=1e-10)
    np.testing.assert_array_equal(stats.get_all().numpy(), x[:250])
