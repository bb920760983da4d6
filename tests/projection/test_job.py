"""The projection job (project.py): official output files, batches of a folder, video, configs, errors, the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from stylefuse.errors import StylefuseError
from stylefuse.latents import load_w
from stylefuse.projection import Projector
from stylefuse.projection.job import build_projector, project_image_file, project_targets, render
from stylefuse.projection.job import run as run_projection
from stylefuse.utils.video import video_available
from tests.helpers import REPO, save_tiny_snapshot


def save_png(path: Path, img: np.ndarray) -> Path:  # uint8 [C, H, W]
    PIL.Image.fromarray(img.transpose(1, 2, 0)).save(path)
    return path


def test_project_image_file_writes_official_outputs(tiny_G, project_cfg, tmp_path):
    G = tiny_G(seed=0, noise_strength=0.3).eval()
    img = np.random.RandomState(0).randint(0, 256, [3, 40, 56], dtype=np.uint8)  # not square: centre-cropped
    path = save_png(tmp_path / "face.png", img)
    cfg = project_cfg("projector.num_steps=3", "projector.w_avg_samples=500")
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


def test_run_projection_batches_a_folder(tiny_G, project_cfg, tmp_path):
    G = tiny_G(seed=0, noise_strength=0.3).eval()
    network = save_tiny_snapshot(tmp_path / "net.pkl", G)
    targets = tmp_path / "targets"
    targets.mkdir()
    images = render(G, G.mapping(torch.randn(3, 32, generator=torch.Generator().manual_seed(4)), None)).numpy()
    for name, img in zip(["a", "b", "c"], images):
        save_png(targets / f"{name}.png", img)
    (targets / "notes.txt").write_text("not an image, skipped")
    cfg = project_cfg(f"network={network}", f"target={targets}", f"paths.output_dir={tmp_path / 'run'}",
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
def test_video_has_a_frame_per_step(tiny_G, tmp_path, lpips_model):
    import imageio.v2 as imageio

    G = tiny_G(seed=0).eval()
    target = render(G, G.mapping(torch.randn(1, 32), None)).numpy()
    projector = Projector(G, lpips_model, num_steps=4, w_avg_samples=100)
    project_targets(G, projector, target, [tmp_path / "t"], batch_size=1, video=True, progress=False)
    with imageio.get_reader(tmp_path / "t" / "proj.mp4") as reader:
        frames = list(reader.iter_data())
    assert len(frames) == 4 and frames[0].shape == (32, 64, 3)  # target | projection


def test_missing_video_support_is_one_line_hint(tiny_G, project_cfg, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("stylefuse.projection.job.video_available", lambda: False)
    network = save_tiny_snapshot(tmp_path / "net.pkl", tiny_G(seed=0).eval())
    target = save_png(tmp_path / "t.png", np.zeros([3, 32, 32], dtype=np.uint8))
    cfg = project_cfg(f"network={network}", f"target={target}", f"paths.output_dir={tmp_path / 'run'}",
                          "device=cpu", "save_video=true", "projector.num_steps=1", "projector.w_avg_samples=100")
    run_projection(cfg)
    assert "proj.mp4 skipped: install imageio-ffmpeg (pip install 'stylefuse[video]')" in caplog.text
    assert (tmp_path / "run" / "t" / "proj.png").is_file() and not (tmp_path / "run" / "t" / "proj.mp4").exists()


def test_job_errors_come_before_the_work(tiny_G, project_cfg, tmp_path):
    network = save_tiny_snapshot(tmp_path / "net.pkl", tiny_G(seed=0).eval())
    target = save_png(tmp_path / "t.png", np.zeros([3, 32, 32], dtype=np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"garbage")
    for args, message in [([f"network={network}", f"target={tmp_path / 'broken.jpg'}"], "cannot read image"),
                          ([f"network={tmp_path / 'nope.pkl'}", f"target={target}"], "nope.pkl"),
                          ([f"target={target}"], "network= is missing"),
                          ([f"network={network}", f"target={target}", "batch_size=0"], "batch_size must be")]:
        cfg = project_cfg(*args, f"paths.output_dir={tmp_path / 'run'}", "device=cpu",
                              "projector.w_avg_samples=100")
        with pytest.raises(StylefuseError, match=message) as err:
            run_projection(cfg)
        assert "\n" not in str(err.value)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "project.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.slow
def test_cli_end_to_end(tiny_G, tmp_path):
    G = tiny_G(seed=0).eval()
    network = save_tiny_snapshot(tmp_path / "net.pkl", G)
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


def test_wplus_config_differs_from_official_only_in_space(project_cfg):
    w, wplus = project_cfg().projector, project_cfg("projector=wplus").projector
    assert w.space == "w" and wplus.space == "w+"
    assert {k: v for k, v in w.items() if k != "space"} == {k: v for k, v in wplus.items() if k != "space"}
    assert (w.num_steps, w.w_avg_samples, w.initial_learning_rate, w.regularize_noise_weight, w.seed) == \
        (1000, 10000, 0.1, 1e5, 303)


def test_build_projector_is_seeded(tiny_G, project_cfg):
    cfg = project_cfg("projector.w_avg_samples=100").projector
    a, b = build_projector(tiny_G(seed=0).eval(), cfg, "cpu"), build_projector(tiny_G(seed=0).eval(), cfg, "cpu")
    # A random LPIPS trunk comes out the same: the projector is reproducible from its config alone.
    assert all(torch.equal(p, q) for p, q in zip(a.distance.parameters(), b.distance.parameters()))


def test_grayscale_network(tiny_G, project_cfg, tmp_path):
    G = tiny_G(channels=1, seed=0).eval()
    path = save_png(tmp_path / "rgb.png", np.random.RandomState(0).randint(0, 256, [3, 32, 32], dtype=np.uint8))
    cfg = project_cfg("projector.num_steps=2", "projector.w_avg_samples=100")
    project_image_file(G, path, cfg.projector, "cpu", tmp_path / "out")
    target = np.asarray(PIL.Image.open(tmp_path / "out" / "target.png"))
    assert target.shape == (32, 32)  # converted to L as PIL does, LPIPS sees it repeated to RGB
    assert np.array_equal(target, np.asarray(PIL.Image.open(path).convert("L")))
    assert np.asarray(PIL.Image.open(tmp_path / "out" / "proj.png")).shape == (32, 32)
