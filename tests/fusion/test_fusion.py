"""Style fusion: layer-range replacement of w, the paper's range presets, the Figure-8 layout and the fuse.py job."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from stylefuse.errors import ConfigError
from stylefuse.fusion import fuse_ws, resolve_ranges, scale_range
from stylefuse.fusion.figure import labelled_row
from stylefuse.fusion.job import load_latent
from stylefuse.fusion.job import run as run_fusion
from stylefuse.latents import save_w
from stylefuse.utils.images import load_image, save_image
from tests.helpers import REPO, compose_cfg, official_uint8, tiny_network

RES, NUM_WS, W_DIM = 32, 8, 32


@pytest.fixture
def network(tmp_path):
    path = tmp_path / "tiny.pt"
    return path, tiny_network(path)


@pytest.fixture
@torch.no_grad()
def codes(network):
    _, G = network
    torch.manual_seed(1)
    return G.mapping(torch.randn(1, G.z_dim), None), G.mapping(torch.randn(1, G.z_dim), None)


@torch.no_grad()
def seed_w(G, seed, psi=1.0):
    return G.mapping(torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)), None, truncation_psi=psi)


@torch.no_grad()
def render(G, w):
    return official_uint8(G.synthesis(w, noise_mode="const"))


def fuse_overrides(path, out, *extra):
    return [f"network={path}", f"paths.output_dir={out}", "device=cpu", *extra]


# --- The fusion of codes ---------------------------------------------------------------------------------------

def test_empty_range_gives_image_1(network, codes):
    _, G = network
    w1, w2 = codes
    for empty in (None, [], ()):
        fused = fuse_ws(w1, w2, empty)
        assert torch.equal(fused, w1) and fused is not w1
    np.testing.assert_array_equal(render(G, fuse_ws(w1, w2, None)), render(G, w1))


def test_full_range_gives_image_2(network, codes):
    _, G = network
    w1, w2 = codes
    fused = fuse_ws(w1, w2, (0, NUM_WS - 1))
    assert torch.equal(fused, w2)
    np.testing.assert_array_equal(render(G, fused), render(G, w2))
    assert not np.array_equal(render(G, w1), render(G, w2))


@pytest.mark.parametrize("start, end", [(0, 0), (2, 5), (7, 7)])
def test_range_changes_exactly_its_layers(codes, start, end):
    w1, w2 = codes
    inside = torch.zeros(NUM_WS, dtype=torch.bool)
    inside[start:end + 1] = True
    fused = fuse_ws(w1, w2, [start, end])
    assert torch.equal(fused[:, inside], w2[:, inside]) and torch.equal(fused[:, ~inside], w1[:, ~inside])
    half = fuse_ws(w1, w2, (start, end), strength=0.5)
    torch.testing.assert_close(half[:, inside], (w1[:, inside] + w2[:, inside]) / 2, rtol=0, atol=1e-6)
    assert torch.equal(half[:, ~inside], w1[:, ~inside])
    assert torch.equal(fuse_ws(w1, w2, (start, end), strength=0.0), w1)


@pytest.mark.parametrize("layer_range, strength, message", [
    ((3, 8), 1.0, r"layers 0\.\.7"), ((5, 2), 1.0, "start <= end"), ((-1, 2), 1.0, "start <= end"),
    ((1,), 1.0, "pair"), ((1, 2, 3), 1.0, "pair"), ((1, 2), 1.5, r"outside \[0, 1\]"),
])
def test_bad_ranges_and_strengths_are_one_line_errors(codes, layer_range, strength, message):
    with pytest.raises(ConfigError, match=message) as err:
        fuse_ws(*codes, layer_range, strength)
    assert "\n" not in str(err.value)


# --- Range presets -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def presets():
    return compose_cfg("fuse", []).fusion


def test_paper_preset_is_the_papers_ranges_at_18_layers_and_scales(presets):
    assert resolve_ranges("paper", presets, 18) == [(0, 6), (4, 10), (8, 14), (12, 17)]
    assert resolve_ranges("paper", presets, 8) == [(0, 2), (2, 4), (3, 6), (5, 7)]     # 32x32
    assert resolve_ranges("paper", presets, 14) == [(0, 5), (3, 8), (6, 11), (9, 13)]  # 256x256
    for num_ws in range(4, 19, 2):  # 8x8 .. 1024x1024
        ranges = resolve_ranges("paper", presets, num_ws)
        assert ranges[0][0] == 0 and ranges[-1][1] == num_ws - 1  # from the coarsest to the finest layer
        assert all(0 <= a <= b < num_ws for a, b in ranges)
        assert [a for a, _ in ranges] == sorted(a for a, _ in ranges)  # still coarse to fine
    assert resolve_ranges("styles", presets, 18) == [(0, 3), (4, 7), (8, 17)]
    assert scale_range((0, 17), 18, 10) == (0, 9)


def test_explicit_ranges_and_unknown_presets(presets):
    assert resolve_ranges([[0, 6], [4, 7]], presets, 8) == [(0, 6), (4, 7)]
    assert resolve_ranges([1, 3], presets, 8) == [(1, 3)]
    assert resolve_ranges([[], [2, 2]], presets, 8) == [None, (2, 2)]
    with pytest.raises(ConfigError, match=r"layers 0\.\.7"):
        resolve_ranges([[0, 6], [4, 10]], presets, 8)
    with pytest.raises(ConfigError, match=r"\['paper', 'styles'\]"):
        resolve_ranges("papr", presets, 8)


# --- Inputs --------------------------------------------------------------------------------------------------------

def test_latent_inputs_and_their_errors(tmp_path, network):
    path, G = network
    cfg = compose_cfg("fuse", fuse_overrides(path, tmp_path, "trunc=0.6"))
    torch.testing.assert_close(load_latent("seed:7", G, cfg, str(tmp_path)), seed_w(G, 7, 0.6), rtol=0, atol=0)
    w = torch.randn(1, NUM_WS, W_DIM)
    save_w(tmp_path / "one.npz", w)
    assert torch.equal(load_latent(str(tmp_path / "one.npz"), G, cfg, str(tmp_path)), w)

    save_w(tmp_path / "two.npz", torch.randn(2, NUM_WS, W_DIM))
    save_w(tmp_path / "wide.npz", torch.randn(1, NUM_WS + 2, W_DIM))
    np.savez(tmp_path / "key.npz", latent=w.numpy())
    cases = {"two.npz": "holds 2 codes", "wide.npz": r"\[1, 10, 32\]", "key.npz": "no array named 'w'",
             "gone.npz": "not found", "gone.png": "input not found", "seed:x": "seed:<number>"}
    for name, message in cases.items():
        source = name if name.startswith("seed:") else str(tmp_path / name)
        with pytest.raises(ConfigError, match=message) as err:
            load_latent(source, G, cfg, str(tmp_path))
        assert "\n" not in str(err.value)


# --- Figure and job ------------------------------------------------------------------------------------------------

def test_labelled_row_puts_labels_under_the_images():
    images = [np.full([RES, RES, 3], 60 * i, np.uint8) for i in range(3)] + [np.full([RES, RES, 1], 200, np.uint8)]
    row = labelled_row(images, ["image 1", "image 2", "layers 0-2", "x"])
    assert row.shape[1] == 4 * RES and RES < row.shape[0] <= 2 * RES and row.shape[2] == 3
    for i, img in enumerate(images):
        np.testing.assert_array_equal(row[:RES, i * RES:(i + 1) * RES], np.broadcast_to(img, [RES, RES, 3]))
        assert row[RES:, i * RES:(i + 1) * RES].min() < 128  # dark text on the white strip


def test_fuse_job_in_seeds_mode_writes_the_figure_and_codes(tmp_path, network):
    path, G = network
    out = tmp_path / "out"
    cfg = compose_cfg("fuse", fuse_overrides(path, out, "image1=seed:1", "image2=seed:2", "sweep=range"))
    figure = run_fusion(cfg)

    w1, w2 = seed_w(G, 1), seed_w(G, 2)
    ranges = [(0, 2), (2, 4), (3, 6), (5, 7)]
    cells = [render(G, w1), render(G, w2)] + [render(G, fuse_ws(w1, w2, r)) for r in ranges]
    assert figure.shape[1] == (2 + len(ranges)) * RES and figure.shape[0] > RES  # image 1, image 2, one per range
    np.testing.assert_array_equal(load_image(out / "figure.png"), figure)
    for i, cell in enumerate(cells):
        np.testing.assert_array_equal(figure[:RES, i * RES:(i + 1) * RES], cell)
    np.testing.assert_array_equal(load_image(out / "image2.png"), cells[1])
    for (a, b), cell in zip(ranges, cells[2:]):
        np.testing.assert_array_equal(load_image(out / f"fused_{a:02d}-{b:02d}.png"), cell)
        with np.load(out / f"fused_{a:02d}-{b:02d}.npz") as data:
            assert data["w"].shape == (1, NUM_WS, W_DIM) and data["w"].dtype == np.float32
            np.testing.assert_array_equal(data["w"], fuse_ws(w1, w2, (a, b)).numpy())

    sweep = load_image(out / "sweep_range.png")  # a 3-layer window (the first range) at starts 0..5
    assert sweep.shape[1] == 6 * RES
    np.testing.assert_array_equal(sweep[:RES, RES:2 * RES], render(G, fuse_ws(w1, w2, (1, 3))))
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
    assert figure.shape[1] == 3 * RES
    fused = fuse_ws(w1, w2, (1, 3), 0.5)
    np.testing.assert_array_equal(load_image(tmp_path / "out" / "fused_01-03.png"), render(G, fused))
    sweep = load_image(tmp_path / "out" / "sweep_strength.png")  # strengths 0, 0.5, 1
    assert sweep.shape[1] == 3 * RES
    np.testing.assert_array_equal(sweep[:RES, :RES], render(G, w1))
    np.testing.assert_array_equal(sweep[:RES, RES:2 * RES], render(G, fused))
    np.testing.assert_array_equal(sweep[:RES, 2 * RES:], render(G, fuse_ws(w1, w2, (1, 3))))


def test_fuse_job_projects_image_inputs(tmp_path, network):
    path, G = network
    save_image(render(G, seed_w(G, 3)), tmp_path / "face.png")
    out = tmp_path / "out"
    cfg = compose_cfg("fuse", fuse_overrides(
        path, out, f"image1={tmp_path / 'face.png'}", "image2=seed:4", "ranges=[[0,3]]", "projector.num_steps=2",
        "projector.w_avg_samples=50", "projector.lpips_model.pnet_rand=true"))
    run_fusion(cfg)
    with np.load(out / "image1" / "projected_w.npz") as proj, np.load(out / "image1.npz") as used:
        assert proj["w"].shape == (1, NUM_WS, W_DIM)
        np.testing.assert_array_equal(used["w"], proj["w"])
    assert (out / "image1" / "target.png").is_file() and (out / "figure.png").is_file()


def test_bad_sweep_is_refused_before_any_input_is_read(tmp_path, network):
    path, _ = network
    cfg = compose_cfg("fuse", fuse_overrides(path, tmp_path, f"image1={tmp_path / 'gone.png'}", "image2=seed:1",
                                             "sweep=ranges"))
    with pytest.raises(ConfigError, match="unknown sweep='ranges': use one of none, range, strength"):
        run_fusion(cfg)


@pytest.mark.slow
def test_fuse_py_runs_from_the_command_line(tmp_path, network):
    path, _ = network
    cmd = [sys.executable, "fuse.py", f"network={path}", "image1=seed:1", "image2=seed:2", "ranges=[[0,3],[4,7]]",
           "device=cpu", f"hydra.run.dir={tmp_path / 'run'}"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=120)
    assert load_image(tmp_path / "run" / "figure.png").shape[1] == 4 * RES
    cmd[5] = "ranges=[[0,9]]"
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: layer range [0, 9] does not fit this network's layers 0..7: pick 0 <= start <= end <= 7"]
