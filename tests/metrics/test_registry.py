"""The metric registry: reported names, seeded results named by the image count, the jsonl report."""

from __future__ import annotations

import json

import numpy as np
import torch

from stylefuse.metrics import calc_metric, report_metric, reported_name
from tests.metrics.stand_ins import MemoryDataset, make_opts, random_images


def test_reported_name() -> None:
    assert reported_name("fid50k_full", None) == "fid50k_full"
    assert reported_name("fid50k_full", 1000) == "fid1k_full"
    assert reported_name("pr50k3_full", 2000) == "pr2k3_full"
    assert reported_name("pr50k3_full", 500) == "pr500_3_full"
    assert reported_name("is50k", 64) == "is64"
    assert reported_name("ppl2_wend", 100) == "ppl2_wend"


def test_generated_metrics_are_seeded_and_named_by_count(tmp_path) -> None:
    dataset = MemoryDataset(random_images(40), name="mem")
    opts = make_opts(dataset, num_gen=48)
    first = calc_metric("fid50k_full", opts)
    assert first["metric"] == "fid48_full" and set(first["results"]) == {"fid48_full"}
    assert first["num_gpus"] == 1 and first["total_time"] > 0
    assert np.isfinite(first["results"]["fid48_full"]) and first["results"]["fid48_full"] > 0
    assert calc_metric("fid50k_full", opts)["results"] == first["results"]
    torch.manual_seed(5)
    with torch.no_grad():  # per-pixel noise now matters: it must come from the seeded stream too
        for name, param in opts.G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
    noisy = calc_metric("fid50k_full", opts)["results"]
    after = torch.randn(3)
    torch.manual_seed(5)
    torch.testing.assert_close(after, torch.randn(3))  # the caller's random stream is left where it was
    assert calc_metric("fid50k_full", opts)["results"] == noisy != first["results"]
    assert calc_metric("fid50k_full", make_opts(dataset, num_gen=48, seed=1))["results"] != first["results"]
    pr = calc_metric("pr50k3_full", opts)["results"]
    assert set(pr) == {"pr48_3_full_precision", "pr48_3_full_recall"} and all(0 <= v <= 1 for v in pr.values())
    kid = calc_metric("kid50k_full", opts)["results"]["kid48_full"]
    assert np.isfinite(kid)
    line = json.loads(report_metric(first, str(tmp_path), kimg=1.5))
    assert line["results"] == first["results"] and line["kimg"] == 1.5 and line["metric"] == "fid48_full"
    assert json.loads((tmp_path / "metric-fid48_full.jsonl").read_text()) == line
