"""Latent inputs: seed lists in the official forms, class labels, projected_w.npz files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from stylefuse.errors import ConfigError
from stylefuse.generate import generate_images
from stylefuse.latents import class_label, load_latent, load_w, parse_seeds, save_w
from tests.helpers import tiny_network


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


def test_load_latent_from_a_seed_an_npz_or_an_image(tmp_path, network):
    _, G = network
    z = torch.from_numpy(np.random.RandomState(7).randn(1, G.z_dim))
    torch.testing.assert_close(load_latent("seed:7", G, truncation_psi=0.6), G.mapping(z, None, truncation_psi=0.6),
                               rtol=0, atol=0)
    w = torch.randn(1, G.num_ws, G.w_dim)
    save_w(tmp_path / "one.npz", w)
    assert torch.equal(load_latent(str(tmp_path / "one.npz"), G), w)
    (tmp_path / "face.png").write_bytes(b"any file that is not an npz")
    projected = []
    assert torch.equal(load_latent(tmp_path / "face.png", G, project_image=lambda path: projected.append(path) or w),
                       w)
    assert projected == [str(tmp_path / "face.png")]

    save_w(tmp_path / "two.npz", torch.randn(2, G.num_ws, G.w_dim))
    save_w(tmp_path / "wide.npz", torch.randn(1, G.num_ws + 2, G.w_dim))
    np.savez(tmp_path / "key.npz", latent=w.numpy())
    cases = {"two.npz": "holds 2 codes", "wide.npz": r"\[1, 10, 32\]", "key.npz": "no array named 'w'",
             "gone.npz": "not found", "gone.png": "input not found", "seed:x": "seed:<number>",
             "face.png": "is an image: project it first"}
    for name, message in cases.items():
        source = name if name.startswith("seed:") else str(tmp_path / name)
        with pytest.raises(ConfigError, match=message) as err:
            load_latent(source, G)
        assert "\n" not in str(err.value)
