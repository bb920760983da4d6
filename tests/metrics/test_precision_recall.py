"""Precision and recall: the k-NN manifold definition."""

from __future__ import annotations

import pytest
import torch

from stylefuse.metrics.precision_recall import precision_recall


def test_precision_recall_definition() -> None:
    feats = torch.randn(50, 4)
    assert precision_recall(feats, feats.clone(), 3, 16, 7) == (1.0, 1.0)
    assert precision_recall(feats, feats + 100, 3, 16, 7) == (0.0, 0.0)
    # 1-D: real radii (k=1) are all 1; generated 0.5 and 4.9 fall inside, 10 does not. The generated radii
    # (4.4, 4.4, 5.1) cover every real point.
    real = torch.tensor([[0.0], [1], [2], [3], [4]])
    gen = torch.tensor([[0.5], [4.9], [10.0]])
    precision, recall = precision_recall(real, gen, nhood_size=1, row_batch_size=2, col_batch_size=2)
    assert precision == pytest.approx(2 / 3) and recall == 1.0
