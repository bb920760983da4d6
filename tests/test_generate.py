"""Generation from seeds and projected W: the official seed -> z -> image pipeline, pixel for pixel."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from stylefuse.generate import generate_images
from stylefuse.generate import run as run_generate
from stylefuse.latents import save_w
from stylefuse.utils.images import load_image
from tests.helpers import REPO, compose_cfg, official_uint8


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
