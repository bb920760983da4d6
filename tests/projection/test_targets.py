"""Projecting target files without a config: official output files, per-step video, grayscale networks."""

from __future__ import annotations

import json
import math

import numpy as np
import PIL.Image
import pytest
import torch

from stylefuse.latents import load_w
from stylefuse.projection import Projector, project_image_file, project_targets, render
from stylefuse.utils.video import video_available
from tests.helpers import save_png


def test_project_image_file_writes_official_outputs(tiny_G, lpips_model, tmp_path):
    G = tiny_G(seed=0, noise_strength=0.3).eval()
    img = np.random.RandomState(0).randint(0, 256, [3, 40, 56], dtype=np.uint8)  # not square: centre-cropped
    path = save_png(tmp_path / "face.png", img)
    w = project_image_file(G, Projector(G, lpips_model, num_steps=3, w_avg_samples=500), path, tmp_path / "out")

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


def test_grayscale_network(tiny_G, lpips_model, tmp_path):
    G = tiny_G(channels=1, seed=0).eval()
    path = save_png(tmp_path / "rgb.png", np.random.RandomState(0).randint(0, 256, [3, 32, 32], dtype=np.uint8))
    project_image_file(G, Projector(G, lpips_model, num_steps=2, w_avg_samples=100), path, tmp_path / "out")
    target = np.asarray(PIL.Image.open(tmp_path / "out" / "target.png"))
    assert target.shape == (32, 32)  # converted to L as PIL does, LPIPS sees it repeated to RGB
    assert np.array_equal(target, np.asarray(PIL.Image.open(path).convert("L")))
    assert np.asarray(PIL.Image.open(tmp_path / "out" / "proj.png")).shape == (32, 32)
