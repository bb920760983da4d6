"""The fusion job (fuse.py): seed, npz and image inputs, the figure, the fused codes, sweeps, errors, the CLI."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from stylefuse.config_checks import check_config
from stylefuse.errors import ConfigError
from stylefuse.fusion import fuse_ws
from stylefuse.fusion.figure import enlarge
from stylefuse.fusion.job import run as run_fusion
from stylefuse.latents import save_w
from stylefuse.networks import load_generator
from stylefuse.utils.images import load_image, save_image
from tests.helpers import REPO, compose_cfg, official_image

RES, NUM_WS, W_DIM = 32, 8, 32
CELL = 160  # RES enlarged 5x in the figures


@torch.no_grad()
def seed_w(G, seed, psi=1.0):
    return G.mapping(torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)), None, truncation_psi=psi)


def fuse_overrides(path, out, *extra):
    return [f"network={path}", f"paths.output_dir={out}", "device=cpu", *extra]


def test_fuse_job_in_seeds_mode_writes_the_figure_and_codes(tmp_path, network):
    path, G = network
    out = tmp_path / "out"
    cfg = compose_cfg("fuse", fuse_overrides(path, out, "image1=seed:1", "image2=seed:2", "sweep=range"))
    figure = run_fusion(cfg)

    w1, w2 = seed_w(G, 1), seed_w(G, 2)
    ranges = [(0, 2), (2, 4), (4, 6), (5, 7)]
    cells = [official_image(G, w1), official_image(G, w2)] + [official_image(G, fuse_ws(w1, w2, r)) for r in ranges]
    assert figure.shape[1] == (2 + len(ranges)) * CELL and figure.shape[0] > CELL  # image 1, image 2, one per range
    np.testing.assert_array_equal(load_image(out / "figure.png"), figure)
    for i, cell in enumerate(cells):
        np.testing.assert_array_equal(figure[:CELL, i * CELL:(i + 1) * CELL], enlarge(cell))
    np.testing.assert_array_equal(load_image(out / "image2.png"), cells[1])
    for (a, b), cell in zip(ranges, cells[2:]):
        np.testing.assert_array_equal(load_image(out / f"fused_{a:02d}-{b:02d}.png"), cell)
        with np.load(out / f"fused_{a:02d}-{b:02d}.npz") as data:
            assert data["w"].shape == (1, NUM_WS, W_DIM) and data["w"].dtype == np.float32
            np.testing.assert_array_equal(data["w"], fuse_ws(w1, w2, (a, b)).numpy())

    sweep = load_image(out / "sweep_range.png")  # a 3-layer window (the first range) at starts 0..5
    assert sweep.shape[1] == 6 * CELL
    np.testing.assert_array_equal(sweep[:CELL, CELL:2 * CELL], enlarge(official_image(G, fuse_ws(w1, w2, (1, 3)))))
    assert (out / "sweep_range.mp4").is_file() == (importlib.util.find_spec("imageio_ffmpeg") is not None)


def test_fuse_job_with_npz_inputs_and_a_strength_sweep(tmp_path, network, codes):
    path, G = network
    w1, w2 = codes
    save_w(tmp_path / "a.npz", w1)
    save_w(tmp_path / "b.npz", w2)
    cfg = compose_cfg("fuse", fuse_overrides(path, tmp_path / "out", f"image1={tmp_path / 'a.npz'}",
                                             f"image2={tmp_path / 'b.npz'}", "ranges=[[1,3]]", "strength=0.5",
                                             "sweep=strength", "sweep_frames=3"))
    figure = run_fusion(cfg)
    assert figure.shape[1] == 3 * CELL
    fused = fuse_ws(w1, w2, (1, 3), 0.5)
    np.testing.assert_array_equal(load_image(tmp_path / "out" / "fused_01-03.png"), official_image(G, fused))
    sweep = load_image(tmp_path / "out" / "sweep_strength.png")  # strengths 0, 0.5, 1
    assert sweep.shape[1] == 3 * CELL
    np.testing.assert_array_equal(sweep[:CELL, :CELL], enlarge(official_image(G, w1)))
    np.testing.assert_array_equal(sweep[:CELL, CELL:2 * CELL], enlarge(official_image(G, fused)))
    np.testing.assert_array_equal(sweep[:CELL, 2 * CELL:], enlarge(official_image(G, fuse_ws(w1, w2, (1, 3)))))


@pytest.mark.parametrize("image", ["image1", "image2"])
def test_fuse_job_projects_image_inputs(tmp_path, network, image):
    path, G = network
    save_image(official_image(G, seed_w(G, 3)), tmp_path / "face.png")
    out = tmp_path / "out"
    inputs = {"image1": "seed:4", "image2": "seed:4", image: tmp_path / "face.png"}
    cfg = compose_cfg("fuse", fuse_overrides(
        path, out, f"image1={inputs['image1']}", f"image2={inputs['image2']}", "ranges=[[0,3]]",
        "projector.num_steps=2", "projector.w_avg_samples=50", "projector.lpips_model.pnet_rand=true"))
    run_fusion(cfg)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [image]  # the projection of that input only
    with np.load(out / image / "projected_w.npz") as proj, np.load(out / f"{image}.npz") as used:
        assert proj["w"].shape == (1, NUM_WS, W_DIM)
        np.testing.assert_array_equal(used["w"], proj["w"])
    assert (out / image / "target.png").is_file() and (out / "figure.png").is_file()


def test_fuse_job_with_pti_tunes_one_generator_on_both_images(tmp_path, network):
    path, G = network
    save_image(official_image(G, seed_w(G, 3)), tmp_path / "a.png")
    save_image(official_image(G, seed_w(G, 5)), tmp_path / "b.png")
    out = tmp_path / "out"
    cfg = compose_cfg("fuse", fuse_overrides(
        path, out, f"image1={tmp_path / 'a.png'}", f"image2={tmp_path / 'b.png'}", "ranges=[[0,7],[0,3]]",
        "projector=pti", "projector.num_steps=2", "projector.w_avg_samples=50", "projector.tune_steps=3",
        "projector.tune_learning_rate=1e-3", "projector.lpips_model.pnet_rand=true"))
    run_fusion(cfg)
    tuned = load_generator(out / "network.pt")  # one network for both images, which every tool loads
    assert not torch.equal(tuned.synthesis.b32.torgb.weight, G.synthesis.b32.torgb.weight)
    for name in ("image1", "image2"):
        with np.load(out / name / "projected_w.npz") as proj, np.load(out / f"{name}.npz") as used:
            np.testing.assert_array_equal(used["w"], proj["w"])
        assert not (out / name / "network.pt").exists()
        with np.load(out / f"{name}.npz") as used:  # rendered by the tuned network
            np.testing.assert_array_equal(load_image(out / f"{name}.png"),
                                          official_image(tuned, torch.from_numpy(used["w"])))
    # The full range takes all of image 2's layers: image 2 itself, in the same tuned network.
    np.testing.assert_array_equal(load_image(out / "fused_00-07.png"), load_image(out / "image2.png"))
    assert not np.array_equal(load_image(out / "fused_00-03.png"), load_image(out / "image1.png"))


def test_bad_sweep_is_refused_before_any_input_is_read(tmp_path, network):
    path, _ = network
    cfg = compose_cfg("fuse", fuse_overrides(path, tmp_path, f"image1={tmp_path / 'gone.png'}", "image2=seed:1",
                                             "sweep=ranges"))
    with pytest.raises(ConfigError, match="sweep must be one of none, range, strength, got 'ranges'"):
        check_config("fuse", cfg)


@pytest.mark.slow
def test_fuse_py_runs_from_the_command_line(tmp_path, network):
    path, _ = network
    cmd = [sys.executable, "fuse.py", f"network={path}", "image1=seed:1", "image2=seed:2", "ranges=[[0,3],[4,7]]",
           "device=cpu", f"hydra.run.dir={tmp_path / 'run'}"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=120)
    assert load_image(tmp_path / "run" / "figure.png").shape[1] == 4 * CELL
    cmd[5] = "ranges=[[0,9]]"
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: layer range [0, 9] does not fit this network's layers 0..7: pick 0 <= start <= end <= 7"]
