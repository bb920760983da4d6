"""Frechet Inception Distance (Heusel et al. 2017), computed as the official StyleGAN2-ADA code does."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from stylefuse.metrics.collect import dataset_features, generator_features
from stylefuse.metrics.options import MetricOptions


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)), real part (float64 throughout)."""
    m = np.square(mu1 - mu2).sum()
    s, _ = scipy.linalg.sqrtm(np.dot(sigma1, sigma2), disp=False)
    return float(np.real(m + np.trace(sigma1 + sigma2 - s * 2)))


def compute_fid(opts: MetricOptions, max_real: int | None, num_gen: int, detector: str = "inception") -> float:
    """FID of the generated images against the real ones in the features of `detector` (Inception, or the toy probe
    for `fid_toy`)."""
    mu_real, sigma_real = dataset_features(opts, detector, max_real, capture_mean_cov=True).get_mean_cov()
    mu_gen, sigma_gen = generator_features(opts, detector, num_gen, capture_mean_cov=True).get_mean_cov()
    return frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real)
