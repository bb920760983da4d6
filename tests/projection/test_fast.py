"""The projector's fast mode: the truncated synthesis it optimizes through."""

from __future__ import annotations

import pytest
import torch

from stylefuse.nn import Generator

TINY_G = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
              synthesis_kwargs=dict(channel_base=512, channel_max=32))


def tiny_G(architecture: str = "skip") -> Generator:
    torch.manual_seed(0)
    G = Generator(**{**TINY_G, "synthesis_kwargs": {**TINY_G["synthesis_kwargs"], "architecture": architecture}})
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.3)  # the noise maps take part
    return G.eval()


@pytest.mark.parametrize("fused_modconv", [True, False])
def test_running_image_is_the_full_networks_intermediate_image(fused_modconv):
    G = tiny_G()
    ws = G.mapping(torch.randn(2, 32, generator=torch.Generator().manual_seed(1)), None)
    seen = {}
    hooks = [getattr(G.synthesis, f"b{res}").register_forward_hook(
        lambda block, inputs, output: seen.__setitem__(block.resolution, output[1]))
        for res in G.synthesis.block_resolutions]
    with torch.no_grad():
        full = G.synthesis(ws, noise_mode="const", fused_modconv=fused_modconv)
        for hook in hooks:
            hook.remove()
        for res in G.synthesis.block_resolutions:
            img = G.synthesis.running_image(ws, res, noise_mode="const", fused_modconv=fused_modconv)
            assert img.shape == (2, 3, res, res)
            assert torch.equal(img, seen[res]), res  # the same operations, bit for bit
    assert torch.equal(seen[32], full)
    assert not torch.equal(seen[16], torch.nn.functional.avg_pool2d(full, 2))  # later blocks add to the image


def test_running_image_needs_a_skip_network():
    G = tiny_G("resnet")
    ws = G.mapping(torch.randn(1, 32), None)
    with torch.no_grad():
        assert torch.equal(G.synthesis.running_image(ws, 32, noise_mode="const"), G.synthesis(ws, noise_mode="const"))
        with pytest.raises(AssertionError, match="skip"):
            G.synthesis.running_image(ws, 16)
