"""Improved precision and recall (Kynkaanniemi et al. 2019), computed as the official StyleGAN2-ADA code does."""

from __future__ import annotations

import torch

from stylefuse.metrics.collect import dataset_features, generator_features
from stylefuse.metrics.options import MetricOptions


def pairwise_distances(rows: torch.Tensor, cols: torch.Tensor, col_batch_size: int) -> torch.Tensor:
    """Euclidean distances [R, C] of float16 features, computed in column batches.

    CUDA computes in float16 like the official code; CPU has no float16 `cdist`, so it computes in float32 and
    rounds the result to float16.
    """
    dists = []
    for col_batch in cols.split(col_batch_size):
        if rows.device.type == "cpu":
            dists.append(torch.cdist(rows.float(), col_batch.float()).half())
        else:
            dists.append(torch.cdist(rows.unsqueeze(0), col_batch.unsqueeze(0))[0])
    return torch.cat(dists, dim=1)


def manifold_coverage(manifold: torch.Tensor, probes: torch.Tensor, nhood_size: int, row_batch_size: int,
                      col_batch_size: int) -> float:
    """Fraction of `probes` [P, D] inside the k-NN balls of `manifold` [M, D] (k = `nhood_size`), both float16.

    A ball's radius is the distance from a manifold point to its k-th nearest other manifold point.
    """
    radii = []
    for batch in manifold.split(row_batch_size):
        dist = pairwise_distances(batch, manifold, col_batch_size)
        # The k+1-th smallest distance skips the point itself (distance 0).
        radii.append(dist.float().kthvalue(nhood_size + 1, dim=1).values.half())
    radii = torch.cat(radii)  # [M]
    inside = []
    for batch in probes.split(row_batch_size):
        inside.append((pairwise_distances(batch, manifold, col_batch_size) <= radii).any(dim=1))
    return float(torch.cat(inside).float().mean())


def precision_recall(real: torch.Tensor, gen: torch.Tensor, nhood_size: int, row_batch_size: int,
                     col_batch_size: int) -> tuple[float, float]:
    """Precision: generated samples on the real manifold; recall: real samples on the generated manifold."""
    real, gen = real.half(), gen.half()
    precision = manifold_coverage(real, gen, nhood_size, row_batch_size, col_batch_size)
    recall = manifold_coverage(gen, real, nhood_size, row_batch_size, col_batch_size)
    return precision, recall


def compute_pr(opts: MetricOptions, max_real: int | None, num_gen: int, nhood_size: int, row_batch_size: int,
               col_batch_size: int) -> tuple[float, float]:
    real = dataset_features(opts, "vgg16", max_real, capture_all=True).get_all().to(opts.device)
    gen = generator_features(opts, "vgg16", num_gen, capture_all=True).get_all().to(opts.device)
    return precision_recall(real, gen, nhood_size, row_batch_size, col_batch_size)
