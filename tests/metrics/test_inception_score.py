"""Inception score: the definition, and the metric of a constant classifier."""

from __future__ import annotations

import numpy as np
import pytest

from stylefuse.metrics import calc_metric
from stylefuse.metrics.inception_score import inception_score
from tests.metrics.stand_ins import ConstantProbs, MemoryDataset, make_opts, random_images


def test_inception_score_definition() -> None:
    mean, std = inception_score(np.tile([0.5, 0.3, 0.2], [100, 1]), num_splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    # Confident predictions, classes balanced in every split: IS = exp(KL(p || uniform)).
    k, eps = 4, 0.02
    probs = np.full([80, k], eps / (k - 1))
    probs[np.arange(80), np.arange(80) % k] = 1 - eps
    expected = np.exp(np.sum(probs[0] * np.log(probs[0] * k)))
    mean, std = inception_score(probs, num_splits=10)
    assert mean == pytest.approx(expected, rel=1e-10) and std == pytest.approx(0.0, abs=1e-9)
    assert 3 < mean < 4


def test_inception_score_of_constant_classifier_is_one() -> None:
    opts = make_opts(MemoryDataset(random_images(10)), detectors={"inception_probs": ConstantProbs()}, num_gen=40)
    result = calc_metric("is50k", opts)
    assert result["results"]["is40_mean"] == pytest.approx(1.0, abs=1e-6)
    assert result["results"]["is40_std"] == pytest.approx(0.0, abs=1e-6)
