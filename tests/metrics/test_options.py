"""Metric options: *_full metrics rebuild a mirrored training set without mirroring."""

from __future__ import annotations

import os

import pytest
import torch

from stylefuse.errors import ConfigError
from stylefuse.metrics import calc_metric
from tests.metrics.stand_ins import MemoryDataset, make_opts, random_images


def test_full_metrics_use_the_unmirrored_dataset(tmp_path) -> None:
    from stylefuse.data.toy import ToyDataset

    mirrored = ToyDataset(resolution=32, num_images=6, xflip=True)
    opts = make_opts(mirrored, num_gen=16, cache_dir=str(tmp_path))
    calc_metric("fid50k_full", opts)  # full dataset, xflip=False: 6 images
    calc_metric("fid50k", opts)       # legacy: as trained, mirrored: 12 images
    counts = sorted(torch.load(tmp_path / "gan-metrics" / f, weights_only=True)["num_items"]
                    for f in os.listdir(tmp_path / "gan-metrics"))
    assert counts == [6, 12]
    with pytest.raises(ConfigError, match="unknown dataset class 'tests.MemoryDataset'"):
        calc_metric("fid50k_full", make_opts(MemoryDataset(random_images(4)), num_gen=4).with_dataset(resolution=64))
