"""The official style-mixing matrix: cells are row codes with the `styles` layers of the column codes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from stylefuse.errors import ConfigError
from stylefuse.fusion import fuse_ws
from stylefuse.style_mixing import mixing_grid, style_mix
from stylefuse.style_mixing import run as run_style_mixing
from stylefuse.utils.images import load_image
from tests.helpers import REPO, compose_cfg, official_uint8

ROWS, COLS = [85, 100], [55, 821, 100]


def official_ws(G, seeds, psi):
    """The official tool's codes: one mapping batch over set(rows + cols), truncated by hand on every layer."""
    z = torch.from_numpy(np.stack([np.random.RandomState(seed).randn(G.z_dim) for seed in seeds]))
    ws = G.mapping(z, None)
    return G.mapping.w_avg + (ws - G.mapping.w_avg) * psi


@torch.no_grad()
def test_cells_are_the_synthesis_of_mixed_codes_pixel_exact(network):
    _, G = network
    images = style_mix(G, ROWS, COLS, styles=[0, 1, 2, 3], truncation_psi=0.8)
    seeds = list(set(ROWS + COLS))
    ws = official_ws(G, seeds, 0.8)
    w_of = dict(zip(seeds, ws))
    unmixed = G.synthesis(ws, noise_mode="const")
    for idx, seed in enumerate(seeds):
        if seed not in ROWS or seed not in COLS:  # (100, 100) is a mixed cell, rendered alone
            np.testing.assert_array_equal(images[(seed, seed)], official_uint8(unmixed[idx:idx + 1]))
    for row in ROWS:
        for col in COLS:
            mixed = fuse_ws(w_of[row][None], w_of[col][None], (0, 3))
            np.testing.assert_array_equal(images[(row, col)], official_uint8(G.synthesis(mixed, noise_mode="const")))
    assert not np.array_equal(images[(85, 55)], images[(85, 85)])  # the column seed changed the coarse layers
    assert not np.array_equal(images[(85, 55)], images[(55, 55)])  # and only those
    assert sorted(images) == sorted({(r, c) for r in ROWS for c in COLS} | {(s, s) for s in seeds})


def test_grid_layout_is_the_official_one():
    H, W = 4, 6
    images = {key: np.full([H, W, 3], 10 * idx + 5, np.uint8)
              for idx, key in enumerate([(1, 1), (2, 2), (7, 7), (8, 8), (1, 7), (1, 8), (2, 7), (2, 8)])}
    grid = mixing_grid(images, row_seeds=[1, 2], col_seeds=[7, 8])
    assert grid.shape == (H * 3, W * 3, 3)
    assert grid[:H, :W].max() == 0  # black corner
    cells = grid.reshape(3, H, 3, W, 3)[:, 0, :, 0, 0]  # one pixel per cell
    np.testing.assert_array_equal(cells[0, 1:], [images[(7, 7)][0, 0, 0], images[(8, 8)][0, 0, 0]])
    np.testing.assert_array_equal(cells[1:, 0], [images[(1, 1)][0, 0, 0], images[(2, 2)][0, 0, 0]])
    np.testing.assert_array_equal(cells[1:, 1:], [[images[(r, c)][0, 0, 0] for c in (7, 8)] for r in (1, 2)])


def test_style_mixing_job_writes_pairs_and_grid(tmp_path, network):
    path, G = network
    out = tmp_path / "out"
    cfg = compose_cfg("style_mixing", [f"network={path}", "rows=[85,100]", "cols=55-56", "styles=0-6",
                                       f"paths.output_dir={out}", "device=cpu"])
    grid = run_style_mixing(cfg)
    expected = style_mix(G, [85, 100], [55, 56], list(range(7)))
    for (row, col), img in expected.items():
        np.testing.assert_array_equal(load_image(out / f"{row}-{col}.png"), img)
    assert grid.shape == (96, 96, 3)
    np.testing.assert_array_equal(load_image(out / "grid.png"), grid)
    np.testing.assert_array_equal(grid[64:, 64:], expected[(100, 56)])


def test_styles_beyond_the_network_are_a_one_line_error(network):
    _, G = network
    with pytest.raises(ConfigError, match=r"layers 0\.\.7") as err:
        style_mix(G, [1], [2], styles=[6, 7, 8])
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_style_mixing_module_runs_from_the_command_line(tmp_path, network):
    path, _ = network
    cmd = [sys.executable, "-m", "stylefuse.style_mixing", f"network={path}", "rows=[1]", "cols=[2,3]",
           "device=cpu", f"hydra.run.dir={tmp_path / 'run'}"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=120)
    names = sorted(p.name for p in (tmp_path / "run").glob("*.png"))
    assert names == ["1-1.png", "1-2.png", "1-3.png", "2-2.png", "3-3.png", "grid.png"]
    assert load_image(tmp_path / "run" / "grid.png").shape == (64, 96, 3)
