"""Layers: the modulated convolution (fused and per-sample, official and factored demodulation) and the block
layout/precision options."""

from __future__ import annotations

import torch

from stylefuse.nn import modulated_conv2d, set_block_options
from stylefuse.nn.synthesis import SynthesisLayer


def test_fused_and_nonfused_modulated_conv_agree(tiny_G):
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 8, 16, 16), torch.randn(5, 8, 3, 3), torch.randn(3, 8)
    noise = torch.randn(3, 1, 16, 16)
    for demodulate in (True, False):
        a = modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate, fused_modconv=True)
        b = modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate, fused_modconv=False)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    G = tiny_G(architecture="resnet").eval()
    ws = G.mapping(torch.randn(3, 32), None)
    torch.testing.assert_close(G.synthesis(ws, noise_mode="const", fused_modconv=True),
                               G.synthesis(ws, noise_mode="const", fused_modconv=False), atol=1e-5, rtol=1e-5)


def test_block_options_change_layout_and_precision_not_results(tiny_G, tiny_D):
    torch.manual_seed(0)
    G, D = tiny_G(num_fp16_res=2).eval(), tiny_D(num_fp16_res=2).eval()
    z = torch.randn(4, 32)
    with torch.no_grad():
        img, logits = G(z, None, noise_mode="const"), D(G(z, None, noise_mode="const", force_fp32=True), None)
        set_block_options(G, fp32_channels_last=True)
        set_block_options(D, fp32_channels_last=True)
        x, _ = G.synthesis.b8(torch.randn(4, 32, 4, 4), None, torch.randn(4, 3, 32), fused_modconv=False)
        assert x.is_contiguous(memory_format=torch.channels_last)  # the layout training (shared conv) runs in
        torch.testing.assert_close(G(z, None, noise_mode="const"), img, atol=1e-5, rtol=1e-5)
        set_block_options(G, fp16_dtype="bfloat16")
        x, _ = G.synthesis.b16(torch.randn(4, 32, 8, 8), None, torch.randn(4, 3, 32))
        assert x.dtype == torch.bfloat16
        assert (G(z, None, noise_mode="const") - img).abs().max() < 0.05 * img.abs().max()
        torch.testing.assert_close(D(G(z, None, noise_mode="const", force_fp32=True), None), logits, atol=5e-3,
                                   rtol=1e-2)


def test_factored_demodulation_is_the_same_sum(tiny_G):
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 8, 16, 16), torch.randn(5, 8, 3, 3), torch.randn(3, 8)
    for fused in (True, False):
        a = modulated_conv2d(x, weight, styles, padding=1, fused_modconv=fused)
        b = modulated_conv2d(x, weight, styles, padding=1, fused_modconv=fused, factored_demod=True)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # Gradients through the coefficients (the projector's styles) agree too.
    styles.requires_grad_(True)
    grads = [torch.autograd.grad(modulated_conv2d(x, weight, styles, padding=1, fused_modconv=False,
                                                  factored_demod=factored).square().sum(), styles)[0]
             for factored in (False, True)]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)
    G = tiny_G(seed=0, noise_strength=0.3).eval()
    ws = G.mapping(torch.randn(2, 32), None)
    with torch.no_grad():
        official = G.synthesis(ws, noise_mode="const", fused_modconv=False)
        set_block_options(G, factored_demod=True)
        assert all(layer.factored_demod for layer in G.synthesis.modules() if isinstance(layer, SynthesisLayer))
        torch.testing.assert_close(G.synthesis(ws, noise_mode="const", fused_modconv=False), official, atol=1e-5,
                                   rtol=1e-5)
