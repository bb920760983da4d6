"""Training the toy probe (`python -m stylefuse.probe.train`): labelled renders, the loss, and a short run that
learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylefuse.data.toy import ATTRIBUTES, attribute_values, render, sample_codes
from stylefuse.errors import ConfigError
from stylefuse.probe import ToyProbe, load_probe
from stylefuse.probe.network import attribute_layout
from stylefuse.probe.train import probe_errors, probe_loss, render_labelled, train_probe
from tests.helpers import compose_cfg


def test_labelled_renders_match_the_codes():
    images, targets = render_labelled(seed=5, num=3, resolution=16, progress=False)
    for idx in range(3):
        coarse, fine = sample_codes(5, idx)
        np.testing.assert_array_equal(images[idx], render(coarse, fine, 16))
        values = attribute_values(coarse, fine)
        for attr, sl in attribute_layout():
            if attr.kind == "class":
                assert targets[idx, sl.start] == values[attr.name]
            elif attr.kind == "color":
                np.testing.assert_allclose(targets[idx, sl], values[attr.name], rtol=1e-6)
            else:
                lo, hi = attr.bounds
                assert targets[idx, sl.start] == pytest.approx((values[attr.name] - lo) / (hi - lo), rel=1e-6)


def test_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    _, targets = render_labelled(seed=5, num=4, resolution=8, progress=False)
    targets = torch.from_numpy(targets)
    perfect = targets.clone()
    for attr, sl in attribute_layout():
        if attr.kind == "class":
            perfect[:, sl] = torch.nn.functional.one_hot(targets[:, sl.start].long(), attr.size) * 100.0
    assert float(probe_loss(perfect, targets)) < 1e-6
    assert float(probe_loss(perfect + 0.1, targets)) > 0.1


def test_a_short_training_run_learns(tmp_path):
    probe, info = train_probe(num_train=1024, num_test=256, epochs=3, batch_size=64, lr=2e-3, progress=False)
    torch.manual_seed(0)
    untrained = ToyProbe().eval()
    images, targets = render_labelled(2, 256, 32, progress=False)
    before = probe_errors(untrained, images, targets)
    after = info["test_errors"]
    improved = [after[a.name] < before[a.name] if a.kind != "class" else after[a.name] > before[a.name]
                for a in ATTRIBUTES]
    assert sum(improved) >= len(ATTRIBUTES) - 2, (before, after)
    assert info["num_train"] == 1024 and info["cpu_seconds"] > 0
    with pytest.raises(ConfigError, match="held out"):
        train_probe(num_train=8, num_test=8, epochs=1, train_seed=4, test_seed=4, progress=False)


def test_job_writes_a_loadable_probe(tmp_path):
    from stylefuse.probe.train import run

    out = tmp_path / "probe.pt"
    cfg = compose_cfg("probe", [f"out={out}", "num_train=128", "num_test=64", "epochs=1",
                                f"paths.output_dir={tmp_path}"])
    run(cfg)
    assert load_probe(out).info["epochs"] == 1
