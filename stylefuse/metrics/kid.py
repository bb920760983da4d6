"""Kernel Inception Distance (Binkowski et al. 2018), computed as the official StyleGAN2-ADA code does."""

from __future__ import annotations

import numpy as np

from stylefuse.metrics.collect import dataset_features, generator_features
from stylefuse.metrics.options import MetricOptions


def kernel_distance(real: np.ndarray, gen: np.ndarray, num_subsets: int, max_subset_size: int,
                    rng: np.random.RandomState) -> float:
    """Unbiased squared MMD with the kernel (a.b / D + 1)^3, averaged over random subsets of m = min(sizes, max).

    real [N_r, D], gen [N_g, D]; subsets are drawn without replacement.
    """
    n = real.shape[1]
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    t = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]  # float32, like the official
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def compute_kid(opts: MetricOptions, max_real: int | None, num_gen: int, num_subsets: int,
                max_subset_size: int) -> float:
    real = dataset_features(opts, "inception", max_real, capture_all=True).get_all().numpy()
    gen = generator_features(opts, "inception", num_gen, capture_all=True).get_all().numpy()
    return kernel_distance(real, gen, num_subsets, max_subset_size, opts.rng(stream=2))
