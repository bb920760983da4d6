"""Projection: the official projector's formulas, quality in W and W+, batching, outputs, the project.py job."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import hydra
import lpips
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from stylefuse.bench.project import main as bench_project
from stylefuse.cli import CONF_DIR
from stylefuse.errors import StylefuseError
from stylefuse.latents import load_w
from stylefuse.networks import save_network_snapshot
from stylefuse.nn import Discriminator, Generator
from stylefuse.projection import LpipsDistance, Projector
from stylefuse.projection.io import list_targets, load_target
from stylefuse.projection.job import build_projector, project_image_file, project_targets, render
from stylefuse.projection.job import run as run_projection
from stylefuse.projection.projector import (
    compute_w_stats,
    latent_noise_scale,
    learning_rate,
    noise_regularization,
    normalize_noise_,
)
from stylefuse.utils.video import video_available

REPO = Path(__file__).resolve().parents[2]
TINY_G = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
              synthesis_kwargs=dict(channel_base=512, channel_max=32))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The tensors here are tiny: a second thread only adds synchronisation (and contention with parallel jobs).
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


def tiny_G(noise_strength: float = 0.0) -> Generator:
    torch.manual_seed(0)
    G = Generator(**TINY_G).eval()
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(noise_strength)  # 0 at init; non-zero makes the noise maps matter
    return G


def compose_project(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("project", overrides=["projector.lpips_model.pnet_rand=true", *overrides])


@pytest.fixture(scope="module")
def lpips_model() -> lpips.LPIPS:
    torch.manual_seed(1)
    with warnings.catch_warnings():  # lpips calls torchvision with its deprecated `pretrained` argument
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        return lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # uint8 [N, C, H, W] -> [N]
    mse = (a.double() - b.double()).square().mean(dim=[1, 2, 3])
    return 10 * torch.log10(255**2 / mse)


def save_png(path: Path, img: np.ndarray) -> Path:  # uint8 [C, H, W]
    PIL.Image.fromarray(img.transpose(1, 2, 0)).save(path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# The official formulas.

@pytest.mark.parametrize("step", [0, 1, 10, 25, 49, 50, 400, 750, 751, 875, 999])
def test_learning_rate_follows_official_schedule(step):
    t = step / 1000
    if t < 0.05:
        expected = 0.1 * t / 0.05                                         # linear warm-up over 5%
    elif t <= 0.75:
        expected = 0.1
    else:
        expected = 0.1 * (1 - math.cos(math.pi * (1 - t) / 0.25)) / 2   # cosine ramp-down over the last 25%
    assert learning_rate(t, 0.1, rampdown_length=0.25, rampup_length=0.05) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("step, factor", [(0, 1.0), (375, 0.25), (600, 0.04), (750, 0.0), (900, 0.0)])
def test_latent_noise_decays_quadratically(step, factor):
    scale = latent_noise_scale(step / 1000, w_std=2.0, initial_noise_factor=0.05, noise_ramp_length=0.75)
    assert scale == pytest.approx(2.0 * 0.05 * factor, abs=1e-12)


def test_w_stats_are_mean_and_total_std_of_mapped_samples():
    G = tiny_G()
    w_avg_buffer = G.mapping.w_avg.clone()
    w_avg, w_std = compute_w_stats(G, 2000, torch.device("cpu"))
    z = torch.from_numpy(np.random.RandomState(123).randn(2000, 32))
    w = G.mapping(z, None)[:, 0].detach().double()  # [2000, w_dim]
    assert w_avg.shape == (1, 1, 32)
    torch.testing.assert_close(w_avg[0, 0].double(), w.mean(dim=0), rtol=0, atol=1e-5)
    expected_std = (w - w.mean(dim=0)).square().sum(dim=1).mean().sqrt()
    assert float(w_std) == pytest.approx(float(expected_std), rel=1e-5)
    assert isinstance(w_std, np.float32)  # the official latent-noise arithmetic is float32
    assert torch.equal(G.mapping.w_avg, w_avg_buffer)  # eval mode: the tracked w_avg is not updated


def test_noise_regularization_per_image_matches_official_loop():
    torch.manual_seed(0)
    maps = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 32, 32)]
    maps[1][1] = maps[1][1].cumsum(dim=-1) / 4  # correlated along x: a large penalty for image 1 only
    reg = noise_regularization(maps)
    for i in range(2):
        expected = 0.0
        for v in maps:
            noise = v[i][None]  # [1, 1, H, W], as the official code sees one image's buffer
            while True:
                expected += (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
                expected += (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
                if noise.shape[2] <= 8:
                    break
                noise = F.avg_pool2d(noise, kernel_size=2)
        assert float(reg[i]) == pytest.approx(float(expected), rel=1e-5)
    assert reg[1] > 10 * reg[0]

    normalize_noise_(maps)
    for v in maps:
        torch.testing.assert_close(v.mean(dim=[1, 2, 3]), torch.zeros(2), rtol=0, atol=1e-6)
        torch.testing.assert_close(v.square().mean(dim=[1, 2, 3]), torch.ones(2), rtol=0, atol=1e-5)


@pytest.mark.parametrize("resolution", [32, 512])
def test_lpips_distance_equals_lpips_package(lpips_model, resolution):
    torch.manual_seed(2)
    a = torch.randint(0, 256, [2, 3, resolution, resolution]).float()
    b = (a + torch.randn_like(a) * 40).clamp(0, 255)
    distance = LpipsDistance(lpips_model)
    ours = distance.distance(distance.features(a), distance.features(b))
    if resolution > 256:  # the projector compares 256x256 area-downsampled images
        a, b = (F.interpolate(x, size=(256, 256), mode="area") for x in (a, b))
    expected = lpips_model(a / 127.5 - 1, b / 127.5 - 1).flatten()
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    assert (ours > 0).all()


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_lpips_with_random_trunk_downloads_nothing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    model = hydra.utils.instantiate(compose_project().projector.lpips_model)
    assert isinstance(model, lpips.LPIPS) and model.pnet_rand


# ---------------------------------------------------------------------------------------------------------------
# Projection quality, batching, side effects.

@pytest.fixture(scope="module")
def mixed_targets():
    """Three images the tiny network makes itself, from style-mixed ws (known W+ codes that one w cannot give)."""
    G = tiny_G()
    ws = G.mapping(torch.randn(6, 32, generator=torch.Generator().manual_seed(1)), None)
    ws[:3, 4:] = ws[3:, 4:]
    return G, render(G, ws[:3])


@pytest.fixture(scope="module")
def projections(mixed_targets, lpips_model):
    G, target = mixed_targets
    result = {}
    for space in ("w", "w+"):
        projector = Projector(G, lpips_model, space=space, num_steps=150, w_avg_samples=2000)
        result[space] = render(G, projector.project(target, progress=False).ws)
    result["start"] = render(G, projector.w_avg.repeat(3, G.num_ws, 1))
    return result


def test_projection_rises_well_above_w_avg(mixed_targets, projections):
    _, target = mixed_targets
    start = psnr(projections["start"], target)
    for space in ("w", "w+"):
        gain = psnr(projections[space], target) - start
        assert (gain > 4).all() and gain.mean() > 6, f"{space}: PSNR gains {gain.tolist()} dB over w_avg"


def test_wplus_beats_w(mixed_targets, projections, lpips_model):
    _, target = mixed_targets
    assert psnr(projections["w+"], target).mean() > psnr(projections["w"], target).mean() + 0.5
    distance = LpipsDistance(lpips_model)
    lpips_w, lpips_wplus = (distance.distance(distance.features(target.float()),
                                              distance.features(projections[s].float())) for s in ("w", "w+"))
    assert lpips_wplus.mean() < lpips_w.mean()


def batch_targets(G: Generator) -> torch.Tensor:
    return render(G, G.mapping(torch.randn(3, 32, generator=torch.Generator().manual_seed(3)), None))


@pytest.mark.parametrize("space", ["w", "w+"])
def test_batch_equals_single_runs(space, lpips_model):
    G = tiny_G(noise_strength=0.3)
    state = {k: v.clone() for k, v in G.state_dict().items()}
    target = batch_targets(G)
    # A batch and a single run differ in float rounding (GEMM and conv blocking depend on the batch size). Adam
    # turns the rounding noise of near-zero gradient components into steps of size ~lr, so at the official lr the
    # runs drift apart by ~1e-3 per step (as reruns on a GPU do); a small lr keeps them comparable to 1e-5.
    # Exact independence at the official lr: test_batch_images_are_independent.
    projector = Projector(G, lpips_model, space=space, num_steps=10, w_avg_samples=1000, initial_learning_rate=1e-4)
    batch = projector.project(target, progress=False)
    for i in range(3):
        single = projector.project(target[i:i + 1], progress=False)
        torch.testing.assert_close(batch.ws[i:i + 1], single.ws, rtol=0, atol=1e-5)
        for name, maps in single.noise.items():
            torch.testing.assert_close(batch.noise[name][i:i + 1], maps, rtol=0, atol=1e-5)
    assert (batch.ws[0] - batch.ws[1]).abs().max() > 1e-4  # the images really got different results
    assert (batch.ws[0] - projector.w_avg).abs().max() > 1e-4  # and moved away from the start
    assert all(torch.equal(v, state[k]) for k, v in G.state_dict().items())  # the caller's G is untouched


def test_batch_images_are_independent(lpips_model):
    G = tiny_G(noise_strength=0.3)
    target = batch_targets(G)
    projector = Projector(G, lpips_model, space="w+", num_steps=8, w_avg_samples=1000)
    batch = projector.project(target, progress=False)
    other = target.clone()
    other[2] = 255 - other[2]
    changed = projector.project(other, progress=False)
    # Same batch size, so the same kernels: images 0 and 1 must come out bit for bit the same.
    assert torch.equal(batch.ws[:2], changed.ws[:2])
    assert all(torch.equal(batch.noise[k][:2], changed.noise[k][:2]) for k in batch.noise)
    assert (batch.ws[2] - changed.ws[2]).abs().max() > 1e-2


def test_projection_is_deterministic_and_records_steps(lpips_model):
    G = tiny_G(noise_strength=0.3)
    target = render(G, G.mapping(torch.randn(1, 32), None))
    projector = Projector(G, lpips_model, space="w", num_steps=5, w_avg_samples=500)
    a = projector.project(target, record_steps=True, progress=False)
    b = projector.project(target, progress=False)
    assert torch.equal(a.ws, b.ws) and all(torch.equal(a.noise[k], b.noise[k]) for k in a.noise)
    assert a.w_steps.shape == (5, 1, G.num_ws, 32) and torch.equal(a.w_steps[-1], a.ws)
    assert (a.ws == a.ws[:, :1]).all()  # W space: one w repeated over all layers


# ---------------------------------------------------------------------------------------------------------------
# Files, the job and its errors.

def test_project_image_file_writes_official_outputs(tmp_path):
    G = tiny_G(noise_strength=0.3)
    img = np.random.RandomState(0).randint(0, 256, [3, 40, 56], dtype=np.uint8)  # not square: centre-cropped
    path = save_png(tmp_path / "face.png", img)
    cfg = compose_project("projector.num_steps=3", "projector.w_avg_samples=500")
    w = project_image_file(G, path, cfg.projector, "cpu", tmp_path / "out")

    out = tmp_path / "out"
    assert w.shape == (1, G.num_ws, 32) and w.dtype == np.float32
    npz = np.load(out / "projected_w.npz")
    assert list(npz.keys()) == ["w"] and np.array_equal(npz["w"], w)
    assert np.array_equal(load_w(out / "projected_w.npz", G), w)  # generate.py --projected-w reads it
    # proj.png is what the official tool renders from w: G's own noise buffers, trunc((x + 1) * 127.5).
    proj = np.asarray(PIL.Image.open(out / "proj.png"))
    assert np.array_equal(proj, render(G, torch.from_numpy(w))[0].numpy().transpose(1, 2, 0))
    target = np.asarray(PIL.Image.open(out / "target.png"))
    crop = PIL.Image.fromarray(img.transpose(1, 2, 0)).crop((8, 0, 48, 40)).resize((32, 32), PIL.Image.LANCZOS)
    assert np.array_equal(target, np.asarray(crop))
    noise = np.load(out / "noise.npz")
    expected = {k: v.shape for k, v in G.state_dict().items() if "noise_const" in k}
    assert {k: noise[k].shape for k in noise.keys()} == expected and len(expected) == 7
    metrics = json.loads((out / "metrics.json").read_text())
    mse = float(((proj.astype(np.float64) - target) ** 2).mean())
    assert metrics["mse"] == pytest.approx(mse) and metrics["psnr"] == pytest.approx(10 * math.log10(255**2 / mse))
    assert metrics["lpips"] > 0


def test_run_projection_batches_a_folder(tmp_path):
    G = tiny_G(noise_strength=0.3)
    network = save_tiny_snapshot(tmp_path, G)
    targets = tmp_path / "targets"
    targets.mkdir()
    images = render(G, G.mapping(torch.randn(3, 32, generator=torch.Generator().manual_seed(4)), None)).numpy()
    for name, img in zip(["a", "b", "c"], images):
        save_png(targets / f"{name}.png", img)
    (targets / "notes.txt").write_text("not an image, skipped")
    cfg = compose_project(f"network={network}", f"target={targets}", f"paths.output_dir={tmp_path / 'run'}",
                          "batch_size=2", "device=cpu", "projector=wplus", "projector.num_steps=4",
                          "projector.w_avg_samples=500")
    mean_lpips = run_projection(cfg)

    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["a", "b", "c", "summary.png"]
    lpips_values = [json.loads((run / n / "metrics.json").read_text())["lpips"] for n in "abc"]
    assert mean_lpips == pytest.approx(np.mean(lpips_values))
    summary = np.asarray(PIL.Image.open(run / "summary.png"))
    assert summary.shape == (64, 96, 3)  # targets row above projections row
    assert np.array_equal(summary[:32, 32:64], images[1].transpose(1, 2, 0))
    assert np.array_equal(summary[32:, 64:], np.asarray(PIL.Image.open(run / "c" / "proj.png")))
    w_b = np.load(run / "b" / "projected_w.npz")["w"]
    assert w_b.shape == (1, G.num_ws, 32) and not np.allclose(w_b, w_b[:, :1])  # W+: one latent per layer


@pytest.mark.skipif(not video_available(), reason="imageio-ffmpeg is not installed (pip install 'stylefuse[video]')")
def test_video_has_a_frame_per_step(tmp_path, lpips_model):
    import imageio.v2 as imageio

    G = tiny_G()
    target = render(G, G.mapping(torch.randn(1, 32), None)).numpy()
    projector = Projector(G, lpips_model, num_steps=4, w_avg_samples=100)
    project_targets(G, projector, target, [tmp_path / "t"], batch_size=1, video=True, progress=False)
    with imageio.get_reader(tmp_path / "t" / "proj.mp4") as reader:
        frames = list(reader.iter_data())
    assert len(frames) == 4 and frames[0].shape == (32, 64, 3)  # target | projection


def test_missing_video_support_is_one_line_hint(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("stylefuse.projection.job.video_available", lambda: False)
    network = save_tiny_snapshot(tmp_path)
    target = save_png(tmp_path / "t.png", np.zeros([3, 32, 32], dtype=np.uint8))
    cfg = compose_project(f"network={network}", f"target={target}", f"paths.output_dir={tmp_path / 'run'}",
                          "device=cpu", "save_video=true", "projector.num_steps=1", "projector.w_avg_samples=100")
    run_projection(cfg)
    assert "proj.mp4 skipped: install imageio-ffmpeg (pip install 'stylefuse[video]')" in caplog.text
    assert (tmp_path / "run" / "t" / "proj.png").is_file() and not (tmp_path / "run" / "t" / "proj.mp4").exists()


def test_target_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cases = [(tmp_path / "missing.png", "target not found"), (tmp_path / "empty", "no images in folder"),
             (tmp_path / "notes.txt", "is not an image file")]
    for path, message in cases:
        with pytest.raises(StylefuseError, match=message) as err:
            list_targets(path)
        assert "\n" not in str(err.value)
    with pytest.raises(StylefuseError, match="cannot read image") as err:
        load_target(list_targets(tmp_path / "broken.png")[0], 32, 3)
    assert "\n" not in str(err.value)


def test_job_errors_come_before_the_work(tmp_path):
    network = save_tiny_snapshot(tmp_path)
    target = save_png(tmp_path / "t.png", np.zeros([3, 32, 32], dtype=np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"garbage")
    for args, message in [([f"network={network}", f"target={tmp_path / 'broken.jpg'}"], "cannot read image"),
                          ([f"network={tmp_path / 'nope.pkl'}", f"target={target}"], "nope.pkl"),
                          ([f"target={target}"], "network= is missing"),
                          ([f"network={network}", f"target={target}", "batch_size=0"], "batch_size must be")]:
        cfg = compose_project(*args, f"paths.output_dir={tmp_path / 'run'}", "device=cpu",
                              "projector.w_avg_samples=100")
        with pytest.raises(StylefuseError, match=message) as err:
            run_projection(cfg)
        assert "\n" not in str(err.value)


def save_tiny_snapshot(tmp_path: Path, G: Generator | None = None) -> Path:
    G = G if G is not None else tiny_G()
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=512, channel_max=32)
    save_network_snapshot(tmp_path / "net.pkl", G, D, G, augment_p=None, training_set_kwargs=None, kimg=0.0)
    return tmp_path / "net.pkl"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "project.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    G = tiny_G()
    network = save_tiny_snapshot(tmp_path, G)
    target = save_png(tmp_path / "t.png", render(G, G.mapping(torch.randn(1, 32), None))[0].numpy())
    done = run_cli(f"network={network}", f"target={target}", f"hydra.run.dir={tmp_path / 'run'}", "device=cpu",
                   "projector.num_steps=2", "projector.w_avg_samples=100", "projector.lpips_model.pnet_rand=true",
                   "save_video=true")
    assert done.returncode == 0, done.stderr
    files = {p.name for p in (tmp_path / "run" / "t").iterdir()}
    assert files >= {"target.png", "proj.png", "projected_w.npz", "noise.npz", "metrics.json"}
    assert "proj.mp4" in files or "proj.mp4 skipped: install imageio-ffmpeg" in done.stdout

    done = run_cli(f"network={network}", f"target={tmp_path / 'nope.png'}", f"hydra.run.dir={tmp_path / 'err'}")
    assert done.returncode == 2 and done.stderr.strip() == f"error: target not found: {tmp_path / 'nope.png'} " \
        "(target= must be an image file or a folder of images)"


def test_wplus_config_differs_from_official_only_in_space():
    w, wplus = compose_project().projector, compose_project("projector=wplus").projector
    assert w.space == "w" and wplus.space == "w+"
    assert {k: v for k, v in w.items() if k != "space"} == {k: v for k, v in wplus.items() if k != "space"}
    assert (w.num_steps, w.w_avg_samples, w.initial_learning_rate, w.regularize_noise_weight, w.seed) == \
        (1000, 10000, 0.1, 1e5, 303)


def test_build_projector_is_seeded():
    cfg = compose_project("projector.w_avg_samples=100").projector
    a, b = build_projector(tiny_G(), cfg, "cpu"), build_projector(tiny_G(), cfg, "cpu")
    # A random LPIPS trunk comes out the same: the projector is reproducible from its config alone.
    assert all(torch.equal(p, q) for p, q in zip(a.distance.parameters(), b.distance.parameters()))


def test_bench_project_reports_rates(capsys):
    result = bench_project(["--res", "32", "--batch", "2", "--steps", "2", "--channel-base", "512",
                            "--channel-max", "32", "--map", "2", "--device", "cpu"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"proj_per_min={result['proj_per_min']:.2f} peak_rss_mb={result['peak_rss_mb']} "
                    f"batch_speedup={result['batch_speedup']:.2f}")
    assert result["proj_per_min"] > 0 and result["peak_rss_mb"] > 0 and result["batch_speedup"] > 0


def test_grayscale_network(tmp_path):
    torch.manual_seed(0)
    G = Generator(**{**TINY_G, "img_channels": 1}).eval()
    path = save_png(tmp_path / "rgb.png", np.random.RandomState(0).randint(0, 256, [3, 32, 32], dtype=np.uint8))
    cfg = compose_project("projector.num_steps=2", "projector.w_avg_samples=100")
    project_image_file(G, path, cfg.projector, "cpu", tmp_path / "out")
    target = np.asarray(PIL.Image.open(tmp_path / "out" / "target.png"))
    assert target.shape == (32, 32)  # converted to L as PIL does, LPIPS sees it repeated to RGB
    assert np.array_equal(target, np.asarray(PIL.Image.open(path).convert("L")))
    assert np.asarray(PIL.Image.open(tmp_path / "out" / "proj.png")).shape == (32, 32)


OFFICIAL_PARITY_SCRIPT = '''
import contextlib, sys
import numpy as np, torch
import lpips
import projector as official
from training.networks import Generator as OfficialGenerator
from stylefuse.nn import Generator
from stylefuse.projection import LpipsDistance, Projector
from stylefuse.projection.job import render

kwargs = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=int(sys.argv[1]), img_channels=3,
              mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=16 * int(sys.argv[1]),
                                                                       channel_max=32))
torch.manual_seed(0)
G_official = OfficialGenerator(**kwargs).eval()
with torch.no_grad():
    for name, param in G_official.named_parameters():
        if name.endswith("noise_strength"):
            param.fill_(0.3)
G = Generator(**kwargs).eval()
G.load_state_dict(G_official.state_dict())
torch.manual_seed(1)
distance = LpipsDistance(lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False))

class VGG16StandIn(torch.nn.Module):  # vgg16.pt cannot be downloaded here: same interface, our LPIPS vector
    def forward(self, img, resize_images=False, return_lpips=True):
        return distance.features(img)

official.dnnlib.util.open_url = lambda url: contextlib.nullcontext(None)
official.torch.jit.load = lambda f: VGG16StandIn()
target = render(G, G.mapping(torch.randn(1, 32, generator=torch.Generator().manual_seed(5)), None))[0]
steps = int(sys.argv[2])
torch.manual_seed(303)
np.random.seed(303)
w_official = official.project(G_official, target.float(), num_steps=steps, device=torch.device("cpu"))
ours = Projector(G, distance.model, num_steps=steps).project(target[None], record_steps=True, progress=False)
print("max_abs_diff", float((ours.w_steps[:, 0] - w_official).abs().max()))
'''


@pytest.mark.skipif(not os.environ.get("STYLEFUSE_OFFICIAL"),
                    reason="set STYLEFUSE_OFFICIAL to an NVlabs/stylegan2-ada-pytorch checkout to compare with it")
@pytest.mark.parametrize("resolution, steps", [(32, 100), (512, 4)])  # 512: the area-downsampling path
def test_matches_official_projector_bit_for_bit(tmp_path, resolution, steps):
    # The official code runs in its own process; this one never imports it.
    script = tmp_path / "parity.py"
    script.write_text(OFFICIAL_PARITY_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.environ["STYLEFUSE_OFFICIAL"], str(REPO)]),
               OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(script), str(resolution), str(steps)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "max_abs_diff 0.0"
