"""Inception Score (Salimans et al. 2016), computed as the official StyleGAN2-ADA code does."""

from __future__ import annotations

import numpy as np

from stylefuse.metrics.collect import generator_features
from stylefuse.metrics.options import MetricOptions


def inception_score(probs: np.ndarray, num_splits: int) -> tuple[float, float]:
    """probs [N, classes] -> mean and std over `num_splits` splits of exp(E_x KL(p(y|x) || p(y)))."""
    num = probs.shape[0]
    scores = []
    for i in range(num_splits):
        part = probs[i * num // num_splits:(i + 1) * num // num_splits]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts: MetricOptions, num_gen: int, num_splits: int) -> tuple[float, float]:
    probs = generator_features(opts, "inception_probs", num_gen, capture_all=True).get_all().numpy()
    return inception_score(probs, num_splits)
