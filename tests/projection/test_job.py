"""The projection job (project.py): official output files, batches of a folder, video, configs, errors, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from stylefuse.errors import StylefuseError
from stylefuse.projection import render
from stylefuse.projection.job import build_projector
from stylefuse.projection.job import run as run_projection
from stylefuse.utils.video import video_available
from tests.helpers import REPO, save_png, save_tiny_snapshot


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
    if video_available():
        assert "proj.mp4" in files
    else:
        assert "proj.mp4" not in files and "proj.mp4 skipped: install imageio-ffmpeg" in done.stdout

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


