"""The standalone metrics job (python -m stylefuse.metrics): the network's training set or a dataset config, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from stylefuse.errors import ConfigError
from stylefuse.metrics import features as metric_features
from stylefuse.metrics.job import run
from tests.helpers import compose_cfg, save_tiny_snapshot, tiny_network
from tests.metrics.stand_ins import RandomFeatures


@pytest.fixture
def stand_in_detectors(monkeypatch, lpips_vgg) -> None:
    """Registers the small detectors under the standard names, as the job builds its own `Detectors`."""
    monkeypatch.setitem(metric_features.DETECTOR_FACTORIES, "inception", RandomFeatures)
    monkeypatch.setitem(metric_features.DETECTOR_FACTORIES, "lpips_vgg", lambda: lpips_vgg)


QUICK = ["num_gen=16", "batch_size=16", "device=cpu", "verbose=false", "num_workers=0"]


def test_job_uses_the_networks_training_set_and_writes_jsonl_beside_it(tiny_G, tmp_path, capsys,
                                                                       stand_in_detectors) -> None:
    toy = dict(class_name="stylefuse.data.toy.ToyDataset", resolution=32, num_images=12, seed=0, use_labels=False,
               xflip=True, max_size=None, random_seed=0)
    network = tmp_path / "run" / "network-snapshot-000001.pt"
    save_tiny_snapshot(network, tiny_G(seed=0).eval(), kimg=1.0, training_set_kwargs=toy)
    cfg = compose_cfg("metrics", [f"network={network}", "metrics=[fid50k_full,ppl2_wend]",
                                  f"cache_dir={tmp_path}/cache", *QUICK])
    results = run(cfg)

    assert [r["metric"] for r in results] == ["fid16_full", "ppl2_wend"]
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for name, line in zip(["fid16_full", "ppl2_wend"], printed, strict=True):
        assert line["snapshot_pkl"] == network.name and line["metric"] == name
        assert json.loads((network.parent / f"metric-{name}.jsonl").read_text()) == line
    assert printed[0]["results"]["fid16_full"] > 0 and printed[1]["results"]["ppl2_wend"] > 0
    (stats,) = os.listdir(tmp_path / "cache" / "gan-metrics")
    assert stats.startswith("toy-random-")
    assert torch.load(tmp_path / "cache" / "gan-metrics" / stats, weights_only=True)["num_items"] == 12  # unmirrored


def test_job_reads_the_dataset_config_when_given(tmp_path, capsys, stand_in_detectors) -> None:
    network = tmp_path / "net.pt"
    tiny_network(network)  # no training_set_kwargs in the file
    cfg = compose_cfg("metrics", [f"network={network}", "dataset=toy", "dataset.num_images=10",
                                  f"cache_dir={tmp_path}/c", *QUICK])
    (result,) = run(cfg)
    assert result["metric"] == "fid16_full" and np.isfinite(result["results"]["fid16_full"])
    (stats,) = os.listdir(tmp_path / "c" / "gan-metrics")
    assert torch.load(tmp_path / "c" / "gan-metrics" / stats, weights_only=True)["num_items"] == 10

    cfg = compose_cfg("metrics", [f"network={network}", *QUICK])  # dataset=folder without a path, nothing in the file
    with pytest.raises(ConfigError, match="does not say which data it was trained on; pass dataset=<option>"):
        run(cfg)


@pytest.mark.slow
def test_job_command_line_reports_errors_in_one_line(tmp_path) -> None:
    cmd = [sys.executable, "-m", "stylefuse.metrics", f"network={tmp_path}/missing.pkl", "metrics=[fid50k_full]",
           f"hydra.run.dir={tmp_path}/out"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: network file not found") and result.stderr.count("\n") == 1
