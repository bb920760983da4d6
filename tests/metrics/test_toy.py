"""The offline toy metrics (`fid_toy`, `coverage_toy`) in the space of the shipped toy probe: ~0 and full coverage
for rendered vs rendered faces, growing distance and shrinking coverage under a distribution shift, and usable from
the registry, the metrics job and training."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from stylefuse.data.toy import ToyDataset, render, sample_codes
from stylefuse.metrics import MetricOptions, calc_metric
from stylefuse.metrics.toy import attribute_coverage, histogram_intersection
from stylefuse.probe import load_probe

NUM = 1000


class RenderingGenerator(torch.nn.Module):
    """A 'generator' that draws toy faces (of another seed than the data), optionally changed by `edit`:
    G(z, c) -> float images in [-1, 1] whose official uint8 conversion is exactly the rendered image."""

    def __init__(self, seed: int = 7, edit=None) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, 0, 32, 3
        self.seed, self.edit, self.count = seed, edit, 0
        self.anchor = torch.nn.Parameter(torch.zeros([]))  # something to copy to the device

    def forward(self, z: torch.Tensor, c: torch.Tensor, **kwargs) -> torch.Tensor:
        images = []
        for _ in range(len(z)):
            coarse, fine = sample_codes(self.seed, self.count)
            if self.edit is not None:
                coarse, fine = self.edit(coarse, fine)
            images.append(render(coarse, fine, 32))
            self.count += 1
        return torch.from_numpy(np.stack(images)).float() / 127.5 - 1 + self.anchor


def toy_opts(G: torch.nn.Module, num_real: int = NUM) -> MetricOptions:
    dataset = ToyDataset(resolution=32, num_images=num_real)
    return MetricOptions(G=G, dataset_kwargs=dict(dataset.training_set_kwargs), dataset=dataset, num_gen=NUM,
                         batch_size=100, batch_gen=100, verbose=False)


def smaller_heads(coarse, fine):
    return dataclasses.replace(coarse, size=0.62 + 0.4 * (coarse.size - 0.62)), fine


def one_face(coarse, fine):
    return sample_codes(0, 0)


@pytest.fixture(scope="module")
def results():
    out = {}
    for name, edit in [("rendered", None), ("smaller", smaller_heads), ("one", one_face)]:
        opts = toy_opts(RenderingGenerator(edit=edit))
        out[name] = {metric: calc_metric(metric, opts)["results"] for metric in ("fid_toy", "coverage_toy")}
    return out


def test_fid_toy_is_near_zero_for_rendered_faces_and_grows_with_a_shift(results):
    rendered = results["rendered"]["fid_toy"]["fid_toy"]
    smaller = results["smaller"]["fid_toy"]["fid_toy"]
    one = results["one"]["fid_toy"]["fid_toy"]
    assert 0 <= rendered < 0.6  # only the sampling error of 1000 vs 1000 images (measured 0.25)
    assert smaller > 3 * rendered and smaller > 0.8  # head sizes squeezed into 40% of their range (measured 1.17)
    assert one > 10 * smaller  # a collapsed generator


def test_coverage_toy_is_full_for_rendered_faces_and_names_what_is_missing(results):
    rendered, smaller, one = (results[k]["coverage_toy"] for k in ("rendered", "smaller", "one"))
    assert rendered["coverage_toy"] > 0.93 and min(rendered.values()) > 0.85
    assert smaller["coverage_toy_size"] < 0.6  # the squeezed attribute is the one that loses coverage
    assert smaller["coverage_toy_hair"] > 0.85 and smaller["coverage_toy_fine"] > 0.9
    assert one["coverage_toy"] < 0.35


def test_histogram_intersection_and_class_coverage():
    rng = np.random.default_rng(0)
    real = rng.uniform(size=10000)
    assert histogram_intersection(real, rng.uniform(size=10000)) > 0.97
    assert histogram_intersection(real, rng.uniform(0, 0.5, size=10000)) == pytest.approx(0.5, abs=0.02)
    assert histogram_intersection(real, np.full(100, 0.3)) == pytest.approx(0.1, abs=0.01)
    probe = load_probe()
    images = torch.from_numpy(np.stack([render(*sample_codes(9, i), 32) for i in range(200)]))
    predicted = probe.predict(images)
    round_only = dict(predicted, shape=torch.eye(4)[[0] * 200])  # every head predicted round
    coverage = attribute_coverage(predicted, round_only)
    share_round = float((predicted["shape"].argmax(1) == 0).double().mean())
    assert coverage["shape"] == pytest.approx(share_round) and coverage["cx"] == pytest.approx(1.0)


def test_toy_metrics_from_the_metrics_job_on_the_shipped_network(tmp_path, capsys):
    from stylefuse.metrics.job import run
    from tests.helpers import compose_cfg

    cfg = compose_cfg("metrics", ["network=toy", "metrics=[fid_toy,coverage_toy]", "num_gen=500", "max_real=500",
                                  f"cache_dir={tmp_path}/cache", "device=cpu", "verbose=false", "num_workers=0",
                                  f"paths.output_dir={tmp_path}"])
    fid, coverage = run(cfg)
    assert fid["metric"] == "fid_toy" and 0 < fid["results"]["fid_toy"] < 50
    assert coverage["results"]["coverage_toy"] > 0.6
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["metric"] for line in lines] == ["fid_toy", "coverage_toy"]
    assert (tmp_path / "metric-fid_toy.jsonl").is_file()  # a packaged name: written into the run folder


def test_toy_metrics_during_training(tmp_path):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from stylefuse.training.run import train
    from tests.helpers import compose_cfg

    cfg = compose_cfg("train", [
        "experiment=debug", "logger=csv", "dataset.resolution=16", "dataset.num_images=64", "model.channel_base=256",
        "model.channel_max=16", "model.z_dim=16", "model.w_dim=16", "model.batch_size=8", "total_kimg=0.016",
        "kimg_per_tick=0.008", "snapshot_kimg=0.016", "metrics=[fid_toy,coverage_toy]", "metrics_kimg=0.016",
        "metrics_num_gen=64", f"paths.cache_dir={tmp_path / 'cache'}"], return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
        cfg.paths.output_dir = str(tmp_path / "run")
        del cfg.callbacks.progress
    train(cfg)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metric-fid_toy.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == pytest.approx([0.008, 0.016])
    assert all(line["results"]["fid_toy"] > 0 for line in lines)  # 16x16 images, area-resized by the probe
    coverage = json.loads((tmp_path / "run" / "metric-coverage_toy.jsonl").read_text().splitlines()[-1])
    assert 0 < coverage["results"]["coverage_toy"] <= 1
