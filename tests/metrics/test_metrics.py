"""Metrics: official formulas, detector plumbing, real-statistics cache, training callback, standalone job.

Small random feature extractors stand in for Inception/VGG16 and LPIPS uses a random VGG backbone, so nothing is
downloaded; the real detector classes are checked on weights written into a temporary torch hub cache.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import urllib.error
import urllib.request
from unittest import mock

import numpy as np
import pytest
import pytorch_lightning as pl
import scipy.linalg
import torch

from stylefuse.errors import ConfigError, NetworkFileError
from stylefuse.metrics import (
    Detectors,
    LpipsVGG,
    MetricOptions,
    MetricsCallback,
    calc_metric,
    report_metric,
    reported_name,
)
from stylefuse.metrics import features as metric_features
from stylefuse.metrics.collect import dataset_features, generator_features
from stylefuse.metrics.fid import frechet_distance
from stylefuse.metrics.inception_score import inception_score
from stylefuse.metrics.job import run
from stylefuse.metrics.kid import kernel_distance
from stylefuse.metrics.ppl import PathLengthSampler, filtered_mean, slerp
from stylefuse.metrics.precision_recall import precision_recall
from stylefuse.metrics.stats import FeatureStats
from stylefuse.nn import Discriminator, Generator
from tests.helpers import compose_cfg, tiny_network


class MemoryDataset(torch.utils.data.Dataset):
    """In-memory stand-in for the stylefuse datasets; counts image reads."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, name: str = "mem") -> None:
        self.images = images  # uint8 [N, C, H, W]
        self.labels = np.zeros([len(images), 0], np.float32) if labels is None else labels
        self.name = name
        self.training_set_kwargs = dict(class_name="tests.MemoryDataset", name=name, max_size=None, xflip=False,
                                        resolution=images.shape[2], use_labels=labels is not None)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        self.reads += 1
        return self.images[idx], self.labels[idx]

    def get_label(self, idx: int) -> np.ndarray:
        return self.labels[idx]


