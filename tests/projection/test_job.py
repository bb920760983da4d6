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

from stylefuse.errors import NetworkFileError, StylefuseError
from stylefuse.networks import load_generator
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
    metrics = [json.loads((run / n / "metrics.json").read_text()) for n in "abc"]
    assert mean_lpips == pytest.approx(np.mean([m["lpips"] for m in metrics]))
    assert all(m["aligner"] == "none" and m["lpips_trunk"] == "vgg16-random" for m in metrics)
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


def test_presets_keep_the_official_settings(project_cfg):
    w = project_cfg().projector
    assert (w.space, w.num_steps, w.w_avg_samples, w.initial_learning_rate, w.regularize_noise_weight, w.mse_weight,
            w.seed) == ("w", 1000, 10000, 0.1, 1e5, 0.0, 303)
    wplus, reg, pti = (project_cfg(f"projector={name}").projector for name in ("wplus", "wplus_reg", "pti"))
    assert (wplus.space, wplus.layer_weight, reg.space, pti.space) == ("w+", 0.0, "w+", "w") and reg.layer_weight > 0
    changed = {"space", "layer_learning_rate", "layer_start", "layer_weight", "mse_weight"}
    for preset in (wplus, reg):  # the shared w runs with the official settings
        assert {k: v for k, v in preset.items() if k not in changed} == {k: v for k, v in w.items() if k not in changed}
    assert {k: v for k, v in pti.items() if k in w and k != "_target_"} == {k: v for k, v in w.items()
                                                                              if k != "_target_"}


def test_align_ffhq_aligns_the_photo_first_and_says_so(tiny_G, project_cfg, tmp_path):
    pytest.importorskip("dlib", reason="the align extra is not installed (pip install 'stylefuse[align]')")
    from skimage import data

    network = save_tiny_snapshot(tmp_path / "net.pkl", tiny_G(seed=0).eval())
    photo = tmp_path / "astronaut.jpg"
    PIL.Image.fromarray(data.astronaut()).save(photo)
    cfg = project_cfg(f"network={network}", f"target={photo}", f"paths.output_dir={tmp_path / 'run'}", "device=cpu",
                      "align=ffhq", "projector.num_steps=1", "projector.w_avg_samples=100")
    run_projection(cfg)
    result = tmp_path / "run" / "astronaut"
    aligned = PIL.Image.open(result / "aligned.png")
    assert aligned.size == (1024, 1024)
    expected = np.asarray(aligned.convert("RGB").resize((32, 32), PIL.Image.LANCZOS))
    assert np.array_equal(np.asarray(PIL.Image.open(result / "target.png")), expected)  # projected: the aligned face
    assert json.loads((result / "metrics.json").read_text())["aligner"] == "ffhq"


def test_offline_lpips_is_one_line_naming_the_weights_file(tiny_G, project_cfg, tmp_path, monkeypatch):
    import urllib.error

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached weights
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    network = save_tiny_snapshot(tmp_path / "net.pkl", tiny_G(seed=0).eval())
    target = save_png(tmp_path / "t.png", np.zeros([3, 32, 32], dtype=np.uint8))
    cfg = project_cfg(f"network={network}", f"target={target}", f"paths.output_dir={tmp_path / 'run'}", "device=cpu",
                      "projector.lpips_model.pnet_rand=false", "projector.w_avg_samples=100")
    with pytest.raises(NetworkFileError) as err:
        run_projection(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("LPIPS needs the VGG16 ImageNet weights vgg16-397923af.pth, which could not be "
                              "downloaded ([Errno -3] Temporary failure in name resolution): put that file (from "
                              "https://download.pytorch.org/models/vgg16-397923af.pth)")
    assert f"into {tmp_path / 'hub' / 'checkpoints'}/" in message and "projector.lpips_model.pnet_rand=true" in message


def test_pti_tunes_one_generator_per_image_and_saves_it(tiny_G, project_cfg, tmp_path):
    G = tiny_G(seed=0, noise_strength=0.3).eval()
    network = save_tiny_snapshot(tmp_path / "net.pkl", G)
    targets = tmp_path / "targets"
    targets.mkdir()
    for name, img in zip("ab", render(G, G.mapping(torch.randn(2, 32, generator=torch.Generator().manual_seed(4)),
                                                   None)).numpy()):
        save_png(targets / f"{name}.png", img)
    cfg = project_cfg(f"network={network}", f"target={targets}", f"paths.output_dir={tmp_path / 'run'}",
                      "device=cpu", "projector=pti", "projector.num_steps=2", "projector.w_avg_samples=100",
                      "projector.tune_steps=3", "projector.tune_learning_rate=1e-3")
    run_projection(cfg)
    tuned = {}
    for name in "ab":
        result = tmp_path / "run" / name
        tuned[name] = load_generator(result / "network.pt")
        w = torch.from_numpy(np.load(result / "projected_w.npz")["w"])
        assert np.array_equal(np.asarray(PIL.Image.open(result / "proj.png")),  # rendered by its own tuned network
                              render(tuned[name], w)[0].numpy().transpose(1, 2, 0))
    weights = [dict(g.synthesis.named_parameters())["b32.torgb.weight"] for g in (G, tuned["a"], tuned["b"])]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])


def test_build_projector_is_seeded(tiny_G, project_cfg):
    cfg = project_cfg("projector.w_avg_samples=100").projector
    a, b = build_projector(tiny_G(seed=0).eval(), cfg, "cpu"), build_projector(tiny_G(seed=0).eval(), cfg, "cpu")
    # A random LPIPS trunk comes out the same: the projector is reproducible from its config alone.
    assert all(torch.equal(p, q) for p, q in zip(a.distance.parameters(), b.distance.parameters()))


