"""Generation from seeds and projected W: the official seed -> z -> image pipeline, pixel for pixel."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from stylefuse.bench.generate import main as bench_generate
from stylefuse.errors import ConfigError
from stylefuse.generate import generate_images
from stylefuse.generate import run as run_generate
from stylefuse.latents import class_label, load_w, parse_seeds, save_w
from stylefuse.utils.images import load_image
from tests.helpers import REPO, compose_cfg, official_uint8, tiny_network


@pytest.fixture
def network(tmp_path):
    path = tmp_path / "tiny.pt"
    return path, tiny_network(path)


def test_parse_seeds_accepts_the_official_forms():
    assert parse_seeds("3-6") == [3, 4, 5, 6]
    assert parse_seeds("85,100,75") == [85, 100, 75]
    assert parse_seeds(7) == [7]
    assert parse_seeds(["0-1", 9]) == [0, 1, 9]
    assert parse_seeds(OmegaConf.create([4, "2-3"])) == [4, 2, 3]


@pytest.mark.parametrize("spec", [None, [], "a-b", "3,x", -1, 2**32, "5-"])
def test_parse_seeds_rejects_bad_input_in_one_line(spec):
    with pytest.raises(ConfigError) as err:
        parse_seeds(spec)
    assert "\n" not in str(err.value)


def test_generated_images_equal_G_on_the_official_latents(network):
    _, G = network
    images = generate_images(G, [0, 5], truncation_psi=0.7, noise_mode="const")
    for seed in (0, 5):
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
        ws = G.mapping(z, None, truncation_psi=0.7)
        np.testing.assert_array_equal(images[seed], official_uint8(G.synthesis(ws, noise_mode="const")))
    assert not np.array_equal(images[0], images[5])
    assert not np.array_equal(images[0], generate_images(G, [0], truncation_psi=1.0)[0])  # trunc matters
    assert not np.array_equal(images[0], generate_images(G, [0], 0.7, noise_mode="none")[0])  # noise matters


def test_class_labels(tmp_path):
    G = tiny_network(tmp_path / "cond.pt", c_dim=4)
    label = class_label(G, 2, torch.device("cpu"))
    np.testing.assert_array_equal(label.numpy(), [[0, 0, 1, 0]])
    for bad in (None, 4):
        with pytest.raises(ConfigError, match="class_idx"):
            class_label(G, bad, torch.device("cpu"))
    images = generate_images(G, [1], class_idx=0)
    assert not np.array_equal(images[1], generate_images(G, [1], class_idx=3)[1])
    uncond = tiny_network(tmp_path / "uncond.pt")
    with pytest.warns(UserWarning, match="ignored"):
        assert class_label(uncond, 1, torch.device("cpu")).shape == (1, 0)


def test_load_w_round_trip_and_one_line_errors(tmp_path, network):
    _, G = network
    w = torch.randn(2, G.num_ws, G.w_dim)
    save_w(tmp_path / "w.npz", w)
    with np.load(tmp_path / "w.npz") as data:
        assert data.files == ["w"] and data["w"].dtype == np.float32
    np.testing.assert_array_equal(load_w(tmp_path / "w.npz", G), w.numpy())

    np.savez(tmp_path / "key.npz", dlatents=w.numpy())
    np.savez(tmp_path / "shape.npz", w=np.zeros([1, G.num_ws + 1, G.w_dim], np.float32))
    np.save(tmp_path / "plain.npy", w.numpy())
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    cases = {"missing.npz": "not found", "key.npz": "no array named 'w'", "shape.npz": r"\[K, 8, 32\]",
             "plain.npy": "no array named 'w'", "junk.npz": "cannot read"}
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message) as err:
            load_w(tmp_path / name, G)
        assert "\n" not in str(err.value)


def test_generate_job_writes_seed_pngs_and_grid(tmp_path, network):
    path, G = network
    out = tmp_path / "out"
    cfg = compose_cfg("generate", [f"network={path}", "seeds=[3,0-1]", "trunc=0.5", f"paths.output_dir={out}",
                                   "device=cpu"])
    run_generate(cfg)
    expected = generate_images(G, [3, 0, 1], truncation_psi=0.5)
    for seed, img in expected.items():
        np.testing.assert_array_equal(load_image(out / f"seed{seed:04d}.png"), img)
    grid = load_image(out / "grid.png")
    assert grid.shape == (64, 64, 3)  # 3 images in a 2x2 grid, the last cell black
    np.testing.assert_array_equal(grid[:32, 32:], expected[0])
    assert grid[32:, 32:].max() == 0


def test_generate_job_renders_projected_w(tmp_path, network):
    path, G = network
    ws = G.mapping(torch.randn(3, G.z_dim), None)
    save_w(tmp_path / "projected_w.npz", ws)
    cfg = compose_cfg("generate", [f"network={path}", f"projected_w={tmp_path / 'projected_w.npz'}",
                                   f"paths.output_dir={tmp_path / 'out'}", "device=cpu"])
    run_generate(cfg)
    for idx in range(3):
        with torch.no_grad():
            expected = official_uint8(G.synthesis(ws[idx:idx + 1], noise_mode="const"))
        np.testing.assert_array_equal(load_image(tmp_path / "out" / f"proj{idx:02d}.png"), expected)


@pytest.mark.slow
def test_generate_module_runs_from_the_command_line(tmp_path, network):
    path, _ = network
    cmd = [sys.executable, "-m", "stylefuse.generate", f"network={path}", "seeds=0-1", "device=cpu",
           f"hydra.run.dir={tmp_path / 'run'}"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.png")) == ["grid.png", "seed0000.png", "seed0001.png"]
    cmd[4] = "seeds=null"
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: seeds is not set: give a list [0,1,2], a range 0-7 or a "
                                                  "quoted list '0,1,2'"]


def test_bench_generate_reports_throughput(capsys):
    bench_generate(["--res", "16", "--batch", "2", "--n", "4", "--channel-base", "256", "--channel-max", "16",
                    "--map", "2", "--device", "cpu"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(item.split("=") for item in last.split())
    assert list(fields) == ["img_per_sec", "peak_rss_mb"]
    assert float(fields["img_per_sec"]) > 0 and int(fields["peak_rss_mb"]) > 0
