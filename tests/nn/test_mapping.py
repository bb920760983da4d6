"""Mapping network: golden w, labels, truncation and the tracked w_avg."""

from __future__ import annotations

import torch

from stylefuse.nn import MappingNetwork

ATOL = 1e-5


def test_golden_mapping_and_synthesis(golden, golden_nets):
    G, _ = golden_nets
    inputs, outputs = golden["inputs"], golden["outputs"]
    with torch.no_grad():
        ws = G.mapping(inputs["z"], inputs["c"], truncation_psi=inputs["truncation_psi"],
                       truncation_cutoff=inputs["truncation_cutoff"])
        torch.testing.assert_close(ws, outputs["ws"], atol=ATOL, rtol=0)
        for mode in ("const", "none"):
            img = G.synthesis(outputs["ws"], noise_mode=mode)
            torch.testing.assert_close(img, outputs[f"img_{mode}"], atol=ATOL, rtol=0)
        img = G.synthesis(inputs["mixed_ws"], noise_mode="const")
        torch.testing.assert_close(img, outputs["img_mixed"], atol=ATOL, rtol=0)


def test_conditional_model_uses_the_label(tiny_G, tiny_D):
    torch.manual_seed(0)
    G, D = tiny_G(c_dim=10), tiny_D(c_dim=10, architecture="orig")
    z = torch.randn(2, 32).repeat(2, 1)
    c = torch.eye(10)[[0, 1, 2, 3]]
    ws = G.mapping(z, c)
    img = G.synthesis(ws, noise_mode="const")
    assert ws.shape == (4, G.num_ws, 32) and img.shape == (4, 3, 32, 32)
    assert not torch.allclose(ws[0], ws[2])  # same z, different label
    assert D(img, c).shape == (4, 1)
    assert D.mapping.embed.weight.shape == (32, 10) and "b4.out.weight" in D.state_dict()
    assert D.b4.out.weight.shape == (D.b4.cmap_dim, 32)


def test_truncation_and_w_avg_tracking():
    torch.manual_seed(0)
    M = MappingNetwork(z_dim=16, c_dim=0, w_dim=16, num_ws=6, num_layers=2)
    z = torch.randn(8, 16)
    M.train()
    w = M(z, None)[:, 0]
    expected_avg = (1 - 0.995) * w.mean(dim=0)  # w_avg starts at zero
    torch.testing.assert_close(M.w_avg, expected_avg)
    before = M.w_avg.clone()
    M(z, None, skip_w_avg_update=True)
    assert torch.equal(M.w_avg, before)
    M.eval()
    ws = M(z, None)
    assert torch.equal(M.w_avg, before)  # eval mode never updates
    torch.testing.assert_close(M(z, None, truncation_psi=0), M.w_avg.expand_as(ws))
    cut = M(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], M.w_avg + 0.5 * (ws[:, :2] - M.w_avg))
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
