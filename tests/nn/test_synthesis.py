"""Synthesis network and Generator: golden images, official structure, every architecture, noise, fp16,
channels-last, clamping, rebuilding from init_kwargs."""

from __future__ import annotations

import copy

import pytest
import torch

from stylefuse.nn import Discriminator, Generator

ATOL = 1e-5


def test_state_dict_names_shapes_and_order_are_official(golden, golden_nets):
    G, D = golden_nets
    for ours, theirs in [(G.state_dict(), golden["G_state_dict"]), (D.state_dict(), golden["D_state_dict"])]:
        assert list(ours.keys()) == list(theirs.keys())
        assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_golden_generator_end_to_end_with_fused_modconv(golden, golden_nets):
    # Eval mode picks the fused (grouped) modulated convolution; the golden images used the same ws.
    G, _ = golden_nets
    inputs, outputs = golden["inputs"], golden["outputs"]
    with torch.no_grad():
        img = G(inputs["z"], inputs["c"], truncation_psi=inputs["truncation_psi"], noise_mode="const")
        img_nonfused = G.synthesis(outputs["ws"], noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(img, outputs["img_const"], atol=ATOL, rtol=0)
    torch.testing.assert_close(img_nonfused, outputs["img_const"], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "cfg, G_params, mapping_params, D_params, num_ws",
    [  # Spec 3.7 parameter counts of official configurations (z = w = 512).
        (dict(res=32, fmaps=0.5, map=2, c_dim=0, d_arch="resnet"), 19_947_539, 525_312, 21_507_073, 8),
        (dict(res=32, fmaps=1, map=2, c_dim=10, d_arch="orig"), 20_215_315, 793_088, 23_089_664, 8),
        (dict(res=256, fmaps=0.5, map=8, c_dim=0, d_arch="resnet"), 24_767_458, 2_101_248, 24_001_089, 14),
    ],
)
def test_official_parameter_counts(cfg, G_params, mapping_params, D_params, num_ws):
    channel_base = int(cfg["fmaps"] * 32768)
    G = Generator(z_dim=512, c_dim=cfg["c_dim"], w_dim=512, img_resolution=cfg["res"], img_channels=3,
                  mapping_kwargs=dict(num_layers=cfg["map"]),
                  synthesis_kwargs=dict(channel_base=channel_base, channel_max=512, num_fp16_res=4, conv_clamp=256))
    D = Discriminator(c_dim=cfg["c_dim"], img_resolution=cfg["res"], img_channels=3, architecture=cfg["d_arch"],
                      channel_base=channel_base, channel_max=512, num_fp16_res=4, conv_clamp=256)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert (count(G), count(G.mapping), count(D), G.num_ws) == (G_params, mapping_params, D_params, num_ws)


@pytest.mark.parametrize("g_arch", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("d_arch", ["orig", "skip", "resnet"])
def test_every_architecture_combination_runs(tiny_G, tiny_D, g_arch, d_arch):
    torch.manual_seed(0)
    G, D = tiny_G(architecture=g_arch), tiny_D(architecture=d_arch)
    img = G(torch.randn(4, 32), None)
    assert img.shape == (4, 3, 32, 32) and img.dtype == torch.float32
    logits = D(img, None)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in D.parameters())
    has_torgb = [hasattr(getattr(G.synthesis, f"b{r}"), "torgb") for r in G.synthesis.block_resolutions]
    assert has_torgb == ([True] * 4 if g_arch == "skip" else [False] * 3 + [True])


def test_noise_modes(tiny_G):
    torch.manual_seed(0)
    G = tiny_G().eval()
    for layer in G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    ws = G.mapping(torch.randn(2, 32), None)
    const = G.synthesis(ws, noise_mode="const")
    assert torch.equal(const, G.synthesis(ws, noise_mode="const"))
    assert not torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
    assert not torch.allclose(const, G.synthesis(ws, noise_mode="none"))
    with pytest.raises(AssertionError, match="noise_mode"):
        G.synthesis(ws, noise_mode="bogus")


def test_fp16_blocks_run_and_stay_close_to_fp32(tiny_G, tiny_D):
    torch.manual_seed(0)
    G = tiny_G(num_fp16_res=2, conv_clamp=256).eval()
    D = tiny_D(num_fp16_res=2, conv_clamp=256).eval()
    assert [getattr(G.synthesis, f"b{r}").use_fp16 for r in (4, 8, 16, 32)] == [False, False, True, True]
    assert [getattr(D, f"b{r}").use_fp16 for r in (32, 16, 8)] == [True, True, False]
    z = torch.randn(4, 32)
    with torch.no_grad():
        img16, img32 = G(z, None, noise_mode="const"), G(z, None, noise_mode="const", force_fp32=True)
        x, _ = G.synthesis.b16(torch.randn(4, 32, 8, 8), None, torch.randn(4, 3, 32))
    assert img16.dtype == torch.float32 and x.dtype == torch.float16
    assert (img16 - img32).abs().max() < 2e-2 * img32.abs().max()
    torch.testing.assert_close(D(img32, None), D(img32, None, force_fp32=True), atol=5e-3, rtol=1e-2)


def test_channels_last_matches_contiguous(tiny_G):
    torch.manual_seed(0)
    G = tiny_G(num_fp16_res=2, fp16_channels_last=True).eval()
    G_ref = tiny_G(num_fp16_res=2).eval()
    G_ref.load_state_dict(G.state_dict())
    z = torch.randn(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(G(z, None, noise_mode="const"), G_ref(z, None, noise_mode="const"),
                                   atol=1e-2, rtol=1e-2)


def test_conv_clamp_limits_activations(tiny_G):
    torch.manual_seed(0)
    G = tiny_G(architecture="orig", conv_clamp=0.5).eval()
    G.synthesis.b32.torgb.bias.data.fill_(100.0)
    with torch.no_grad():
        img = G(torch.randn(2, 32), None, noise_mode="const")
    torch.testing.assert_close(img, torch.full_like(img, 0.5))  # only the last ToRGB writes the image, clamped


def test_init_kwargs_rebuild_the_same_architecture(tiny_G, tiny_D):
    G = tiny_G(architecture="resnet")
    G2 = Generator(**copy.deepcopy(G.init_kwargs))
    assert {k: v.shape for k, v in G.state_dict().items()} == {k: v.shape for k, v in G2.state_dict().items()}
    D = tiny_D(architecture="skip", epilogue_kwargs=dict(mbstd_group_size=2))
    assert Discriminator(**D.init_kwargs).b4.mbstd.group_size == 2