class RandomFeatures(torch.nn.Module):
    """Tiny random 'Inception': uint8 [N, 3, H, W] -> [N, dim]."""

    def __init__(self, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.name = "random"
        self.conv = torch.nn.Conv2d(3, 16, 3, stride=2)
        self.fc = torch.nn.Linear(16, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.shape[1] == 3
        x = torch.relu(self.conv(images.float() / 127.5 - 1))
        return self.fc(x.mean([2, 3]))


class ConstantProbs(torch.nn.Module):
    """A classifier that predicts the same distribution for every image."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.5, 0.3, 0.2]).expand(images.shape[0], 3)


def tiny_generator(c_dim: int = 0, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=32, img_channels=3,
                     mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=512, channel_max=32)).eval()


def random_images(n: int, seed: int = 0, lo: int = 0, hi: int = 200) -> np.ndarray:
    return np.random.RandomState(seed).randint(lo, hi, size=[n, 3, 32, 32]).astype(np.uint8)


@pytest.fixture(scope="module")
def lpips_vgg() -> LpipsVGG:
    # Any download attempt fails the test: pnet_rand must keep lpips offline.
    refuse = mock.Mock(side_effect=AssertionError("tried to download"))
    with mock.patch("torch.hub.load_state_dict_from_url", refuse), mock.patch.object(urllib.request, "urlopen",
                                                                                      refuse):
        net = LpipsVGG(pnet_rand=True)
    refuse.assert_not_called()
    return net


def make_opts(dataset: MemoryDataset, G: torch.nn.Module | None = None, **kwargs) -> MetricOptions:
    detectors = kwargs.pop("detectors", {"inception": RandomFeatures(), "vgg16": RandomFeatures(dim=6, seed=1)})
    kwargs = dict(dict(batch_size=16, batch_gen=4, verbose=False), **kwargs)
    return MetricOptions(G=G if G is not None else tiny_generator(), dataset_kwargs=dict(dataset.training_set_kwargs),
                         dataset=dataset, detectors=Detectors(detectors), **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Formulas.

def test_feature_stats_mean_cov_match_numpy_and_cap_items() -> None:
    x = np.random.RandomState(0).randn(300, 5).astype(np.float32) * 3 + 1
    stats = FeatureStats(capture_all=True, capture_mean_cov=True, max_items=250)
    for batch in np.array_split(x, 7):
        stats.append(torch.from_numpy(batch))
    assert stats.num_items == 250 and stats.is_full()
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, x[:250].astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x[:250].astype(np.float64), rowvar=False, bias=True), rtol=1e-10)
    np.testing.assert_array_equal(stats.get_all().numpy(), x[:250])


def test_frechet_distance_matches_direct_scipy_and_torchmetrics() -> None:
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.RandomState(1)
    a = rng.randn(500, 6) @ rng.randn(6, 6)
    b = rng.randn(400, 6) @ rng.randn(6, 6) + 0.5
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    fid = frechet_distance(mu_a, cov_a, mu_b, cov_b)
    direct = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
    eig = _compute_fid(*(torch.from_numpy(v) for v in (mu_a, cov_a, mu_b, cov_b))).item()
    assert fid > 1
    assert fid == pytest.approx(direct, rel=1e-10)
    assert fid == pytest.approx(eig, rel=1e-8)


def test_kernel_distance_matches_direct_unbiased_mmd() -> None:
    rng = np.random.RandomState(2)
    real = rng.randn(40, 5).astype(np.float32)
    gen = (rng.randn(40, 5) * 1.5 + 0.3).astype(np.float32)
    # One subset of all rows: the subset choice only permutes rows, so the estimate is the plain unbiased MMD^2.
    kid = kernel_distance(real, gen, num_subsets=1, max_subset_size=1000, rng=np.random.RandomState(0))
    x, y, n, m = gen.astype(np.float64), real.astype(np.float64), 5, 40
    kxx, kyy, kxy = (x @ x.T / n + 1) ** 3, (y @ y.T / n + 1) ** 3, (x @ y.T / n + 1) ** 3
    off = ~np.eye(m, dtype=bool)
    direct = kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean()
    assert direct > 0.1
    assert kid == pytest.approx(direct, rel=1e-5)


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


def test_ppl_helpers() -> None:
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    for t in (0.0, 0.3, 1.0):
        s = slerp(a, b, torch.full([3, 1], t))
        torch.testing.assert_close(s.norm(dim=1), torch.ones(3))
        expected_angle = t * torch.acos(torch.nn.functional.cosine_similarity(a, b))
        torch.testing.assert_close(torch.acos(torch.nn.functional.cosine_similarity(a, s).clamp(-1, 1)),
                                   expected_angle, atol=1e-3, rtol=1e-3)
    # 1000 values 0..999: 1st percentile ('lower') = 9, 99th ('higher') = 990 -> mean of 9..990.
    dist = np.random.RandomState(0).permutation(1000).astype(np.float64)
    assert filtered_mean(dist) == pytest.approx(499.5, abs=1e-12)


def test_reported_name() -> None:
    assert reported_name("fid50k_full", None) == "fid50k_full"
    assert reported_name("fid50k_full", 1000) == "fid1k_full"
    assert reported_name("pr50k3_full", 2000) == "pr2k3_full"
    assert reported_name("pr50k3_full", 500) == "pr500_3_full"
    assert reported_name("is50k", 64) == "is64"
    assert reported_name("ppl2_wend", 100) == "ppl2_wend"


# ---------------------------------------------------------------------------------------------------------------------
# Metrics on images: real data through the detectors, generated data from a tiny G.

def shifted_stats(images: np.ndarray, shifts: list[int], **capture) -> list[FeatureStats]:
    """Detector statistics of `images + shift` for each shift, through the real-data path."""
    detector = RandomFeatures()
    out = []
    for shift in shifts:
        dataset = MemoryDataset((images.astype(np.int64) + shift).astype(np.uint8), name=f"shift{shift}")
        out.append(dataset_features(make_opts(dataset, detectors={"inception": detector}), "inception", None,
                                    **capture))
    return out


def test_fid_zero_on_same_set_and_growing_with_shift() -> None:
    base, *shifted = shifted_stats(random_images(200), [0, 0, 8, 16, 32], capture_mean_cov=True)
    fids = [frechet_distance(*s.get_mean_cov(), *base.get_mean_cov()) for s in shifted]
    assert abs(fids[0]) < 1e-8
    assert 0 < fids[1] < fids[2] < fids[3]


def test_kid_and_pr_on_same_and_shifted_sets() -> None:
    base, *shifted = shifted_stats(random_images(200), [0, 0, 16, 32, 100], capture_all=True)
    rng = np.random.RandomState(0)
    kids = [kernel_distance(base.get_all().numpy(), s.get_all().numpy(), 20, 100, rng) for s in shifted]
    assert abs(kids[0]) < 0.1 * kids[1]
    assert 0 < kids[1] < kids[2] < kids[3]
    assert precision_recall(base.get_all(), shifted[0].get_all(), 3, 64, 64) == (1.0, 1.0)
    assert precision_recall(base.get_all(), shifted[3].get_all(), 3, 64, 64) == (0.0, 0.0)


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


def test_generated_images_use_dataset_labels_and_official_uint8() -> None:
    labels = np.eye(3, dtype=np.float32)[np.arange(30) % 3]
    dataset = MemoryDataset(random_images(30), labels=labels)
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            seen.append(images)
            return images.float().mean([2, 3])

    G = tiny_generator(c_dim=3)
    calls = []
    G.register_forward_hook(lambda module, args, out: calls.append((args, out)))
    opts = make_opts(dataset, G=G, detectors={"inception": Recorder()}, num_gen=20)
    generator_features(opts, "inception", 20, capture_all=True)
    assert all(x.dtype == torch.uint8 and x.shape == (16, 3, 32, 32) for x in seen) and len(seen) == 2
    assert len(calls) == 8  # batch_size 16 / batch_gen 4, two batches
    (z, c), out = calls[0]
    assert z.shape == (4, 32) and c.shape == (4, 3) and set(c.sum(1).tolist()) == {1.0}
    torch.testing.assert_close(seen[0][:4], (out * 127.5 + 128).clamp(0, 255).to(torch.uint8))


def test_inception_score_of_constant_classifier_is_one() -> None:
    opts = make_opts(MemoryDataset(random_images(10)), detectors={"inception_probs": ConstantProbs()}, num_gen=40)
    result = calc_metric("is50k", opts)
    assert result["results"]["is40_mean"] == pytest.approx(1.0, abs=1e-6)
    assert result["results"]["is40_std"] == pytest.approx(0.0, abs=1e-6)


def test_ppl_zero_for_latent_free_generator_and_growing_with_sensitivity(lpips_vgg) -> None:
    dataset = MemoryDataset(random_images(4))
    def ppl(metric: str, scale: float) -> float:
        G = tiny_generator()
        with torch.no_grad():
            G.mapping.fc1.weight.mul_(scale)  # scale 0: w is the bias alone, whatever z is
        opts = make_opts(dataset, G=G, detectors={"lpips_vgg": lpips_vgg}, num_gen=8)
        return calc_metric(metric, opts)["results"][metric]

    assert ppl("ppl_zfull", 0.0) == ppl("ppl2_wend", 0.0) == 0.0  # Z + full paths + crop; W + ends + whole image
    assert 0 < ppl("ppl_zfull", 0.3) < ppl("ppl_zfull", 1.0)


def test_ppl_crops_box_downsamples_and_repeats_grayscale_like_the_official() -> None:
    class RampGenerator(torch.nn.Module):
        """512x512 grayscale: a fixed ramp image times the first latent coordinate."""

        z_dim, c_dim, w_dim, img_channels, img_resolution = 4, 0, 4, 1, 512

        def mapping(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return z[:, None, :].repeat(1, 2, 1)  # [N, num_ws=2, w_dim]

        def synthesis(self, ws: torch.Tensor, noise_mode: str, force_fp32: bool) -> torch.Tensor:
            ramp = torch.linspace(-1, 1, 512 * 512).reshape(1, 1, 512, 512)
            return ws[:, 0, 0, None, None, None].tanh() * ramp

    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
            seen.append(img0)
            return (img0 - img1).square().mean([1, 2, 3])

    sampler = PathLengthSampler(RampGenerator(), Recorder(), 1e-4, space="w", sampling="end", crop=True)
    torch.manual_seed(0)
    sampler(torch.zeros([2, 0]))
    torch.manual_seed(0)
    torch.rand([2])
    z0 = torch.randn([4, 4])[:2]
    ramp = torch.linspace(-1, 1, 512 * 512).reshape(512, 512)[192:448, 128:384]  # rows 3/8..7/8, cols 2/8..6/8
    expected = (z0[:, 0, None, None].tanh() * ramp.reshape(128, 2, 128, 2).mean([1, 3]) + 1) * 127.5
    assert seen[0].shape == (2, 3, 128, 128)  # crop 256x256, box-downsampled by 512 // 256, gray -> RGB
    torch.testing.assert_close(seen[0], expected[:, None].expand(2, 3, 128, 128))


def test_ppl_leaves_the_generator_untouched(lpips_vgg) -> None:
    G = tiny_generator()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    opts = make_opts(MemoryDataset(random_images(4)), G=G, detectors={"lpips_vgg": lpips_vgg}, num_gen=4)
    calc_metric("ppl_zend", opts)
    for key, value in G.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------------
# Real-statistics cache.

def test_real_statistics_are_cached_per_options(tmp_path) -> None:
    dataset = MemoryDataset(random_images(40), name="cats")
    opts = make_opts(dataset, num_gen=16, cache_dir=str(tmp_path))
    first = calc_metric("fid50k_full", opts)
    assert dataset.reads == 40
    files = sorted(os.listdir(tmp_path / "gan-metrics"))
    assert len(files) == 1 and files[0].startswith("cats-random-") and files[0].endswith(".pt")
    state = torch.load(tmp_path / "gan-metrics" / files[0], weights_only=True)
    assert state["num_items"] == 40 and state["raw_cov"].dtype == torch.float64

    second = calc_metric("fid50k_full", opts)
    assert dataset.reads == 40  # statistics came from the file
    assert second["results"] == first["results"]

    calc_metric("fid50k_full", make_opts(dataset, num_gen=16, cache_dir=str(tmp_path), max_real=30))
    assert dataset.reads == 70 and len(os.listdir(tmp_path / "gan-metrics")) == 2


# ---------------------------------------------------------------------------------------------------------------------
# Several ranks.

def _sharded_worker(rank: int, tmp: str) -> None:
    torch.set_num_threads(1)  # forked like DataLoader workers, and like them single-threaded
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=2)
    try:
        opts = make_opts(MemoryDataset(random_images(37)), num_gpus=2, rank=rank, batch_size=8,
                         cache_dir=f"{tmp}/cache", num_gen=20)
        real = dataset_features(opts, "inception", None, capture_all=True, capture_mean_cov=True)
        gen = generator_features(opts, "inception", 20, capture_all=True)
        fid = calc_metric("fid50k_full", opts)["results"]["fid20_full"]
        fid_cached = calc_metric("fid50k_full", opts)["results"]["fid20_full"]
        torch.save(dict(real=real.get_all(), mean_cov=real.get_mean_cov(), gen=gen.get_all(), fid=fid,
                        fid_cached=fid_cached), f"{tmp}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_sharded_features_match_one_process(tmp_path) -> None:
    # fork: the ranks start at once instead of importing torch and Lightning again (spawn takes 10+ s here).
    torch.multiprocessing.start_processes(_sharded_worker, args=(str(tmp_path),), nprocs=2, start_method="fork")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    single = dataset_features(make_opts(MemoryDataset(random_images(37)), batch_size=8), "inception", None,
                              capture_all=True, capture_mean_cov=True)
    for out in ranks:
        torch.testing.assert_close(out["real"], single.get_all())  # same rows in the same order
        np.testing.assert_allclose(out["mean_cov"][0], single.get_mean_cov()[0], rtol=1e-12)
        np.testing.assert_allclose(out["mean_cov"][1], single.get_mean_cov()[1], rtol=1e-9, atol=1e-12)
        assert out["gen"].shape == (20, 8) and out["fid"] == out["fid_cached"] == ranks[0]["fid"]
    torch.testing.assert_close(ranks[0]["gen"], ranks[1]["gen"])
    # Ranks draw different latents: the gathered rows interleave two different streams.
    assert not torch.equal(ranks[0]["gen"][0::2], ranks[0]["gen"][1::2])
    assert len(os.listdir(tmp_path / "cache" / "gan-metrics")) == 2  # all rows + mean/cov, and FID's mean/cov


# ---------------------------------------------------------------------------------------------------------------------
# The real detectors' loading code, on random weights placed in a temporary torch hub cache.

def test_inception_detector_loads_weights_from_the_hub_cache(tmp_path, monkeypatch) -> None:
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    with mock.patch.object(fidelity, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(fidelity.FeatureExtractorInceptionV3, "load_state_dict"):
        weights = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict()
    name = os.path.basename(fidelity.URL_INCEPTION_V3)
    os.makedirs(tmp_path / "hub" / "checkpoints")
    torch.save(weights, tmp_path / "hub" / "checkpoints" / name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", mock.Mock(side_effect=AssertionError("tried to download")))

    detectors = Detectors()
    features = detectors.get("inception", torch.device("cpu"))
    probs = detectors.get("inception_probs", torch.device("cpu"))
    assert detectors.get("inception", torch.device("cpu")) is features  # built once
    images = torch.from_numpy(random_images(1, hi=256))
    f, p = features(images), probs(images)
    assert f.shape == (1, 2048) and f.dtype == torch.float32 and (f >= 0).all()  # pool features after ReLU
    assert p.shape == (1, 1008)
    torch.testing.assert_close(p.sum(1), torch.ones(1))
    # IS probabilities: softmax of the 1008 logits without the output bias, as the official detector.
    torch.testing.assert_close(p, (f @ weights["fc.weight"].T).softmax(dim=1))
    with pytest.raises(Exception, match="uint8"):
        features(images.float())


def test_missing_detector_weights_are_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline():
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    with pytest.raises(NetworkFileError, match=r"cannot load the weights of the vgg16 metric detector \(<urlopen "
                                               r"error \[Errno -2\] Name or service not known>\); they are downloaded "
                                               r"once into .*/hub/checkpoints") as err:
        Detectors(factories={"vgg16": offline}).get("vgg16", torch.device("cpu"))
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------------------------
# Errors.

def test_callback_pickles_for_ddp_spawn() -> None:
    callback = pickle.loads(pickle.dumps(MetricsCallback(metrics=["fid50k_full", "is50k"], every_kimg=4)))
    assert callback.metrics == ["fid50k_full", "is50k"] and callback.every_kimg == 4


def test_unknown_metric_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown metric fid10k_ful; choose from fid50k_full") as err:
        MetricsCallback(metrics=["fid10k_ful"], every_kimg=1)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------------------------
# Real-set options: *_full metrics rebuild a mirrored training set without mirroring.

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


# ---------------------------------------------------------------------------------------------------------------------
# Training callback.

class KimgModule(pl.LightningModule):
    """The parts of the training module the callback reads: `G_ema` and `kimg`."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.G_ema = tiny_generator().requires_grad_(False)
        self.cur_nimg = 0

    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000

    def training_step(self, batch, batch_idx: int) -> None:
        self.cur_nimg += batch[0].shape[0]

    def configure_optimizers(self) -> None:
        return None


class MemoryDataModule(pl.LightningDataModule):
    def __init__(self, dataset: MemoryDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.dataset, batch_size=4)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on this minimal module
def test_callback_evaluates_at_kimg_multiples_and_writes_jsonl(tmp_path) -> None:
    num_batches, expected_kimg = 6, [0.004, 0.012, 0.02, 0.024]  # first batch, each 0.01 crossed, end of training
    dataset = MemoryDataset(random_images(24))
    callback = MetricsCallback(metrics=["fid50k_full"], every_kimg=0.01, num_gen=16, cache_dir=str(tmp_path / "cache"),
                               batch_size=16, verbose=False, detectors={"inception": RandomFeatures()})
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=num_batches, callbacks=[callback],
                         logger=pl.loggers.CSVLogger(tmp_path, name="log"), default_root_dir=tmp_path / "run",
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(KimgModule(), datamodule=MemoryDataModule(dataset))

    lines = [json.loads(line) for line in (tmp_path / "run" / "metric-fid16_full.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == pytest.approx(expected_kimg)
    assert all(line["metric"] == "fid16_full" and line["num_gpus"] == 1 for line in lines)
    fids = [line["results"]["fid16_full"] for line in lines]
    assert all(np.isfinite(fids)) and len(set(fids)) == 1  # G_ema is fixed and the seed too
    assert dataset.reads == num_batches * 4 + 24  # training reads + real statistics once (then the cache)
    assert trainer.callback_metrics["metrics/fid16_full"].item() == pytest.approx(fids[-1])
    csv = (tmp_path / "log" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "metrics/fid16_full" in csv[0] and "progress/kimg" in csv[0] and len(csv) == 1 + len(expected_kimg)
    # Already evaluated at this kimg (as when the last batch lands on a multiple): the end adds nothing.
    callback.on_train_end(trainer, trainer.lightning_module)
    assert len((tmp_path / "run" / "metric-fid16_full.jsonl").read_text().splitlines()) == len(expected_kimg)


# ---------------------------------------------------------------------------------------------------------------------
# Standalone job: python -m stylefuse.metrics.

def write_snapshot(path, training_set_kwargs: dict | None) -> Generator:
    from stylefuse.networks import save_network_snapshot

    G = tiny_generator()
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=512, channel_max=32)
    save_network_snapshot(path, G, D, G, augment_p=None, training_set_kwargs=training_set_kwargs, kimg=1.0)
    return G


@pytest.fixture
def stand_in_detectors(monkeypatch, lpips_vgg) -> None:
    """Registers the small detectors under the standard names, as the job builds its own `Detectors`."""
    monkeypatch.setitem(metric_features.DETECTOR_FACTORIES, "inception", RandomFeatures)
    monkeypatch.setitem(metric_features.DETECTOR_FACTORIES, "lpips_vgg", lambda: lpips_vgg)


QUICK = ["num_gen=16", "batch_size=16", "device=cpu", "verbose=false", "num_workers=0"]


def test_job_uses_the_networks_training_set_and_writes_jsonl_beside_it(tmp_path, capsys, stand_in_detectors) -> None:
    toy = dict(class_name="stylefuse.data.toy.ToyDataset", resolution=32, num_images=12, seed=0, use_labels=False,
               xflip=True, max_size=None, random_seed=0)
    network = tmp_path / "run" / "network-snapshot-000001.pt"
    write_snapshot(network, toy)
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
